"""An OCI distribution client for one registry: ping, manifests, blob checks and downloads.

It knows the distribution HTTP API and nothing about registry folders (that is ``cache/``'s
job, the way docker-py's models sit on its APIClient). One client holds one pooled session and
one ``Authenticator`` for its registry, and is safe to share between the threads that fetch
blobs. Each public method is one operation run under ``transport.retrying``, so a transient
failure anywhere in it (a 503, a reset, a corrupt body, a token service hiccup) runs it again,
and everything it learned (auth scheme, tokens, bytes already on disk) is kept.

Plain HTTP is used only for loopback registries and those the user named insecure; every
other registry gets HTTPS with certificate verification.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import TypeVar
from urllib.parse import urlsplit

import requests

from kubenb.errors import InvalidReferenceError, RegistryError, StoreError
from kubenb.events import EventSink, ignore
from kubenb.registry.auth import Authenticator, pull_scope
from kubenb.registry.credentials import Credentials, registry_host
from kubenb.registry.download import CHUNK_SIZE, BlobDownload
from kubenb.registry.manifest import (
    DIGEST,
    MANIFEST_ACCEPT,
    MAX_MANIFEST_BYTES,
    CorruptContent,
    Manifest,
    verified_manifest,
)
from kubenb.registry.transport import Retryable, Transport, is_loopback, requests_errors, retrying

__all__ = ["DOCKER_HUB_ENDPOINT", "RegistryClient"]

T = TypeVar("T")

#: Docker Hub's API host: ``docker.io`` in references, ``registry-1.docker.io`` on the wire.
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ERROR_CODE = re.compile(r"[A-Z_]{1,40}")


class RegistryClient:
    """Reads images from one registry (``host[:port]``, or ``docker.io``); thread-safe."""

    def __init__(
        self, registry: str, *, credentials: Credentials | None = None, insecure: bool = False,
        events: EventSink = ignore, retries: int = 5, timeout: float = 30,
    ) -> None:
        self.registry = registry_host(registry)
        self.credentials = credentials
        self.insecure = insecure
        self.events = events
        self.retries = retries
        endpoint = DOCKER_HUB_ENDPOINT if self.registry == "docker.io" else self.registry
        plain = insecure or is_loopback(endpoint)
        self.base_url = f"{'http' if plain else 'https'}://{endpoint}"
        self._transport = Transport(self.registry, timeout=timeout)
        self._auth = Authenticator(self.registry, credentials, self._fetch, plain_http_ok=self._plain_http_ok)

    def __repr__(self) -> str:
        user = f", user={self.credentials.username!r}" if self.credentials else ""
        return f"RegistryClient({self.base_url!r}{user})"

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._transport.close()

    def ping(self) -> None:
        """Check that the registry speaks the distribution API (and accepts the credentials)."""
        self._retrying("/v2/", self._ping_once)

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index ``reference`` (a tag or a digest) of ``repository``, verified."""
        _check_repository(repository)
        _check_reference(reference)
        separator = "@" if ":" in reference else ":"
        what = f"manifest {repository}{separator}{reference}"
        path = f"/v2/{repository}/manifests/{reference}"
        return self._retrying(path, lambda: self._fetch_manifest(path, repository, reference, what))

    def has_blob(self, repository: str, digest: str) -> bool:
        """Whether the registry has blob ``digest`` in ``repository`` (a HEAD: nothing is fetched)."""
        _check_repository(repository)
        _check_digest(digest)
        what = f"blob {digest} of {repository}"
        path = f"/v2/{repository}/blobs/{digest}"
        with self._retrying(path, lambda: self._request("HEAD", path, scope=pull_scope(repository),
                                                          what=what)) as response:
            if response.status_code == 404:
                return False
            self._expect(response, what)
            return True

    def download_blob(
        self, repository: str, digest: str, destination: Path, *, expected_size: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """Stream blob ``digest`` to ``destination`` and verify it; return the bytes fetched.

        ``on_bytes`` gets the size of every chunk received (their sum is the return value,
        which exceeds the blob's size when a transfer had to start over). On any failure the
        partial file is removed and a RegistryError names the repository and the digest.
        """
        _check_repository(repository)
        _check_digest(digest)
        what = f"blob {digest} of {repository}"
        path = f"/v2/{repository}/blobs/{digest}"

        def get(extra: Mapping[str, str]) -> requests.Response:
            headers = {"Accept-Encoding": "identity", **extra}
            response = self._request("GET", path, scope=pull_scope(repository), what=what, headers=headers,
                                     stream=True)
            return self._expect(response, what, ok=(200, 206, 416))

        try:
            with destination.open("wb") as file:
                download = BlobDownload(file, digest, registry=self.registry, what=what,
                                        expected_size=expected_size, on_bytes=on_bytes)
                self._retrying(path, lambda: download.attempt(get))
        except BaseException as error:
            destination.unlink(missing_ok=True)
            if isinstance(error, OSError) and not isinstance(error, requests.RequestException):
                raise StoreError(f"cannot write {what} to {destination}: {error.strerror}") from None
            raise
        return download.fetched

    def _fetch_manifest(self, path: str, repository: str, reference: str, what: str) -> Manifest:
        headers = {"Accept": MANIFEST_ACCEPT}
        with self._request("GET", path, scope=pull_scope(repository), what=what, headers=headers,
                           stream=True) as response:
            self._expect(response, what)
            data = self._read_limited(response, what)
            content_type = response.headers.get("Content-Type", "")
            claimed = response.headers.get("Docker-Content-Digest", "")
        try:
            return verified_manifest(
                data, content_type=content_type, claimed=claimed if DIGEST.fullmatch(claimed) else None,
                reference=reference, where=f"{what} from registry {self.registry}",
            )
        except CorruptContent as error:
            raise Retryable(error, reason="corrupt manifest") from None

    def _read_limited(self, response: requests.Response, what: str) -> bytes:
        """The body, refused as soon as it passes ``MAX_MANIFEST_BYTES``."""
        too_large = RegistryError(f"{what} from registry {self.registry} is larger than 4 MiB",
                                  hint="manifests that large are refused; check the image")
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_MANIFEST_BYTES:
            raise too_large
        body = bytearray()
        with requests_errors(self.registry, what):
            for chunk in response.iter_content(CHUNK_SIZE):
                body += chunk
                if len(body) > MAX_MANIFEST_BYTES:
                    raise too_large
        return bytes(body)

    def _request(
        self, method: str, path: str, *, scope: str, what: str, headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send with what auth is known; on a 401, learn the challenge and try once more."""
        url = self.base_url + path
        sent = self._auth.header(scope)
        response = self._send(method, url, what=what, headers=headers, authorization=sent, stream=stream)
        if response.status_code != 401:
            return response
        response.close()
        answer = self._auth.challenged(response.headers.get("WWW-Authenticate", ""), scope, sent, what)
        response = self._send(method, url, what=what, headers=headers, authorization=answer, stream=stream)
        if response.status_code == 401:
            response.close()
            raise self._auth.rejected(what)
        return response

    def _send(
        self, method: str, url: str, *, what: str, headers: Mapping[str, str] | None, authorization: str | None,
        stream: bool,
    ) -> requests.Response:
        merged = dict(headers or {})
        if authorization is not None:
            merged["Authorization"] = authorization
        return self._transport.send(method, url, what=what, headers=merged, stream=stream)

    def _fetch(self, method: str, url: str, headers: Mapping[str, str],
               data: Mapping[str, str] | None) -> requests.Response:
        """What the authenticator uses to reach the token service."""
        return self._transport.send(method, url, what="a token request", headers=headers, data=data)

    def _plain_http_ok(self, url: str) -> bool:
        """Whether credentials may go to ``url`` over plain HTTP: loopback, or this insecure registry."""
        host = urlsplit(url).netloc
        return is_loopback(host) or (self.insecure and host == urlsplit(self.base_url).netloc)

    def _retrying(self, path: str, operation: Callable[[], T]) -> T:
        return retrying(operation, url=self.base_url + path, retries=self.retries, events=self.events)

    def _ping_once(self) -> None:
        what = "the API check (GET /v2/)"
        with self._request("GET", "/v2/", scope="", what=what) as response:
            self._expect(response, what)

    def _expect(self, response: requests.Response, what: str, ok: Collection[int] = (200,)) -> requests.Response:
        """``response`` when its status is in ``ok``; else it is closed and a RegistryError says why."""
        if response.status_code in ok:
            return response
        error = self._status_error(response, what)
        response.close()
        raise error

    def _status_error(self, response: requests.Response, what: str) -> RegistryError:
        code = _error_code(response)
        if response.status_code == 404:
            return RegistryError(f"{what} not found on registry {self.registry}{code}",
                                 hint="check the image name, tag and digest")
        if response.status_code == 403:
            return RegistryError(f"registry {self.registry} denied access to {what}{code}",
                                 hint=f"check that your user on {self.registry} may pull it")
        return RegistryError(f"registry {self.registry} answered HTTP {response.status_code} to {what}{code}")


def _error_code(response: requests.Response) -> str:
    """`` (MANIFEST_UNKNOWN)``: the registry's error code, when its body is small distribution JSON."""
    length = response.headers.get("Content-Length", "")
    if response.request.method == "HEAD" or not length.isdigit() or int(length) > 65536:
        return ""
    try:
        code = response.json()["errors"][0]["code"]
    except (ValueError, KeyError, IndexError, TypeError, requests.RequestException):
        return ""
    return f" ({code})" if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else ""


def _check_repository(repository: str) -> None:
    if not _REPOSITORY.fullmatch(repository) or len(repository) > 255:
        raise InvalidReferenceError(f"{repository!r} is not a valid repository name",
                                    hint="use lowercase path components like library/nginx")


def _check_reference(reference: str) -> None:
    if ":" in reference:
        _check_digest(reference)
    elif not _TAG.fullmatch(reference):
        raise InvalidReferenceError(f"{reference!r} is not a valid tag", hint="tags are [A-Za-z0-9_.-], 128 at most")


def _check_digest(digest: str) -> None:
    if not DIGEST.fullmatch(digest):
        raise InvalidReferenceError(f"{digest!r} is not a digest kubenb can verify",
                                    hint="use sha256:<64 hex digits> (or sha384, sha512)")
