"""A build run from a cell: with the progress asked for (widget, text or none), in the
background or in the foreground, where Ctrl-C cancels it and leaves the store as it was."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython import get_ipython
from IPython.display import display

from kubenb.display import EventPrinter
from kubenb.engine import BuildOptions, Engine
from kubenb.errors import Cancelled
from kubenb.model import ClusterImage


def run_build(options: BuildOptions, root: Path | None, builder: str, progress: str, background: bool) -> Any:
    """A build with the progress asked for; Ctrl-C cancels it and leaves the store as it was.

    In the background the running panel is returned, not displayed: the cell's result shows it,
    once (a variable keeps it unseen, as any widget)."""
    if background or widget_progress(progress):
        from kubenb.widgets import BuildPanel  # noqa: PLC0415

        panel = BuildPanel(options, engine=Engine(root), builder=builder)
        try:
            if progress != "none" and not background:  # a background panel is the cell's value
                display(panel)  # type: ignore[no-untyped-call]
            panel.start()
            if background:
                return panel
            image = panel.wait()
        except KeyboardInterrupt:
            panel.cancel()  # unconditionally: whatever the interrupt broke, the token is set
            _wait_out(panel.wait, lambda: not panel.running)
            if panel.result is None:
                raise _interrupted() from None
            return panel.result  # named before the interrupt took effect: say so by returning it
        if panel.error is not None:
            raise panel.error
        return image
    if progress == "none":
        return _until_interrupted(Engine(root), options, builder)
    with EventPrinter(sys.stdout) as printer:
        return _until_interrupted(Engine(root, events=printer), options, builder)


def _until_interrupted(engine: Engine, options: BuildOptions, builder: str) -> ClusterImage:
    """Build in a thread while this one waits for it; Ctrl-C (KeyboardInterrupt, which reaches
    only this thread) cancels the engine, and the build stops where it is and undoes itself.

    The wait is on an event, not ``Thread.join``: a join that KeyboardInterrupt breaks marks the
    thread as ended while it still runs (Python 3.11), and the build's clean-up would be missed.
    """
    done = threading.Event()
    outcome: list[ClusterImage | BaseException] = []

    def run() -> None:
        try:
            outcome.append(engine.build(options, builder=builder))
        except BaseException as error:  # handed to the waiting thread, which raises it
            outcome.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name="kubenb build", daemon=True).start()
    try:
        while not done.wait(0.1):  # short waits: a simulated Ctrl-C (interrupt_main) is seen between them
            pass
    except KeyboardInterrupt:
        engine.cancel()
        _wait_out(done.wait, done.is_set)
        if not isinstance(outcome[0], ClusterImage):
            raise _interrupted() from None
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _wait_out(wait: Callable[[float], object], ended: Callable[[], bool]) -> None:
    """Wait for a cancelled build to undo itself (a second or so: the cancel cut its downloads).

    Further interrupts meanwhile are let pass: leaving now would leave a build thread behind
    the cell, writing into whatever cell runs next, and maybe naming the image after all.
    """
    while not ended():
        with contextlib.suppress(KeyboardInterrupt):
            wait(0.1)


def _interrupted() -> Cancelled:
    return Cancelled("the build was interrupted", hint="nothing was named; the store is as it was")


def widget_progress(progress: str) -> bool:
    """Widgets for ``widget``, and for ``auto`` inside a kernel that can show them."""
    if progress == "widget":
        return True
    if progress != "auto":
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
