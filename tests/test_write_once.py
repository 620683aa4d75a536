"""Write once (issue 17): a build writes each image byte once, straight into its registry layer.

Real parts: a DemoRegistry (docker-registry) behind a FaultyProxy, real builds, the real store;
the reference tars are made here with ``tarfile`` from the exported registry folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kubenb.builders import BuildOptions, build
from kubenb.builders.layers import member_header
from kubenb.demo import DemoRegistry
from kubenb.errors import Cancelled, KubenbError, StoreError
from kubenb.events import BlobDone, BlobsPlanned, CancelToken, Event
from kubenb.oci.manifests import parse_references
from kubenb.reference import parse_reference
from kubenb.registry import transport
from kubenb.registry_folder import RegistryFolder
from kubenb.store import PlacedFile, Store, build_cache
from tests.support.faulty import Corrupt, Fault, FaultyProxy, Hold

pytestmark = pytest.mark.registry

IMAGES = ["busybox:1.36", "alpine:3.20", "registry.k8s.io/pause:3.9"]
#: Only so that a broken build fails the test instead of hanging it; never a speed limit.
GENEROUS = 120.0


@pytest.fixture(scope="module")
def source() -> Iterator[DemoRegistry]:
    with DemoRegistry(IMAGES, padding=300_000) as running:
        yield running


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.02)


def context_of(tmp_path: Path) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    (context / "imageList").write_text("".join(f"{image}\n" for image in IMAGES))
    return context


def options(context: Path, host: str) -> BuildOptions:
    return BuildOptions(tag="once:1", context=context, kubefile=context / "Kubefile",
                        mirrors={domain: host for domain in ("docker.io", "registry.k8s.io")})


def layer_blob(source: DemoRegistry, repository: str, tag: str) -> str:
    """The digest of the last layer of ``repository:tag`` on ``source``."""
    manifest = requests.get(f"{source.url}/v2/{repository}/manifests/{tag}", timeout=10,
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    manifest.raise_for_status()
    digest: str = manifest.json()["layers"][-1]["digest"]
    return digest


def planned_order(folder: RegistryFolder, images: list[str]) -> list[str]:
    """The blobs a save into an empty folder asks for, in its order: image by image (sorted, as
    discovery gives them), each manifest kept (children first), its config then its layers."""
    order: dict[str, None] = {}
    for image in sorted(str(parse_reference(name)) for name in images):
        ref = parse_reference(image)
        digest = folder.tag_digest(ref.repository, ref.tag or "latest")
        assert digest is not None
        selection = folder.selection(ref.repository, digest, None)
        assert selection is not None
        for manifest in selection.manifests:
            order.update(dict.fromkeys(blob.digest for blob in parse_references(manifest.data).blobs))
    return list(order)


def reference_tar(root: Path, members: list[str]) -> bytes:
    """``members`` of ``root`` tarred in that order as any layer is (owner 0, mtime 0, PAX)."""
    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    buffer = io.BytesIO()
    with tarfile.TarFile(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            tar.add(root / member, arcname=member, recursive=False, filter=normalise)
    return buffer.getvalue()


def registry_layer(store: Store, name: str) -> bytes:
    with store.open_layer(store.layers(name)[-1]) as stream:
        return stream.read()


def test_the_registry_layer_is_the_tar_of_registry_with_the_blobs_first_in_the_pulls_order(
    source: DemoRegistry, tmp_path: Path,
) -> None:
    """The layer written as the blobs arrive holds exactly what tarring the registry folder
    gives, byte for byte: each blob's member where the pull's plan put it (fixed by the inputs,
    not by which download finished first), then every other path of ``registry/``, sorted."""
    store = Store(tmp_path / "store")
    build(options(context_of(tmp_path), source.host), store=store)
    store.export("once:1", tmp_path / "rootfs")
    rootfs = tmp_path / "rootfs"
    folder = RegistryFolder(rootfs / "registry")
    blobs = planned_order(folder, IMAGES)
    first = [folder.blob_path(digest).relative_to(rootfs).as_posix() for digest in blobs]
    everything = {path.relative_to(rootfs).as_posix() for path in (rootfs / "registry").rglob("*")}
    rest = sorted(everything - set(first) | {"registry"})
    layer = registry_layer(store, "once:1")
    assert layer == reference_tar(rootfs, first + rest)
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        assert [member.name for member in tar.getmembers()][:len(first)] == first


def test_a_build_writes_no_image_blob_and_no_registry_file_into_its_work_folder(
    source: DemoRegistry, tmp_path: Path,
) -> None:
    """While the last blob is held, every other one has landed: in the registry layer being
    written (``tmp/layer.*``), and nowhere in the work folder, whose ``registry/`` stays empty:
    the manifests, links and tags of the images already saved are kept in memory, never written
    there. The cancel that ends the build leaves no layer and no image."""
    root = tmp_path / "store"
    held_blob = layer_blob(source, "library/alpine", "3.20")
    hold, landed = Hold(), threading.Event()
    planned: list[str] = []
    sizes: list[int] = []
    done: list[str] = []

    def events(event: Event) -> None:
        if isinstance(event, BlobsPlanned):
            planned.extend(event.digests)
            sizes.extend(event.sizes)
        elif isinstance(event, BlobDone) and event.fetched:
            done.append(event.digest)
            if len(done) == len(planned) - 1:
                landed.set()

    token = CancelToken()
    outcome: list[BaseException] = []
    with FaultyProxy(source.url) as proxy:
        proxy.add(Fault(re.escape(f"/blobs/{held_blob}"), hold, times=10_000, method="GET"))

        def run() -> None:
            try:
                build(options(context_of(tmp_path), proxy.host), store=Store(root), events=events, cancel=token)
            except BaseException as error:  # asserted below
                outcome.append(error)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            assert hold.held.wait(GENEROUS) and landed.wait(GENEROUS), "the build never got there"
            (work,) = (root / "tmp").glob("build-*")
            in_work = {f"sha256:{data.parent.name}" for data in work.rglob("data")}
            layers = [blob for blob in planned if blob != held_blob]
            assert held_blob in planned and len(layers) >= 3
            assert not in_work & set(planned), "image blobs were written into the work folder"
            assert not list((work / "rootfs" / "registry").iterdir()), "registry files were written in the work folder"
            (partial,) = (root / "tmp").glob("layer.*")
            assert partial.stat().st_size >= sum(sizes)  # every member's room is reserved
        finally:
            token.cancel()
            worker.join(GENEROUS)
            hold.release.set()
    assert not worker.is_alive()
    assert len(outcome) == 1 and type(outcome[0]) is Cancelled, outcome
    assert not list((root / "tmp").glob("layer.*")) and not list((root / "tmp").glob("build-*"))
    assert Store(root).images() == [] and Store(root).check() == []


def test_the_registry_layer_of_a_build_from_an_image_with_a_registry_holds_what_the_pull_changed(
    source: DemoRegistry, tmp_path: Path,
) -> None:
    """FROM an image whose ``registry/`` holds busybox: the build pulls the two other images
    over it. Its layer is, byte for byte, what tarring the changes to that ``registry/`` gives:
    the new blobs first in the pull's order, then, sorted, every new path, every folder of the
    base that gained an entry, and the temp folder (its temp files came and went), read from
    the rootfs the image exports."""
    store = Store(tmp_path / "store")
    base_context = tmp_path / "base"
    base_context.mkdir()
    (base_context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    (base_context / "imageList").write_text("busybox:1.36\n")
    build(BuildOptions(tag="base:1", context=base_context, kubefile=base_context / "Kubefile",
                       mirrors={domain: source.host for domain in ("docker.io", "registry.k8s.io")}), store=store)
    context = context_of(tmp_path)
    (context / "Kubefile").write_text("FROM base:1\nCOPY imageList manifests\n")
    build(options(context, source.host), store=store)
    store.export("base:1", tmp_path / "before")
    store.export("once:1", tmp_path / "after")
    before, after = tmp_path / "before", tmp_path / "after"
    blobs = [digest for digest in planned_order(RegistryFolder(after / "registry"), IMAGES)
             if not RegistryFolder(before / "registry").has_blob(digest)]
    first = [RegistryFolder(after / "registry").blob_path(digest).relative_to(after).as_posix() for digest in blobs]
    new = {path.relative_to(after).as_posix() for path in (after / "registry").rglob("*")
           if not (before / path.relative_to(after)).exists()}
    gained = {path.relative_to(after).as_posix() for path in (after / "registry").rglob("*")
              if path.is_dir() and (before / path.relative_to(after)).is_dir()
              and {p.name for p in path.iterdir()} != {p.name for p in (before / path.relative_to(after)).iterdir()}}
    rest = sorted((new | gained | {"registry/.kubenb-tmp"}) - set(first))
    assert first and "registry/docker/registry/v2/repositories/library" in gained
    assert registry_layer(store, "once:1") == reference_tar(after, first + rest)


def test_a_blob_that_does_not_match_its_digest_fails_the_build_and_leaves_no_layer(
    source: DemoRegistry, tmp_path: Path, fast_backoff: None,
) -> None:
    """Flipped on every try: the build fails naming the blob, and nothing of the registry layer
    stays (no temp file, no blob in the store but the cached COPY layer)."""
    root = tmp_path / "store"
    bad = layer_blob(source, "library/busybox", "1.36")
    with FaultyProxy(source.url) as proxy:
        proxy.add(Fault(re.escape(f"/blobs/{bad}"), Corrupt(), times=10_000, method="GET"))
        with pytest.raises(KubenbError) as raised:
            build(options(context_of(tmp_path), proxy.host), store=Store(root))
    assert bad in str(raised.value) and "could not be saved" in str(raised.value)
    store = Store(root)
    assert store.images() == [] and store.check() == []
    assert not list((root / "tmp").glob("layer.*")) and not list((root / "tmp").glob("build-*"))
    assert store.blobs.digests() == sorted(build_cache.referenced(root))  # the COPY layer only


def test_a_build_killed_mid_pull_leaves_check_clean_and_the_next_build_removes_its_partial_layer(
    source: DemoRegistry, tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    context = context_of(tmp_path)
    hold = Hold()
    with FaultyProxy(source.url) as proxy:
        proxy.add(Fault(re.escape(f"/blobs/{layer_blob(source, 'library/alpine', '3.20')}"), hold,
                        times=10_000, method="GET"))
        mirrors = [f"--registry-mirror={domain}={proxy.host}" for domain in ("docker.io", "registry.k8s.io")]
        command = [sys.executable, "-m", "kubenb", "--root", str(root), "build", "-t", "once:1", *mirrors,
                   str(context)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert hold.held.wait(GENEROUS), "the build never reached the held blob"
            assert list((root / "tmp").glob("layer.*")), "no registry layer was being written"
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=GENEROUS)
        finally:
            if process.poll() is None:
                process.kill()
            hold.release.set()
        checked = subprocess.run([sys.executable, "-m", "kubenb", "--root", str(root), "check"],
                                 capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        listed = subprocess.run([sys.executable, "-m", "kubenb", "--root", str(root), "images", "-o", "json"],
                                capture_output=True, text=True, check=True)
        assert json.loads(listed.stdout) == []
        with proxy.lock:
            proxy.faults.clear()
        again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert not list((root / "tmp").glob("layer.*")) and not list((root / "tmp").glob("build-*"))
    assert Store(root).check() == []


def test_a_window_writes_only_inside_its_member_and_a_restart_writes_over_it(tmp_path: Path) -> None:
    """A download that sends more than its blob's size, or starts over, never touches the bytes
    of another member; the digest covers every byte of the file or the layer is refused."""
    path = tmp_path / "layer"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        placed = PlacedFile(fd)
        placed.reserve(12)
        first, second = placed.window(0, 4), placed.window(4, 4)
        second.write(b"BBBB")
        first.write(b"xxxxxxx")  # too long: what passes its 4 bytes is dropped
        first.seek(0)
        first.write(b"AAAA")  # the restart
        placed.final(8)
        with pytest.raises(StoreError):
            placed.write_at(b"zz", 6)  # inside what is final
        with pytest.raises(StoreError, match="only 8 were written for good"):
            placed.finish()
        placed.write(b"CCCC")
        digest, size = placed.finish()
    finally:
        os.close(fd)
    assert path.read_bytes() == b"AAAABBBBCCCC"
    assert (digest, size) == (f"sha256:{hashlib.sha256(b'AAAABBBBCCCC').hexdigest()}", 12)


def test_a_failed_placed_layer_leaves_no_temp_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")

    def produce(out: PlacedFile) -> None:
        out.reserve(1 << 20)
        out.window(0, 10).write(b"partial")
        raise KubenbError("the pull failed")

    with pytest.raises(KubenbError, match="the pull failed"):
        store.place_layer(produce)
    assert not list((tmp_path / "store" / "tmp").glob("layer.*"))
    assert store.blobs.digests() == []


@pytest.mark.parametrize("length", [1, 99, 100, 101, 155, 156, 250, 1000, 2000])
@pytest.mark.parametrize("kind", [tarfile.REGTYPE, tarfile.DIRTYPE])
def test_a_member_header_is_the_one_tarfile_writes(length: int, kind: bytes) -> None:
    """The registry layer's headers are made without ``tarfile`` (its thousands of paths):
    byte for byte what ``tarfile`` gives the same normalised member, long names (a PAX record
    whose length counts its own digits) and ustar-overflowing sizes included, and a non-ASCII
    name (left to ``tarfile``)."""
    names = [("registry/" + "ab/" * length)[:length].rstrip("/") or "r", "registry/caf\u00e9/" + "x" * length]
    for name in names:
        for mode, given in ((0o644, 0), (0o755, 71), (0o700, 8 ** 11 - 1), (0o644, 8 ** 11 + 5)):
            size = 0 if kind == tarfile.DIRTYPE else given
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.size = kind, mode, size
            info.uid = info.gid = info.mtime = 0
            info.uname = info.gname = ""
            assert member_header(name, kind, mode, size) == info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING,
                                                                       "surrogateescape"), (name, mode, size)

