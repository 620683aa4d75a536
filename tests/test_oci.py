"""The one OCI package: media types spelt only there, manifest kinds, verified atomic writes,
platforms, and the ``io.kubenb.images`` annotation read in one place."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kubenb
from kubenb.errors import InvalidReferenceError, StoreError
from kubenb.oci import media_types
from kubenb.oci.digests import atomic_file, compute_digest, file_digest, keep_verified, remove_stale
from kubenb.oci.manifests import manifest_kind, parse_references
from kubenb.oci.platforms import config_platform, go_architecture, parse_platform
from kubenb.store import ClusterImage, Store

PACKAGE = Path(kubenb.__file__).parent
MEDIA_TYPE = re.compile(r"application/vnd\.(oci|docker)\.")


def _media_type_strings(path: Path) -> list[str]:
    """``file:line: 'string'`` for each string constant of ``path`` that spells a media type."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [f"{path.name}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and MEDIA_TYPE.match(node.value)]


def test_no_module_outside_oci_spells_a_media_type() -> None:
    outside = [path for path in sorted(PACKAGE.rglob("*.py")) if "oci" not in path.relative_to(PACKAGE).parts[:1]]
    found = [hit for path in outside for hit in _media_type_strings(path)]
    assert not found, "use kubenb.oci.media_types:\n" + "\n".join(found)


def test_the_media_type_check_catches_constants_and_f_strings(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('"""Mentions application/vnd.oci.image.index.v1+json in prose: allowed."""\n'
                   'KIND = "application/vnd.docker.distribution.manifest.v2+json"\n'
                   'def f(x: str) -> str:\n    return f"application/vnd.oci.image.layer.v1.{x}"\n')
    assert _media_type_strings(bad) == [
        "bad.py:2: 'application/vnd.docker.distribution.manifest.v2+json'",
        "bad.py:4: 'application/vnd.oci.image.layer.v1.'",
    ]


def test_the_oci_package_defines_every_media_type_once() -> None:
    assert _media_type_strings(PACKAGE / "oci" / "media_types.py")
    others = [hit for path in sorted((PACKAGE / "oci").glob("*.py")) if path.name != "media_types.py"
              for hit in _media_type_strings(path)]
    assert not others


# --- verified atomic writes ---------------------------------------------------------------------

def test_keep_verified_refuses_a_wrong_digest_and_leaves_nothing(tmp_path: Path) -> None:
    temp_dir, target = tmp_path / "tmp", tmp_path / "blobs" / "data"
    temp_dir.mkdir()
    temp = temp_dir / "download"
    temp.write_bytes(b"what the registry sent")
    wrong = compute_digest(b"what was asked for")
    with pytest.raises(StoreError, match=f"blob {wrong} not kept: its data hashes to sha256:"):
        keep_verified(temp, target, wrong)
    assert not target.exists() and list(temp_dir.iterdir()) == []


def test_keep_verified_keeps_the_right_bytes_and_removes_the_temp_file(tmp_path: Path) -> None:
    temp, target = tmp_path / "download", tmp_path / "blobs" / "data"
    temp.write_bytes(b"layer")
    keep_verified(temp, target, compute_digest(b"layer"), durable=True)
    assert target.read_bytes() == b"layer" and not temp.exists()
    assert target.stat().st_mode & 0o777 == 0o644
    again = tmp_path / "second"
    again.write_bytes(b"layer")
    keep_verified(again, target, compute_digest(b"layer"))  # already there whole: kept as is
    assert not again.exists() and target.read_bytes() == b"layer"


def test_keep_verified_checks_other_algorithms_and_refuses_non_digests(tmp_path: Path) -> None:
    temp, target = tmp_path / "download", tmp_path / "data"
    temp.write_bytes(b"x")
    keep_verified(temp, target, compute_digest(b"x", "sha512"))
    assert target.read_bytes() == b"x"
    temp.write_bytes(b"x")
    with pytest.raises(StoreError, match="is not a digest"):
        keep_verified(temp, tmp_path / "other", "md5:" + "0" * 32)
    assert not temp.exists()


def test_file_digest_hashes_in_chunks_like_hashing_the_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "f").write_bytes(data)
    assert file_digest(tmp_path / "f") == compute_digest(data)


