"""Crash consistency: `kubenb build` killed with SIGKILL at seeded random points.

Each trial starts a real `kubenb build` (a subprocess) of a context whose images come from a
DemoRegistry behind a FaultyProxy, kills it at a random point of its run, then asks `kubenb
check` (must be clean), builds again (must succeed) and checks again. A kill point is drawn
at random: a stage the build reports (start-up, a COPY or RUN step, the caching, an image
being pulled), and a number of blobs the proxy lets through before it holds the next one
unanswered. The build is killed as soon as it reports the stage or a blob is held, whichever
comes first. Tied to events rather than to the clock, and never able to finish (a held blob
never arrives), every trial is killed where it is meant to be however busy the machine is.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kubenb.demo import DemoRegistry
from kubenb.store import Store
from tests.support.faulty import Delay, Fault, FaultyProxy, Hold

IMAGES = ["busybox:1.36", "alpine:3.20", "registry.k8s.io/pause:3.9", "nginx:1.25", "quay.io/app/api:2.0"]
TRIALS = 12
SEED = 20261128
#: Progress lines a build prints on stderr, in order; a trial kills just after one of them.
STAGES = ("", "Step 2/5", "Step 3/5", "Step 4/5", "Caching", "[1/5]", "[3/5]", "[5/5]", "saved")


def kubenb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture(scope="module")
def source() -> Iterator[FaultyProxy]:
    with DemoRegistry(IMAGES, padding=8_000_000) as running, FaultyProxy(f"http://{running.host}") as proxy:
        yield proxy


@pytest.fixture
def context(tmp_path: Path) -> Path:
    folder = tmp_path / "context"
    (folder / "deploy").mkdir(parents=True)
    (folder / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\nCOPY deploy manifests\n"
                                     "RUN echo built > etc/stamp\nLABEL crash=test\n")
    (folder / "imageList").write_text("\n".join(IMAGES[:3]) + "\n")
    (folder / "deploy" / "app.yaml").write_text(
        "kind: Pod\nspec:\n  containers:\n  - image: nginx:1.25\n  - image: quay.io/app/api:2.0\n")
    return folder


def build_command(root: Path, context: Path, source: FaultyProxy) -> list[str]:
    mirrors = [f"--registry-mirror={domain}={source.host}" for domain in ("docker.io", "registry.k8s.io", "quay.io")]
    return [sys.executable, "-m", "kubenb", "--root", str(root), "build", "-t", "crash:1", *mirrors, str(context)]


def assert_clean(root: Path) -> None:
    if not root.exists():
        return  # killed before it made the store folder: nothing to check (check refuses a missing store)
    checked = kubenb("--root", str(root), "check")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("OK: store: ")


def test_builds_killed_at_random_points_leave_a_sound_store(source: FaultyProxy, context: Path,
                                                           tmp_path: Path) -> None:
    started = time.monotonic()
    whole = subprocess.run(build_command(tmp_path / "whole", context, source), capture_output=True, text=True,
                           timeout=120, check=False)
    assert whole.returncode == 0, whole.stderr
    blobs = len(source.requests_to(r"/blobs/", "GET"))  # what a build with an empty store fetches
    rng = random.Random(SEED)
    outcomes: list[str] = []
    for trial in range(TRIALS):
        root = tmp_path / f"store-{trial}"
        stage, let_through = rng.choice(STAGES), rng.randrange(blobs)
        log = tmp_path / f"build-{trial}.log"
        with log.open("w") as stderr, holding_blobs(source, after=let_through) as held:
            process = subprocess.Popen(build_command(root, context, source), stdout=subprocess.DEVNULL, stderr=stderr)
            wait_for(stage, log, process, held)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL, f"trial {trial}: the build ended before the kill"
        outcomes.append(phase(log.read_text()))
        assert_clean(root)
        listed = json.loads(kubenb("--root", str(root), "images", "-o", "json").stdout or "[]")
        assert listed == [], "a killed build named a partial image"
        again = subprocess.run(build_command(root, context, source), capture_output=True, text=True,
                               timeout=120, check=False)
        assert again.returncode == 0, f"trial {trial} (killed after {stage!r}): {again.stderr}"
        assert_clean(root)
        image = Store(root).get("crash:1")
        assert len(json.loads(image.annotations["io.kubenb.images"])) == len(IMAGES)
        assert not list((root / "tmp").glob("build-*"))
    print(f"\n{TRIALS} trials, {blobs} blobs per build, outcomes {outcomes}, total {time.monotonic() - started:.1f} s")


@contextmanager
def holding_blobs(proxy: FaultyProxy, *, after: int) -> Iterator[Hold]:
    """The proxy lets ``after`` blob downloads through, then holds every other one unanswered
    (so the build cannot finish) until the block ends."""
    held = Hold()
    proxy.add(*([Fault(r"/blobs/", Delay(0), times=after, method="GET")] if after else []),
              Fault(r"/blobs/", held, times=1000, method="GET"))
    try:
        yield held
    finally:
        with proxy.lock:
            proxy.faults.clear()
        held.release.set()


def wait_for(stage: str, log: Path, process: subprocess.Popen[bytes], held: Hold) -> None:
    """Until the build has printed ``stage`` or waits for a held blob (or ended); the empty
    stage is its start."""
    deadline = time.monotonic() + 120
    while stage and stage not in log.read_text() and not held.held.is_set() and process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.005)


def phase(log: str) -> str:
    """Where a killed build was, from the progress it had printed."""
    lines = [line for line in log.splitlines() if line.startswith(("Step", "Caching"))]
    if not lines:
        return "killed at start-up"
    return "killed while caching" if lines[-1].startswith("Caching") else f"killed at {lines[-1].split(':')[0]}"
