"""A private CA, a server certificate for 127.0.0.1, and a docker-registry serving TLS with it.

The certificates are made with the ``openssl`` binary (the ``cryptography`` package is not a
test dependency): a self-signed CA, and a server certificate it signs with the IP SAN
127.0.0.1, which is what the client checks the host against.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.registry import Registry

OPENSSL_BINARY = "openssl"
DAYS = "2"
SERVER_EXTENSIONS = """\
subjectAltName = IP:127.0.0.1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class TLSFiles:
    """PEM files: ``ca`` (the CA certificate users would pass), ``certificate`` and ``key`` (the server's)."""

    ca: Path
    certificate: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which(OPENSSL_BINARY)
    if binary is None:
        raise RuntimeError("openssl not found on PATH; run `make test`, which installs the test dependencies")
    result = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed ({result.returncode}): {result.stderr.strip()}")


def make_certificates(folder: Path) -> TLSFiles:
    """Write a CA (``ca.pem``) and a server certificate for 127.0.0.1 it signed, into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", DAYS, "-subj", "/CN=kubenb test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / "server.ext").write_text(SERVER_EXTENSIONS, encoding="utf-8")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", DAYS, "-extfile", "server.ext", cwd=folder)
    return TLSFiles(ca=folder / "ca.pem", certificate=folder / "server.pem", key=folder / "server.key")


class TLSRegistry(Registry):
    """A docker-registry serving HTTPS on 127.0.0.1 with ``files``' server certificate."""

    def __init__(self, workdir: Path | None, files: TLSFiles, **kwargs: Any) -> None:
        tls = {"http": {"tls": {"certificate": str(files.certificate), "key": str(files.key)}}}
        super().__init__(workdir, extra_config=tls, **kwargs)
        self.files = files
        self.verify = str(files.ca)

    @property
    def url(self) -> str:
        return f"https://{self.host}"
