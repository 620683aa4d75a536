"""Podman's Docker-compatible API service, started by the tests on a unix socket in a temp folder.

The container build talks to any Docker Engine API; the tests give it a real one: ``podman
system service`` with its own storage (``--root``/``--runroot`` in the temp folder, ``vfs``
driver), so nothing another test or session keeps in the machine's Podman store is seen or
touched. ``CONTAINERS_CONF`` points at a containers.conf written here (runc, no default ulimits:
what works as root on these machines). ``DOCKER_HOST`` for the build is :attr:`PodmanService.url`.
On stop the service is ended and the test can check that no container and no process is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import requests

CONTAINERS_CONF = ('[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n'
                   # an exec session's conmon waits this long for the API before it exits (Docker's 5 min)
                   "exit_command_delay = 0\n")
START_SECONDS = 60


class PodmanService:
    """``with PodmanService() as podman:`` a running API service; ``podman.cli(...)`` runs the
    podman command against the same storage."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="kubenb-podman-"))
        self.socket = self.folder / "podman.sock"
        self.process: subprocess.Popen[bytes] | None = None
        (self.folder / "containers.conf").write_text(CONTAINERS_CONF, encoding="utf-8")
        self.log = self.folder / "service.log"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def environment(self) -> dict[str, str]:
        """What a podman process of these tests runs with (the test's containers.conf)."""
        return {**os.environ, "CONTAINERS_CONF": str(self.folder / "containers.conf")}

    def global_options(self) -> list[str]:
        return ["--root", str(self.folder / "storage"), "--runroot", str(self.folder / "run"),
                "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--tmpdir", str(self.folder / "tmp")]

    def cli(self, *args: str) -> str:
        """Run ``podman ARGS`` on this service's storage; its output (a failure raises, with stderr)."""
        result = subprocess.run(["podman", *self.global_options(), *args], capture_output=True, text=True,
                                env=self.environment, check=False, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def start(self) -> PodmanService:
        if shutil.which("podman") is None:
            raise RuntimeError("podman not found: run `make test`, which installs it")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["podman", *self.global_options(), "system", "service", "--time=0", self.url],
                stdout=log, stderr=subprocess.STDOUT, env=self.environment, start_new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"podman system service did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)  # waiting for a service to come up, not a timing assertion
        return self

    def answers(self) -> bool:
        """Whether the socket answers the API's ping."""
        if not self.socket.exists():
            return False
        try:
            import docker  # noqa: PLC0415

            client = docker.DockerClient(base_url=self.url, timeout=5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (docker.errors.DockerException, requests.RequestException):
            return False

    def containers(self) -> list[str]:
        """Every container in this service's storage, running or not."""
        return self.cli("ps", "-a", "-q").split()

    def processes(self) -> list[int]:
        """Processes (other than the service itself) whose command line names this service's folder."""
        marker = str(self.folder).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or (self.process is not None and int(entry.name) == self.process.pid):
                continue
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def stop(self) -> None:
        """End the service (its whole process group) and remove its storage."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PodmanService:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
