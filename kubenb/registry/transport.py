"""HTTP for the registry client: one pooled session, redirects, retries, and error translation.

Three rules live here so that the client above can stay about the distribution API:

- **Retries only where they can help**: connection errors, timeouts, broken bodies, 429 and
  5xx are raised as ``Retryable`` and ``retrying`` runs the whole operation again after an
  exponential, fully jittered backoff (or the server's ``Retry-After``); 400/401/403/404 are
  answers, never retried.
- **Authorization never follows a redirect to another origin** (blob storage on S3-like hosts
  gets presigned URLs, not the registry's credentials), and never leads from HTTPS to plain
  HTTP on a remote host; redirects are followed here, not by requests, to enforce both.
- **requests' exceptions become ``RegistryError`` in one function** (``translate``), whose
  messages name the registry and what failed, and never hold a credential or a URL query
  (presigned URLs carry signatures).
"""

from __future__ import annotations

import email.utils
import ipaddress
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from kubenb.errors import RegistryError
from kubenb.events import EventSink, Retrying

__all__ = ["Retryable", "Transport", "display_url", "is_loopback", "requests_errors", "retrying", "translate"]

T = TypeVar("T")

#: Connections kept per host: the size of the thread pool that downloads blobs.
POOL_SIZE = 8
RETRY_STATUSES = frozenset({429, *range(500, 600)})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
#: A Retry-After longer than this is cut short: a build waits, it does not hang for hours.
RETRY_AFTER_CAP = 120.0
USER_AGENT = "kubenb"


class Retryable(Exception):
    """A failure that may pass; ``error`` is what the caller sees once retries run out."""

    def __init__(self, error: RegistryError, *, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.retry_after = retry_after


def retrying(operation: Callable[[], T], *, url: str, retries: int, events: EventSink) -> T:
    """Run ``operation``, again after a backoff each time it raises ``Retryable`` (``retries`` times)."""
    attempt = 0
    while True:
        try:
            return operation()
        except Retryable as failure:
            attempt += 1
            if attempt > retries:
                raise failure.error from failure.__cause__
            delay = backoff(attempt, failure.retry_after)
            events(Retrying(url=display_url(url), reason=failure.reason, attempt=attempt, delay=delay))
            time.sleep(delay)


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before try ``attempt + 1``: the server's wish, else full jitter."""
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_CAP)
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


def retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds (it may be a number of seconds or an HTTP date), if given."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def display_url(url: str) -> str:
    """``url`` without user info, query or fragment: safe to show (presigned URLs hold signatures)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


class _NoNetrc(AuthBase):
    """Keeps requests from adding ~/.netrc credentials: config.json is the one source."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