def test_atomic_file_leaves_no_temp_file_and_no_target_on_error(tmp_path: Path) -> None:
    temp_dir, target = tmp_path / "tmp", tmp_path / "index.json"
    with pytest.raises(RuntimeError), atomic_file(target, temp_dir) as out:
        out.write(b"half")
        raise RuntimeError("interrupted")
    assert not target.exists() and list(temp_dir.iterdir()) == []
    with atomic_file(target, temp_dir, durable=True) as out:
        out.write(b"whole")
    assert target.read_bytes() == b"whole" and list(temp_dir.iterdir()) == []


def test_atomic_file_exclusive_never_replaces(tmp_path: Path) -> None:
    target = tmp_path / "link"
    target.write_bytes(b"first")
    with pytest.raises(FileExistsError), atomic_file(target, tmp_path / "tmp", exclusive=True) as out:
        out.write(b"second")
    assert target.read_bytes() == b"first" and list((tmp_path / "tmp").iterdir()) == []


def test_remove_stale_keeps_young_entries(tmp_path: Path) -> None:
    (tmp_path / "young").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    assert remove_stale(tmp_path, 3600) == 0
    assert remove_stale(tmp_path, 0) == 2 and list(tmp_path.iterdir()) == []
    assert remove_stale(tmp_path / "absent", 0) == 0


# --- manifest kinds ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [*media_types.MANIFEST_TYPES, *sorted(media_types.SCHEMA1_TYPES)])
def test_a_declared_media_type_wins(kind: str) -> None:
    assert manifest_kind({"mediaType": kind, "manifests": []}, media_types.OCI_MANIFEST) == kind


@pytest.mark.parametrize("kind", [*media_types.MANIFEST_TYPES, *sorted(media_types.SCHEMA1_TYPES)])
def test_without_media_type_the_content_type_says(kind: str) -> None:
    assert manifest_kind({"config": {}}, f"{kind.upper()}; charset=utf-8") == kind


@pytest.mark.parametrize(("document", "kind"), [
    ({"schemaVersion": 2, "manifests": []}, media_types.OCI_INDEX),
    ({"schemaVersion": 2, "config": {}, "layers": []}, media_types.OCI_MANIFEST),
    ({"schemaVersion": 2}, ""),
])
def test_without_media_type_or_content_type_the_shape_says(document: dict[str, object], kind: str) -> None:
    assert manifest_kind(document) == kind
    assert manifest_kind(document, "application/octet-stream") == (kind or "application/octet-stream")


def _descriptor(data: bytes, kind: str) -> dict[str, object]:
    return {"mediaType": kind, "digest": compute_digest(data), "size": len(data)}


def test_references_of_a_manifest_without_media_type() -> None:
    config = _descriptor(b"{}", media_types.OCI_CONFIG)
    layer = _descriptor(b"tar", media_types.OCI_LAYER_GZIP)
    references = parse_references(json.dumps({"schemaVersion": 2, "config": config, "layers": [layer]}).encode())
    assert references.media_type == media_types.OCI_MANIFEST and not references.is_index
    assert [blob.digest for blob in references.blobs] == [config["digest"], layer["digest"]]


