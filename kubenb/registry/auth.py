"""Registry authentication: Basic and Bearer challenges, and bearer tokens cached per scope.

A registry says how it wants to be authenticated in the ``WWW-Authenticate`` header of a 401.
``Authenticator`` remembers that answer, so that later requests carry credentials (or a token)
from the start instead of paying a 401 each time, and keeps one bearer token per scope
(``repository:NAME:pull``) until shortly before its ``expires_in`` runs out. It is shared by
every thread of a client, so all its state sits behind one lock; token fetches happen under
that lock too, so that eight threads meeting the same expired token fetch one new token, not
eight.

Its errors say which registry wants credentials and how to give them (``kubenb login``), and
never contain a password or a token.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from kubenb.errors import AuthenticationError, RegistryError
from kubenb.registry.credentials import Credentials

__all__ = ["Authenticator", "Challenge", "parse_challenge", "pull_scope", "push_scope"]

#: A token service that gives no ``expires_in`` means 60 seconds (distribution's token spec).
DEFAULT_EXPIRES_IN = 60
#: Tokens are dropped this long (at most half their life) before they expire.
EXPIRY_MARGIN = 10.0
CLIENT_ID = "kubenb"
_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')

#: (method, url, headers, form data) -> response; the client's transport, with its retries.
Fetch = Callable[[str, str, Mapping[str, str], "Mapping[str, str] | None"], requests.Response]


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: ``basic`` or ``bearer`` and its parameters."""

    scheme: str
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The challenge in a ``WWW-Authenticate`` value, or None when there is none."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {name.lower(): quoted.replace('\\"', '"') if quoted else bare
              for name, quoted, bare in _PARAM.findall(rest)}
    return Challenge(scheme.lower(), params)


def pull_scope(repository: str) -> str:
    """The token scope that lets a client read ``repository``."""
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    """The token scope that lets a client write ``repository``.

    ``pull`` is asked for too: an upload starts with a HEAD of the blob, and token services
    grant what a push needs only when both actions are named (as docker and skopeo ask).
    """
    return f"repository:{repository}:pull,push"


@dataclass(frozen=True)
class _Token:
    value: str
    expires: float  # on the authenticator's clock


