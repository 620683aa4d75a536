"""Ctrl-C in a terminal and the demo registry under a kernel interrupt, with real processes.

Ctrl-C is a real SIGINT sent to a real ``python -m kubenb`` while the proxy in front of a real
registry holds a blob download unanswered: only the cancel, cutting that request, can end the
command, so its ending (within a generous bound that is no speed claim) proves the cut.
The kernel case (JupyterLab's interrupt button) is tests/test_browser.py's
``test_interrupting_a_foreground_build_stops_it_and_the_demo_registry_survives``.
"""

from __future__ import annotations

import _thread
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import requests
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from kubenb.demo import DemoRegistry
from kubenb.store import Store
from tests.support.faulty import Fault, FaultyProxy, Hold
from tests.support.registry import Registry
from tests.test_hostile import assert_nothing_written, kubenb
from tests.test_push_pull import commit_image

pytestmark = pytest.mark.registry

#: Only so that a broken interrupt fails the test instead of hanging it; never a speed limit.
BOUND = 10.0
IMAGES = ["busybox:1.36", "alpine:3.20"]
#: ``python -m kubenb`` with SIGINT as a terminal gives it: a test runner started in the
#: background may ignore SIGINT, and a child inherits that (Python then installs no handler).
KUBENB_AS_IN_A_TERMINAL = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                           "runpy.run_module('kubenb', run_name='__main__', alter_sys=True)")


@pytest.fixture(scope="module")
def source() -> Iterator[DemoRegistry]:
    with DemoRegistry(IMAGES, padding=200_000) as running:
        yield running


