"""The registry folder writer, checked against the real thing.

Images built in memory (tests/support/oci.py) are written straight into a RegistryFolder with no
network; a read-only docker-registry started on the folder must then serve every tag and child,
and skopeo (an independent client) must copy them. The file tree is also compared with what the
registry writes itself when the same images are pushed to it.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Collection
from pathlib import Path

import pytest
import requests

from kubenb.errors import StoreError
from kubenb.registry_folder import RegistryFolder, parse_references, validate_repository
from tests.support.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    Image,
    Index,
    images_sharing_base,
    make_layer,
    multi_arch_index,
    push,
    sha256_digest,
    single_image,
)
from tests.support.registry import Registry, RegistryFactory
from tests.support.skopeo import Skopeo


def commit(folder: RegistryFolder, data: bytes, digest: str) -> None:
    """The client's path for a blob: stream into a temp file of the folder, then commit it."""
    temp = folder.new_blob_file()
    with temp.open("wb") as out:
        for start in range(0, len(data), 7):
            out.write(data[start:start + 7])
    folder.commit_blob(temp, digest)


def write_image(folder: RegistryFolder, repository: str, image: Image, tag: str | None = None) -> None:
    for layer in image.layers:
        commit(folder, layer.data, layer.digest)
    folder.put_blob_bytes(image.config.data, image.config.digest)
    folder.put_manifest(repository, image.manifest, image.digest, tag)


def write_index(folder: RegistryFolder, repository: str, index: Index, tag: str,
                platforms: Collection[str] | None = None) -> None:
    for child, image in zip(parse_references(index.manifest).children(), index.images, strict=True):
        if child.matches(platforms):
            write_image(folder, repository, image)
    folder.put_manifest(repository, index.manifest, index.digest, tag)


def blob_files(root: Path) -> list[Path]:
    return sorted((root / "docker/registry/v2/blobs").glob("*/*/*/data"))


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (links and blobs) with its content, temp files left out."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".kubenb-tmp" not in p.parts}


@pytest.fixture
def folder(tmp_path: Path) -> RegistryFolder:
    return RegistryFolder(tmp_path / "registry", durable=False)


def test_paths_and_link_contents(folder: RegistryFolder) -> None:
    image = single_image("paths")
    write_image(folder, "library/paths", image, "1.0")
    hex_ = image.digest.split(":")[1]
    v2 = folder.root / "docker/registry/v2"
    assert folder.blob_path(image.digest) == v2 / f"blobs/sha256/{hex_[:2]}/{hex_}/data"
    repo = v2 / "repositories/library/paths"
    assert (repo / f"_manifests/revisions/sha256/{hex_}/link").read_bytes() == image.digest.encode()
    assert (repo / "_manifests/tags/1.0/current/link").read_bytes() == image.digest.encode()
    assert (repo / f"_manifests/tags/1.0/index/sha256/{hex_}/link").read_bytes() == image.digest.encode()
    for blob in image.blobs:
        link = repo / "_layers" / blob.digest.replace(":", "/") / "link"
        assert link.read_bytes() == blob.digest.encode()
        assert folder.blob_path(blob.digest).read_bytes() == blob.data
        assert folder.blob_path(blob.digest).stat().st_mode & 0o777 == 0o644
    assert folder.tag_digest("library/paths", "1.0") == image.digest
    assert folder.tag_digest("library/paths", "2.0") is None
    assert folder.repositories() == ["library/paths"]
    assert folder.check() == []


def test_same_tree_as_the_registry_writes(
    folder: RegistryFolder, registry: Registry, repo_name: str
) -> None:
    """Pushing through the real registry and writing the folder give the same links and blobs."""
    images: dict[str, Image | Index] = {"single": single_image("tree"), "multi": multi_arch_index("tree")}
    for tag, artifact in images.items():
        push(registry, repo_name, tag, artifact)
        if isinstance(artifact, Index):
            write_index(folder, repo_name, artifact, tag)
        else:
            write_image(folder, repo_name, artifact, tag)
    prefix = f"docker/registry/v2/repositories/{repo_name}/"
    theirs = {k: v for k, v in tree(registry.root).items() if k.startswith(prefix) and "/_uploads/" not in k}
    ours = {k: v for k, v in tree(folder.root).items() if k.startswith(prefix)}
    assert ours == theirs
    for path in blob_files(folder.root):
        assert (registry.root / path.relative_to(folder.root)).read_bytes() == path.read_bytes()


