"""How HTTP failures become kubenb errors: one translation, and which failures may pass.

Kept apart from ``transport`` (which sends) so that the rules are in one short place: requests'
exceptions become ``RegistryError`` in ``translate`` alone, whose messages name the host that
failed (the registry, or the redirect target or token service it sent kubenb to) and never hold a
credential or a URL query; failures another try may cure leave as ``Retryable``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from kubenb.errors import RegistryError
from kubenb.registry.deadline import Watch, current_watch

__all__ = ["Retryable", "cut_short", "requests_errors", "translate"]


class Retryable(Exception):
    """A failure that may pass; ``error`` is what the caller sees once retries run out."""

    def __init__(self, error: RegistryError, *, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.retry_after = retry_after


@contextmanager
def requests_errors(registry: str, what: str, *, host: str | None = None) -> Iterator[None]:
    """Run a block that talks HTTP; its requests exceptions leave as (retryable) RegistryErrors.

    ``host`` is the ``host[:port]`` spoken to when it is not the registry itself (a redirect
    target, a token service): the error names it, not the registry the user trusted.
    """
    try:
        yield
    except requests.RequestException as error:
        if (slow := cut_short(registry, what)) is not None:
            raise slow from error
        failure = translate(error, registry, what, host=host)
        if _transient(error):
            raise Retryable(failure, reason=failure.message) from error
        raise failure from error


def cut_short(registry: str, what: str) -> Retryable | None:
    """The "too slow" failure when this thread's request met its deadline, else None.

    A connection shut down by the deadline can look like any broken answer (headers cut
    mid-way read as complete with an empty body, which then fails as a corrupt manifest), so
    whoever checks an answer asks this first: the deadline is the cause to report.
    """
    watch = current_watch()
    if watch is None or not watch.expired:
        return None
    slow = _too_slow(registry, what, watch)
    return Retryable(slow, reason=slow.message)


def _too_slow(registry: str, what: str, watch: Watch) -> RegistryError:
    return RegistryError(
        f"registry {registry} sent {what} too slowly (the minimum is {watch.limit.describe()})",
        hint="check the network; KUBENB_MIN_SPEED sets the minimum in bytes/s (0: none), "
        "KUBENB_DEADLINE_FLOOR the seconds every request may take",
    )


def _transient(error: requests.RequestException) -> bool:
    if isinstance(error, requests.exceptions.SSLError):
        return False  # a certificate does not become trusted by asking again
    return isinstance(
        error,
        (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
         requests.exceptions.ContentDecodingError),
    )


def translate(error: requests.RequestException, registry: str, what: str, *, host: str | None = None) -> RegistryError:
    """The one place where a requests exception becomes a kubenb error (no URL query, no secret).

    A failure at another ``host`` than the registry (a redirect target, a token service) names
    that host: the user trusted the registry, and its way out (--insecure-registry) does not
    cover the other host.
    """
    who = f"registry {registry}" if host is None else f"{host} (where registry {registry} sent {what})"
    if isinstance(error, requests.exceptions.SSLError):
        return _tls_error(error, registry, what, host)
    if isinstance(error, requests.Timeout):
        return RegistryError(f"{who} did not answer in time" + ("" if host else f" ({what})"),
                             hint="check the network, or try again later")
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return RegistryError(f"connection to {who} broke" + ("" if host else f" while reading {what}"),
                             hint="check the network, or try again later")
    if isinstance(error, requests.ConnectionError):
        return RegistryError(f"cannot connect to {who}" + ("" if host else f" ({what})") +
                             f": {_connection_reason(error)}",
                             hint="check that the registry runs and the host name and port are right")
    return RegistryError(f"request to {who} failed" + ("" if host else f" ({what})") + f": {type(error).__name__}")


def _tls_error(error: requests.exceptions.SSLError, registry: str, what: str, host: str | None) -> RegistryError:
    verify_failed = "CERTIFICATE_VERIFY_FAILED" in str(error)
    if host is not None:
        problem = f"is not trusted ({_verify_reason(error)})" if verify_failed else "failed (TLS error)"
        return RegistryError(
            f"the TLS certificate of {host}, where registry {registry} sent {what}, {problem}",
            hint=f"pass --registry-ca FILE with the CA certificate that signed the one of {host} "
            f"(--insecure-registry {registry} covers only the registry itself)",
        )
    if verify_failed:
        return RegistryError(
            f"registry {registry} presented a TLS certificate that is not trusted ({_verify_reason(error)})",
            hint=f"pass --registry-ca FILE with the CA certificate that signed it, or --insecure-registry "
            f"{registry} to use TLS without verification",
        )
    return RegistryError(
        f"TLS connection to registry {registry} failed ({what}): certificate not trusted or TLS error",
        hint=f"check that the registry serves TLS on that port; pass --registry-ca FILE, or "
        f"--insecure-registry {registry} if it serves plain HTTP or an untrusted certificate",
    )


def _verify_reason(error: requests.exceptions.SSLError) -> str:
    """OpenSSL's verify reason ("self-signed certificate", "IP address mismatch..."); never the URL."""
    found = re.search(r"certificate verify failed: ([\w .,'-]{1,100}?)\s*\(_ssl", str(error))
    return found.group(1) if found else "certificate verify failed"


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
