"""Text renderings of results, shared by the CLI and the notebook's text reprs."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

from kubenb.events import (
    BlobProgress,
    BlobStarted,
    Event,
    ImageDone,
    ImageSkipped,
    ImageStarted,
    Message,
    Retrying,
)
from kubenb.model import FoundImage, ImageList, Location

__all__ = ["EventPrinter", "human_size", "image_list_csv", "image_list_plain", "image_list_table", "locations_text"]


def image_list_plain(images: ImageList) -> str:
    """One normalised image per line: the imageList format, ready for ``save-images -f``."""
    return "".join(f"{found.image}\n" for found in images.images)


def image_list_csv(images: ImageList) -> str:
    rows = images.rows()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["image"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def image_list_table(images: ImageList) -> str:
    """Aligned columns: image, where it was first found, and how many other places."""
    sections = [_table(images.images)]
    if images.potential:
        sections.append("Potential images (not included; add them to manifests/imageList to carry them):\n"
                        + _table(images.potential))
    if images.test:
        sections.append("Images used only by Helm test hooks (not included):\n" + _table(images.test))
    if images.invalid:
        sections.append("Invalid references (a build stops on them unless --skip-invalid):\n" + "".join(
            f"  {invalid.written!r} at {invalid.location}: {invalid.reason}\n" for invalid in images.invalid
        ))
    return "\n".join(sections)


def locations_text(locations: Sequence[Location]) -> str:
    return "".join(f"{location.source}: {location}\n" for location in locations)


def _table(found: Sequence[FoundImage]) -> str:
    if not found:
        return "  (no images)\n"
    rows = [("IMAGE", "SOURCE", "FOUND IN")] + [
        (str(f.image), f.locations[0].source, str(f.locations[0]) + _more(f)) for f in found
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    return "".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}\n" for r in rows)


def _more(found: FoundImage) -> str:
    extra = len(found.locations) - 1
    return f" (+{extra} more)" if extra else ""


class EventPrinter:
    """Renders engine events for a terminal: a tqdm byte bar on a TTY, plain lines otherwise.

    Events arrive from worker threads, so rendering holds a lock. Used as a context manager
    so the bar is closed even when the engine fails.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.bar: tqdm[Any] | None = None
        if stream.isatty():
            self.bar = tqdm(total=0, unit="B", unit_scale=True, file=stream, desc="fetching", leave=False)

    def __enter__(self) -> EventPrinter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, event: Event) -> None:
        with self.lock:
            line = _event_line(event)
            if self.bar is not None:
                self._update_bar(event)
                if line:
                    self.bar.write(line, file=self.stream)
            elif line:
                print(line, file=self.stream, flush=True)

    def _update_bar(self, event: Event) -> None:
        assert self.bar is not None
        if isinstance(event, BlobStarted):
            self.bar.total = (self.bar.total or 0) + event.size
            self.bar.refresh()
        elif isinstance(event, BlobProgress):
            self.bar.update(event.received)


def _event_line(event: Event) -> str | None:
    if isinstance(event, ImageStarted):
        return f"[{event.index}/{event.total}] {event.image}"
    if isinstance(event, ImageDone):
        return f"  saved {event.image} ({human_size(event.fetched_bytes)} fetched)"
    if isinstance(event, ImageSkipped):
        return f"  {event.image} is complete already"
    if isinstance(event, Retrying):
        return f"  retrying in {event.delay:.1f}s: {event.reason}"
    if isinstance(event, Message):
        return event.text
    return None


def human_size(size: int) -> str:
    """Bytes as people read them: ``512 B``, ``3.4 kB``, ``12.0 MB``, ``1.2 GB``."""
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
