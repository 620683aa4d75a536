"""The build panel: Build and Cancel buttons, progress over images and bytes, the log and a summary.

A build pulls images for minutes, so it runs in a daemon thread and the kernel stays free.
The worker never prints nor calls ``display``: those write to whichever cell runs *now*. It
only sets this panel's widgets (``Output.append_stdout`` included), so the log stays in the
panel's own cell. Canonical state (``result``, ``error``, ``running``, ``bytes``) lives on the
object; the widgets are its view.
"""

from __future__ import annotations

import html
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from kubenb.display import event_line, human_size
from kubenb.engine import BuildOptions, Engine
from kubenb.errors import Cancelled, KubenbError
from kubenb.events import (
    BlobDone,
    BlobProgress,
    BlobsPlanned,
    BlobStarted,
    Event,
    ImageDone,
    ImageSkipped,
    ImageStarted,
)
from kubenb.model import ClusterImage
from kubenb.widgets.base import Composite

__all__ = ["BuildPanel", "ByteCounts"]

#: Seconds between two redraws of the byte counters: blob chunks arrive far faster than eyes read.
REFRESH = 0.1
#: Seconds between two looks at an interrupt while waiting for a build.
WAIT_STEP = 0.1
#: The log box scrolls itself: in a reversed flex column the browser keeps the end in view
#: (the log inside must not shrink, hence ``flex: 0 0 auto`` on it).
FOLLOW_END = dict(max_height="20em", overflow="auto", display="flex", flex_flow="column-reverse",
                  border="var(--jp-border-width, 1px) solid var(--jp-border-color2, currentColor)",
                  padding="0 0.5em", margin="0.3em 0")


@dataclass
class _Blob:
    image: str
    size: int
    received: int = 0


@dataclass
class ByteCounts:
    """Bytes of one build, each blob credited to the image whose save downloads it.

    Images pull in parallel, so a single "current image" counter credits every byte to the
    image that started last. Blob events name their image; counting per blob also keeps a
    blob fetched twice (a download started over) from counting twice: its bytes are capped
    at its size. ``total`` is known up front from ``BlobsPlanned``, so the bar never shrinks.
    """

    planned: dict[str, int] = field(default_factory=dict)
    blobs: dict[str, _Blob] = field(default_factory=dict)
    images: dict[str, list[int]] = field(default_factory=dict)  # image -> [received, expected]
    received: int = 0

    @property
    def total(self) -> int:
        """Every byte the build fetches as far as known: the planned blobs and any started besides."""
        extra = sum(blob.size for digest, blob in self.blobs.items() if digest not in self.planned)
        return sum(self.planned.values()) + extra

    def take(self, event: Event) -> bool:
        """Count ``event``; whether it changed a number."""
        if isinstance(event, BlobsPlanned):
            self.planned.update(zip(event.digests, event.sizes, strict=False))
        elif isinstance(event, BlobStarted):
            self.blobs[event.digest] = _Blob(event.image, event.size)
            self.images.setdefault(event.image, [0, 0])[1] += event.size
        elif isinstance(event, BlobProgress) and event.digest in self.blobs:
            self._add(self.blobs[event.digest], event.received)
        elif isinstance(event, BlobDone) and event.fetched and event.digest in self.blobs:
            blob = self.blobs[event.digest]
            self._add(blob, blob.size - blob.received)
        else:
            return False
        return True

    def of(self, image: str) -> tuple[int, int]:
        """Bytes received and expected for the blobs ``image`` downloads (shared ones count once)."""
        received, expected = self.images.get(image, (0, 0))
        return received, expected

    def _add(self, blob: _Blob, count: int) -> None:
        before = min(blob.received, blob.size)
        blob.received += max(count, 0)
        gained = min(blob.received, blob.size) - before
        self.received += gained
        self.images[blob.image][0] += gained


