"""The fast path of an unchanged rebuild (builders/unchanged.py): one record in the store answers
a build whose inputs are all as the last build read them, and anything else is a real rebuild.

Each test builds once, changes one thing, and builds again as a new process would (no
in-process memo). "Answered" means the fast path's message and no build step; "rebuilt"
means the steps ran and the image shows the change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import kubenb
from kubenb.builders import BuildOptions, build, record, unchanged
from kubenb.builders.fingerprints import Fingerprints, fingerprint, settled, signature
from kubenb.builders.fingerprints import unchanged as still_holds
from kubenb.demo import DemoRegistry
from kubenb.discover import clear_memo
from kubenb.events import Event, Message
from kubenb.store import IMAGES_ANNOTATION, Store

IMAGES = ["busybox:1.36", "alpine:3.20", "registry.k8s.io/pause:3.9", "apolloconfig/apollo-portal:2.1.0",
          "apolloconfig/apollo-portal:2.2.0"]
CHART_POD = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: portal}
spec:
  template:
    spec:
      containers:
      - name: portal
        image: "apolloconfig/apollo-portal:{{ .Values.tag }}"
"""


@pytest.fixture(scope="module")
def registry() -> Iterator[DemoRegistry]:
    with DemoRegistry(IMAGES) as serving:
        yield serving


def _context(tmp_path: Path) -> Path:
    """An image list, a folder of manifests, a chart, and an ARG that reaches the image list."""
    context = tmp_path / "context"
    (context / "more").mkdir(parents=True)
    (context / "Kubefile").write_text("ARG EXTRA=scratch\nFROM scratch\nCOPY imageList manifests\n"
                                      "COPY more manifests\nCOPY portal charts\n"
                                      "RUN echo ${EXTRA} > etc/extra\n")
    (context / "imageList").write_text("busybox:1.36\n")
    (context / "more" / "list").write_text("alpine:3.20\n")
    chart = context / "portal"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: portal\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("tag: 2.1.0\n")
    (chart / "templates" / "portal.yaml").write_text(CHART_POD)
    return context


def _build(context: Path, store: Store, registry: DemoRegistry, **options: object) -> tuple[str, list[str]]:
    """Build ``c:1`` as a new process would: the image ID and the messages said."""
    clear_memo()
    events: list[Event] = []
    asked = BuildOptions(tag="c:1", context=context, kubefile=context / "Kubefile", mirrors=registry.mirrors(),
                         **options)  # type: ignore[arg-type]
    image = build(asked, store=store, events=events.append)
    return image.id, [e.text.strip() for e in events if isinstance(e, Message)]


def _answered(said: list[str]) -> bool:
    answered = any(line.startswith(unchanged.ANSWERED) for line in said)
    assert answered != any(line.startswith("Step ") for line in said), said  # one or the other
    return answered


def _images(store: Store) -> list[str]:
    return sorted(json.loads(store.get("c:1").annotations[IMAGES_ANNOTATION]))


def _built_twice(tmp_path: Path, registry: DemoRegistry, **options: object) -> tuple[Path, Store, str]:
    context, store = _context(tmp_path), Store(tmp_path / "store")
    first, said = _build(context, store, registry, **options)
    assert not _answered(said)
    again, said = _build(context, store, registry, **options)
    assert _answered(said) and again == first
    return context, store, first


def test_an_unchanged_rebuild_is_answered_by_the_record(tmp_path: Path, registry: DemoRegistry) -> None:
    _, store, _ = _built_twice(tmp_path, registry)
    assert store.check() == []
    assert len(list((store.root / "unchanged").glob("*.json"))) == 1