class Authenticator:
    """How one registry wants to be authenticated, learned from its 401s; thread-safe."""

    def __init__(
        self, registry: str, credentials: Credentials | None, fetch: Fetch, *,
        plain_http_ok: Callable[[str], bool], clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` (seconds, monotonic) times the tokens' lifetimes; a test passes its own to
        expire a token without waiting for it."""
        self.registry = registry
        self.credentials = credentials
        self._fetch = fetch
        self._plain_http_ok = plain_http_ok
        self._clock = clock
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._tokens: dict[str, _Token] = {}

    def header(self, scope: str) -> str | None:
        """The ``Authorization`` value to send for ``scope`` before any 401, if any is known."""
        with self._lock:
            challenge = self._challenge
            if challenge is None:
                return None
            if challenge.scheme == "bearer":
                return "Bearer " + self._token(challenge, scope, scope, stale=None)
        return self._basic() if challenge.scheme == "basic" else None

    def challenged(self, www_authenticate: str, scope: str, sent: str | None, what: str) -> str:
        """Learn from a 401 and return the ``Authorization`` to try again with, or raise."""
        challenge = parse_challenge(www_authenticate)
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            raise RegistryError(
                f"registry {self.registry} refused {what} without a Basic or Bearer challenge",
                hint="kubenb supports Basic and Bearer token authentication only",
            )
        with self._lock:
            self._challenge = challenge
            if challenge.scheme == "bearer":
                wanted = challenge.params.get("scope") or scope
                return "Bearer " + self._token(challenge, scope, wanted, stale=sent)
        basic = self._basic()
        if basic is None or sent == basic:
            raise self._refused(what)
        return basic

    def rejected(self, what: str) -> AuthenticationError:
        """The error for a resource still answering 401 after the challenge was answered.

        Under Bearer the token service accepted the credentials, so the user lacks access to
        this repository (or it does not exist, which registries do not tell strangers apart).
        """
        with self._lock:
            bearer = self._challenge is not None and self._challenge.scheme == "bearer"
        if self.credentials is None or not bearer:
            return self._refused(what)
        who = "the identity token" if self.credentials.is_identity_token else f"user {self.credentials.username}"
        return AuthenticationError(
            f"registry {self.registry} denied {who} access to {what}",
            hint=f"check the repository name and that this user may pull it, or run kubenb login {self.registry} "
            "with another account",
        )

    def redirect_refused(self, host: str, what: str) -> AuthenticationError:
        """A host the registry redirected to wants credentials: it gets none (neither Basic nor a
        token fetched from a realm it names), since the user gave them for the registry alone."""
        return AuthenticationError(
            f"{host}, where registry {self.registry} redirected {what}, asks for credentials",
            hint=f"kubenb sends credentials only to {self.registry} and its token service; "
            "ask the registry's operator to fix the redirect",
        )

    def _refused(self, what: str) -> AuthenticationError:
        """No credentials for a registry that wants some, or credentials it does not accept."""
        login = f"run kubenb login {self.registry}"
        if self.credentials is None:
            return AuthenticationError(f"registry {self.registry} wants credentials for {what}", hint=login)
        whose = "identity token" if self.credentials.is_identity_token else (
            f"credentials of user {self.credentials.username}")
        return AuthenticationError(
            f"registry {self.registry} refused the {whose} for {what}",
            hint=f"{login} with the right user name and password",
        )

    def _basic(self) -> str | None:
        if self.credentials is None:
            return None
        pair = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def _token(self, challenge: Challenge, key: str, scope: str, stale: str | None) -> str:
        """The cached token for ``key`` unless it expired or is the one just refused; else a new one."""
        cached = self._tokens.get(key)
        if cached is not None and self._clock() < cached.expires and f"Bearer {cached.value}" != stale:
            return cached.value
        token = self._request_token(challenge, scope)
        self._tokens[key] = token
        return token.value

    def _request_token(self, challenge: Challenge, scope: str) -> _Token:
        realm = challenge.params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"registry {self.registry} names no usable token service (realm)")
        form = {"service": challenge.params.get("service", ""), "scope": scope}
        form = {name: value for name, value in form.items() if value}
        what = f"a token for {scope or 'the registry'}"
        response = self._token_response(realm, form)
        with response:
            if response.status_code in (401, 403):
                raise self._refused(what)
            if response.status_code != 200:
                raise RegistryError(
                    f"token service of registry {self.registry} answered HTTP {response.status_code} "
                    f"when asked for {what}"
                )
            return self._parse_token(response, what)

    def _token_response(self, realm: str, form: dict[str, str]) -> requests.Response:
        credentials = self.credentials
        if credentials is not None and urlsplit(realm).scheme == "http" and not self._plain_http_ok(realm):
            raise RegistryError(
                f"token service of registry {self.registry} is plain HTTP on a remote host",
                hint="refusing to send credentials over plain HTTP; the token realm must be HTTPS",
            )
        if credentials is not None and credentials.is_identity_token:
            refresh = {"grant_type": "refresh_token", "refresh_token": credentials.password, "client_id": CLIENT_ID}
            return self._fetch("POST", realm, {}, {**form, **refresh})
        url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(form)}" if form else realm
        basic = self._basic()
        return self._fetch("GET", url, {"Authorization": basic} if basic else {}, None)

    def _parse_token(self, response: requests.Response, what: str) -> _Token:
        try:
            body: Any = response.json()
            value = body.get("token") or body.get("access_token")
            expires_in = float(body.get("expires_in") or DEFAULT_EXPIRES_IN)
        except (ValueError, AttributeError, TypeError, RecursionError):  # RecursionError: JSON nested 100k deep
            value, expires_in = None, 0.0
        if not isinstance(value, str) or not value:
            raise RegistryError(f"token service of registry {self.registry} gave no token for {what}")
        lifetime = max(0.0, expires_in - min(EXPIRY_MARGIN, expires_in / 2))
        return _Token(value, self._clock() + lifetime)
