"""An overall deadline for each registry request, from a minimum speed: a trickle cannot hold a build.

The socket timeout only bounds the wait for the *next* byte, so a registry (or a proxy in
between) that sends one byte every few seconds keeps a request alive for hours. Each request
therefore gets a deadline: ``floor`` seconds, plus the time its body takes at ``min_speed``
bytes per second (its ``Content-Length`` once the headers are in, or the bytes received so far
when the server gives none). When the deadline passes, the request's socket is shut down from a
timer thread; the read blocked on it fails at once, and the transport turns that failure into a
retryable "too slow" error, retried like any timeout.

The socket is found through the connection class of the pools (``WatchedPools``): urllib3 calls
its ``request`` in the thread that sends, so the connection is tied to that thread's current
``Watch``. A watch ends when its response is closed, so a connection back in the pool, maybe
serving another thread, is never shut down by a stale timer.

The same shutdown serves a cancel: a request sent with a ``CancelToken`` registers its watch on
it, and cancelling shuts the socket down at once, so a build waiting on a silent registry stops
without waiting for the deadline (``cancelled`` then tells why the read failed).

The limits come from the caller (``Registries(min_speed=..., deadline_floor=...)``) or, by
default, from ``KUBENB_MIN_SPEED`` (bytes per second; 0 turns the deadline off) and
``KUBENB_DEADLINE_FLOOR`` (seconds).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from kubenb.errors import RegistryError
from kubenb.events import CancelToken

__all__ = [
    "DEFAULT_FLOOR", "DEFAULT_MIN_SPEED", "SpeedLimit", "Watch", "current_watch", "note_progress", "watch_pools",
]

#: 10 KiB/s: far below any working link, far above a trickle.
DEFAULT_MIN_SPEED = 10 * 1024
#: Every request may take this long whatever its size (connection, headers, a small body).
DEFAULT_FLOOR = 60.0
MIN_SPEED_VARIABLE = "KUBENB_MIN_SPEED"
FLOOR_VARIABLE = "KUBENB_DEADLINE_FLOOR"

_local = threading.local()


@dataclass(frozen=True)
class SpeedLimit:
    """A request must end within ``floor`` seconds plus its size at ``min_speed`` bytes/s (0: never)."""

    min_speed: float = DEFAULT_MIN_SPEED
    floor: float = DEFAULT_FLOOR

    @classmethod
    def from_environment(cls, min_speed: float | None = None, floor: float | None = None) -> SpeedLimit:
        """The limit given, else ``KUBENB_MIN_SPEED`` / ``KUBENB_DEADLINE_FLOOR``, else the defaults."""
        return cls(
            min_speed=min_speed if min_speed is not None else _number(MIN_SPEED_VARIABLE, DEFAULT_MIN_SPEED),
            floor=floor if floor is not None else _number(FLOOR_VARIABLE, DEFAULT_FLOOR),
        )

    @property
    def active(self) -> bool:
        return self.min_speed > 0

    def describe(self) -> str:
        return f"{self.min_speed:g} bytes/s after the first {self.floor:g} s"


def _number(variable: str, default: float) -> float:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise RegistryError(f"{variable}={text!r} is not a number of at least 0",
                            hint=f"set {variable} to a number, or unset it for the default ({default:g})")
    return value


class Watch:
    """The deadline of one request; ``expired`` once its timer shut the connection down,
    ``cancelled`` once its cancel token did (an inactive ``limit`` sets no deadline)."""

    def __init__(self, limit: SpeedLimit, clock: Callable[[], float] = time.monotonic,
                 cancel: CancelToken | None = None) -> None:
        self.limit = limit
        self.cancel = cancel
        self.clock = clock
        self.started = clock()
        self.expected = 0
        self.received = 0
        self.expired = False
        self.cancelled = False
        self.connection: HTTPConnection | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._done = False
        self._forget: Callable[[], None] | None = None

    def deadline(self) -> float:
        """When the request must be over: the floor plus its size at the minimum speed."""
        return self.started + self.limit.floor + max(self.expected, self.received) / self.limit.min_speed

    def start(self) -> None:
        _local.watch = self
        if self.limit.active:
            self._arm()
        if self.cancel is not None:
            self._forget = self.cancel.on_cancel(self.abort)

    def expect(self, length: int) -> None:
        """The body's announced size (``Content-Length``): the deadline grows to let it arrive."""
        self.expected = max(self.expected, length)

    def finish(self) -> None:
        """The response is closed: cancel the timer; the connection may serve another request."""
        with self._lock:
            self._done = True
            if self._timer is not None:
                self._timer.cancel()
        if self._forget is not None:
            self._forget()
        if getattr(_local, "watch", None) is self:
            _local.watch = None

    def _arm(self) -> None:
        with self._lock:
            if self._done:
                return
            self._timer = threading.Timer(max(0.0, self.deadline() - self.clock()), self._check)
            self._timer.daemon = True
            self._timer.start()

    def _check(self) -> None:
        """At the deadline (which may have moved since the timer was set): abort, or wait on."""
        if self.clock() < self.deadline():
            self._arm()
            return
        with self._lock:
            if self._done:
                return
            self.expired = True
            connection = self.connection
        _abort(connection, self)


    def abort(self) -> None:
        """Cancelled: shut the connection down now (called from the cancelling thread)."""
        with self._lock:
            if self._done:
                return
            self.cancelled = True
            connection = self.connection
        _abort(connection, self)


def _abort(connection: HTTPConnection | None, watch: Watch) -> None:
    """Shut down the socket that ``watch``'s request still uses; a blocked read then fails."""
    sock = getattr(connection, "sock", None)
    if connection is None or sock is None or getattr(connection, "kubenb_watch", None) is not watch:
        return
    with suppress(OSError):  # already closed: nothing left to stop
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also under TLS


def current_watch() -> Watch | None:
    """The watch of the request this thread is sending or reading, if any."""
    watch: Watch | None = getattr(_local, "watch", None)
    return watch


def note_progress(count: int) -> None:
    """Count ``count`` body bytes read by this thread (a body of unknown size extends the deadline)."""
    watch = current_watch()
    if watch is not None:
        watch.received += count


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)
        super().request(*args, **kwargs)

    def connect(self) -> None:
        super().connect()
        _connected(self)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)
        super().request(*args, **kwargs)

    def connect(self) -> None:
        super().connect()
        _connected(self)


def _attach(connection: HTTPConnection) -> None:
    """Tie the connection to this thread's current request (called in the sending thread); a
    request cancelled before it had a connection to shut down is not sent."""
    watch = current_watch()
    connection.kubenb_watch = watch  # type: ignore[attr-defined]
    if watch is not None:
        watch.connection = connection
        if watch.cancel is not None:
            watch.cancel.check()


def _connected(connection: HTTPConnection) -> None:
    """A socket opened while the request was being cancelled (``abort`` found none): shut it now."""
    watch = current_watch()
    sock = getattr(connection, "sock", None)
    if watch is not None and watch.cancelled and sock is not None:
        with suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def watch_pools(pool_manager: Any) -> None:
    """Make a urllib3 pool manager's pools use the watched connection classes."""
    pool_manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
