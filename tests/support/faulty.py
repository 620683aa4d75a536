"""A fault-injecting HTTP front for a real registry, on loopback, for client tests.

Retries, redirects, bearer tokens, truncated and corrupt bodies cannot be provoked on a stock
`docker-registry`, so this small threaded `http.server` stands in front of one: by default it
proxies every request to the real registry, and the faults a test adds act on the next
matching requests only. It can also play a token service (Bearer auth) in front of an open
registry. Every request it receives is recorded (method, path, headers), so tests can assert
what the client sent, e.g. that no Authorization header reached another host.
"""

from __future__ import annotations

import base64
import json
import random
import re
import secrets
import socket
import struct
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

HOP_BY_HOP = frozenset({"connection", "content-length", "content-encoding", "transfer-encoding", "keep-alive"})
FORWARDED = ("Accept", "Range")


@dataclass(frozen=True)
class Respond:
    """Answer with this status, headers and body; the registry is not asked."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Truncate:
    """Send the registry's answer with its full Content-Length, cut after `keep` bytes, then close.

    With `ranges=False` the Accept-Ranges header is dropped, so a client cannot resume.
    """

    keep: int
    ranges: bool = True


@dataclass(frozen=True)
class Corrupt:
    """Send the registry's answer with its last byte flipped."""


@dataclass(frozen=True)
class Redirect:
    """Answer 307 to the same path and query on `base` (e.g. another FaultyProxy's url)."""

    base: str


@dataclass(frozen=True)
class Delay:
    """Wait `seconds` before proxying the request as usual (a client timeout fires first)."""

    seconds: float


@dataclass(frozen=True)
class Hold:
    """Leave the request unanswered until `release` is set, then close the connection without
    an answer. `held` is set as soon as a request waits here: a test acts on that event (kill
    the client, let its timeout fire) instead of guessing how long a delay must be."""

    release: threading.Event = field(default_factory=threading.Event, compare=False)
    held: threading.Event = field(default_factory=threading.Event, compare=False)


@dataclass(frozen=True)
class Cut:
    """Send the registry's answer with its full Content-Length, cut after `fraction` of the body;
    then close the connection, with a TCP reset (`reset=True`: "connection reset by peer") or
    an orderly close (a truncated body)."""

    fraction: float = 0.5
    reset: bool = False


@dataclass(frozen=True)
class Trickle:
    """Send the registry's answer in `pieces` pieces, `pause` seconds apart (a slow link)."""

    pieces: int = 10
    pause: float = 0.02


@dataclass(frozen=True)
class TrickleHead:
    """Send the registry's answer with its status line and headers one byte every `pause` seconds
    (each byte beats any read timeout, so only an overall deadline stops it), then the body."""

    pause: float = 0.2


@dataclass(frozen=True)
class WrongLength:
    """Send the whole body under a Content-Length `delta` bytes off, then close the connection."""

    delta: int


Action = Respond | Truncate | Corrupt | Redirect | Delay | Hold | Cut | Trickle | TrickleHead | WrongLength

HTML_PAGE = b"<!DOCTYPE html><html><head><title>Proxy error</title></head><body>Try later</body></html>"

