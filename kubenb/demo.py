"""A local registry for offline teaching and demos, seeded with small images.

Notebooks and ``make demo`` must run with no internet, yet build cluster images whose image
lists name real-looking images (``nginx:1.25``, ``registry.k8s.io/pause:3.9``). This starts
the distribution registry (``docker-registry``) on 127.0.0.1 over a folder seeded with tiny
images under those names (written straight into the folder, so seeding needs no network
either); a build then pulls through ``--registry-mirror DOMAIN=127.0.0.1:PORT``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import requests

from kubenb.cache import RegistryFolder
from kubenb.errors import KubenbError
from kubenb.reference import parse_reference

__all__ = ["DemoRegistry", "seed_images"]

_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


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
            "schemaVersion": 2, "mediaType": _OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _digest(layer),
                        "size": len(layer)}],
        })
        for blob in (layer, config):
            target.put_blob_bytes(blob, _digest(blob))
        target.put_manifest(ref.repository, manifest, _digest(manifest), ref.tag, replace=True)


class DemoRegistry:
    """``docker-registry`` on a free 127.0.0.1 port over a seeded folder; stop() ends it cleanly."""

    def __init__(self, images: Iterable[str] = (), *, folder: Path | None = None, padding: int = 0) -> None:
        self.padding = padding
        self._own = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="kubenb-demo-registry-"))
        self.images = list(images)
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def mirrors(self, domains: Iterable[str] = ("docker.io", "registry.k8s.io", "quay.io", "ghcr.io"),
                ) -> dict[str, str]:
        """``--registry-mirror`` values sending these registries' images here."""
        return {domain: self.host for domain in domains}

    def start(self) -> DemoRegistry:
        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            raise KubenbError("docker-registry is not installed",
                              hint="apt-get install docker-registry (make demo does)")
        seed_images(self.folder, self.images, padding=self.padding)
        config = self.folder / ".kubenb-demo-registry.yml"  # beside docker/: the registry never reads it
        config.write_text(json.dumps({
            "version": 0.1, "log": {"level": "error"},
            "storage": {"filesystem": {"rootdirectory": str(self.folder)}},
            "http": {"addr": self.host},
        }))
        environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        self._process = subprocess.Popen([binary, "serve", str(config)], env=environment,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._own:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> DemoRegistry:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def _wait(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://{self.host}/v2/", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise KubenbError(f"the demo registry did not start on {self.host} within {timeout:.0f} s")


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