def alpine_layer(source: DemoRegistry) -> str:
    manifest = requests.get(f"{source.url}/v2/library/alpine/manifests/3.20", timeout=10,
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    manifest.raise_for_status()
    digest: str = manifest.json()["layers"][0]["digest"]
    return digest


@contextmanager
def holding(source: DemoRegistry, path: str) -> Iterator[tuple[FaultyProxy, Hold]]:
    """A proxy in front of ``source`` holding the blob downloads whose path matches ``path``
    unanswered until the block ends."""
    hold = Hold()
    with FaultyProxy(source.url) as proxy:
        proxy.add(Fault(path, hold, times=10_000, method="GET"))
        try:
            yield proxy, hold
        finally:
            with proxy.lock:
                proxy.faults.clear()
            hold.release.set()


def interrupted(args: list[str], hold: Hold, ready: Callable[[], bool] = lambda: True,
                ) -> subprocess.CompletedProcess[str]:
    """Run kubenb until a blob download is held (and ``ready()``), press Ctrl-C, return how it ended."""
    process = subprocess.Popen([sys.executable, "-c", KUBENB_AS_IN_A_TERMINAL, *args], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert hold.held.wait(120), "kubenb never started a download"
        deadline = time.monotonic() + 120
        while not ready() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=BOUND)  # raises if the interrupt did not stop it
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def assert_interrupted(result: subprocess.CompletedProcess[str], line: str) -> None:
    """Exit status 130, no traceback, and one kubenb line (progress lines may come before it)."""
    assert result.returncode == 130, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    said = [text for text in result.stderr.splitlines() if text.startswith("kubenb:")]
    assert said == [line], result.stderr
    assert result.stderr.strip().splitlines()[-1] == line
    assert result.stdout == ""


def test_ctrl_c_stops_a_build_at_once_and_names_nothing(source: DemoRegistry, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    (context / "imageList").write_text("".join(f"{image}\n" for image in IMAGES))
    root = tmp_path / "store"
    with holding(source, r"/blobs/") as (proxy, hold):
        result = interrupted(["--root", str(root), "build", "-t", "stopped:1",
                              f"--registry-mirror=docker.io={proxy.host}", str(context)], hold)
    assert_interrupted(result, "kubenb: build interrupted; nothing was named; the store is as it was")
    assert_nothing_written(root)
    listed = kubenb("--root", str(root), "images", "-o", "json")
    assert json.loads(listed.stdout) == []


def test_ctrl_c_stops_save_images_at_once_and_leaves_a_sound_folder(source: DemoRegistry, tmp_path: Path) -> None:
    """Only alpine's layer is held: busybox may be saved whole before the interrupt, never alpine."""
    output = tmp_path / "registry"
    with holding(source, re.escape(f"/blobs/{alpine_layer(source)}")) as (proxy, hold):
        names = [f"{proxy.host}/library/{image}" for image in IMAGES]
        busybox = output / "docker/registry/v2/repositories/library/busybox/_manifests/tags/1.36"
        result = interrupted(["save-images", "-o", str(output), *names], hold, ready=busybox.exists)
    assert_interrupted(result, "kubenb: save-images interrupted; nothing half-written was kept; "
                               "run it again to fetch only what is missing")
    (tmp_path / "store").mkdir()
    checked = kubenb("--root", str(tmp_path / "store"), "check", "--registry-folder", str(output))
    assert checked.returncode == 0, checked.stderr
    assert not list((output / ".kubenb-tmp").glob("*")), "a partial blob was left behind"
    rerun = kubenb("save-images", "-o", str(output), *(f"{source.host}/library/{image}" for image in IMAGES))
    assert rerun.returncode == 0, rerun.stderr
    assert "1 already complete" in rerun.stdout, rerun.stdout


def test_ctrl_c_stops_a_pull_at_once_and_names_nothing(registry: Registry, tmp_path: Path, repo_name: str) -> None:
    """The image's last layer is held on every try: only the cancel can end the pull."""
    image = commit_image(tmp_path / "root", tmp_path)
    pushed = kubenb("--root", str(tmp_path / "root"), "push", image.name, f"{registry.host}/{repo_name}:v1")
    assert pushed.returncode == 0, pushed.stderr
    last = Store(tmp_path / "root").layers(image.name)[-1].digest
    fresh = tmp_path / "fresh"
    hold = Hold()
    with FaultyProxy(registry.url) as proxy:
        proxy.add(Fault(re.escape(f"/blobs/{last}"), hold, times=10_000))
        try:
            result = interrupted(["--root", str(fresh), "pull", f"{proxy.host}/{repo_name}:v1"], hold)
        finally:
            hold.release.set()
    assert_interrupted(result, "kubenb: pull interrupted; nothing was named; the store is as it was")
    assert_nothing_written(fresh)


def test_ctrl_c_stops_a_push_at_once_and_tags_nothing(registry: Registry, tmp_path: Path, repo_name: str) -> None:
    """The check of the last layer (the HEAD before its upload) is held on every try; the
    manifest, sent last, never is."""
    image = commit_image(tmp_path / "root", tmp_path)
    last = Store(tmp_path / "root").layers(image.name)[-1].digest
    hold = Hold()
    with FaultyProxy(registry.url) as proxy:
        proxy.add(Fault(re.escape(f"/blobs/{last}"), hold, times=10_000, method="HEAD"))
        try:
            result = interrupted(["--root", str(tmp_path / "root"), "push", image.name,
                                  f"{proxy.host}/{repo_name}:v1"], hold)
        finally:
            hold.release.set()
    assert_interrupted(result, "kubenb: push interrupted; no tag was written at the destination; run it again to go on")
    answer = requests.get(f"{registry.url}/v2/{repo_name}/tags/list", timeout=30)
    assert answer.status_code == 404 or not answer.json().get("tags"), answer.text


# -- Ctrl-C in IPython (``interrupt_main``: KeyboardInterrupt in the main thread, no signal) ---------


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "kubenb")
    ip.run_line_magic("config", "KubenbMagics.full_traceback = False")
    yield ip


def interrupt_main_once(ready: Callable[[], bool]) -> threading.Thread:
    """Press Ctrl-C in the main thread once ``ready()`` (polled; a bound only against hanging)."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        _thread.interrupt_main()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def build_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("kubenb")]


@pytest.mark.parametrize("progress", ["widget", "text"])
def test_ctrl_c_during_a_foreground_build_in_ipython_stops_it_before_the_cell_returns(
        shell: InteractiveShell, tmp_path: Path, progress: str) -> None:
    """The RUN never ends by itself: the interrupt ends the build. The panel's wait looks for
    the interrupt in short steps (a wait without a timeout never sees ``interrupt_main``), and
    no build thread is left running once the cell has failed."""
    context = tmp_path / "context"
    context.mkdir()
    root = tmp_path / "store"
    body = "FROM scratch\nRUN touch etc/started; while true; do sleep 0.1; done\n"
    watcher = interrupt_main_once(lambda: bool(list((root / "tmp").glob("build-*/rootfs/etc/started"))))
    outcome = shell.run_cell(f"%%kubefile --context {context} --root {root} -t slow:1 --build --progress {progress}\n"
                             f"{body}")
    watcher.join(120)
    assert isinstance(outcome.error_in_exec, UsageError), outcome.error_in_exec
    assert str(outcome.error_in_exec) == "the build was interrupted; nothing was named; the store is as it was"
    assert build_threads() == []
    assert_nothing_written(root)


def test_ctrl_c_during_save_images_in_ipython_stops_it_at_once(
        shell: InteractiveShell, source: DemoRegistry, tmp_path: Path) -> None:
    output = tmp_path / "registry"
    with holding(source, r"/blobs/") as (proxy, hold):
        watcher = interrupt_main_once(hold.held.is_set)
        outcome = shell.run_cell(f"%kubenb save-images -o {output} {proxy.host}/library/busybox:1.36")
        watcher.join(120)
    assert isinstance(outcome.error_in_exec, UsageError), outcome.error_in_exec
    assert str(outcome.error_in_exec).startswith("save-images interrupted; nothing half-written was kept")
    assert build_threads() == []


# -- the demo registry and SIGINT to its parent's process group ---------------------------------

#: A parent like a kernel: it starts the registry, survives SIGINT (a kernel turns it into
#: KeyboardInterrupt in the cell), and exits normally when its stdin closes.
PARENT = textwrap.dedent("""
    import signal, sys
    from kubenb.demo import DemoRegistry
    registry = DemoRegistry(["busybox:1.36"]).start()
    signal.signal(signal.SIGINT, lambda *_: print("interrupted", flush=True))
    print(registry.host, registry.pid, flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def parent() -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    """The parent in a process group of its own (as a kernel is), with its registry's host and pid."""
    process = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        host, pid = process.stdout.readline().split()
        yield process, host, int(pid)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def serves(host: str) -> bool:
    try:
        return requests.get(f"http://{host}/v2/", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def test_the_demo_registry_survives_sigint_to_its_parents_process_group_and_stops_at_exit(
        parent: tuple[subprocess.Popen[str], str, int]) -> None:
    process, host, pid = parent
    assert serves(host)
    os.killpg(process.pid, signal.SIGINT)  # what a kernel interrupt does
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "interrupted"  # the signal reached the group
    assert serves(host), "the registry died with the interrupt"
    assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    process.communicate("", timeout=30)  # stdin closed: the parent exits normally, atexit runs
    assert process.returncode == 0
    _, alive = psutil.wait_procs([psutil.Process(pid)] if psutil.pid_exists(pid) else [], timeout=BOUND)
    assert not alive, "the registry outlived its parent"
    assert not serves(host)


def test_the_demo_registry_is_not_leaked_when_its_parent_is_killed(
        parent: tuple[subprocess.Popen[str], str, int]) -> None:
    process, host, pid = parent
    registry = psutil.Process(pid)
    os.killpg(process.pid, signal.SIGKILL)  # no atexit: the watchdog must stop it
    process.wait()
    _, alive = psutil.wait_procs([registry], timeout=BOUND)
    assert not alive, "the registry outlived its killed parent"
    assert not serves(host)