#: The mix of faults `Chaos` draws from, each as likely as the others.
CHAOS_MIX: tuple[tuple[str, Action], ...] = (
    ("500", Respond(500, {"Content-Type": "text/plain"}, b"internal error")),
    ("502", Respond(502, {"Content-Type": "text/html"}, HTML_PAGE)),
    ("503", Respond(503, {"Content-Type": "application/json"},
                    b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}')),
    ("429", Respond(429, {"Retry-After": "1", "Content-Type": "application/json"},
                    b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}')),
    ("reset", Cut(0.5, reset=True)),
    ("truncated", Cut(0.5)),
    ("trickle", Trickle()),
    ("length+", WrongLength(+7)),
    ("length-", WrongLength(-7)),
    ("flipped", Corrupt()),
    ("html", Respond(200, {"Content-Type": "text/html"}, HTML_PAGE)),
)


@dataclass
class Chaos:
    """Fault a random `rate` of the requests (seeded), with an action drawn from `mix`.

    `faulted` records (kind, method, path) of each faulted request, `total` counts every
    request that was eligible, so a test can report the share it really faulted.
    """

    rate: float
    seed: int
    mix: tuple[tuple[str, Action], ...] = CHAOS_MIX
    total: int = 0
    faulted: list[tuple[str, str, str]] = field(default_factory=list)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def draw(self, method: str, path: str) -> Action | None:
        """The fault for this request, or None (called under the proxy's lock)."""
        self.total += 1
        if self._random.random() >= self.rate:
            return None
        kind, action = self._random.choice(self.mix)
        self.faulted.append((kind, method, path))
        return action

    def counts(self) -> dict[str, int]:
        """How many requests each kind of fault hit."""
        found: dict[str, int] = {}
        for kind, _method, _path in self.faulted:
            found[kind] = found.get(kind, 0) + 1
        return found


@dataclass
class Fault:
    """Apply `action` to the next `times` requests whose path matches `path` (re.search)."""

    path: str
    action: Action
    times: int = 1
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and (self.method in (None, method)) and re.search(self.path, path) is not None


@dataclass(frozen=True)
class Seen:
    """One request as received: header names are lowercased."""

    method: str
    path: str
    headers: Mapping[str, str]


@dataclass
class TokenService:
    """Bearer auth in front of an open registry; `username=None` gives tokens to anyone.

    `refresh_token` is accepted in an OAuth2 POST (grant_type=refresh_token), as docker's
    identity tokens are; `realm` overrides the token URL announced in challenges;
    `accept_tokens=False` makes the registry refuse the tokens it issued (no access to the repository).
    """

    username: str | None = None
    password: str | None = None
    expires_in: int | None = 60
    refresh_token: str | None = None
    realm: str | None = None
    accept_tokens: bool = True
    issued: dict[str, float] = field(default_factory=dict)
    requests: list[Mapping[str, Any]] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up early (a timeout, a refused 4 MiB manifest) is expected here."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultyProxy:
    """The fake; use as a context manager. `url`/`host` say where it listens."""

    def __init__(
        self, upstream: str, *, bind: str = "127.0.0.1", upstream_auth: tuple[str, str] | None = None,
        tokens: TokenService | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.upstream_auth = upstream_auth
        self.tokens = tokens
        self.faults: list[Fault] = []
        self.chaos: Chaos | None = None
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self._bind = bind
        self._server = _Server((bind, 0), _Handler)
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"{self._bind}:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def add(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def requests_to(self, pattern: str, method: str | None = None) -> list[Seen]:
        """The requests seen so far whose path matches `pattern`."""
        with self.lock:
            return [s for s in self.seen if re.search(pattern, s.path) and method in (None, s.method)]

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def take_fault(self, method: str, path: str) -> Action | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault.action
            return self.chaos.draw(method, path) if self.chaos is not None else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    @property
    def proxy(self) -> FaultyProxy:
        proxy: FaultyProxy = self.server.proxy
        return proxy

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        path = urlsplit(self.path).path
        with self.proxy.lock:
            self.proxy.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        tokens = self.proxy.tokens
        if tokens is not None and path == "/token":
            return self._issue_token(tokens)
        if tokens is not None and not self._has_token(tokens):
            return self._challenge(path)
        action = self.proxy.take_fault(self.command, self.path)
        if isinstance(action, Respond):
            return self._send(action.status, action.headers, action.body)
        if isinstance(action, Redirect):
            return self._send(307, {"Location": action.base.rstrip("/") + self.path}, b"")
        if isinstance(action, Delay):
            time.sleep(action.seconds)
        if isinstance(action, Hold):
            action.held.set()
            action.release.wait(600)
            self.close_connection = True
            return None
        status, headers, body = self._upstream(tokens is None)
        if isinstance(action, Corrupt) and body:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        if isinstance(action, Truncate):
            return self._truncated(status, headers, body, action)
        if isinstance(action, Cut):
            return self._cut(status, headers, body, action)
        if isinstance(action, Trickle):
            return self._trickle(status, headers, body, action)
        if isinstance(action, WrongLength):
            return self._wrong_length(status, headers, body, action.delta)
        if isinstance(action, TrickleHead):
            return self._trickle_head(status, headers, body, action.pause)
        return self._send(status, headers, body)

    def _trickle_head(self, status: int, headers: Mapping[str, str], body: bytes, pause: float) -> None:
        self.close_connection = True
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length"]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        for byte in "\r\n".join(lines).encode("latin-1"):
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(pause)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _head(self, status: int, headers: Mapping[str, str], length: int) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(max(0, length)))
        self.end_headers()

    def _cut(self, status: int, headers: Mapping[str, str], body: bytes, action: Cut) -> None:
        self.close_connection = True
        if action.reset:  # close() sends RST instead of FIN: the client sees "connection reset"
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if self.command == "HEAD" and action.reset:
            return
        self._head(status, headers, len(body))
        if self.command != "HEAD":
            self.wfile.write(body[: int(len(body) * action.fraction)])
            self.wfile.flush()

    def _trickle(self, status: int, headers: Mapping[str, str], body: bytes, action: Trickle) -> None:
        self._head(status, headers, len(body))
        if self.command == "HEAD":
            return
        step = max(1, -(-len(body) // action.pieces))
        for start in range(0, len(body), step):
            self.wfile.write(body[start:start + step])
            self.wfile.flush()
            time.sleep(action.pause)

    def _wrong_length(self, status: int, headers: Mapping[str, str], body: bytes, delta: int) -> None:
        self.close_connection = True
        self._head(status, headers, len(body) + delta)
        if self.command != "HEAD":
            self.wfile.write(body)
            self.wfile.flush()

    def _upstream(self, forward_authorization: bool) -> tuple[int, dict[str, str], bytes]:
        headers = {name: self.headers[name] for name in FORWARDED if self.headers.get(name)}
        headers["Accept-Encoding"] = "identity"
        if forward_authorization and self.proxy.upstream_auth is None and self.headers.get("Authorization"):
            headers["Authorization"] = self.headers["Authorization"]
        response = requests.request(
            self.command, self.proxy.upstream + self.path, headers=headers, auth=self.proxy.upstream_auth,
            allow_redirects=False, timeout=30,
        )
        kept = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        if self.command == "HEAD":
            kept["Content-Length"] = response.headers.get("Content-Length", "0")
        return response.status_code, kept, response.content

    def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if not any(name.lower() == "content-length" for name in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _truncated(self, status: int, headers: dict[str, str], body: bytes, action: Truncate) -> None:
        if not action.ranges:
            headers = {k: v for k, v in headers.items() if k.lower() != "accept-ranges"}
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: action.keep])
        self.wfile.flush()
        self.close_connection = True

    def _has_token(self, tokens: TokenService) -> bool:
        value = self.headers.get("Authorization", "")
        if not value.startswith("Bearer "):
            return False
        with self.proxy.lock:
            expires = tokens.issued.get(value.removeprefix("Bearer "))
        return tokens.accept_tokens and expires is not None and time.monotonic() < expires

    def _challenge(self, path: str) -> None:
        match = re.match(r"/v2/(.+)/(?:manifests|blobs|tags)/", path)
        scope = f',scope="repository:{match.group(1)}:pull"' if match else ""
        realm = (self.proxy.tokens and self.proxy.tokens.realm) or f"http://{self.proxy.host}/token"
        header = f'Bearer realm="{realm}",service="faulty"{scope}'
        body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}).encode()
        self._send(401, {"WWW-Authenticate": header, "Content-Type": "application/json"}, body)

    def _issue_token(self, tokens: TokenService) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if self.command == "POST":
            query = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        basic = self.headers.get("Authorization", "")
        with self.proxy.lock:
            tokens.requests.append({"method": self.command, "authorization": basic,
                                    **{name: values[0] for name, values in query.items()}})
        if not self._token_granted(tokens, query, basic):
            return self._send(401, {"Content-Type": "application/json"}, b'{"details":"bad credentials"}')
        token = secrets.token_hex(16)
        lifetime = tokens.expires_in if tokens.expires_in is not None else 60
        with self.proxy.lock:
            tokens.issued[token] = time.monotonic() + lifetime
        answer: dict[str, Any] = {"token": token}
        if tokens.expires_in is not None:
            answer["expires_in"] = tokens.expires_in
        return self._send(200, {"Content-Type": "application/json"}, json.dumps(answer).encode())


    def _token_granted(self, tokens: TokenService, query: Mapping[str, list[str]], basic: str) -> bool:
        if self.command == "POST":
            return query.get("grant_type") == ["refresh_token"] and query.get("refresh_token") == [tokens.refresh_token]
        return tokens.username is None or basic == _basic(tokens.username, tokens.password or "")


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
