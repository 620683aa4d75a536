"""Progress events: how the engine tells front ends what it is doing, without printing.

The engine calls an ``EventSink`` (any callable taking an ``Event``); the CLI renders events
as lines or tqdm bars, the notebook as widget progress. Events are small frozen records so a
sink may queue them across threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from kubenb.errors import Cancelled

__all__ = [
    "BlobDone",
    "BlobProgress",
    "BlobStarted",
    "BlobsPlanned",
    "CancelToken",
    "Event",
    "EventSink",
    "ImageDone",
    "ImageSkipped",
    "ImageStarted",
    "Message",
    "Retrying",
    "ignore",
]


@dataclass(frozen=True)
class Event:
    """Base of every progress event."""


@dataclass(frozen=True)
class Message(Event):
    """A line of text worth showing (a warning, a RUN command's output)."""

    text: str
    level: str = "info"


@dataclass(frozen=True)
class ImageStarted(Event):
    image: str
    index: int
    total: int


@dataclass(frozen=True)
class ImageDone(Event):
    image: str
    digest: str
    fetched_bytes: int


@dataclass(frozen=True)
class ImageSkipped(Event):
    """The image was complete in the target already: nothing was fetched."""

    image: str
    digest: str


@dataclass(frozen=True)
class BlobStarted(Event):
    image: str
    digest: str
    size: int


@dataclass(frozen=True)
class BlobProgress(Event):
    """``received`` more bytes of a blob arrived (a delta, so sinks can simply add)."""

    image: str
    digest: str
    received: int


@dataclass(frozen=True)
class BlobDone(Event):
    image: str
    digest: str
    size: int
    fetched: bool


@dataclass(frozen=True)
class BlobsPlanned(Event):
    """Every blob a save will fetch from here on, in an order fixed by its inputs, known once
    the images' manifests are read and before any layer is fetched; blobs may land in any order.
    ``sizes`` are theirs, in the same order: a progress bar knows its end before the first byte."""

    digests: tuple[str, ...]
    sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Retrying(Event):
    """A request failed in a way that may pass; it is tried again after ``delay`` seconds."""

    url: str
    reason: str
    attempt: int
    delay: float


EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The sink to use when nobody listens."""


class CancelToken:
    """A request to stop, set by a front end (a Cancel button, Ctrl-C) and checked by the work.

    It is passed down to the loops that take time (downloads, build steps, RUN commands) so
    that a cancelled build stops where it is and raises :class:`Cancelled` itself, unwrapped,
    instead of a front end throwing from its event sink into a worker thread. Work that waits
    on something else than the token (a RUN's output, a socket) registers ``on_cancel`` to be
    woken: the callback kills the command or shuts the socket down.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0

    def cancel(self) -> None:
        """Ask the work to stop; safe from any thread, and more than once.

        The callbacks run here, in the cancelling thread, under the token's lock: one whose
        block has ended (``on_cancel``'s remover returned) is never called afterwards.
        """
        with self._lock:
            self._event.set()
            for callback in list(self._callbacks.values()):
                callback()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` once the token is set; the work undoes what it started."""
        if self._event.is_set():
            raise Cancelled("the work was cancelled", hint="nothing half-written was kept; run it again to go on")

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` (a retry's back-off), waking at once when cancelled."""
        return self._event.wait(seconds)

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the token is cancelled (at once if it is already); return the
        function that forgets it. The callback must be quick, not raise, and not use the token."""
        with self._lock:
            if self._event.is_set():
                callback()
                return _nothing
            key, self._next = self._next, self._next + 1
            self._callbacks[key] = callback

        def forget() -> None:
            with self._lock:
                self._callbacks.pop(key, None)

        return forget


def _nothing() -> None:
    """The remover of a callback that was called at once."""
