"""Round trips through the real test infrastructure: our pushes, skopeo's reads."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.oci import (
    INDEX,
    MANIFEST,
    Image,
    blob_exists,
    fetch_manifest,
    images_sharing_base,
    make_layer,
    multi_arch_index,
    push,
    sha256_digest,
    single_image,
)
from tests.support.registry import Registry, RegistryFactory, RegistryStartError
from tests.support.skopeo import Skopeo


def test_single_image_round_trip(any_registry: Registry, skopeo: Skopeo, repo_name: str) -> None:
    image = single_image("single")
    digest = push(any_registry, repo_name, "v1", image)
    assert digest == image.digest
    raw = skopeo.inspect_raw(any_registry, repo_name, "v1")
    assert sha256_digest(raw) == digest
    assert json.loads(raw)["mediaType"] == MANIFEST


def test_push_is_idempotent(any_registry: Registry, repo_name: str) -> None:
    image = single_image("again")
    assert push(any_registry, repo_name, "a", image) == push(any_registry, repo_name, "b", image)


def test_multi_arch_index_round_trip(
    any_registry: Registry, skopeo: Skopeo, repo_name: str
) -> None:
    index = multi_arch_index("multi")
    digest = push(any_registry, repo_name, "v1", index)
    raw = skopeo.inspect_raw(any_registry, repo_name, "v1")
    assert sha256_digest(raw) == digest == index.digest
    document = json.loads(raw)
    assert document["mediaType"] == INDEX
    platforms = {(m["platform"]["os"], m["platform"]["architecture"])
                 for m in document["manifests"]}
    assert platforms == {("linux", "amd64"), ("linux", "arm64")}
    for child in index.images:
        assert sha256_digest(skopeo.inspect_raw(any_registry, repo_name, child.digest)) == child.digest


def test_fetch_manifest_needs_oci_accept(registry: Registry, repo_name: str) -> None:
    image = single_image("accept")
    push(registry, repo_name, "v1", image)
    data, content_type = fetch_manifest(registry, repo_name, "v1")
    assert data == image.manifest and content_type == MANIFEST
    plain = requests.get(f"{registry.url}/v2/{repo_name}/manifests/v1", timeout=10)
    assert plain.status_code == 404  # the pitfall fetch_manifest exists for


def test_images_sharing_base(any_registry: Registry, skopeo: Skopeo, repo_name: str) -> None:
    images = images_sharing_base(3)
    base = images[0].layers[0]
    assert all(image.layers[0] == base for image in images)
    assert len({image.layers[1].digest for image in images}) == 3
    repos = [f"{repo_name}-{i}" for i in range(len(images))]
    for repo, image in zip(repos, images, strict=True):
        digest = push(any_registry, repo, "v1", image)
        assert sha256_digest(skopeo.inspect_raw(any_registry, repo, "v1")) == digest
    assert all(blob_exists(any_registry, repo, base.digest) for repo in repos)
    assert stored_blob_paths(any_registry.root, base.digest) == 1


def stored_blob_paths(root: Path, digest: str) -> int:
    """How many copies of a blob the registry's filesystem storage holds."""
    hex_digest = digest.split(":", 1)[1]
    return sum(1 for path in root.rglob(f"blobs/sha256/*/{hex_digest}/data"))


def test_read_only_copy_serves_same_digest(
    registry: Registry, registry_factory: RegistryFactory, skopeo: Skopeo,
    repo_name: str, tmp_path: Path,
) -> None:
    index = multi_arch_index("read-only")
    digest = push(registry, repo_name, "v1", index)
    copy = tmp_path / "storage"
    shutil.copytree(registry.root, copy)
    read_only = registry_factory(root=copy, read_only=True)
    assert sha256_digest(skopeo.inspect_raw(read_only, repo_name, "v1")) == digest
    data, _ = fetch_manifest(read_only, repo_name, "v1")
    assert sha256_digest(data) == digest
    upload = requests.post(f"{read_only.url}/v2/{repo_name}/blobs/uploads/", timeout=10)
    assert upload.status_code == 405


def test_auth_registry_demands_credentials(auth_registry: Registry, repo_name: str) -> None:
    assert auth_registry.username == "kubenb-test" and auth_registry.password
    answer = requests.get(f"{auth_registry.url}/v2/", timeout=10)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")
    wrong = requests.get(f"{auth_registry.url}/v2/", auth=("kubenb-test", "nope"), timeout=10)
    assert wrong.status_code == 401
    right = requests.get(f"{auth_registry.url}/v2/", auth=auth_registry.auth, timeout=10)
    assert right.status_code == 200


def test_open_registry_has_no_credentials(registry: Registry) -> None:
    assert registry.username is None and registry.password is None and registry.auth is None
    assert registry.url == f"http://{registry.host}" and registry.host.startswith("127.0.0.1:")


@pytest.mark.registry
def test_registry_stops_and_reports_bad_start(tmp_path: Path) -> None:
    with Registry(tmp_path / "ok") as running:
        pid = running.pid
        assert pid is not None
    assert running.pid is None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{running.url}/v2/", timeout=2)
    broken = Registry(tmp_path / "broken", extra_config={"log": {"level": "nonsense"}})
    with pytest.raises(RegistryStartError, match="invalid loglevel nonsense"):
        broken.start()
    assert broken.pid is None


def layer_files(image: Image) -> dict[str, bytes]:
    """Files of an image's top layer, read back through tarfile."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(image.layers[-1].data))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}", fullmatch=True),
                       st.binary(max_size=64), max_size=5))
def test_layers_are_deterministic(files: dict[str, bytes]) -> None:
    first, second = make_layer(files), make_layer(dict(reversed(list(files.items()))))
    assert first == second
    assert first.digest == sha256_digest(first.data)


def test_layer_content_and_diff_id() -> None:
    image = single_image("content")
    assert layer_files(image) == {"etc/content.txt": b"content amd64\n"}
    config = json.loads(image.config.data)
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]
    assert single_image("content") == image and single_image("other") != image