class BuildPanel(Composite):
    """One build of ``options``, started with the Build button (or :meth:`start`).

    ``engine`` names the store and registry options (default: ``Engine()``); each build runs on a
    copy of it that reports to this panel and has its own cancel token, so Cancel stops only
    the build it was clicked for. ``before_build`` runs first, in the caller's thread (e.g. an
    image-list review's ``save``), so the build sees the choice made when Build was clicked.
    """

    def __init__(self, options: BuildOptions, *, engine: Engine | None = None, builder: str = "lite",
                 before_build: Callable[[], object] | None = None) -> None:
        self.options = options
        self.engine = engine or Engine()
        self.builder = builder
        self.before_build = before_build
        self.result: ClusterImage | None = None
        self.error: BaseException | None = None
        self.bytes = ByteCounts()
        self._run = self.engine.with_events(self._on_event)
        self._ended = threading.Event()  # not Thread.join: a Ctrl-C during a join breaks the thread's state
        self._ended.set()
        self._lock = threading.Lock()
        self._active: list[str] = []  # images being saved, in the order they started
        self._drawn = 0.0
        self.build_button = _button("Build", "kubenb-build", icon="play", button_style="primary")
        self.cancel_button = _button("Cancel", "kubenb-cancel", icon="stop", disabled=True)
        self.progress = _bar("Images", "kubenb-images-bar")
        self.bytes_bar = _bar("Bytes", "kubenb-bytes-bar")
        self.bytes_label = _html("", "kubenb-bytes")
        self.images_label = _html("", "kubenb-images")
        self.current = _html("", "kubenb-current")
        self.log_box = widgets.Output(layout=widgets.Layout(flex="0 0 auto"))  # its full height, in:
        self.log_view = widgets.Box([self.log_box], layout=widgets.Layout(**FOLLOW_END))  # the box that scrolls
        self.log_view.add_class("kubenb-log")
        self.summary = _html(f"Ready to build <code>{html.escape(options.tag)}</code>", "kubenb-summary")
        self.build_button.on_click(lambda _button: self.start())
        self.cancel_button.on_click(lambda _button: self.cancel())
        super().__init__([
            widgets.HBox([self.build_button, self.cancel_button, self.progress, self.images_label]),
            widgets.HBox([self.bytes_bar, self.bytes_label]),
            self.current, self.log_view, self.summary,
        ])
        self.add_class("kubenb-build-panel")

    @property
    def running(self) -> bool:
        return not self._ended.is_set()

    def text(self) -> str:
        state = html.unescape(self.summary.value).replace("<code>", "").replace("</code>", "")
        return f"BuildPanel({self.options.tag}): {state}"

    def start(self) -> None:
        """Start the build in a daemon thread; does nothing while a build is running."""
        if self.running:
            return
        self._reset()
        try:
            if self.before_build is not None:
                self.before_build()
        except Exception as error:  # the review could not be saved: show it, build nothing
            self._finish(None, error)
            return
        self._ended.clear()
        threading.Thread(target=self._work, name=f"kubenb build {self.options.tag}", daemon=True).start()

    def cancel(self) -> None:
        """Ask the build to stop where it is (a RUN killed, downloads cut); the store is left as it was.

        The token is set whatever ``running`` says: an interrupt may have broken the waiting
        that state is read from, and setting the token of an ended build does nothing.
        """
        self._run.cancel()
        if self.running:
            self.cancel_button.disabled = True
            self.summary.value = "Cancelling&hellip;"

    def wait(self, timeout: float | None = None) -> ClusterImage | None:
        """The built image once the build has ended (None on failure, cancel or timeout).

        It waits in short steps, so a Ctrl-C (a kernel interrupt, ``interrupt_main``) reaches
        the caller at once, which then cancels the build.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ended.wait(WAIT_STEP if deadline is None else
                                   max(0.0, min(WAIT_STEP, deadline - time.monotonic()))):
            if deadline is not None and time.monotonic() >= deadline:
                break
        return self.result

    def _reset(self) -> None:
        self.result, self.error = None, None
        self._run = self.engine.with_events(self._on_event)
        self.bytes, self._active = ByteCounts(), []
        for bar in (self.progress, self.bytes_bar):
            bar.value, bar.max, bar.bar_style = 0, 1, ""
        self.bytes_label.value = self.images_label.value = self.current.value = ""
        self.log_box.outputs = ()  # not clear_output(): outside a kernel that writes to stdout
        self.summary.value = f"Building <code>{html.escape(self.options.tag)}</code>&hellip;"
        self.build_button.disabled = True
        self.cancel_button.disabled = False

    def _work(self) -> None:
        image: ClusterImage | None = None
        error: BaseException | None = None
        try:
            image = self._run.build(self.options, builder=self.builder)
        except Exception as caught:
            error = caught
            if not isinstance(caught, KubenbError):  # a bug: keep the traceback where it can be read
                self.log_box.append_stderr(traceback.format_exc())
        try:
            self._finish(image, error)
        finally:
            self._ended.set()

    def _finish(self, image: ClusterImage | None, error: BaseException | None) -> None:
        self.result, self.error = image, error
        with self._lock:
            self._active = []
            self._draw_bytes()
        style = "success" if image is not None else "warning" if isinstance(error, Cancelled) else "danger"
        for bar in (self.progress, self.bytes_bar):
            bar.bar_style = style
            if image is not None:  # built, if from the build cache with nothing pulled: done is full
                bar.value = bar.max
        self.summary.value = html.escape(_summary(image, error))
        self.build_button.disabled = False
        self.cancel_button.disabled = True

    def _on_event(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, ImageStarted):
                self._active.append(event.image)
                self.progress.max = max(event.total, 1)
                self._draw_images()
            elif isinstance(event, (ImageDone, ImageSkipped)):
                self.progress.value = min(self.progress.value + 1, self.progress.max)
                self._active = [image for image in self._active if image != event.image]
                self._draw_images()
            elif self.bytes.take(event) and time.monotonic() - self._drawn >= REFRESH:
                self._draw_bytes()
            line = event_line(event)
            if line is not None:
                self.log_box.append_stdout(line + "\n")

    def _draw_images(self) -> None:
        self.images_label.value = f"{self.progress.value} of {_images(self.progress.max)}"
        self._draw_bytes()

    def _draw_bytes(self) -> None:
        """The overall bar and a line per image being saved (under the lock)."""
        self._drawn = time.monotonic()
        total, received = self.bytes.total, self.bytes.received
        self.bytes_bar.max = max(total, 1)
        self.bytes_bar.value = min(received, self.bytes_bar.max)
        self.bytes_label.value = f"{human_size(received)} of {human_size(total)}" if total else ""
        self.current.value = "<br>".join(_image_line(image, *self.bytes.of(image)) for image in self._active)


def _image_line(image: str, received: int, expected: int) -> str:
    bytes_text = f"{human_size(received)} of {human_size(expected)}" if expected else "nothing to fetch yet"
    return f"<code>{html.escape(image)}</code>: {bytes_text}"


def _button(description: str, css: str, **kwargs: Any) -> Any:
    button = widgets.Button(description=description, **kwargs)
    button.add_class(css)
    return button


def _bar(description: str, css: str) -> Any:
    bar = widgets.IntProgress(value=0, min=0, max=1, description=description)
    bar.add_class(css)
    return bar


def _html(value: str, css: str) -> Any:
    view = widgets.HTML(value=value)
    view.add_class(css)
    return view


def _summary(image: ClusterImage | None, error: BaseException | None) -> str:
    """One line: what was built, or why not (``str(error)`` is the error's one-line form)."""
    if isinstance(error, Cancelled):
        return "Cancelled"
    if error is not None:
        return str(error) if isinstance(error, KubenbError) else f"{type(error).__name__}: {error}"
    assert image is not None
    return f"Built {image.name} ({image.short_id}, {human_size(image.size)}, {_images(len(image.carried_images))})"


def _images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"
