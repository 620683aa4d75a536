"""A local registry for offline teaching and demos, seeded with small images.

Notebooks and ``make demo`` must run with no internet, yet build cluster images whose image
lists name real-looking images (``nginx:1.25``, ``registry.k8s.io/pause:3.9``). This starts
the distribution registry (``docker-registry``) on 127.0.0.1 over a folder seeded with tiny
images under those names (written straight into the folder, so seeding needs no network
either); a build then pulls through ``--registry-mirror DOMAIN=127.0.0.1:PORT``.

``DemoRegistry(images, username=..., password=...)`` serves with htpasswd auth, to teach
private registries and ``kubenb login`` offline.
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import requests

from kubenb.errors import KubenbError
from kubenb.oci.media_types import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
from kubenb.reference import parse_reference
from kubenb.registry_folder import RegistryFolder

__all__ = ["DemoRegistry", "seed_images", "work_folder"]

#: The folders and registries a notebook asked for, so that its setup cells can run again.
_FOLDERS: dict[str, Path] = {}
_REGISTRIES: dict[tuple[object, ...], DemoRegistry] = {}


def work_folder(name: str = "kubenb-nb") -> Path:
    """A temporary folder for a notebook: the same one each time this process asks for ``name``
    (so a setup cell can run again without losing what later cells made), made again if it was
    removed, and deleted when the process (the kernel) exits."""
    folder = _FOLDERS.get(name)
    if folder is None:
        folder = _FOLDERS[name] = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        atexit.register(shutil.rmtree, folder, True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def seed_images(folder: Path, images: Iterable[str], *, padding: int = 0) -> None:
    """Write a single-layer image under each name into the registry folder ``folder``.

    ``padding`` adds that many random bytes to each layer, for benchmarks that need weight.
    """
    target = RegistryFolder(folder, durable=False)
    for name in images:
        ref = parse_reference(name)
        files = {"etc/demo-image": f"{ref}\n".encode()}
        if padding:
            files["etc/demo-padding"] = os.urandom(padding)
        tar = _tar(files)
        layer = gzip.compress(tar, mtime=0)
        config = _json({
            "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(tar)]},
        })
        manifest = _json({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _digest(config),
                       "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": _digest(layer),
                        "size": len(layer)}],
        })
        for blob in (layer, config):
            target.put_blob_bytes(blob, _digest(blob))
        target.put_manifest(ref.repository, manifest, _digest(manifest), ref.tag, replace=True)


class DemoRegistry:
    """``docker-registry`` on a free 127.0.0.1 port over a seeded folder; stop() ends it cleanly.

    With ``username`` and ``password`` it serves with htpasswd (bcrypt) auth, like a private
    registry: the password goes to ``htpasswd`` on its stdin (never on a command line) and is
    never printed, logged or shown in the repr.

    The registry runs in a session of its own: a kernel interrupt sends SIGINT to the kernel's
    whole process group, and a teaching notebook's registry must outlive the build it stopped.
    Out of that group, nothing ends it with its parent any more, so it is stopped at interpreter
    exit (``atexit``), and a watchdog process (in its own session too) stops it when the parent
    dies without running ``atexit`` (a kernel killed).
    """

    def __init__(self, images: Iterable[str] = (), *, folder: Path | None = None, padding: int = 0,
                 username: str | None = None, password: str | None = None) -> None:
        if (username is None) != (password is None):
            raise KubenbError("a demo registry with auth needs both a username and a password",
                              hint="give DemoRegistry(..., username=USER, password=PASSWORD), or neither")
        if username is not None and (not username or ":" in username):
            raise KubenbError(f"bad demo registry user name {username!r}", hint="use a name without ':'")
        if password is not None and not password:
            raise KubenbError("the demo registry password is empty", hint="use secrets.token_urlsafe(16)")
        self.padding = padding
        self._own = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="kubenb-demo-registry-"))
        self.images = list(images)
        self.username = username
        self._password = password
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    def __repr__(self) -> str:
        auth = f", user {self.username!r}" if self.username else ""
        state = "running" if self.running else "stopped"
        return f"<DemoRegistry {self.host} ({state}{auth}), {len(self.images)} images>"

    @property
    def url(self) -> str:
        """Base URL of the registry API (plain HTTP: it only listens on 127.0.0.1)."""
        return f"http://{self.host}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """(username, password) for clients such as ``requests``, or None for an open registry."""
        if self.username is None or self._password is None:
            return None
        return (self.username, self._password)

    @property
    def pid(self) -> int | None:
        """The registry process's id while it runs."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def mirrors(self, domains: Iterable[str] = ("docker.io", "registry.k8s.io", "quay.io", "ghcr.io"),
                ) -> dict[str, str]:
        """``--registry-mirror`` values sending these registries' images here."""
        return {domain: self.host for domain in domains}

    @classmethod
    def reuse(cls, images: Iterable[str] = (), *, folder: Path | None = None, padding: int = 0,
              username: str | None = None, password: str | None = None) -> DemoRegistry:
        """The registry this process started with the same arguments, started (again) if it is not
        running; a new one the first time. A notebook cell that starts its registry this way can
        run again: it keeps its host, so what earlier cells made with that host still works."""
        key = (tuple(images), folder, padding, username, password)
        registry = _REGISTRIES.get(key)
        if registry is None:
            registry = _REGISTRIES[key] = cls(images, folder=folder, padding=padding,
                                              username=username, password=password)
        return registry.start()

    def start(self) -> DemoRegistry:
        """Seed the folder and start the registry; returns self once ``/v2/`` answers. A running
        registry is left as it is; a stopped one (or one whose process died) starts again."""
        if self.running:
            return self
        if self._process is not None:
            self.stop()  # its process died: clear what it left, then start afresh
        atexit.register(self.stop)
        try:
            binary = shutil.which("docker-registry") or shutil.which("registry")
            if binary is None:
                raise KubenbError("docker-registry is not installed",
                                  hint="apt-get install docker-registry (make demo does)")
            seed_images(self.folder, self.images, padding=self.padding)
            self._workdir = Path(tempfile.mkdtemp(prefix="kubenb-demo-registry-config-"))  # mode 0700
            self._launch(binary)
            self._wait()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """End the registry process (terminate, then kill) and remove what it made; safe twice."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:  # one byte: stand down (EOF alone would mean that we died)
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                watchdog.communicate(b"x", timeout=10)
            if watchdog.poll() is None:
                watchdog.kill()
                watchdog.wait()
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if self._own:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> DemoRegistry:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def _launch(self, binary: str) -> None:
        assert self._workdir is not None
        config: dict[str, object] = {
            "version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.folder)},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }
        if self.username is not None and self._password is not None:
            htpasswd = self._workdir / "htpasswd"
            _write_htpasswd(htpasswd, self.username, self._password)
            config["auth"] = {"htpasswd": {"realm": "kubenb-demo", "path": str(htpasswd)}}
        config_path = self._workdir / "config.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        # docker-registry reads every REGISTRY_* variable as configuration (REGISTRY_AUTH_FILE,
        # the credentials file a notebook sets, would stop it from starting): none of them goes in.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with (self._workdir / "registry.log").open("wb") as log:
            self._process = subprocess.Popen([binary, "serve", str(config_path)], env=environment,
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
        self._watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(self._process.pid)],
                                          stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)

    def _wait(self, timeout: float = 20) -> None:
        expected = 200 if self.username is None else 401
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise KubenbError(f"the demo registry on {self.host} exited at start: {self._log_tail()}",
                                  hint="is the port taken? create a new DemoRegistry and start it again")
            try:
                if requests.get(f"{self.url}/v2/", timeout=1).status_code == expected:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise KubenbError(f"the demo registry did not start on {self.host} within {timeout:.0f} s",
                          hint=self._log_tail())

    def _log_tail(self, lines: int = 5) -> str:
        if self._workdir is None:
            return "(no log)"
        try:
            text = (self._workdir / "registry.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


#: Beside the registry: its stdin is a pipe from us. One byte means ``stop()`` stands it down;
#: end of file without one means that we died, and the registry is terminated with us.
_WATCHDOG = """
import os, signal, sys
if not sys.stdin.buffer.read(1):
    try:
        os.kill(int(sys.argv[1]), signal.SIGTERM)
    except OSError:
        pass
"""


def _write_htpasswd(path: Path, username: str, password: str) -> None:
    """A bcrypt htpasswd file; the password goes to ``htpasswd`` on stdin, never on its command line."""
    binary = shutil.which("htpasswd")
    if binary is None:
        raise KubenbError("htpasswd is not installed (needed for a demo registry with a password)",
                          hint="apt-get install apache2-utils")
    result = subprocess.run([binary, "-niB", username], input=password, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:  # its stderr names the user at most, never the password
        raise KubenbError(f"htpasswd failed with status {result.returncode}: {result.stderr.strip()}")
    path.write_text(result.stdout.strip() + "\n", encoding="utf-8")
    path.chmod(0o600)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
