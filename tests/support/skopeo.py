"""skopeo as an independent client, to check what kubenb and the helpers put in a registry."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Protocol

SKOPEO_BINARY = "skopeo"


class RegistryLike(Protocol):
    """A registry address with optional credentials (e.g. tests.support.registry.Registry)."""

    @property
    def host(self) -> str: ...

    @property
    def auth(self) -> tuple[str, str] | None: ...


class SkopeoError(RuntimeError):
    """skopeo failed; the message never contains the password."""


def skopeo_environment() -> dict[str, str]:
    """Environment without REGISTRY_AUTH_FILE, so a developer's login cannot leak in."""
    return {k: v for k, v in os.environ.items() if k != "REGISTRY_AUTH_FILE"}


@dataclass(frozen=True)
class Skopeo:
    """Runs the skopeo binary at `binary`."""

    binary: str

    def run(self, *args: str, secret: str | None = None, timeout: float = 120) -> bytes:
        """Run skopeo, return stdout; on failure raise with `secret` redacted."""
        result = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            env=skopeo_environment(),
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            command = " ".join(args)
            stderr = result.stderr.decode(errors="replace")
            if secret:
                command = command.replace(secret, "***")
                stderr = stderr.replace(secret, "***")
            raise SkopeoError(f"skopeo {command} failed ({result.returncode}): {stderr}")
        return result.stdout

    @staticmethod
    def reference(registry: RegistryLike, repository: str, reference: str) -> str:
        """docker:// reference; a reference starting with sha256: is a digest."""
        sep = "@" if reference.startswith("sha256:") else ":"
        return f"docker://{registry.host}/{repository}{sep}{reference}"

    @staticmethod
    def creds_args(registry: RegistryLike, flag: str = "--creds") -> list[str]:
        """['--creds', 'user:pass'] for an auth registry, [] otherwise."""
        auth = registry.auth
        return [] if auth is None else [flag, f"{auth[0]}:{auth[1]}"]

    def inspect_raw(self, registry: RegistryLike, repository: str, reference: str) -> bytes:
        """`skopeo inspect --raw`: the exact manifest bytes the registry serves."""
        return self.run(
            "inspect", "--raw", "--tls-verify=false",
            *self.creds_args(registry),
            self.reference(registry, repository, reference),
            secret=registry.auth[1] if registry.auth else None,
        )

    def copy(self, source: str, destination: str, *extra: str, secret: str | None = None
             ) -> bytes:
        """`skopeo copy` between any two transports (e.g. docker:// and oci:)."""
        return self.run("copy", *extra, source, destination, secret=secret)
