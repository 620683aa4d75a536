"""A real CNCF distribution registry (`docker-registry`) run on 127.0.0.1 for tests.

Tests talk to a real registry rather than a mock so that the behaviour kubenb relies on
(content negotiation, digests, auth challenges, read-only mode) is the real one.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

REGISTRY_BINARY = "docker-registry"
HTPASSWD_BINARY = "htpasswd"
LOG_TAIL_LINES = 40
START_ATTEMPTS = 3
MAKE_HINT = "run `make test`, which installs the test dependencies"


class RegistryStartError(RuntimeError):
    """The registry process did not come up; the message carries its log tail."""


def free_port() -> int:
    """Ask the kernel for a free port (a race is possible, so start() retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def registry_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment without REGISTRY_* variables.

    docker-registry reads every REGISTRY_* variable as a config override, and e.g. the
    docker credentials variable REGISTRY_AUTH_FILE makes it refuse to start.
    """
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not k.startswith("REGISTRY_")}


def write_htpasswd(path: Path, username: str, password: str) -> None:
    """Write a bcrypt htpasswd file; the password goes via stdin, not the process list."""
    binary = shutil.which(HTPASSWD_BINARY)
    if binary is None:
        raise RuntimeError(f"{HTPASSWD_BINARY} not found (apache2-utils); {MAKE_HINT}")
    result = subprocess.run(
        [binary, "-niB", username],
        input=password,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"htpasswd failed ({result.returncode}): {result.stderr.strip()}")
    path.write_text(result.stdout.strip() + "\n", encoding="utf-8")


def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """base updated by extra, recursively for nested mappings."""
    result = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def registry_config(
    port: int, root: Path, read_only: bool, htpasswd: Path | None
) -> dict[str, Any]:
    """The registry configuration; written as JSON, which is valid YAML."""
    maintenance: dict[str, Any] = {"uploadpurging": {"enabled": False}}
    if read_only:
        maintenance["readonly"] = {"enabled": True}
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
            "maintenance": maintenance,
        },
        # No http.debug section: the debug server stays off and needs no port.
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "kubenb-test", "path": str(htpasswd)}}
    return config


class Registry:
    """A docker-registry process; use as a context manager or call start()/stop().

    `workdir` holds config, log and (unless `root` is given) the storage. Without a
    `workdir` a temp dir is made and removed on stop(). `extra_config` is merged
    (recursively) over the generated configuration.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        root: Path | None = None,
        read_only: bool = False,
        username: str | None = None,
        password: str | None = None,
        extra_config: Mapping[str, Any] | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="registry-")) if workdir is None else workdir
        self.root = root if root is not None else self.workdir / "storage"
        self.read_only = read_only
        self.username = username
        self.password = password
        self.extra_config = dict(extra_config or {})
        self.start_timeout = start_timeout
        self.verify: bool | str = True  # what the readiness probe trusts (a CA file for a TLS registry)
        self.port = 0
        self.log_path = self.workdir / "registry.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """host:port, as used in image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL of the registry API."""
        return f"http://{self.host}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """(username, password) for requests, or None for an open registry."""
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)

    @property
    def pid(self) -> int | None:
        """PID of the running process, if any."""
        return None if self._process is None else self._process.pid

    def __enter__(self) -> Registry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Registry:
        """Start the process and wait until /v2/ answers; retry if the port was taken."""
        if self._process is not None:
            raise RuntimeError("registry already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        htpasswd = self._write_htpasswd()
        atexit.register(self.stop)  # a safety net should the caller never stop it
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            try:
                self._launch(htpasswd)
                self._wait_ready()
                return self
            except RegistryStartError as error:
                self._kill()
                if attempt == START_ATTEMPTS or "address already in use" not in str(error):
                    raise
            except BaseException:  # e.g. KeyboardInterrupt: never leave the process behind
                self._kill()
                raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the process by PID: terminate, wait, then kill. Safe to call twice."""
        atexit.unregister(self.stop)
        self._kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the registry's stderr/stdout log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    def _write_htpasswd(self) -> Path | None:
        if self.username is None or self.password is None:
            return None
        path = self.workdir / "htpasswd"
        write_htpasswd(path, self.username, self.password)
        return path

    def _launch(self, htpasswd: Path | None) -> None:
        config = registry_config(self.port, self.root, self.read_only, htpasswd)
        config = merged(config, self.extra_config)
        config_path = self.workdir / "config.yml"
        config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        binary = shutil.which(REGISTRY_BINARY)
        if binary is None:
            raise RegistryStartError(
                f"{REGISTRY_BINARY} not found on PATH; {MAKE_HINT}"
            )
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [binary, "serve", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=registry_environment(),
            )

    def _wait_ready(self) -> None:
        expected = {200} if self.auth is None else {401}
        deadline = time.monotonic() + self.start_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise self._start_error(f"exited with code {code}")
            try:
                status = requests.get(f"{self.url}/v2/", timeout=1, verify=self.verify).status_code
            except requests.RequestException as error:
                last = type(error).__name__
            else:
                if status in expected:
                    return
                last = f"HTTP {status}"
            time.sleep(0.05)
        raise self._start_error(f"no ready answer on {self.url}/v2/ after "
                                f"{self.start_timeout}s (last: {last})")

    def _start_error(self, reason: str) -> RegistryStartError:
        return RegistryStartError(
            f"docker-registry did not start: {reason}\n"
            f"config: {self.workdir / 'config.yml'}\n"
            f"--- log tail ({self.log_path}) ---\n{self.log_tail()}"
        )

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


RegistryFactory = Callable[..., Registry]
"""Type of the `registry_factory` fixture: takes Registry's keyword arguments."""