def test_the_first_rebuild_reads_no_blob_the_build_just_wrote(tmp_path: Path, registry: DemoRegistry,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry layer is the build's last write: its stat is taken in the same moment, and
    an unsettled stat would make the next rebuild hash every byte of it again."""
    context, store = _context(tmp_path), Store(tmp_path / "store")
    _build(context, store, registry)
    hashed: list[Path] = []

    def counted(path: Path) -> object:
        hashed.append(path)
        return fingerprint(path)

    monkeypatch.setattr(record, "fingerprint", counted)
    _, said = _build(context, store, registry)
    assert _answered(said)
    assert not [path for path in hashed if store.root / "blobs" in path.parents]


def test_a_file_rewritten_with_the_same_size_and_mtime_is_rebuilt(tmp_path: Path, registry: DemoRegistry) -> None:
    """The edit of the same second, same size: the mtime is even set back; ctime shows it."""
    context, store, _ = _built_twice(tmp_path, registry)
    image_list = context / "imageList"
    before = image_list.stat()
    image_list.write_text("alpine:3.20\n\n")  # the same 13 bytes
    os.utime(image_list, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert image_list.stat().st_size == before.st_size
    _, said = _build(context, store, registry)
    assert not _answered(said)
    assert _images(store) == ["docker.io/apolloconfig/apollo-portal:2.1.0", "docker.io/library/alpine:3.20"]


def test_a_file_touched_but_unchanged_is_still_answered(tmp_path: Path, registry: DemoRegistry) -> None:
    """A stat that moved (touch, a checkout) costs a hash of that file, not a rebuild."""
    context, store, first = _built_twice(tmp_path, registry)
    os.utime(context / "imageList")
    again, said = _build(context, store, registry)
    assert _answered(said) and again == first


def test_a_new_file_in_a_copied_folder_is_rebuilt(tmp_path: Path, registry: DemoRegistry) -> None:
    context, store, _ = _built_twice(tmp_path, registry)
    (context / "more" / "pause.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                                                 "spec: {containers: [{name: p, image: registry.k8s.io/pause:3.9}]}\n")
    _, said = _build(context, store, registry)
    assert not _answered(said)
    assert "registry.k8s.io/pause:3.9" in _images(store)


def test_a_changed_build_arg_is_rebuilt(tmp_path: Path, registry: DemoRegistry) -> None:
    context, store, first = _built_twice(tmp_path, registry)
    _, said = _build(context, store, registry, build_args={"EXTRA": "other"})
    assert not _answered(said)
    back, said = _build(context, store, registry)  # the first arguments again: c:1 names another image now
    assert not _answered(said) and back == first  # rebuilt from the build cache, into the same image


def test_a_changed_chart_value_is_rebuilt(tmp_path: Path, registry: DemoRegistry) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("tag: 2.1.0\n")
    context, store, _ = _built_twice(tmp_path, registry, values={"portal": (values,)})
    values.write_text("tag: 2.2.0\n")  # same size
    _, said = _build(context, store, registry, values={"portal": (values,)})
    assert not _answered(said)
    assert "docker.io/apolloconfig/apollo-portal:2.2.0" in _images(store)
    _, said = _build(context, store, registry, values={"portal": (values,)}, set_values={"portal": ("tag=2.1.0",)})
    assert not _answered(said)
    assert "docker.io/apolloconfig/apollo-portal:2.1.0" in _images(store)


def test_a_changed_review_is_rebuilt(tmp_path: Path, registry: DemoRegistry) -> None:
    """The review files sit in the context but are no COPY source: their bytes are checked too."""
    from kubenb.discover.review import EXCLUDE, INCLUDE  # noqa: PLC0415

    assert record.REVIEW_FILES == (INCLUDE, EXCLUDE)
    context = _context(tmp_path)
    (context / ".kubenb").mkdir()
    (context / EXCLUDE).write_text("docker.io/library/busybox:1.36\n")
    store = Store(tmp_path / "store")
    _build(context, store, registry)
    assert "docker.io/library/busybox:1.36" not in _images(store)
    (context / EXCLUDE).write_text("docker.io/library/alpine:3.20\n")  # the same listing
    _, said = _build(context, store, registry)
    assert not _answered(said)
    assert "docker.io/library/busybox:1.36" in _images(store)
    assert "docker.io/library/alpine:3.20" not in _images(store)


def test_a_removed_image_is_rebuilt(tmp_path: Path, registry: DemoRegistry) -> None:
    context, store, first = _built_twice(tmp_path, registry)
    store.remove("c:1")
    again, said = _build(context, store, registry)
    assert not _answered(said) and again == first
    assert store.check() == []


@pytest.mark.parametrize("damage", ["corrupt", "delete"])
def test_a_damaged_blob_is_rebuilt(tmp_path: Path, registry: DemoRegistry, damage: str) -> None:
    """A stored blob of the image overwritten (same size) or deleted: the fast path finds it,
    a corrupt one is removed, and the build makes it again: the store checks clean after."""
    context, store, first = _built_twice(tmp_path, registry)
    layer = store.layers("c:1")[-1]  # the registry layer
    path = store.blobs.path(layer.digest)
    if damage == "corrupt":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.unlink()
    again, said = _build(context, store, registry)
    assert not _answered(said) and again == first
    assert store.check() == []


def test_another_kubenb_version_is_rebuilt(tmp_path: Path, registry: DemoRegistry,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    context, store, _ = _built_twice(tmp_path, registry)
    monkeypatch.setattr(kubenb, "__version__", "999.0")
    _, said = _build(context, store, registry)
    assert not _answered(said)


def test_a_changed_kubefile_is_rebuilt(tmp_path: Path, registry: DemoRegistry) -> None:
    context, store, _ = _built_twice(tmp_path, registry)
    kubefile = context / "Kubefile"
    kubefile.write_text(kubefile.read_text().replace("COPY more manifests\n", ""))
    _, said = _build(context, store, registry)
    assert not _answered(said)
    assert "docker.io/library/alpine:3.20" not in _images(store)


def test_a_changed_mode_is_rebuilt_and_reaches_the_layer(tmp_path: Path, registry: DemoRegistry) -> None:
    """COPY keeps a file's permission bits, so they are part of the build cache key too."""
    context, store, first = _built_twice(tmp_path, registry)
    (context / "imageList").chmod(0o755)
    again, said = _build(context, store, registry)
    assert not _answered(said) and again != first


def test_a_corrupt_or_foreign_record_is_a_miss_and_written_again(tmp_path: Path, registry: DemoRegistry) -> None:
    context, store, first = _built_twice(tmp_path, registry)
    [path] = (store.root / "unchanged").glob("*.json")
    whole = json.loads(path.read_bytes())
    foreign = [b"{", b"\xff\x00", b"[]", json.dumps({**whole, "format": 0}).encode(),
               json.dumps({**whole, "blobs": {"sha256:" + "0" * 64: 5}}).encode(),
               json.dumps({**whole, "files": {"/": [[0, 0, 0, 0, 0], None, True]}}).encode(),
               json.dumps({**whole, "tag": ["c:1"]}).encode()]
    for data in foreign:
        path.write_bytes(data)
        again, said = _build(context, store, registry)
        assert not _answered(said) and again == first, data
        assert json.loads(path.read_bytes())["format"] == record.FORMAT  # written again, whole
    again, said = _build(context, store, registry)
    assert _answered(said) and again == first
    assert store.check() == []


def test_concurrent_unchanged_rebuilds_stay_whole(tmp_path: Path, registry: DemoRegistry) -> None:
    """Three processes rebuild the same context at once (one of them after a change): every
    one ends well, the store checks clean and the next rebuild is answered."""
    context, root = _context(tmp_path), tmp_path / "store"
    mirrors = [f"--registry-mirror={domain}={host}" for domain, host in registry.mirrors().items()]
    command = [sys.executable, "-m", "kubenb", "--root", str(root), "build", "-t", "c:1", *mirrors, str(context)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    (context / "more" / "list").write_text("alpine:3.20\nbusybox:1.36\n")
    builds = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(b.wait(timeout=300), *b.communicate()) for b in builds]
    assert [r[0] for r in results] == [0, 0, 0], results
    assert Store(root).check() == []
    after = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    assert unchanged.ANSWERED in after.stderr


#: Runs ``python -m kubenb ARGS`` and prints the kubenb and third-party modules it loaded.
_PROBE = """
import json, runpy, sys
sys.argv = ["kubenb", *sys.argv[1:]]
try:
    runpy.run_module("kubenb", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def test_an_answered_rebuild_loads_no_parser_discovery_or_http_client(tmp_path: Path, registry: DemoRegistry) -> None:
    context, root = _context(tmp_path), tmp_path / "store"
    mirrors = [f"--registry-mirror={domain}={host}" for domain, host in registry.mirrors().items()]
    args = ["--root", str(root), "build", "-t", "c:1", *mirrors, str(context)]
    subprocess.run([sys.executable, "-m", "kubenb", *args], check=True, capture_output=True, timeout=300)
    probe = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=300,
                           check=True)
    assert unchanged.ANSWERED in probe.stderr
    modules = set(json.loads(probe.stderr.strip().splitlines()[-1]))
    heavy = {"requests", "urllib3", "yaml", "pandas", "helm_python", "kubenb.registry", "kubenb.discover",
             "kubenb.kubefile", "kubenb.builders.lite", "kubenb.registry_folder",
             # answered before the commands load: not even the records, the events or the Store
             "dataclasses", "kubenb.model", "kubenb.events", "kubenb.store.store", "kubenb.builders.dispatch",
             "kubenb.display", "kubenb.engine.facade"}
    assert sorted(modules & heavy) == []


def test_the_answer_prints_what_the_build_printed(tmp_path: Path, registry: DemoRegistry) -> None:
    """The command line's answer says the same last line as the build it stands for, and its
    options make the same record key as the build's (two mappings of the parsed options)."""
    context, root = _context(tmp_path), tmp_path / "store"
    values = tmp_path / "values.yaml"
    values.write_text("tag: 2.1.0\n")
    mirrors = [f"--registry-mirror={domain}={host}" for domain, host in registry.mirrors().items()]
    args = [sys.executable, "-m", "kubenb", "--root", str(root), "build", "-t", "c:1", *mirrors, "--build-arg",
            "EXTRA=x", "--values", f"portal={values}", "--set", "portal:tag=2.1.0", str(context)]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True)
    again = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True)
    assert unchanged.ANSWERED in again.stderr and unchanged.ANSWERED not in first.stderr
    assert again.stdout == first.stdout and again.stdout.startswith("built c:1 (")


