"""A build run from a cell: with the progress asked for (widget, text or none), in the
background or in the foreground, where Ctrl-C cancels it and leaves the store as it was."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from IPython import get_ipython
from IPython.display import display

from kubenb.display import EventPrinter
from kubenb.engine import BuildOptions, Engine, until_interrupted, wait_out
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
            wait_out(panel.wait, lambda: not panel.running)
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
    """Build in a worker thread; Ctrl-C cancels the engine and waits, patiently, for the
    build to undo itself, so no build thread outlives the cell."""
    return until_interrupted(lambda: engine.build(options, builder=builder), engine.cancel_token, _interrupted,
                             name="kubenb build", patient=True)


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
