"""Talking to registries: the distribution client, credentials, login and logout.

``Registries`` is what the layers above use: it hands out one ``RegistryClient`` per registry
host, so connections, the auth scheme and bearer tokens are shared by every image and thread of
a build, and it applies the user's ``--registry-mirror``, ``--insecure-registry`` and
``--registry-ca`` choices in one place. ``login`` checks credentials against the registry
before it saves them, so a typo fails now, at the prompt, rather than in the middle of a build.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from kubenb.errors import AuthenticationError, RegistryError
from kubenb.events import CancelToken, EventSink, ignore
from kubenb.hosts import mirror_host
from kubenb.model import ImageRef
from kubenb.oci.media_types import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST
from kubenb.registry.client import RegistryClient
from kubenb.registry.credentials import Credentials, config_path, erase, lookup, registry_host, store
from kubenb.registry.deadline import SpeedLimit
from kubenb.registry.manifest import Manifest

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MANIFEST_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Credentials",
    "Manifest",
    "Registries",
    "RegistryClient",
    "SpeedLimit",
    "config_path",
    "login",
    "logout",
    "lookup",
    "mirror_host",
]


class Registries:
    """One ``RegistryClient`` per registry host, with mirrors and insecure hosts applied; thread-safe.

    ``mirrors`` maps a source registry to the host its images are pulled from, under the same
    repository path (``{"docker.io": "127.0.0.1:5000"}``); the mirror's own credentials are
    used. ``insecure`` names hosts that may be reached over plain HTTP, or over TLS without
    verification when they serve TLS. ``ca_files`` are PEM bundles of CAs trusted in addition
    to the system's. Each request must end within ``deadline_floor`` seconds plus its size at
    ``min_speed`` bytes/s, else it is retried as too slow (``registry/deadline.py``; the
    defaults come from ``KUBENB_MIN_SPEED`` and ``KUBENB_DEADLINE_FLOOR``; ``min_speed=0``: no limit).
    Every client shares ``cancel``: setting it stops their requests, downloads and backoffs.
    """

    def __init__(
        self, *, mirrors: Mapping[str, str] | None = None, insecure: Collection[str] = (),
        ca_files: Sequence[str | Path] = (), events: EventSink = ignore, retries: int = 5, timeout: float = 30,
        credentials: Callable[[str], Credentials | None] = lookup, min_speed: float | None = None,
        deadline_floor: float | None = None, cancel: CancelToken | None = None,
    ) -> None:
        self.mirrors = {mirror_host(source, option="--registry-mirror"): mirror_host(target, option="--registry-mirror")
                        for source, target in (mirrors or {}).items()}
        self.insecure = frozenset(mirror_host(host, option="--insecure-registry") for host in insecure)
        self.ca_files = tuple(Path(path) for path in ca_files)
        self._events = events
        self.cancel = cancel
        self._retries = retries
        self._timeout = timeout
        self._credentials = credentials
        self.speed_limit = SpeedLimit.from_environment(min_speed, deadline_floor)
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Registries:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def host_for(self, domain: str) -> str:
        """The host images of ``domain`` are pulled from (its mirror, if it has one)."""
        host = registry_host(domain)
        return self.mirrors.get(host, host)

    def client_for(self, ref: ImageRef) -> RegistryClient:
        """The client that pulls ``ref`` (``ref.path`` is the repository to ask it for)."""
        return self.client(self.host_for(ref.domain))

    def client(self, registry: str) -> RegistryClient:
        """The one client of ``registry``, made (with its credentials looked up) on first use."""
        host = registry_host(registry)
        with self._lock:
            client = self._clients.get(host)
            if client is None:
                client = RegistryClient(
                    host, credentials=self._credentials(host), insecure=host in self.insecure,
                    ca_files=self.ca_files, events=self._events, retries=self._retries, timeout=self._timeout,
                    speed_limit=self.speed_limit, cancel=self.cancel,
                )
                self._clients[host] = client
            return client

    def close(self) -> None:
        """Close every client's connections."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()




def login(
    registry: str, username: str, password: str, *, insecure: bool = False, ca_files: Sequence[str | Path] = (),
) -> Path:
    """Check the credentials against ``registry``, then save them; return the credentials file.

    Wrong credentials raise ``AuthenticationError`` and nothing is written. For a Bearer
    registry the check fetches a token with them, which is how such registries verify a login.
    """
    if not registry.strip():
        raise RegistryError("the registry name is empty", hint="run kubenb login HOST[:PORT] -u USER --password-stdin")
    if not username or not password:
        raise AuthenticationError("a user name and a password are needed to log in",
                                  hint=f"run kubenb login {registry} -u USER --password-stdin")
    credentials = Credentials(username, password)
    with RegistryClient(registry, credentials=credentials, insecure=insecure, ca_files=ca_files) as client:
        client.ping()
    return store(registry, credentials)


def logout(registry: str) -> bool:
    """Forget the saved credentials of ``registry``; False when there were none."""
    return erase(registry)