def test_the_answer_sizes_read_as_the_display_says_them() -> None:
    from kubenb.cli.unchanged import human_size  # noqa: PLC0415
    from kubenb.display import human_size as shown  # noqa: PLC0415

    for size in (0, 999, 1000, 12_345, 999_999, 80_700_000, 5 * 10**9, 3 * 10**12):
        assert human_size(size) == shown(size)


# -- fingerprints: the stat, trusted only when settled -------------------------------------------


def test_a_stat_taken_in_the_tick_of_the_write_is_not_settled(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    found = fingerprint(path)
    assert not found.settled  # written just now: a second write in this tick could keep every time
    info = path.stat()
    assert settled(info, max(info.st_mtime_ns, info.st_ctime_ns) + 4 * 10**9)


def test_an_unsettled_stat_is_checked_by_its_bytes(tmp_path: Path) -> None:
    """The same stat proves nothing when it was not settled: the bytes are hashed and compared."""
    path = tmp_path / "f"
    path.write_bytes(b"one")
    now = signature(path.stat())
    other = "0" * 64  # what the file held before, say
    assert still_holds(path, now, other, was_settled=False) is None
    assert still_holds(path, now, other, was_settled=True) is not None  # a settled, unmoved stat is proof
    assert still_holds(path, now, fingerprint(path).sha256, was_settled=False) is not None


def test_known_fingerprints_spare_hashing_only_while_their_stat_holds(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    real = fingerprint(path)
    fake = type(real)(signature(path.stat()), "00" * 32, True)
    assert Fingerprints({str(path): fake}).digest(path) == bytes(32)  # a settled stat is trusted
    path.write_bytes(b"two")
    assert Fingerprints({str(path): fake}).digest(path) == bytes.fromhex(fingerprint(path).sha256)


def test_the_records_stay_bounded_and_drop_the_least_recently_used(tmp_path: Path) -> None:
    for n in range(record.LIMIT + 5):
        record.write(tmp_path, f"{n:064x}", {"format": record.FORMAT, "key": f"{n:064x}"})
        os.utime(record.record_path(tmp_path, f"{n:064x}"), ns=(n * 10**9, n * 10**9))  # a clock tick is coarse
    kept = sorted(path.stem for path in (tmp_path / "unchanged").glob("*.json"))
    assert len(kept) == record.LIMIT
    assert f"{0:064x}" not in kept and f"{record.LIMIT + 4:064x}" in kept
    assert list((tmp_path / "tmp").glob("*")) == []  # no temp file left


def test_the_command_line_answer_never_waits_for_a_running_build(tmp_path: Path, registry: DemoRegistry) -> None:
    """While another build holds the store, the command line's check gives way at once (the
    build that follows waits, with Ctrl-C at hand); once the store is free it answers."""
    from kubenb.engine import unchanged_build  # noqa: PLC0415
    from kubenb.store.lock import StoreLock  # noqa: PLC0415

    context, store, first = _built_twice(tmp_path, registry)
    asked = {"tag": "c:1", "context": context, "kubefile": context / "Kubefile", "build_args": {}, "values": {},
             "set_values": {}, "kube_version": None, "platforms": None, "skip_invalid": False,
             "skip_missing_platform": False}
    with StoreLock(store.root / "lock").hold():
        assert unchanged_build(store.root, **asked) is None  # type: ignore[arg-type]
    answer = unchanged_build(store.root, **asked)  # type: ignore[arg-type]
    assert answer is not None and answer.image_id == first
