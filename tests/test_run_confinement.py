"""What a build-host RUN can touch, and what a killed build leaves behind.

RUN runs under bubblewrap: it writes only into the rootfs and its own /tmp, keeps the network,
and dies with kubenb. Where no confinement is available (forced here with
``KUBENB_RUN_CONFINEMENT=none``), a RUN over a rootfs whose symlinks lead out is refused.
Every test runs the real ``python -m kubenb`` and the real bubblewrap.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubenb.builders import BuildOptions, build
from kubenb.errors import Cancelled
from kubenb.events import CancelToken
from kubenb.store import Store
from tests.test_hostile import assert_nothing_written, assert_one_clear_line, kubenb

NONE = {"KUBENB_RUN_CONFINEMENT": "none"}
RECOMMENDED = "kind: ConfigMap\nmetadata:\n  name: served\n"


def kubenb_env(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, **(env or {})})


def has_bwrap() -> bool:
    if shutil.which("bwrap") is None:
        return False
    return subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "true"],
                          capture_output=True, check=False).returncode == 0


needs_bwrap = pytest.mark.skipif(not has_bwrap(), reason="bubblewrap (bwrap) is not installed or cannot run here")


def base_with_link(root: Path, link: str, target: str, name: str = "evil-base:1") -> None:
    """A cluster image in the store whose rootfs holds ``link -> target`` (as a hostile base would)."""
    store = Store(root)

    def produce(out: object) -> None:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for folder in ("manifests", "charts", "etc", "registry"):
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)

    with store.lock():
        layer = store.write_layer(produce)
        store.commit(name, [layer], labels={}, annotations={})


@pytest.fixture
def host_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "keep.txt").write_text("untouched\n")
    return folder


def assert_untouched(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    assert (folder / "keep.txt").read_text() == "untouched\n"


# -- confined (bubblewrap) -------------------------------------------------------------------------


@needs_bwrap
def test_a_base_image_link_to_a_host_folder_cannot_redirect_a_run(tmp_path: Path, host_folder: Path) -> None:
    root = tmp_path / "store"
    base_with_link(root, "manifests/evil", str(host_folder))
    (tmp_path / "Kubefile").write_text("FROM evil-base:1\nRUN echo hi > manifests/evil/x\n")
    result = kubenb("--root", str(root), "build", "-t", "derived:1", str(tmp_path))
    assert_untouched(host_folder)
    assert_one_clear_line(result, "Kubefile:2", "RUN failed")
    assert [image.name for image in Store(root).images()] == ["evil-base:1"]


@needs_bwrap
def test_a_link_made_by_an_earlier_build_cannot_redirect_a_run(tmp_path: Path, host_folder: Path) -> None:
    """The brief's two builds: a RUN makes the link, a build FROM that image writes through it."""
    root, first, second = tmp_path / "store", tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    (first / "Kubefile").write_text(f"FROM scratch\nRUN ln -s {host_folder} etc/evil\n")
    made = kubenb("--root", str(root), "build", "-t", "linked:1", str(first))
    assert made.returncode == 0, made.stderr
    (second / "Kubefile").write_text("FROM linked:1\nRUN echo hi > etc/evil/x\n")
    result = kubenb("--root", str(root), "build", "-t", "derived:1", str(second))
    assert_untouched(host_folder)
    assert_one_clear_line(result, "Kubefile:2", "RUN failed")


@needs_bwrap
@pytest.mark.parametrize("target", ["/etc/kubenb-test", "{home}/kubenb-test", "/root/kubenb-test"],
                         ids=["etc", "home", "root"])
def test_a_run_cannot_write_on_the_host(tmp_path: Path, target: str) -> None:
    path = Path(target.format(home=Path.home()))
    assert not path.exists()
    (tmp_path / "Kubefile").write_text(f"FROM scratch\nRUN touch {path}\n")
    result = kubenb("--root", str(tmp_path / "store"), "build", "-t", "touchy:1", str(tmp_path))
    assert not path.exists()
    assert_one_clear_line(result, "Kubefile:2", "RUN failed", "Read-only file system")
    assert_nothing_written(tmp_path / "store")


@needs_bwrap
def test_a_run_writes_the_rootfs_and_its_own_tmp(tmp_path: Path) -> None:
    marker = Path("/tmp") / f"kubenb-run-tmp-{os.getpid()}"
    (tmp_path / "Kubefile").write_text(
        f"FROM scratch\nRUN echo scratch > {marker} && cat {marker} > etc/from-tmp && echo hi > etc/hello\n")
    root = tmp_path / "store"
    result = kubenb("--root", str(root), "build", "-t", "ok:1", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), "RUN's /tmp is its own"
    assert kubenb("--root", str(root), "export", "ok:1", "-o", str(tmp_path / "out")).returncode == 0
    assert (tmp_path / "out" / "etc" / "hello").read_text() == "hi\n"
    assert (tmp_path / "out" / "etc" / "from-tmp").read_text() == "scratch\n"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    served = tmp_path / "served"
    served.mkdir()
    (served / "recommended.yaml").write_text(RECOMMENDED)
    handler: Callable[..., _Quiet] = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@needs_bwrap
