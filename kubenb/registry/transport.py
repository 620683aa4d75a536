"""HTTP for the registry client: one pooled session, redirects, retries and deadlines.

Four rules live here so that the client above can stay about the distribution API:

- **Retries only where they can help**: connection errors, timeouts, broken bodies, 429 and
  5xx are raised as ``Retryable`` and ``retrying`` runs the whole operation again after an
  exponential, fully jittered backoff (or the server's ``Retry-After``); 400/401/403/404 are
  answers, never retried.
- **Authorization never follows a redirect to another origin** (blob storage on S3-like hosts
  gets presigned URLs, not the registry's credentials), and never leads from HTTPS to plain
  HTTP on a remote host; redirects are followed here, not by requests, to enforce both.
- **requests' exceptions become ``RegistryError`` in one function** (``failures.translate``),
  whose messages name the host that failed and what, and never hold a credential or a URL
  query (presigned URLs carry signatures).
- **Every request has an overall deadline** (``deadline.Watch``): a floor plus its body at a
  minimum speed, so a trickling server is retried rather than waited on.

TLS is verified against the system CAs plus the user's CA files (``--registry-ca``; requests'
own ``verify=PATH`` would replace the system CAs, so an ``ssl.SSLContext`` is mounted instead).
Only the registry's own host may skip verification, when the user named it insecure; a
redirect or a token service elsewhere is still verified. ``speaks_tls`` tells a TLS server
from a plain HTTP one, for the hosts that may use either (loopback and insecure ones).
"""

from __future__ import annotations

import email.utils
import ipaddress
import random
import re
import socket
import ssl
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import InsecureRequestWarning

from kubenb.errors import RegistryError
from kubenb.events import CancelToken, EventSink, Retrying
from kubenb.registry.deadline import SpeedLimit, Watch, watch_pools
from kubenb.registry.failures import Retryable, requests_errors, translate

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

__all__ = [
    "Retryable", "Transport", "display_url", "host_port", "is_loopback", "requests_errors", "retrying", "speaks_tls",
    "tls_context", "translate",
]

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


def retrying(operation: Callable[[], T], *, url: str, retries: int, events: EventSink,
             cancel: CancelToken | None = None) -> T:
    """Run ``operation``, again after a backoff each time it raises ``Retryable`` (``retries`` times).

    Once ``cancel`` is set, whatever the operation raised (a cancel shuts its socket down, which
    reads as a broken answer) leaves as ``Cancelled``, and a backoff ends at once.
    """
    token = cancel or CancelToken()
    attempt = 0
    while True:
        token.check()
        try:
            return operation()
        except Retryable as failure:
            token.check()
            attempt += 1
            if attempt > retries:
                raise failure.error from failure.__cause__
            delay = backoff(attempt, failure.retry_after)
            events(Retrying(url=display_url(url), reason=failure.reason, attempt=attempt, delay=delay))
            token.wait(delay)
        except Exception:
            token.check()
            raise


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


def tls_context(ca_files: Sequence[Path] = ()) -> ssl.SSLContext:
    """A verifying context trusting the system CAs and, in addition, the PEM bundles ``ca_files``."""
    context = ssl.create_default_context()
    for path in ca_files:
        try:
            context.load_verify_locations(cafile=str(path))
        except FileNotFoundError:
            raise RegistryError(f"CA file {path} does not exist", hint="give --registry-ca a PEM file") from None
        except (OSError, ssl.SSLError) as error:
            raise RegistryError(f"cannot use CA file {path}: {error.strerror or 'not a PEM certificate bundle'}",
                                hint="give --registry-ca a PEM file holding CA certificates") from None
    return context


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class TLSAdapter(HTTPAdapter):
    """Uses ``context`` for HTTPS, and no verification for ``unverified`` (``host:port``) alone."""

    def __init__(self, context: ssl.SSLContext, unverified: str | None = None, **kwargs: Any) -> None:
        self.context = context
        self.unverified = unverified
        self._insecure_context = _unverified_context() if unverified else None
        super().__init__(**kwargs)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None,
    ) -> tuple[_HostParams, _PoolKwargs]:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        if host.get("scheme") != "https":
            return host, pool
        pool.pop("ca_certs", None)
        pool.pop("ca_cert_dir", None)
        netloc = urlsplit(request.url or "").netloc.lower()
        if self._insecure_context is not None and host_port(netloc) == self.unverified:
            pool["ssl_context"], pool["cert_reqs"] = self._insecure_context, "CERT_NONE"
        else:
            pool["ssl_context"], pool["cert_reqs"] = self.context, "CERT_REQUIRED"
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        """requests sets a pool's CA bundle and checks again at every send: keep ours."""
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if not url.lower().startswith("https:"):
            return
        conn.ca_certs = conn.ca_cert_dir = None
        insecure = self._insecure_context is not None and host_port(urlsplit(url).netloc.lower()) == self.unverified
        conn.cert_reqs = "CERT_NONE" if insecure else "CERT_REQUIRED"


def host_port(netloc: str) -> str:
    """``host:port`` of a URL's netloc, lowercased, with 443 when no port is written."""
    parts = urlsplit(f"//{netloc}")
    return f"{parts.hostname}:{parts.port or 443}"


