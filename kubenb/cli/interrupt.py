"""Running a parsed command, the long ones in a worker thread that Ctrl-C stops where it is."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from typing import TypeVar

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
    """Run ``work(options)`` in a worker thread while this one waits; Ctrl-C (KeyboardInterrupt,
    which only the main thread receives) sets the command's cancel token, so in-flight downloads
    are cut at once and the work undoes itself, and then raises ``Cancelled``. ``%kubenb`` runs
    the commands whose value it returns through here too.

    Without this, the interrupt lands in the main thread while the download pool's workers go
    on: every download in flight finished before the command could stop. The wait is on an
    event, not ``Thread.join``: a join broken by KeyboardInterrupt can mark the thread ended
    while it still runs. A second Ctrl-C while the work undoes itself stops the waiting.
    """
    token = options.cancel_token = CancelToken()
    done = threading.Event()
    outcome: list[_T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(work(options))
        except BaseException as error:  # handed to the main thread, which raises it
            outcome.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name=f"kubenb {options.command}", daemon=True).start()
    try:
        while not done.wait(0.1):  # short waits: a simulated Ctrl-C (interrupt_main) is seen between them
            pass
    except KeyboardInterrupt:
        token.cancel()
        done.wait()  # quick: the cancel shut the sockets down and killed any RUN
        if isinstance(outcome[0], BaseException):  # ended by the cancel (or failed meanwhile): nothing named
            hint = CANCELLABLE.get(options.command, "nothing was named; the store is as it was")
            raise Cancelled(f"{options.command} interrupted", hint=hint) from None
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]