def test_a_stock_registry_serves_the_folder(
    folder: RegistryFolder, registry_factory: RegistryFactory, skopeo: Skopeo, tmp_path: Path
) -> None:
    single, index, apps = single_image("served"), multi_arch_index("served"), images_sharing_base(3)
    write_image(folder, "library/single", single, "v1")
    write_index(folder, "library/multi", index, "v1")
    for number, app in enumerate(apps):
        write_image(folder, f"apps/app-{number}", app, "1.0")
    folder.new_blob_file().write_bytes(b"an interrupted download")  # readers ignore temp files
    served = registry_factory(root=folder.root, read_only=True)

    tagged = {"library/single": (single.digest, single.blobs),
              "library/multi": (index.digest, [b for image in index.images for b in image.blobs])}
    tagged |= {f"apps/app-{n}": (app.digest, app.blobs) for n, app in enumerate(apps)}
    for repository, (digest, blobs) in tagged.items():
        tag = "1.0" if repository.startswith("apps/") else "v1"
        assert sha256_digest(skopeo.inspect_raw(served, repository, tag)) == digest
        assert sha256_digest(skopeo.inspect_raw(served, repository, digest)) == digest
        target = tmp_path / "copies" / repository
        target.parent.mkdir(parents=True, exist_ok=True)
        skopeo.copy(f"docker://{served.host}/{repository}:{tag}", f"dir:{target}", "--all",
                    "--src-tls-verify=false")
        assert (target / "manifest.json").read_bytes() == folder.blob_path(digest).read_bytes()
        assert all((target / blob.digest.split(":")[1]).read_bytes() == blob.data for blob in blobs)
    for child in index.images:
        assert sha256_digest(skopeo.inspect_raw(served, "library/multi", child.digest)) == child.digest

    base = apps[0].layers[0]
    copies = [p for p in blob_files(folder.root) if base.digest.split(":")[1] in p.parts]
    assert copies == [folder.blob_path(base.digest)]
    unique = {b.digest for image in (single, *index.images, *apps) for b in image.blobs}
    unique |= {single.digest, index.digest, *(i.digest for i in (*index.images, *apps))}
    assert len(blob_files(folder.root)) == len(unique)
    # a blob is served only from repositories that link it
    top = apps[0].layers[1].digest
    assert requests.head(f"{served.url}/v2/apps/app-0/blobs/{top}", timeout=10).status_code == 200
    assert requests.head(f"{served.url}/v2/apps/app-1/blobs/{top}", timeout=10).status_code == 404


def test_is_complete(folder: RegistryFolder) -> None:
    image, index = single_image("complete"), multi_arch_index("complete")
    assert not folder.is_complete("library/one", image.digest)
    write_image(folder, "library/one", image, "v1")
    write_index(folder, "library/multi", index, "v1")
    assert folder.is_complete("library/one", image.digest)
    assert folder.is_complete("library/multi", index.digest)
    assert not folder.is_complete("library/other", image.digest)  # not linked there

    folder.blob_path(index.images[1].layers[0].digest).unlink()
    assert not folder.is_complete("library/multi", index.digest)
    assert folder.is_complete("library/multi", index.digest, platforms={"linux/amd64"})
    folder.blob_path(image.layers[0].digest).unlink()
    assert not folder.is_complete("library/one", image.digest)


def test_platform_subset_is_complete_and_served(
    folder: RegistryFolder, registry_factory: RegistryFactory, skopeo: Skopeo
) -> None:
    index = multi_arch_index("subset")
    write_index(folder, "library/subset", index, "v1", platforms={"linux/arm64"})
    assert folder.is_complete("library/subset", index.digest, platforms=["linux/arm64"])
    assert not folder.is_complete("library/subset", index.digest)
    assert folder.check() == []
    served = registry_factory(root=folder.root, read_only=True)
    arm = index.images[1]
    assert sha256_digest(skopeo.inspect_raw(served, "library/subset", arm.digest)) == arm.digest


def test_truncated_blob_is_not_complete(folder: RegistryFolder) -> None:
    image = single_image("truncated")
    write_image(folder, "library/one", image, "v1")
    folder.blob_path(image.layers[0].digest).write_bytes(b"")
    assert not folder.is_complete("library/one", image.digest)


def test_commit_with_wrong_digest_keeps_nothing(folder: RegistryFolder) -> None:
    layer, other = make_layer({"a": b"a"}), make_layer({"b": b"b"})
    temp = folder.new_blob_file()
    temp.write_bytes(layer.data)
    with pytest.raises(StoreError, match=f"{other.digest} not kept: its data hashes to {layer.digest}"):
        folder.commit_blob(temp, other.digest)
    assert not temp.exists()
    assert blob_files(folder.root) == []
    assert not folder.has_blob(other.digest) and not folder.has_blob(layer.digest)


def test_commit_of_a_present_blob_drops_the_temp(folder: RegistryFolder) -> None:
    layer = make_layer({"again": b"again"})
    commit(folder, layer.data, layer.digest)
    commit(folder, layer.data, layer.digest)
    assert list((folder.root / ".kubenb-tmp").iterdir()) == []
    assert folder.blob_path(layer.digest).read_bytes() == layer.data