def new_session() -> requests.Session:
    """A session pooling ``POOL_SIZE`` connections per host, with no retries or auth of its own."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.auth = _NoNetrc()
    session.headers["User-Agent"] = USER_AGENT
    return session


class Transport:
    """Sends requests for one registry through one session; thread-safe like the session."""

    def __init__(self, registry: str, *, timeout: float) -> None:
        self.registry = registry
        self.timeout = timeout
        self.session = new_session()

    def close(self) -> None:
        self.session.close()

    def send(
        self, method: str, url: str, *, what: str, headers: Mapping[str, str] | None = None,
        stream: bool = False, data: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One request with redirects followed; 429/5xx and network failures raise ``Retryable``."""
        current = dict(headers or {})
        for _ in range(MAX_REDIRECTS + 1):
            response = self._exchange(method, url, headers=current, what=what, stream=stream, data=data)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return self._unless_transient(response, what)
            response.close()
            target = urljoin(url, location)
            current = self._redirected(url, target, current, what)
            if response.status_code == 303 and method != "HEAD":
                method, data = "GET", None
            url = target
        raise RegistryError(f"registry {self.registry} redirected {what} more than {MAX_REDIRECTS} times")

    def _exchange(
        self, method: str, url: str, *, headers: dict[str, str], what: str, stream: bool,
        data: Mapping[str, str] | None,
    ) -> requests.Response:
        with requests_errors(self.registry, what):
            return self.session.request(
                method, url, headers=headers, data=data, stream=stream, timeout=self.timeout,
                allow_redirects=False,
            )

    def _redirected(self, source: str, target: str, headers: dict[str, str], what: str) -> dict[str, str]:
        """Headers for the next hop: Authorization only while the origin stays the same."""
        old, new = urlsplit(source), urlsplit(target)
        if new.scheme not in ("http", "https"):
            raise RegistryError(f"registry {self.registry} redirected {what} to an unsupported URL")
        if old.scheme == "https" and new.scheme == "http" and not is_loopback(new.netloc):
            raise RegistryError(
                f"registry {self.registry} redirected {what} from HTTPS to plain HTTP at {new.hostname}",
                hint="refusing to fetch over plain HTTP; ask the registry's operator to fix the redirect",
            )
        if _origin(old.geturl()) == _origin(new.geturl()):
            return headers
        return {name: value for name, value in headers.items() if name.lower() != "authorization"}

    def _unless_transient(self, response: requests.Response, what: str) -> requests.Response:
        if response.status_code not in RETRY_STATUSES:
            return response
        response.close()
        reason = f"HTTP {response.status_code}"
        error = RegistryError(
            f"registry {self.registry} answered {reason} to {what}",
            hint="the registry is overloaded or failing; try again later",
        )
        raise Retryable(error, reason=reason, retry_after=retry_after(response))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1, with or without a port (``[::1]:5000``)."""
    name = host if host.count(":") > 1 and not host.startswith("[") else urlsplit(f"//{host}").hostname
    if not name:
        return False
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@contextmanager
def requests_errors(registry: str, what: str) -> Iterator[None]:
    """Run a block that talks HTTP; its requests exceptions leave as (retryable) RegistryErrors."""
    try:
        yield
    except requests.RequestException as error:
        failure = translate(error, registry, what)
        if _transient(error):
            raise Retryable(failure, reason=failure.message) from error
        raise failure from error


def _transient(error: requests.RequestException) -> bool:
    if isinstance(error, requests.exceptions.SSLError):
        return False  # a certificate does not become trusted by asking again
    return isinstance(
        error,
        (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
         requests.exceptions.ContentDecodingError),
    )


def translate(error: requests.RequestException, registry: str, what: str) -> RegistryError:
    """The one place where a requests exception becomes a kubenb error (no URL query, no secret)."""
    if isinstance(error, requests.exceptions.SSLError):
        return RegistryError(
            f"TLS connection to registry {registry} failed ({what}): certificate not trusted or TLS error",
            hint=f"give the registry a trusted certificate, or pass --insecure-registry {registry} "
            "if it serves plain HTTP",
        )
    if isinstance(error, requests.Timeout):
        return RegistryError(f"registry {registry} did not answer in time ({what})",
                             hint="check the network, or try again later")
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return RegistryError(f"connection to registry {registry} broke while reading {what}",
                             hint="check the network, or try again later")
    if isinstance(error, requests.ConnectionError):
        return RegistryError(f"cannot connect to registry {registry} ({what}): {_connection_reason(error)}",
                             hint="check that the registry runs and the host name and port are right")
    return RegistryError(f"request to registry {registry} failed ({what}): {type(error).__name__}")


def _connection_reason(error: requests.ConnectionError) -> str:
    """A short cause, picked from the text (which is searched, never quoted: it holds the URL)."""
    text = str(error).lower()
    reasons = (
        ("refused", "connection refused"),
        ("reset", "connection reset"),
        ("name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("temporary failure in name resolution", "host name not found"),
        ("remote end closed", "connection closed by the server"),
    )
    return next((reason for marker, reason in reasons if marker in text), "connection failed")