def test_wget_works_under_confinement(tmp_path: Path, web: str) -> None:
    context, root = tmp_path / "context", tmp_path / "store"
    context.mkdir()
    (context / "Kubefile").write_text(f"FROM scratch\nRUN wget -q {web}/recommended.yaml -O manifests/app.yaml\n")
    result = kubenb("--root", str(root), "build", "-t", "fetched:1", str(context))
    assert result.returncode == 0, result.stderr
    assert kubenb("--root", str(root), "export", "fetched:1", "-o", str(tmp_path / "out")).returncode == 0
    assert (tmp_path / "out" / "manifests" / "app.yaml").read_text() == RECOMMENDED


# -- the seed's lite example: RUN writes the rootfs, COPY reads the context --------------------------


def test_copy_of_a_file_a_run_wrote_says_so_and_the_documented_form_works(tmp_path: Path, web: str) -> None:
    context, root = tmp_path / "context", tmp_path / "store"
    context.mkdir()
    (context / "Kubefile").write_text(f"FROM scratch\nRUN wget -q {web}/recommended.yaml\n"
                                      "COPY recommended.yaml manifests\n")
    result = kubenb("--root", str(root), "build", "-t", "seed:1", str(context))
    assert_one_clear_line(result, "Kubefile:3", "'recommended.yaml' is not in the build context",
                          "the RUN at line 2 wrote it into the rootfs", "RUN mv recommended.yaml manifests/")
    again = kubenb("--root", str(root), "build", "-t", "seed:1", str(context))  # the RUN layer is cached now
    assert_one_clear_line(again, "the RUN at line 2 wrote it", "RUN mv recommended.yaml manifests/")
    assert Store(root).images() == []
    (context / "Kubefile").write_text(f"FROM scratch\nRUN wget -q {web}/recommended.yaml\n"
                                      "RUN mv recommended.yaml manifests/\n")
    fixed = kubenb("--root", str(root), "build", "-t", "seed:1", str(context))
    assert fixed.returncode == 0, fixed.stderr
    assert kubenb("--root", str(root), "export", "seed:1", "-o", str(tmp_path / "out")).returncode == 0
    assert (tmp_path / "out" / "manifests" / "recommended.yaml").read_text() == RECOMMENDED


# -- unconfined: refused over links that lead out ------------------------------------------------


def test_unconfined_run_is_refused_after_a_base_image_with_a_link_out(tmp_path: Path, host_folder: Path) -> None:
    root = tmp_path / "store"
    base_with_link(root, "manifests/evil", str(host_folder))
    (tmp_path / "Kubefile").write_text("FROM evil-base:1\nRUN echo hi > manifests/evil/x\n")
    result = kubenb_env("--root", str(root), "build", "-t", "derived:1", str(tmp_path), env=NONE)
    assert_one_clear_line(result, "Kubefile:2", "RUN refused", "manifests/evil", str(host_folder),
                          "install bubblewrap")
    assert_untouched(host_folder)
    assert len(Store(root).images()) == 1


def test_unconfined_run_is_refused_after_an_earlier_run_made_a_link_out(tmp_path: Path, host_folder: Path) -> None:
    (tmp_path / "Kubefile").write_text(f"FROM scratch\nRUN ln -s {host_folder} etc/evil\nRUN echo hi > etc/evil/x\n")
    result = kubenb_env("--root", str(tmp_path / "store"), "build", "-t", "derived:1", str(tmp_path), env=NONE)
    assert_one_clear_line(result, "Kubefile:3", "RUN refused", "etc/evil")
    assert_untouched(host_folder)
    assert_nothing_written(tmp_path / "store")


def test_unconfined_run_still_runs_over_a_rootfs_without_links_out(tmp_path: Path) -> None:
    (tmp_path / "Kubefile").write_text("FROM scratch\nRUN ln -s hello etc/inside && echo hi > etc/hello\n")
    result = kubenb_env("--root", str(tmp_path / "store"), "build", "-t", "plain:1", str(tmp_path), env=NONE)
    assert result.returncode == 0, result.stderr


# -- a killed kubenb takes its RUN with it --------------------------------------------------------


