"""An unchanged rebuild: discovery answered by the store's memo, the registry layer by the build cache.

A second ``kubenb build`` runs in a new process, so the in-process memo is gone: these tests
either run the CLI twice or call ``clear_memo()`` between two builds, which is what a new
process sees. They test the path under the fast one (tests/test_unchanged.py), which its
record would answer first: each removes the store's records (``STORE/unchanged``) before
building again, as a change the record sees would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from kubenb.builders import BuildOptions, build
from kubenb.demo import DemoRegistry
from kubenb.discover import clear_memo, persist
from kubenb.events import BlobStarted, Event, Message
from kubenb.model import FoundImage, ImageList, ImageRef, Location
from kubenb.store import IMAGES_ANNOTATION, Store

MEMO_ANSWERED = "discovery: unchanged, answered from the memo"
LAYER_NOTED = "using cache (checked when it was made)"
IMAGES = ["busybox:1.36", "alpine:3.20"]
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - {name: web, image: alpine:3.20}
"""


def _context(tmp_path: Path) -> Path:
    """A context with an image list and a manifest, each naming one image."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\nCOPY web.yaml manifests\n")
    (context / "imageList").write_text("busybox:1.36\n")
    (context / "web.yaml").write_text(DEPLOYMENT)
    return context


def _build(context: Path, store: Store, registry: DemoRegistry) -> tuple[str, list[str]]:
    """Build as a new process would (no in-process memo), with no record of an unchanged
    rebuild to answer it: the image ID and the messages."""
    clear_memo()
    shutil.rmtree(store.root / "unchanged", ignore_errors=True)
    events: list[Event] = []
    options = BuildOptions(tag="c:1", context=context, kubefile=context / "Kubefile", mirrors=registry.mirrors())
    image = build(options, store=store, events=events.append)
    return image.id, [e.text.strip() for e in events if isinstance(e, Message)]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300, check=False)


def test_a_rebuild_in_a_new_process_reuses_the_memo_and_the_registry_layer(tmp_path: Path) -> None:
    context, root = _context(tmp_path), tmp_path / "store"
    with DemoRegistry(IMAGES) as registry:
        mirrors = [f"--registry-mirror={domain}={host}" for domain, host in registry.mirrors().items()]
        first = _cli("--root", str(root), "build", "-t", "c:1", *mirrors, str(context))
        assert first.returncode == 0, first.stderr
        assert len(list((root / "memo").glob("*.json"))) == 1
        first_id = Store(root).get("c:1").id
        shutil.rmtree(root / "unchanged")
        second = _cli("--root", str(root), "build", "-t", "c:1", *mirrors, str(context))
    assert second.returncode == 0, second.stderr
    said = second.stdout + second.stderr
    assert MEMO_ANSWERED in said and LAYER_NOTED in said
    assert MEMO_ANSWERED not in first.stdout + first.stderr
    image = Store(root).get("c:1")
    assert image.id == first_id
    assert sorted(json.loads(image.annotations[IMAGES_ANNOTATION])) == [
        "docker.io/library/alpine:3.20", "docker.io/library/busybox:1.36"]
    check = _cli("--root", str(root), "check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_changed_manifest_is_discovered_again(tmp_path: Path) -> None:
    context, store = _context(tmp_path), Store(tmp_path / "store")
    with DemoRegistry([*IMAGES, "registry.k8s.io/pause:3.9"]) as registry:
        _build(context, store, registry)
        (context / "web.yaml").write_text(DEPLOYMENT.replace("alpine:3.20", "registry.k8s.io/pause:3.9"))
        _, said = _build(context, store, registry)
    assert MEMO_ANSWERED not in said and LAYER_NOTED not in said
    assert sorted(json.loads(store.get("c:1").annotations[IMAGES_ANNOTATION])) == [
        "docker.io/library/busybox:1.36", "registry.k8s.io/pause:3.9"]
    assert len(list(store.memo_folder.glob("*.json"))) == 2  # the old entry stays, for a build going back


def test_a_corrupt_memo_entry_is_ignored_and_written_again(tmp_path: Path) -> None:
    context, store = _context(tmp_path), Store(tmp_path / "store")
    with DemoRegistry(IMAGES) as registry:
        first_id, _ = _build(context, store, registry)
        [entry] = store.memo_folder.glob("*.json")
        entry.write_bytes(entry.read_bytes()[:40])
        second_id, said = _build(context, store, registry)
        assert MEMO_ANSWERED not in said
        assert json.loads(entry.read_bytes())["format"] == persist.FORMAT  # whole again
        third_id, said = _build(context, store, registry)
    assert MEMO_ANSWERED in said
    assert first_id == second_id == third_id
    assert store.check() == []


def test_a_foreign_memo_entry_is_a_miss(tmp_path: Path) -> None:
    """A file of the right name whose values have other types (another program's, a hand edit)."""
    key = "k"
    persist.save(tmp_path, key, ImageList())
    [entry] = tmp_path.glob("*.json")
    for result in ({"images": [{"image": {"domain": 1, "path": "x"}, "locations": []}], "potential": [],
                    "test": [], "excluded": [], "invalid": [], "warnings": []},
                   {"images": "everything"}, ["a list"], None):
        entry.write_text(json.dumps({"format": persist.FORMAT, "key": key, "result": result}))
        assert persist.load(tmp_path, key) is None
    entry.write_text(json.dumps({"format": persist.FORMAT, "key": "another key", "result": {}}))
    assert persist.load(tmp_path, key) is None
    entry.write_bytes(b"\xff\x00")
    assert persist.load(tmp_path, key) is None


def _found(n: int) -> ImageList:
    image = ImageRef("docker.io", f"library/app{n}", "1.0", written=f"app{n}:1.0")
    place = Location("imageList", "manifests/imageList", n, written=f"app{n}:1.0")
    return ImageList(images=(FoundImage(image, (place,)),))


def test_an_entry_reads_back_as_it_was_saved(tmp_path: Path) -> None:
    persist.save(tmp_path, "k", _found(3))
    assert persist.load(tmp_path, "k") == _found(3)
    assert persist.load(tmp_path, "k").images[0].written == "app3:1.0"  # type: ignore[union-attr]


def test_the_memo_stays_bounded_and_drops_the_least_recently_used(tmp_path: Path) -> None:
    killed, live = tmp_path / "x.json.1.tmp", tmp_path / "y.json.2.tmp"  # a killed writer's, a live one's
    killed.write_bytes(b"{")
    live.write_bytes(b"{")
    os.utime(killed, (0, 0))
    for n in range(persist.LIMIT):
        persist.save(tmp_path, f"key {n}", _found(n))
    for n, path in enumerate(sorted(tmp_path.glob("*.json"))):  # distinct, old times: a clock tick is coarse
        os.utime(path, ns=(n * 10**9, n * 10**9))
    assert persist.load(tmp_path, "key 0") == _found(0)  # used now: kept
    for n in range(persist.LIMIT, persist.LIMIT + 10):
        persist.save(tmp_path, f"key {n}", _found(n))
    assert len(list(tmp_path.glob("*.json"))) == persist.LIMIT
    assert persist.load(tmp_path, "key 0") == _found(0)
    assert persist.load(tmp_path, f"key {persist.LIMIT + 9}") == _found(persist.LIMIT + 9)
    assert not killed.exists() and live.exists()


def test_concurrent_writers_leave_only_whole_entries(tmp_path: Path) -> None:
    """Eight writers on the same keys and more keys than the limit: every entry left reads back
    whole, and no temp file is left."""
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(persist.LIMIT + 20):
                persist.save(tmp_path, f"key {n}", _found(n))
                persist.load(tmp_path, f"key {(n * worker) % persist.LIMIT}")
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    entries = list(tmp_path.glob("*.json"))
    assert 0 < len(entries) <= persist.LIMIT
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in entries)
    for n in range(persist.LIMIT + 20):
        assert persist.load(tmp_path, f"key {n}") in (None, _found(n))