def new_session(context: ssl.SSLContext | None = None, unverified: str | None = None) -> requests.Session:
    """A session pooling ``POOL_SIZE`` connections per host, with no retries or auth of its own.

    HTTPS is verified with ``context`` (default: the system CAs), except for the ``host:port``
    ``unverified``, which the user named insecure.
    """
    session = requests.Session()
    options: dict[str, Any] = {"pool_connections": 4, "pool_maxsize": POOL_SIZE, "max_retries": 0}
    secure, plain = TLSAdapter(context or tls_context(), unverified, **options), HTTPAdapter(**options)
    for adapter in (secure, plain):
        watch_pools(adapter.poolmanager)  # so that a request's deadline can reach its socket
    session.mount("https://", secure)
    session.mount("http://", plain)
    if unverified:
        host = urlsplit(f"//{unverified}").hostname or ""
        # The user chose this (--insecure-registry); urllib3's warning for every request is noise.
        message = rf"Unverified HTTPS request is being made to host '{re.escape(host)}'"
        warnings.filterwarnings("ignore", message=message, category=InsecureRequestWarning)
    session.auth = _NoNetrc()
    session.headers["User-Agent"] = USER_AGENT
    return session


class Transport:
    """Sends requests for one registry through one session; thread-safe like the session."""

    def __init__(self, registry: str, *, timeout: float, context: ssl.SSLContext | None = None,
                 unverified: str | None = None, speed_limit: SpeedLimit | None = None, home: str | None = None,
                 cancel: CancelToken | None = None) -> None:
        self.registry = registry
        self.cancel = cancel
        #: The registry's own ``host[:port]`` on the wire; errors at any other host name that host.
        self.home = (home or registry).lower()
        self.timeout = timeout
        self.speed_limit = speed_limit or SpeedLimit()
        self.session = new_session(context, unverified)

    def close(self) -> None:
        self.session.close()

    def send(
        self, method: str, url: str, *, what: str, headers: Mapping[str, str] | None = None,
        stream: bool = False, data: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One request with redirects followed; 429/5xx and network failures raise ``Retryable``.

        The request (all its hops, and reading the body) must end before its deadline
        (``deadline.Watch``); the watch ends when the response is closed. A cancel shuts the
        request's socket down through the same watch.
        """
        watch = Watch(self.speed_limit, cancel=self.cancel) if self.speed_limit.active or self.cancel else None
        if watch is None:
            return self._send(method, url, what=what, headers=headers, stream=stream, data=data)
        watch.start()
        try:
            response = self._send(method, url, what=what, headers=headers, stream=stream, data=data)
        except BaseException:
            watch.finish()
            raise
        if not stream:  # the body is in already
            watch.finish()
            return response
        length = response.headers.get("Content-Length", "")
        if length.isdigit():
            watch.expect(int(length))
        close = response.close

        def close_and_finish() -> None:
            watch.finish()
            close()

        setattr(response, "close", close_and_finish)  # noqa: B010 - `with response:` calls close()
        return response

    def _send(
        self, method: str, url: str, *, what: str, headers: Mapping[str, str] | None, stream: bool,
        data: Mapping[str, str] | None,
    ) -> requests.Response:
        current = dict(headers or {})
        for _ in range(MAX_REDIRECTS + 1):
            response = self._exchange(method, url, headers=current, what=what, stream=stream, data=data)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return self._unless_transient(response, what)
            response.close()
            target = urljoin(url, location)
            current = self._redirected(url, target, current, what)
            if isinstance(data, Mapping) and response.status_code in (307, 308) and _origin(url) != _origin(target):
                # a form (the token request: it may hold a refresh token) would be posted there again
                raise RegistryError(
                    f"registry {self.registry} redirected {what} to another host ({urlsplit(target).netloc})",
                    hint="refusing to send the request's credentials there; ask the registry's operator",
                )
            if response.status_code == 303 and method != "HEAD":
                method, data = "GET", None
            url = target
        raise RegistryError(f"registry {self.registry} redirected {what} more than {MAX_REDIRECTS} times")

    def _exchange(
        self, method: str, url: str, *, headers: dict[str, str], what: str, stream: bool,
        data: Mapping[str, str] | None,
    ) -> requests.Response:
        netloc = urlsplit(url).netloc.lower()
        with requests_errors(self.registry, what, host=None if netloc == self.home else netloc):
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


def speaks_tls(endpoint: str, *, timeout: float) -> bool | None:
    """Whether ``host[:port]`` answers a TLS hello in TLS (port 443 if none); None: cannot tell.

    The hello is followed by an empty line, so that an HTTP server reading a request line
    answers (with a 400) instead of waiting; a TLS server answers the hello with a handshake
    record (or an alert). Nothing is verified here: this only picks the scheme.
    """
    parts = urlsplit(f"//{endpoint}")
    outgoing = ssl.MemoryBIO()
    hello = _unverified_context().wrap_bio(ssl.MemoryBIO(), outgoing)
    with suppress(ssl.SSLWantReadError):
        hello.do_handshake()
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 443), timeout=timeout) as sock:
            sock.sendall(outgoing.read() + b"\r\n\r\n")
            first = sock.recv(1)
    except (OSError, ValueError):
        return None
    if not first:
        return None
    return first in (b"\x16", b"\x15")  # TLS handshake or alert record
