"""Progress events: how the engine tells front ends what it is doing, without printing.

The engine calls an ``EventSink`` (any callable taking an ``Event``); the CLI renders events
as lines or tqdm bars, the notebook as widget progress. Events are small frozen records so a
sink may queue them across threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "BlobDone",
    "BlobProgress",
    "BlobStarted",
    "BlobsPlanned",
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
    the images' manifests are read and before any layer is fetched; blobs may land in any order."""

    digests: tuple[str, ...]


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