def _pids_running(argument: str) -> list[int]:
    """Host pids of live processes whose command line holds ``argument`` as one word."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if argument.encode() in words and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("confinement", [
    pytest.param({}, marks=needs_bwrap, id="bubblewrap"),
    pytest.param(NONE, id="unconfined"),
])
def test_a_killed_build_takes_its_run_child_with_it(tmp_path: Path, confinement: dict[str, str]) -> None:
    seconds = str(900_000 + os.getpid())  # a unique argument to find the sleep by
    (tmp_path / "Kubefile").write_text(f"FROM scratch\nRUN sleep {seconds}\n")
    root = tmp_path / "store"
    build = subprocess.Popen([sys.executable, "-m", "kubenb", "--root", str(root), "build", "-t", "killed:1",
                              str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, **confinement})
    try:
        _wait_for(lambda: bool(_pids_running(seconds)), 60, "the RUN to start")
        children = _pids_running(seconds)
        os.kill(build.pid, signal.SIGKILL)
        build.wait(timeout=30)
        _wait_for(lambda: not _pids_running(seconds), 30, f"the RUN child {children} to die")
    finally:
        for pid in _pids_running(seconds):  # never leave one behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
        if build.poll() is None:
            build.kill()
    checked = kubenb("--root", str(root), "check")
    assert checked.returncode == 0, checked.stderr


def _store_files(root: Path) -> dict[str, int]:
    """Every file of the store but its lock and temp folder, with its size: what a build may change."""
    return {str(path.relative_to(root)): path.stat().st_size for path in root.rglob("*")
            if path.is_file() and path.name != "lock" and "tmp" not in path.relative_to(root).parts}


@pytest.mark.parametrize("confinement", [
    pytest.param({}, marks=needs_bwrap, id="bubblewrap"),
    pytest.param(NONE, id="unconfined"),
])
def test_cancelling_a_build_during_a_long_run_kills_it_and_leaves_the_store_unchanged(
        tmp_path: Path, confinement: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The RUN sleeps far longer than the test may take, so the build ending at all, with the
    sleep gone, proves the cancel killed it (no guess at how fast the machine is)."""
    for name, value in confinement.items():
        monkeypatch.setenv(name, value)
    seconds = str(800_000 + os.getpid())  # a unique argument to find the sleep by
    root = tmp_path / "store"
    (tmp_path / "Kubefile").write_text("FROM scratch\nLABEL first=1\n")
    build(BuildOptions(tag="first:1", context=tmp_path, kubefile=tmp_path / "Kubefile"), store=Store(root))
    before = _store_files(root)
    (tmp_path / "Kubefile").write_text(f"FROM first:1\nRUN sleep {seconds}\n")
    cancel = CancelToken()
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(build(BuildOptions(tag="slow:1", context=tmp_path, kubefile=tmp_path / "Kubefile"),
                                 store=Store(root), cancel=cancel))
        except BaseException as error:  # the assertion below names what it was
            outcome.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        _wait_for(lambda: bool(_pids_running(seconds)), 60, "the RUN to start")
        cancel.cancel()
        worker.join(120)
        assert not worker.is_alive(), "the cancelled build did not end"
        assert not _pids_running(seconds), "the RUN outlived its cancelled build"
    finally:
        for pid in _pids_running(seconds):  # never leave one behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
    assert len(outcome) == 1 and type(outcome[0]) is Cancelled, outcome
    assert [image.name for image in Store(root).images()] == ["first:1"]
    assert _store_files(root) == before  # no blob, no cache entry, the same index
    assert not list((root / "tmp").glob("build-*"))
    checked = kubenb("--root", str(root), "check")
    assert checked.returncode == 0, checked.stderr


# -- partial layers of a killed build ------------------------------------------------------------


def test_the_next_build_removes_the_partial_layers_of_a_killed_one(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (tmp_path / "Kubefile").write_text("FROM scratch\nRUN echo hi > etc/hello\n")
    assert kubenb("--root", str(root), "build", "-t", "first:1", str(tmp_path)).returncode == 0
    partial = root / "tmp" / "layer.k1ll3d"  # what Blobs.write_layer leaves when SIGKILLed mid-layer
    partial.write_bytes(b"\x1f\x8b" + b"half a layer" * 1000)
    staging = root / "tmp" / "load.k1ll3d"  # a killed load's staging folder
    staging.mkdir()
    (staging / ("a" * 64)).write_bytes(b"half a blob")
    other = root / "tmp" / "index.json.recent"  # another writer's temp file: not ours to judge
    other.write_bytes(b"{}")
    result = kubenb("--root", str(root), "build", "-t", "second:1", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert not partial.exists() and not staging.exists()
    assert other.exists()
    checked = kubenb("--root", str(root), "check")
    assert checked.returncode == 0, checked.stderr
