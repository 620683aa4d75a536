"""An OCI distribution client for one registry: ping, manifests, blob checks, downloads and uploads.

It knows the distribution HTTP API and nothing about registry folders (that is ``cache/``'s
job, the way docker-py's models sit on its APIClient). One client holds one pooled session and
one ``Authenticator`` for its registry, and is safe to share between the threads that fetch
blobs. Each public method is one operation run under ``transport.retrying``, so a transient
failure anywhere in it (a 503, a reset, a corrupt body, a token service hiccup) runs it again,
and everything it learned (auth scheme, tokens, bytes already on disk) is kept.

Uploads are monolithic (one POST to open an upload, one PUT of the whole blob streamed from
disk), so a retry simply opens a new upload; a blob the registry already has is not sent.

Every registry gets HTTPS with certificate verification (system CAs plus ``ca_files``), but
two kinds of hosts may use plain HTTP: loopback registries and those the user named insecure.
For them the first request looks whether the port speaks TLS (``speaks_tls``), and uses HTTPS
if it does; verified for a loopback registry (a loopback host serving TLS is never used
unverified behind the user's back), unverified for an insecure one, the way docker does.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeVar, cast
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from kubenb.errors import InvalidReferenceError, RegistryError, StoreError, is_disk_full
from kubenb.events import CancelToken, EventSink, ignore
from kubenb.oci.digests import compute_digest, is_content_digest
from kubenb.oci.media_types import MANIFEST_ACCEPT
from kubenb.reference import is_repository_path, is_tag
from kubenb.registry.auth import Authenticator, pull_scope, push_scope
from kubenb.registry.credentials import Credentials, registry_host
from kubenb.registry.deadline import SpeedLimit
from kubenb.registry.download import CHUNK_SIZE, BlobDownload, BlobFile
from kubenb.registry.failures import cut_short
from kubenb.registry.manifest import MAX_MANIFEST_BYTES, CorruptContent, Manifest, verified_manifest
from kubenb.registry.transport import (
    Retryable,
    Transport,
    host_port,
    is_loopback,
    requests_errors,
    retrying,
    speaks_tls,
    tls_context,
)

__all__ = ["DOCKER_HUB_ENDPOINT", "RegistryClient"]

T = TypeVar("T")
#: A request body: bytes, or a file requests streams from disk. Made anew for every send,
#: since a 401 makes the client send the request twice and a file is read only once.
Body = Callable[[], "bytes | BinaryIO"]

#: Docker Hub's API host: ``docker.io`` in references, ``registry-1.docker.io`` on the wire.
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
_ERROR_CODE = re.compile(r"[A-Z_]{1,40}")


class RegistryClient:
    """Reads images from one registry (``host[:port]``, or ``docker.io``); thread-safe.

    Setting ``cancel`` stops whatever the client is doing: a request in flight has its socket
    shut down, a download stops at its next chunk, a backoff ends, and ``Cancelled`` is raised.
    """

    def __init__(
        self, registry: str, *, credentials: Credentials | None = None, insecure: bool = False,
        ca_files: Sequence[str | Path] = (), events: EventSink = ignore, retries: int = 5, timeout: float = 30,
        speed_limit: SpeedLimit | None = None, clock: Callable[[], float] = time.monotonic,
        cancel: CancelToken | None = None,
    ) -> None:
        self.registry = registry_host(registry)
        self.cancel = cancel
        self.credentials = credentials
        self.insecure = insecure
        self.ca_files = tuple(Path(path) for path in ca_files)
        self.events = events
        self.retries = retries
        self.timeout = timeout
        self.endpoint = DOCKER_HUB_ENDPOINT if self.registry == "docker.io" else self.registry
        # None: loopback or insecure, HTTPS if the port speaks TLS (looked at on first use).
        self._scheme: str | None = None if insecure or is_loopback(self.endpoint) else "https"
        self._scheme_lock = threading.Lock()
        unverified = host_port(self.endpoint) if insecure else None
        self._transport = Transport(self.registry, timeout=timeout, context=tls_context(self.ca_files),
                                    unverified=unverified, speed_limit=speed_limit or SpeedLimit.from_environment(),
                                    home=self.endpoint, cancel=cancel)
        self._auth = Authenticator(self.registry, credentials, self._fetch, plain_http_ok=self._plain_http_ok,
                                   clock=clock)

    @property
    def base_url(self) -> str:
        """``https://HOST[:PORT]``, or ``http://`` for a loopback or insecure registry without TLS."""
        return f"{self._scheme_now()}://{self.endpoint}"

    def _scheme_now(self) -> str:
        if self._scheme is not None:
            return self._scheme
        with self._scheme_lock:
            if self._scheme is None:
                tls = speaks_tls(self.endpoint, timeout=min(self.timeout, 10))
                if tls is None:
                    return "http"  # nothing answered: try again next time; the request will say why
                self._scheme = "https" if tls else "http"
            return self._scheme

    def __repr__(self) -> str:
        user = f", user={self.credentials.username!r}" if self.credentials else ""
        return f"RegistryClient({self.endpoint!r}{user})"

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
        path = f"/v2/{repository}/blobs/{digest}"
        return self._retrying(path, lambda: self._blob_present(repository, digest, pull_scope(repository)))

    def upload_blob(self, repository: str, digest: str, path: Path, *, size: int) -> bool:
        """Upload the file ``path`` as blob ``digest`` unless the registry has it; True if sent.

        The file is streamed from disk, never read whole; ``size`` must be its size (checked
        before sending, so a changed file fails here rather than as a digest mismatch).
        """
        _check_repository(repository)
        _check_digest(digest)
        start = f"/v2/{repository}/blobs/uploads/"
        return self._retrying(start, lambda: self._upload_once(repository, digest, path, size))

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """Store ``data`` as manifest ``reference`` (a tag or its digest); return its digest.

        The bytes are sent as they are, so the digest (and the image ID it leads to) is the
        one the caller computed; a registry claiming another digest is an error.
        """
        _check_repository(repository)
        _check_reference(reference)
        if len(data) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"manifest for {repository} is larger than 4 MiB",
                                hint="registries refuse manifests that large")
        digest = compute_digest(data)
        if ":" in reference and reference != digest:
            raise RegistryError(f"manifest for {repository}@{reference} hashes to {digest}",
                                hint="push it by tag, or by its own digest")
        separator = "@" if ":" in reference else ":"
        what = f"manifest {repository}{separator}{reference}"
        path = f"/v2/{repository}/manifests/{reference}"
        return self._retrying(path, lambda: self._put_manifest_once(
            path, repository, data, media_type=media_type, digest=digest, what=what))

    def download_blob(
        self, repository: str, digest: str, destination: Path | BlobFile, *, expected_size: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """Stream blob ``digest`` to ``destination`` and verify it; return the bytes fetched.

        ``destination`` is a path, or a file the caller opened and owns (a window onto the
        registry layer a build writes: then nothing is removed here on failure, the caller
        discards it). ``on_bytes`` gets the size of every chunk received (their sum is the
        return value, which exceeds the blob's size when a transfer had to start over). On any
        failure a partial file at a path is removed and a RegistryError names the repository
        and the digest.
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

        def into(file: BlobFile) -> int:
            download = BlobDownload(file, digest, registry=self.registry, what=what,
                                    expected_size=expected_size, on_bytes=on_bytes, cancel=self.cancel)
            self._retrying(path, lambda: download.attempt(get))
            return download.fetched

        try:
            if not isinstance(destination, Path):
                return into(destination)
            with destination.open("wb") as file:
                return into(file)
        except BaseException as error:
            if isinstance(destination, Path):
                destination.unlink(missing_ok=True)
            if isinstance(error, OSError) and not isinstance(error, requests.RequestException):
                if is_disk_full(error):
                    raise  # the caller names the disk and what it was writing
                raise StoreError(f"cannot write {what} to {destination}: {error.strerror}") from None
            raise

    def _blob_present(self, repository: str, digest: str, scope: str) -> bool:
        what = f"blob {digest} of {repository}"
        path = f"/v2/{repository}/blobs/{digest}"
        with self._request("HEAD", path, scope=scope, what=what) as response:
            if response.status_code == 404:
                return False
            self._expect(response, what)
            return True

    def _upload_once(self, repository: str, digest: str, path: Path, size: int) -> bool:
        """One try of a whole upload: check, open an upload, PUT the file (retried as a unit)."""
        scope = push_scope(repository)
        if self._blob_present(repository, digest, scope):
            return False
        what = f"blob {digest} of {repository}"
        _check_file_size(path, size, what)
        location = self._start_upload(repository, scope, what)
        with contextlib.ExitStack() as files:
            def body() -> BinaryIO:
                return files.enter_context(_open_blob(path, what))

            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            with self._request_url("PUT", _with_digest(location, digest), scope=scope, what=what,
                                   headers=headers, body=body) as response:
                self._expect(response, what, ok=(201, 204))
                claimed = response.headers.get("Docker-Content-Digest", "")
        if claimed and claimed.split(":")[0] == "sha256" and claimed != digest:
            raise RegistryError(f"registry {self.registry} stored {what} as {claimed}",
                                hint="the registry changed the blob; check its storage")
        return True

    def _start_upload(self, repository: str, scope: str, what: str) -> str:
        """POST to open an upload session; its absolute URL (a relative Location is resolved)."""
        start_url = f"{self.base_url}/v2/{repository}/blobs/uploads/"
        with self._request_url("POST", start_url, scope=scope, what=f"an upload of {what}",
                               headers={"Content-Length": "0"}) as response:
            self._expect(response, f"an upload of {what}", ok=(202,))
            location = response.headers.get("Location", "")
        if not location:
            raise RegistryError(f"registry {self.registry} opened an upload of {what} without a Location")
        url = urljoin(start_url, location)
        if urlsplit(url).scheme not in ("http", "https"):
            raise RegistryError(f"registry {self.registry} gave an unsupported upload URL for {what}")
        if urlsplit(self.base_url).scheme == "https" and urlsplit(url).scheme == "http" \
                and not is_loopback(urlsplit(url).netloc):
            raise RegistryError(f"registry {self.registry} sent the upload of {what} to plain HTTP",
                                hint="refusing to upload over plain HTTP; ask the registry's operator to fix it")
        return url

    def _put_manifest_once(self, path: str, repository: str, data: bytes, *, media_type: str, digest: str,
                           what: str) -> str:
        headers = {"Content-Type": media_type}
        with self._request("PUT", path, scope=push_scope(repository), what=what, headers=headers,
                           body=lambda: data) as response:
            self._expect(response, what, ok=(200, 201, 202))
            claimed = response.headers.get("Docker-Content-Digest", "")
        if claimed and claimed.split(":")[0] == "sha256" and claimed != digest:
            raise RegistryError(f"registry {self.registry} stored {what} as {claimed}, not {digest}",
                                hint="the registry rewrote the manifest; the image ID would change")
        return digest

    def _fetch_manifest(self, path: str, repository: str, reference: str, what: str) -> Manifest:
        headers = {"Accept": MANIFEST_ACCEPT}
        with self._request("GET", path, scope=pull_scope(repository), what=what, headers=headers,
                           stream=True) as response:
            self._expect(response, what)
            data = self._read_limited(response, what)
            if (slow := cut_short(self.registry, what)) is not None:
                raise slow
            content_type = response.headers.get("Content-Type", "")
            claimed = response.headers.get("Docker-Content-Digest", "")
        try:
            return verified_manifest(
                data, content_type=content_type, claimed=claimed if is_content_digest(claimed) else None,
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
        stream: bool = False, body: Body | None = None,
    ) -> requests.Response:
        """Send with what auth is known; on a 401, learn the challenge and try once more."""
        return self._request_url(method, self.base_url + path, scope=scope, what=what, headers=headers,
                                 stream=stream, body=body)

    def _request_url(
        self, method: str, url: str, *, scope: str, what: str, headers: Mapping[str, str] | None = None,
        stream: bool = False, body: Body | None = None,
    ) -> requests.Response:
        """``_request`` for a full URL (an upload Location); another origin gets no credentials."""
        if not _same_origin(url, self.base_url):
            return self._send(method, url, what=what, headers=headers, authorization=None, stream=stream, body=body)
        sent = self._auth.header(scope)
        response = self._send(method, url, what=what, headers=headers, authorization=sent, stream=stream, body=body)
        if response.status_code != 401:
            return response
        response.close()
        self._unless_elsewhere(response, url, what)
        answer = self._auth.challenged(response.headers.get("WWW-Authenticate", ""), scope, sent, what)
        response = self._send(method, url, what=what, headers=headers, authorization=answer, stream=stream,
                              body=body)
        if response.status_code == 401:
            response.close()
            self._unless_elsewhere(response, url, what)
            raise self._auth.rejected(what)
        return response

    def _unless_elsewhere(self, unauthorized: requests.Response, url: str, what: str) -> None:
        """A 401 from a host the request was redirected to is final: no credentials go there."""
        if unauthorized.url and not _same_origin(unauthorized.url, url):
            raise self._auth.redirect_refused(urlsplit(unauthorized.url).netloc, what)

    def _send(
        self, method: str, url: str, *, what: str, headers: Mapping[str, str] | None, authorization: str | None,
        stream: bool, body: Body | None = None,
    ) -> requests.Response:
        merged = dict(headers or {})
        if authorization is not None:
            merged["Authorization"] = authorization
        # requests sends bytes as they are and streams a file object; the transport's ``data``
        # annotation only describes the token service's form fields.
        data = None if body is None else cast("Mapping[str, str]", body())
        return self._transport.send(method, url, what=what, headers=merged, stream=stream, data=data)

    def _fetch(self, method: str, url: str, headers: Mapping[str, str],
               data: Mapping[str, str] | None) -> requests.Response:
        """What the authenticator uses to reach the token service."""
        return self._transport.send(method, url, what="a token request", headers=headers, data=data)

    def _plain_http_ok(self, url: str) -> bool:
        """Whether credentials may go to ``url`` over plain HTTP: loopback, or this insecure registry."""
        host = urlsplit(url).netloc
        return is_loopback(host) or (self.insecure and host == urlsplit(self.base_url).netloc)

    def _retrying(self, path: str, operation: Callable[[], T]) -> T:
        return retrying(operation, url=self.base_url + path, retries=self.retries, events=self.events,
                        cancel=self.cancel)

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
            action = "pull" if response.request.method in ("GET", "HEAD") else "push"
            return RegistryError(f"registry {self.registry} denied access to {what}{code}",
                                 hint=f"check that your user on {self.registry} may {action} it")
        return RegistryError(f"registry {self.registry} answered HTTP {response.status_code} to {what}{code}")


def _error_code(response: requests.Response) -> str:
    """`` (MANIFEST_UNKNOWN)``: the registry's error code, when its body is small distribution JSON."""
    length = response.headers.get("Content-Length", "")
    if response.request.method == "HEAD" or not length.isdigit() or int(length) > 65536:
        return ""
    try:
        code = response.json()["errors"][0]["code"]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError, requests.RequestException):
        return ""
    return f" ({code})" if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else ""