def test_references_of_an_index_without_media_type_carry_platforms() -> None:
    child = {**_descriptor(b"m", media_types.OCI_MANIFEST),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
    references = parse_references(json.dumps({"schemaVersion": 2, "manifests": [child]}).encode())
    assert references.is_index and references.manifests[0].platform == "linux/arm64/v8"
    assert references.children(["linux/arm64"]) == references.manifests
    assert references.children(["linux/amd64"]) == ()


@pytest.mark.parametrize(("document", "message"), [
    ({"schemaVersion": 1, "fsLayers": []}, "schema 1 manifests are not supported"),
    ({"mediaType": sorted(media_types.SCHEMA1_TYPES)[0]}, "schema 1 manifests are not supported"),
    ({"schemaVersion": 2}, "content without a media type is not an image manifest or index"),
    ({"mediaType": "application/json"}, "application/json is not an image manifest or index"),
])
def test_references_refuse_what_is_no_manifest(document: dict[str, object], message: str) -> None:
    with pytest.raises(StoreError, match=re.escape(message)):
        parse_references(json.dumps(document).encode())


# --- platforms ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "go"), [("x86_64", "amd64"), ("X86-64", "amd64"), ("aarch64", "arm64"),
                                            ("armv7l", "arm"), ("amd64", "amd64"), ("s390x", "s390x")])
def test_one_table_of_architecture_names(written: str, go: str) -> None:
    assert go_architecture(written) == go
    assert parse_platform(f"Linux/{written}") == f"linux/{go}"


def test_platform_strings_are_checked() -> None:
    assert parse_platform("linux/arm64/v8") == "linux/arm64/v8"
    with pytest.raises(InvalidReferenceError, match="expected os/arch or os/arch/variant"):
        parse_platform("linux")


def test_config_platform_reads_image_configs_only() -> None:
    config = json.dumps({"os": "linux", "architecture": "ARM64", "variant": "v8"}).encode()
    assert config_platform(config, media_types.OCI_CONFIG) == "linux/arm64/v8"
    assert config_platform(config, media_types.DOCKER_CONFIG) == "linux/arm64/v8"
    assert config_platform(config, "application/vnd.cncf.helm.config.v1+json") is None
    assert config_platform(b"[" * 100_000, media_types.OCI_CONFIG) is None


# --- the images a cluster image carries ----------------------------------------------------------

def _image(annotation: str | None) -> ClusterImage:
    annotations = {} if annotation is None else {"io.kubenb.images": annotation}
    return ClusterImage("c:1", "sha256:" + "a" * 64, "sha256:" + "b" * 64, "2024-01-01T00:00:00Z", 1,
                        annotations=annotations)


def test_carried_images_are_read_from_the_annotation() -> None:
    carried = {"docker.io/library/nginx:1.25": "sha256:" + "c" * 64}
    assert _image(json.dumps(carried)).carried_images == carried
    assert _image(None).carried_images == {}


@pytest.mark.parametrize("hostile", ["not json", "[1, 2]", "[" * 100_000])
def test_a_foreign_annotation_that_is_no_mapping_carries_nothing(hostile: str) -> None:
    assert _image(hostile).carried_images == {}


def test_the_images_annotation_is_decoded_in_one_place() -> None:
    readers = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in sorted(PACKAGE.rglob("*.py"))
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Constant) and node.value == "io.kubenb.images"]
    assert len(readers) == 1 and readers[0].startswith("model.py:"), readers


def test_list_images_over_a_base_whose_images_annotation_is_garbage_lists_the_context(tmp_path: Path) -> None:
    """A base image from elsewhere may carry anything in ``io.kubenb.images``: list-images still
    answers (the base carries nothing listable), with no Traceback."""
    root = tmp_path / "store"
    Store(root).commit("base:1", [], labels={}, annotations={"io.kubenb.images": "{not json"})
    (tmp_path / "ctx" / "manifests").mkdir(parents=True)
    (tmp_path / "ctx" / "Kubefile").write_text("FROM base:1\nCOPY imageList manifests\n")
    (tmp_path / "ctx" / "imageList").write_text("alpine:3.20\n")
    result = subprocess.run([sys.executable, "-m", "kubenb", "--root", str(root), "list-images",
                             str(tmp_path / "ctx"), "-o", "json"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert [image["image"] for image in json.loads(result.stdout)["images"]] == ["docker.io/library/alpine:3.20"]
