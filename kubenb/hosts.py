"""Registry host names as options and credentials files write them (layer 1: errors only).

Here, apart from ``kubenb.registry`` and ``kubenb.reference``, so that reading
``--registry-mirror`` loads neither the HTTP client nor the model's records: an unchanged
``kubenb build`` with mirrors is answered before either is imported (bench/build.py).
"""

from __future__ import annotations

from kubenb.errors import RegistryError

__all__ = ["HUB_HOSTS", "mirror_host", "registry_host"]


#: The names Docker Hub goes by.
HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def registry_host(name: str) -> str:
    """``host[:port]`` for a registry name, URL or config key; ``docker.io`` for Docker Hub.

    docker's keys come in several spellings (``host``, ``https://host``, ``host/v1/``); this is
    docker's ``ConvertToHostname``, so every spelling of one registry finds the same entry.
    """
    host = name.strip().split("://", 1)[-1].split("/", 1)[0].lower()
    return "docker.io" if host in HUB_HOSTS else host


def mirror_host(name: str, *, option: str | None = None) -> str:
    """``host[:port]`` of a registry named in an option; a name holding credentials is refused.

    Credentials written into a host name (``user:password@host``) would end up in shell
    history, notebooks and error messages; they belong in ``kubenb login``. The error names
    only the host, never what stood before the ``@``.
    """
    if "@" in name:
        host = registry_host(name.rpartition("@")[2])
        raise RegistryError(
            f"{option + ': ' if option else ''}credentials do not belong in a registry host name (…@{host})",
            hint=f"give HOST[:PORT] and store the credentials with kubenb login {host}",
        )
    return registry_host(name)