def test_wrong_bytes_are_refused(folder: RegistryFolder) -> None:
    image = single_image("refused")
    with pytest.raises(StoreError, match="hashes to"):
        folder.put_blob_bytes(b"other", image.config.digest)
    with pytest.raises(StoreError, match="hashes to"):
        folder.put_manifest("library/x", image.manifest, image.config.digest, "v1")
    with pytest.raises(StoreError, match="names blobs not in the folder"):
        folder.put_manifest("library/x", image.manifest, image.digest, "v1")
    with pytest.raises(StoreError, match="blob is not in"):
        folder.link_layer("library/x", image.config.digest)
    assert tree(folder.root) == {}


def _fill(root: Path, barrier: multiprocessing.synchronize.Barrier) -> None:
    folder = RegistryFolder(root)
    images = images_sharing_base(4, seed="race")
    barrier.wait()
    for number, image in enumerate(images):
        write_image(folder, f"race/app-{number % 2}", image, f"v{number}")


def test_processes_filling_one_folder_concurrently(folder: RegistryFolder) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    workers = [context.Process(target=_fill, args=(folder.root, barrier)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert folder.check() == []
    images = images_sharing_base(4, seed="race")
    assert all(folder.is_complete(f"race/app-{n % 2}", image.digest) for n, image in enumerate(images))
    assert len(blob_files(folder.root)) == len({b.digest for i in images for b in i.blobs}) + len(images)
    assert list((folder.root / ".kubenb-tmp").iterdir()) == []


def test_racing_writers_of_one_tag_leave_exactly_one_winner(folder: RegistryFolder) -> None:
    images = [single_image(f"racer-{n}") for n in range(8)]
    for image in images:
        write_image(folder, "library/racers", image)
    barrier = threading.Barrier(len(images))
    outcomes: dict[str, str] = {}

    def tag(image: Image) -> None:
        barrier.wait()
        try:
            folder.put_manifest("library/racers", image.manifest, image.digest, "latest")
            outcomes[image.digest] = "won"
        except StoreError:
            outcomes[image.digest] = "refused"

    threads = [threading.Thread(target=tag, args=(image,)) for image in images]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winners = [digest for digest, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == len(images) and len(winners) == 1
    assert folder.tag_digest("library/racers", "latest") == winners[0]
    assert folder.check() == []


def test_check_reports_each_problem_precisely(folder: RegistryFolder) -> None:
    image, other = single_image("check"), single_image("check-2")
    write_image(folder, "library/one", image, "v1")
    write_image(folder, "library/two", other, "v1")
    layer = folder.blob_path(image.layers[0].digest)
    corrupted = bytearray(layer.read_bytes())
    corrupted[10] ^= 0xFF
    layer.write_bytes(bytes(corrupted))
    actual = sha256_digest(bytes(corrupted))
    assert folder.check() == [f"blob {image.layers[0].digest}: data hashes to {actual} ({layer})"]

    missing = other.layers[0].digest
    folder.blob_path(missing).unlink()
    revision = folder.root / "docker/registry/v2/repositories/library/one/_manifests/revisions"
    (revision / image.digest.replace(":", "/") / "link").unlink()
    assert folder.check()[1:] == [
        f"library/one:v1 points at {image.digest}, not a revision of library/one",
        f"library/two: _layers link {missing} points at a missing blob",
        f"library/two@{other.digest} references {other.layers[0].media_type} {missing}, a missing blob",
    ]


def test_check_reports_a_link_the_registry_could_not_parse(folder: RegistryFolder) -> None:
    image = single_image("newline")
    write_image(folder, "library/one", image, "v1")
    config = image.config.digest
    link = folder.root / "docker/registry/v2/repositories/library/one/_layers" / config.replace(":", "/") / "link"
    link.write_text(config + "\n")
    assert folder.check() == [
        f"library/one: _layers link {config} holds {config + chr(10)!r}",
        f"library/one@{image.digest} references {image.config.media_type} {config}, not linked in library/one",
    ]
    assert not folder.is_complete("library/one", image.digest)


def test_tag_conflict_names_both_digests(folder: RegistryFolder) -> None:
    first, second = single_image("first"), single_image("second")
    write_image(folder, "library/nginx", first, "1.25")
    write_image(folder, "library/nginx", first, "1.25")  # the same image again is fine
    with pytest.raises(StoreError) as raised:
        write_image(folder, "library/nginx", second, "1.25")
    assert first.digest in str(raised.value) and second.digest in str(raised.value)
    assert folder.tag_digest("library/nginx", "1.25") == first.digest
    folder.put_manifest("library/nginx", second.manifest, second.digest, "1.25", replace=True)
    assert folder.tag_digest("library/nginx", "1.25") == second.digest
    assert folder.check() == []


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "..", "a//b", "a/", "Upper/case",
                                  "_manifests", "docker.io/library/nginx:1", "a/./b", "x" * 256])
def test_bad_repository_names_are_refused(folder: RegistryFolder, name: str) -> None:
    with pytest.raises(StoreError, match="not a repository name"):
        validate_repository(name)
    image = single_image("names")
    with pytest.raises(StoreError):
        write_image(folder, name, image)
    assert not (folder.root / "docker/registry/v2/repositories").exists()


@pytest.mark.parametrize("name", ["library/nginx", "a", "kube-system/coredns", "a/b_c/d__e/f.g", "x--y"])
def test_good_repository_names(name: str) -> None:
    assert validate_repository(name) == name


@pytest.mark.parametrize("digest", ["sha256:abc", "sha256:" + "A" * 64, "md5:" + "a" * 32,
                                    "sha256:../" + "a" * 61, "sha256:" + "a" * 64 + "\n"])
def test_bad_digests_are_refused(folder: RegistryFolder, digest: str) -> None:
    with pytest.raises(StoreError, match="not a digest"):
        folder.blob_path(digest)


def test_bad_tags_are_refused(folder: RegistryFolder) -> None:
    image = single_image("tags")
    for tag in ["", "../x", "a/b", "-x", "x" * 129]:
        with pytest.raises(StoreError, match="not a tag"):
            write_image(folder, "library/tags", image, tag)


def test_references_of_an_index_and_a_manifest() -> None:
    index = multi_arch_index("refs")
    refs = parse_references(index.manifest, "application/vnd.oci.image.index.v1+json")
    assert refs.is_index and refs.config is None and refs.layers == ()
    assert [(c.digest, c.platform, c.size) for c in refs.manifests] == [
        (i.digest, f"linux/{i.architecture}", len(i.manifest)) for i in index.images]
    assert [c.digest for c in refs.children(["linux/arm64"])] == [index.images[1].digest]
    image = index.images[0]
    refs = parse_references(image.manifest)
    assert not refs.is_index and refs.config is not None
    assert (refs.config.digest, refs.config.size, refs.config.media_type) == (
        image.config.digest, image.config.size, image.config.media_type)
    assert [(la.digest, la.size, la.media_type) for la in refs.layers] == [
        (la.digest, la.size, la.media_type) for la in image.layers]


def test_references_of_docker_types_and_foreign_layers() -> None:
    listed = b'{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","size":7,"digest":"sha256:%s",' \
             b'"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}' % (
                 DOCKER_LIST.encode(), DOCKER_MANIFEST.encode(), b"a" * 64)
    refs = parse_references(listed)
    assert refs.is_index and refs.manifests[0].platform == "linux/arm64/v8"
    assert refs.children(["linux/arm64"]) == refs.children(["linux/arm64/v8"]) == refs.manifests
    assert refs.children(["linux/arm64/v7"]) == ()
    foreign = (b'{"schemaVersion":2,"config":{"mediaType":"c","size":1,"digest":"sha256:%s"},"layers":[{"mediaType":'
               b'"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":9,"digest":"sha256:%s",'
               b'"urls":["https://example.com/x"]}]}') % (b"b" * 64, b"c" * 64)
    refs = parse_references(foreign, DOCKER_MANIFEST)
    assert refs.media_type == DOCKER_MANIFEST and refs.layers[0].foreign
    assert [b.digest for b in refs.blobs] == ["sha256:" + "b" * 64]


@pytest.mark.parametrize(("data", "message"), [
    (b"not json", "not JSON"),
    (b"[]", "not a JSON object"),
    (b'{"schemaVersion":1,"name":"x","fsLayers":[]}', "schema 1"),
    (b'{"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}', "schema 1"),
    (b'{"schemaVersion":2,"config":{"mediaType":"x","size":1,"digest":"sha256:../../etc"}}', "not a digest"),
    (b'{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:' + b"a" * 64 + b'"}}', "without digest, size"),
    (b'{"schemaVersion":2}', "not an image manifest"),
    (b'{"schemaVersion":2,"manifests":5}', "manifests is not a list"),
])
def test_references_refuse_what_is_not_a_manifest(data: bytes, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        parse_references(data)


def test_clean_temp_removes_only_stale_files(folder: RegistryFolder) -> None:
    assert folder.clean_temp() == 0
    stale, fresh = folder.new_blob_file(), folder.new_blob_file()
    os.utime(stale, (0, 0))
    assert folder.clean_temp() == 1
    assert not stale.exists() and fresh.exists()
    assert folder.clean_temp(max_age=0) == 1
    assert folder.check() == []