def _same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


def _with_digest(location: str, digest: str) -> str:
    """The upload URL with ``digest=`` added to the query the registry put there (its state)."""
    separator = "&" if urlsplit(location).query else ("" if location.endswith("?") else "?")
    return f"{location}{separator}{urlencode({'digest': digest})}"


def _check_file_size(path: Path, size: int, what: str) -> None:
    try:
        actual = path.stat().st_size
    except OSError as error:
        raise StoreError(f"cannot read {what} at {path}: {error.strerror}") from None
    if actual != size:
        raise StoreError(f"{what} at {path} has {actual} bytes, not {size}", hint="check the store")


def _open_blob(path: Path, what: str) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as error:
        raise StoreError(f"cannot read {what} at {path}: {error.strerror}") from None


def _check_repository(repository: str) -> None:
    if not is_repository_path(repository):
        raise InvalidReferenceError(f"{repository!r} is not a valid repository name",
                                    hint="use lowercase path components like library/nginx")


def _check_reference(reference: str) -> None:
    if ":" in reference:
        _check_digest(reference)
    elif not is_tag(reference):
        raise InvalidReferenceError(f"{reference!r} is not a valid tag", hint="tags are [A-Za-z0-9_.-], 128 at most")


def _check_digest(digest: str) -> None:
    if not is_content_digest(digest):
        raise InvalidReferenceError(f"{digest!r} is not a digest kubenb can verify",
                                    hint="use sha256:<64 hex digits> (or sha384, sha512)")
