"""The local cluster-image store, with real tar files, real archives and a second process."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import multiprocessing
import os
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kubenb.errors import StoreError
from kubenb.reference import parse_reference
from kubenb.registry import RegistryClient
from kubenb.store import ClusterImage, Layer, Store, default_root
from tests.support.oci import tar_member
from tests.support.registry import Registry
from tests.support.skopeo import Skopeo


def make_tar(path: Path, files: dict[str, bytes | None]) -> Path:
    """A plain tar: ``files`` maps names to contents (None makes a folder)."""
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "root")


@pytest.fixture
def image(store: Store, tmp_path: Path) -> ClusterImage:
    base = store.add_layer(make_tar(tmp_path / "base.tar", {
        "manifests": None, "manifests/imageList": b"nginx:1.25\n", "etc/old.conf": b"old",
        "charts/app/Chart.yaml": b"name: app\n", "charts/app/values.yaml": b"x: 1\n",
    }))
    top = store.add_layer(make_tar(tmp_path / "top.tar", {
        "etc/.wh.old.conf": b"", "charts/app/.wh..wh..opq": b"", "charts/app/new.yaml": b"new",
        "registry/docker/registry/v2/blobs/data": b"blob",
    }))
    return store.commit("my-cluster:v1.19.9", [base, top], labels={"kubefile": "FROM scratch\n"},
                        annotations={"io.kubenb.images": "docker.io/library/nginx:1.25"},
                        history=["FROM scratch", "COPY . ."])


def blob_files(store: Store) -> set[str]:
    return {p.name for p in (store.root / "blobs" / "sha256").iterdir()}


# -- layers, commit, images, get, inspect ----------------------------------------------------------

def test_add_layer_gzips_and_hashes_both_forms(store: Store, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "a.tar", {"a": b"hello"})
    layer = store.add_layer(tar)
    assert layer.diff_id == "sha256:" + hashlib.sha256(tar.read_bytes()).hexdigest()
    with store.open_layer(layer) as blob:
        data = blob.read()
    assert layer.digest == "sha256:" + hashlib.sha256(data).hexdigest() and layer.size == len(data)
    assert gzip.decompress(data) == tar.read_bytes()
    assert store.add_layer(tar) == layer  # deterministic: the same tar is the same blob
    assert not any((store.root / "tmp").iterdir())


def test_commit_writes_an_oci_image_layout(store: Store, image: ClusterImage) -> None:
    assert json.loads((store.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((store.root / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "my-cluster:v1.19.9"
    assert entry["digest"] == image.manifest_digest
    info = store.inspect("my-cluster:v1.19.9")
    config, manifest = info["config"], info["manifest"]
    assert config["os"] == "linux" and config["architecture"]
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in store.layers(image.name)]
    assert [h["created_by"] for h in config["history"]] == ["FROM scratch", "COPY . ."]
    assert manifest["config"]["digest"] == image.id
    assert info["labels"] == {"kubefile": "FROM scratch\n"}
    assert info["annotations"]["io.kubenb.images"] == "docker.io/library/nginx:1.25"
    assert image.size == sum(layer["size"] for layer in info["layers"])
    assert store.check() == []


def test_images_and_get_by_name_and_id(store: Store, image: ClusterImage) -> None:
    assert store.images() == [image]
    assert store.get("my-cluster:v1.19.9") == image
    assert store.get(image.id) == image
    assert store.get(image.id.removeprefix("sha256:")[:12]) == image
    assert store.get("sha256:" + image.short_id) == image
    with pytest.raises(StoreError, match="kubenb images lists them"):
        store.get("other:v1")
    with pytest.raises(StoreError):
        store.get(image.short_id[:8])  # too short to be an id


def test_bare_names_get_latest_and_bad_names_are_refused(store: Store, image: ClusterImage) -> None:
    layers = store.layers(image.name)
    assert store.commit("plain", layers, labels={}, annotations={}).name == "plain:latest"
    assert store.get("plain").name == "plain:latest"
    named = store.commit("localhost:5000/team/c", layers, labels={}, annotations={})
    assert named.name == "localhost:5000/team/c:latest"
    for bad in ("My-Cluster:v1", "x@sha256:" + "0" * 64, "bad name"):
        with pytest.raises(StoreError):
            store.commit(bad, layers, labels={}, annotations={})


def test_commit_replaces_an_older_image_of_that_name(store: Store, image: ClusterImage, tmp_path: Path) -> None:
    layer = store.add_layer(make_tar(tmp_path / "c.tar", {"c": b"c"}))
    newer = store.commit(image.name, [layer], labels={}, annotations={})
    assert newer.id != image.id and store.images() == [newer]


def test_tag_and_remove_collect_garbage(store: Store, image: ClusterImage, tmp_path: Path) -> None:
    tagged = store.tag(image.short_id, "other:v2")
    assert (tagged.name, tagged.id) == ("other:v2", image.id)
    assert [i.name for i in store.images()] == ["my-cluster:v1.19.9", "other:v2"]
    before = blob_files(store)
    store.remove("my-cluster:v1.19.9")
    assert blob_files(store) == before  # still used by other:v2
    extra = store.add_layer(make_tar(tmp_path / "x.tar", {"x": b"x"}))
    store.cache_layer("step x", extra)
    store.remove("other:v2")
    assert store.images() == []
    assert blob_files(store) == {extra.digest.removeprefix("sha256:")}  # the build cache keeps its layer
    with pytest.raises(StoreError, match="kubenb images lists them"):
        store.remove("other:v2")


def test_failures_leave_no_temp_files(store: Store, image: ClusterImage, tmp_path: Path) -> None:
    with pytest.raises(OSError):
        store.add_layer(tmp_path / "missing.tar")
    layer = store.layers(image.name)[-1]
    (store.root / "blobs" / "sha256" / layer.digest.removeprefix("sha256:")).unlink()
    out = tmp_path / "out"
    with pytest.raises(StoreError, match="missing"):
        store.save(image.name, out / "image.tar")
    assert list(out.iterdir()) == []
    assert list((store.root / "tmp").iterdir()) == []


def test_build_cache(store: Store, tmp_path: Path) -> None:
    assert store.cached_layer("COPY a") is None
    layer = store.add_layer(make_tar(tmp_path / "a.tar", {"a": b"a"}))
    store.cache_layer("COPY a", layer)
    assert Store(store.root).cached_layer("COPY a") == layer
    (store.root / "blobs" / "sha256" / layer.digest.removeprefix("sha256:")).unlink()
    assert store.cached_layer("COPY a") is None


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBENB_ROOT", str(tmp_path / "a"))
    assert default_root() == tmp_path / "a"
    monkeypatch.delenv("KUBENB_ROOT")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "kubenb"


# -- save / load -----------------------------------------------------------------------------------

def test_save_load_round_trip_keeps_the_ids(store: Store, image: ClusterImage, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    store.save(image.name, archive)
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == image.name
    other = Store(tmp_path / "other")
    (loaded,) = other.load(archive)
    assert (loaded.name, loaded.id, loaded.manifest_digest) == (image.name, image.id, image.manifest_digest)
    assert other.layers(image.name) == store.layers(image.name)
    assert other.check() == []
    assert not any((other.root / "tmp").iterdir())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_skopeo_reads_the_store_and_its_archives(store: Store, image: ClusterImage, tmp_path: Path,
                                                skopeo: Skopeo) -> None:
    """An independent OCI client agrees: the store is an OCI layout, save writes an OCI archive."""
    seen = json.loads(skopeo.run("inspect", f"oci:{store.root}:{image.name}"))
    assert seen["Digest"] == image.manifest_digest and seen["Labels"] == dict(image.labels)
    store.save(image.name, tmp_path / "ours.tar")
    skopeo.run("copy", f"oci-archive:{tmp_path / 'ours.tar'}", f"oci-archive:{tmp_path / 'theirs.tar'}:copied:v2")
    (loaded,) = Store(tmp_path / "other").load(tmp_path / "theirs.tar")
    assert (loaded.name, loaded.id, loaded.manifest_digest) == ("copied:v2", image.id, image.manifest_digest)


def test_pull_from_a_registry_keeps_the_ids(store: Store, image: ClusterImage, tmp_path: Path,
                                            registry: Registry, repo_name: str, skopeo: Skopeo) -> None:
    """skopeo pushes the stored image; pull into a fresh root gives the same image."""
    skopeo.copy(f"oci:{store.root}:{image.name}", f"docker://{registry.host}/{repo_name}:v1",
                "--dest-tls-verify=false")
    ref = parse_reference(f"{registry.host}/{repo_name}:v1")
    with RegistryClient(registry.host) as client:
        pulled = Store(tmp_path / "other").pull(ref, client)
    assert (pulled.name, pulled.id, pulled.manifest_digest) == (str(ref), image.id, image.manifest_digest)
    assert Store(tmp_path / "other").check() == []
    assert not any((tmp_path / "other" / "tmp").iterdir())


def hostile(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    """A valid saved archive plus one bad ``member``."""
    with tarfile.open(path, "a") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.parametrize("member", [
    tar_member("../evil"),
    tar_member("blobs/../../evil"),
    tar_member("/tmp/evil"),
    tar_member("blobs/sha256/" + "a" * 64, tarfile.SYMTYPE, "/etc/passwd"),
    tar_member("blobs/sha256/" + "b" * 64, tarfile.LNKTYPE, "../../../etc/passwd"),
    tar_member("evil-link", tarfile.SYMTYPE, "../outside"),
    tar_member("blobs/sha256/" + "c" * 64, tarfile.CHRTYPE),
    tar_member("other/file"),
    tar_member("blobs/sha256/" + "d" * 64),  # does not hash to its name
], ids=["dotdot", "dotdot-inside", "absolute", "symlink-out", "hardlink-out", "symlink", "device", "outside",
        "bad-digest"])
def test_load_refuses_hostile_archives(store: Store, image: ClusterImage, tmp_path: Path,
                                       member: tarfile.TarInfo) -> None:
    archive = tmp_path / "a.tar"
    store.save(image.name, archive)
    hostile(archive, member, b"evil")
    other = Store(tmp_path / "other")
    with pytest.raises(StoreError, match="refusing archive"):
        other.load(archive)
    assert other.images() == []
    assert not (other.root / "blobs" / "sha256").exists() or not any((other.root / "blobs" / "sha256").iterdir())
    assert not any((other.root / "tmp").iterdir())
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


def test_load_refuses_an_archive_missing_a_blob(store: Store, image: ClusterImage, tmp_path: Path) -> None:
    full, partial = tmp_path / "full.tar", tmp_path / "partial.tar"
    store.save(image.name, full)
    layer = store.layers(image.name)[0].digest.removeprefix("sha256:")
    with tarfile.open(full) as source, tarfile.open(partial, "w") as target:
        for member in source.getmembers():
            if not member.name.endswith(layer):
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
    other = Store(tmp_path / "other")
    with pytest.raises(StoreError, match="missing from the archive"):
        other.load(partial)
    assert other.images() == []


# -- export ----------------------------------------------------------------------------------------

def test_export_applies_layers_with_whiteouts(store: Store, image: ClusterImage, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    store.export(image.name, rootfs)
    assert (rootfs / "manifests" / "imageList").read_bytes() == b"nginx:1.25\n"
    assert not (rootfs / "etc" / "old.conf").exists()
    assert sorted(p.name for p in (rootfs / "charts" / "app").iterdir()) == ["new.yaml"]
    assert (rootfs / "registry" / "docker" / "registry" / "v2" / "blobs" / "data").read_bytes() == b"blob"
    assert not list(rootfs.rglob(".wh.*"))
    with pytest.raises(StoreError, match="not an empty folder"):
        store.export(image.name, rootfs)


def test_export_refuses_dotdot_and_writes_through_symlinks_inside_the_rootfs(store: Store, tmp_path: Path) -> None:
    store.commit("bad:dotdot", [store.add_layer(make_tar(tmp_path / "1.tar", {"../escaped": b"x"}))],
                 labels={}, annotations={})
    with pytest.raises(StoreError, match=r"is hostile: member '../escaped' climbs out of the rootfs"):
        store.export("bad:dotdot", tmp_path / "rootfs-dotdot")
    assert not (tmp_path / "rootfs-dotdot").exists()
    with tarfile.open(tmp_path / "2.tar", "w") as tar:  # the link first, then a file written through it
        tar.addfile(tar_member("out", tarfile.SYMTYPE, str(tmp_path)))
        info = tarfile.TarInfo("out/escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    store.commit("links:out", [store.add_layer(tmp_path / "2.tar")], labels={}, annotations={})
    store.export("links:out", tmp_path / "rootfs")
    # chroot semantics: the absolute link leads to the rootfs's own copy of that path
    assert (tmp_path / "rootfs" / tmp_path.relative_to("/") / "escaped").read_bytes() == b"x"
    assert (tmp_path / "rootfs" / "out").readlink() == tmp_path
    assert not (tmp_path / "escaped").exists()


def test_export_keeps_symlinks_and_hard_links_inside(store: Store, tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "l.tar", "w") as tar:
        info = tarfile.TarInfo("bin/tool")
        info.size, info.mode = 2, 0o755
        tar.addfile(info, io.BytesIO(b"#!"))
        tar.addfile(tar_member("bin/alias", tarfile.SYMTYPE, "/bin/tool"))
        tar.addfile(tar_member("bin/hard", tarfile.LNKTYPE, "bin/tool"))
    store.commit("links:v1", [store.add_layer(tmp_path / "l.tar")], labels={}, annotations={})
    store.export("links:v1", tmp_path / "rootfs")
    assert (tmp_path / "rootfs" / "bin" / "alias").readlink() == Path("/bin/tool")
    assert (tmp_path / "rootfs" / "bin" / "hard").stat().st_nlink == 2


# -- lock and check --------------------------------------------------------------------------------

def _hold_lock(root: str, held: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event) -> None:
    with Store(Path(root)).lock():
        held.set()
        release.wait(30)


def _waiting_for_lock(path: Path) -> bool:
    """Whether this process waits for the flock of ``path``: a ``->`` line of /proc/locks."""
    inode = os.stat(path).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[1] == "->" and fields[2] == "FLOCK" and fields[5] == str(os.getpid()) \
                and fields[6].endswith(f":{inode}"):
            return True
    return False


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    """Poll for an event, with a deadline only for a test that would otherwise hang."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_lock_excludes_a_second_process(store: Store) -> None:
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    child = context.Process(target=_hold_lock, args=(str(store.root), held, release))
    child.start()
    try:
        assert held.wait(30)
        acquired = threading.Event()

        def take() -> None:
            with store.lock():
                acquired.set()

        thread = threading.Thread(target=take)
        thread.start()
        wait_until(lambda: _waiting_for_lock(store.root / "lock"), "the thread to wait for the store lock")
        assert not acquired.is_set()  # waits (the kernel says so) while the other process holds the store
        release.set()
        assert acquired.wait(30)
        thread.join(30)
    finally:
        release.set()
        child.join(30)
    with store.lock(), store.lock():  # re-entrant within one Store
        pass


def test_check_finds_a_corrupted_blob(store: Store, image: ClusterImage) -> None:
    layer = store.layers(image.name)[0]
    path = store.root / "blobs" / "sha256" / layer.digest.removeprefix("sha256:")
    path.write_bytes(b"corrupted")
    (problem,) = store.check()
    assert layer.digest in problem and "does not hash" in problem
    path.unlink()
    assert any("missing" in problem for problem in store.check())


def test_layer_record_is_plain_data() -> None:
    layer = Layer(digest="sha256:" + "0" * 64, diff_id="sha256:" + "1" * 64, size=3)
    assert layer.to_dict() == {"digest": layer.digest, "diff_id": layer.diff_id, "size": 3}
