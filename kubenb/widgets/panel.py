"""The build panel: Build and Cancel buttons, progress over images, the build's log and a summary.

A build pulls images for minutes, so it runs in a daemon thread and the kernel stays free.
The worker never prints nor calls ``display``: those write to whichever cell runs *now*. It
only sets this panel's widgets (``Output.append_stdout`` included), so the log stays in the
panel's own cell. Canonical state (``result``, ``error``, ``running``) lives on the object;
the widgets are its view.
"""

from __future__ import annotations

import html
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from kubenb.display import event_line, human_size
from kubenb.engine import BuildOptions, Engine
from kubenb.errors import Cancelled, KubenbError
from kubenb.events import BlobProgress, BlobStarted, Event, ImageDone, ImageSkipped, ImageStarted
from kubenb.model import ClusterImage

__all__ = ["BuildPanel"]

#: Seconds between two redraws of the byte counter: blob chunks arrive far faster than eyes read.
REFRESH = 0.1
#: Seconds between two looks at an interrupt while waiting for a build.
WAIT_STEP = 0.1


class BuildPanel:
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
        self._run = self.engine.with_events(self._on_event)
        self._ended = threading.Event()  # not Thread.join: a Ctrl-C during a join breaks the thread's state
        self._ended.set()
        self._lock = threading.Lock()
        self._image = ""
        self._received = 0
        self._expected = 0
        self._drawn = 0.0
        self.build_button = _button("Build", "kubenb-build", icon="play", button_style="primary")
        self.cancel_button = _button("Cancel", "kubenb-cancel", icon="stop", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="Images")
        self.current = widgets.HTML(value="")
        self.log = widgets.Output(layout=widgets.Layout(max_height="20em", overflow="auto"))
        self.log.add_class("kubenb-log")
        self.summary = widgets.HTML(value=f"Ready to build <code>{html.escape(options.tag)}</code>")
        self.summary.add_class("kubenb-summary")
        self.build_button.on_click(lambda _button: self.start())
        self.cancel_button.on_click(lambda _button: self.cancel())
        self.widget = widgets.VBox([
            widgets.HBox([self.build_button, self.cancel_button, self.progress]),
            self.current, self.log, self.summary,
        ])
        self.widget.add_class("kubenb-build-panel")

    @property
    def running(self) -> bool:
        return not self._ended.is_set()

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
        self._image, self._received, self._expected = "", 0, 0
        self.progress.value, self.progress.max = 0, 1
        self.progress.bar_style = ""
        self.current.value = ""
        self.log.outputs = ()  # not clear_output(): outside a kernel that writes to stdout
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
                self.log.append_stderr(traceback.format_exc())
        try:
            self._finish(image, error)
        finally:
            self._ended.set()

    def _finish(self, image: ClusterImage | None, error: BaseException | None) -> None:
        self.result, self.error = image, error
        self._draw_current()
        self.progress.bar_style = "success" if image is not None else "danger"
        self.summary.value = html.escape(_summary(image, error))
        self.build_button.disabled = False
        self.cancel_button.disabled = True

    def _on_event(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, ImageStarted):
                self._image, self._received, self._expected = event.image, 0, 0
                self.progress.max = max(event.total, 1)
                self._draw_current()
            elif isinstance(event, (ImageDone, ImageSkipped)):
                self.progress.value = min(self.progress.value + 1, self.progress.max)
            elif isinstance(event, BlobStarted):
                self._expected += event.size
            elif isinstance(event, BlobProgress):
                self._received += event.received
                if time.monotonic() - self._drawn >= REFRESH:
                    self._draw_current()
            line = event_line(event)
            if line is not None:
                self.log.append_stdout(line + "\n")

    def _draw_current(self) -> None:
        self._drawn = time.monotonic()
        if not self._image:
            return
        expected = f" of {human_size(self._expected)}" if self._expected else ""
        self.current.value = (f"<code>{html.escape(self._image)}</code>: "
                              f"{human_size(self._received)}{expected} received")


def _button(description: str, css: str, **kwargs: Any) -> Any:
    button = widgets.Button(description=description, **kwargs)
    button.add_class(css)
    return button


def _summary(image: ClusterImage | None, error: BaseException | None) -> str:
    """One line: what was built, or why not (``str(error)`` is the error's one-line form)."""
    if isinstance(error, Cancelled):
        return "Cancelled"
    if error is not None:
        return str(error) if isinstance(error, KubenbError) else f"{type(error).__name__}: {error}"
    assert image is not None
    return f"Built {image.name} ({image.short_id}, {human_size(image.size)}, {len(image.carried_images)} images)"