def test_two_concurrent_builds_share_one_memo(tmp_path: Path) -> None:
    context, root = _context(tmp_path), tmp_path / "store"
    with DemoRegistry(IMAGES) as registry:
        mirrors = [f"--registry-mirror={domain}={host}" for domain, host in registry.mirrors().items()]
        command = [sys.executable, "-m", "kubenb", "--root", str(root), "build", "-t", "c:1", *mirrors, str(context)]
        builds = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for _ in range(2)]
        results = [(b.wait(timeout=300), *b.communicate()) for b in builds]
        assert [r[0] for r in results] == [0, 0], results
        shutil.rmtree(root / "unchanged")
        after = _cli("--root", str(root), "build", "-t", "c:1", *mirrors, str(context))
    assert MEMO_ANSWERED in after.stdout + after.stderr
    [entry] = (root / "memo").glob("*.json")
    assert json.loads(entry.read_bytes())["format"] == persist.FORMAT
    assert Store(root).check() == []


def test_a_rebuild_with_no_cache_discovers_and_pulls_again_with_the_same_id(tmp_path: Path) -> None:
    """``--no-cache`` makes the registry layer again (the fast path is a build-cache answer);
    the image ID stays, the layer being reproducible."""
    context, store = _context(tmp_path), Store(tmp_path / "store")
    with DemoRegistry(IMAGES) as registry:
        first_id, _ = _build(context, store, registry)
        clear_memo()
        events: list[Event] = []
        options = BuildOptions(tag="c:1", context=context, kubefile=context / "Kubefile", mirrors=registry.mirrors(),
                               no_cache=True)
        second = build(options, store=store, events=events.append)
    assert any(isinstance(e, BlobStarted) for e in events)
    assert LAYER_NOTED not in str(events) and MEMO_ANSWERED not in str(events)
    assert second.id == first_id


def test_a_chart_context_reads_back_equal_to_its_discovery(tmp_path: Path) -> None:
    """examples/lite (an image list, a manifest, a chart with values and provenance lines): the
    memo's entry gives back exactly what discovery found."""
    from kubenb import list_images  # noqa: PLC0415

    found = list_images(Path(__file__).parents[1] / "examples" / "lite")
    assert found.images
    persist.save(tmp_path, "k", found)
    assert persist.load(tmp_path, "k") == found
