"""Running a parsed command, the long ones in a worker thread that Ctrl-C stops where it is."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from kubenb.engine import until_interrupted
from kubenb.errors import Cancelled
from kubenb.events import CancelToken

Command = Callable[[argparse.Namespace], int]
_T = TypeVar("_T")

#: The commands that take long (downloads, uploads, build steps) and stop where they are on
#: Ctrl-C: they run in a worker thread with a cancel token the main thread sets.
#: What an interrupted one leaves, said in its one line.
CANCELLABLE = {
    "build": "nothing was named; the store is as it was",
    "pull": "nothing was named; the store is as it was",
    "save-images": "nothing half-written was kept; run it again to fetch only what is missing",
    "push": "no tag was written at the destination; run it again to go on",
}


def run_command(options: argparse.Namespace) -> int:
    """Run parsed options (the CLI's and ``%kubenb``'s); Ctrl-C stops a long command where it is."""
    run: Command = options.run
    return run_until_interrupted(options, run) if options.command in CANCELLABLE else run(options)


def run_until_interrupted(options: argparse.Namespace, work: Callable[[argparse.Namespace], _T]) -> _T:
    """``work(options)`` through the engine's ``until_interrupted``, with a fresh cancel token in
    ``options`` (``engine_for`` gives it to the engine): Ctrl-C cuts in-flight downloads at once
    and the command ends with one line saying what it left. ``%kubenb`` runs the commands whose
    value it returns through here too. A second Ctrl-C while the work undoes itself stops the
    waiting."""
    token = options.cancel_token = CancelToken()
    hint = CANCELLABLE.get(options.command, "nothing was named; the store is as it was")
    return until_interrupted(lambda: work(options), token,
                             lambda: Cancelled(f"{options.command} interrupted", hint=hint),
                             name=f"kubenb {options.command}")
