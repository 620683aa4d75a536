"""Long work in a worker thread, so that Ctrl-C cancels it instead of abandoning it.

KeyboardInterrupt reaches only the main thread. Work run there directly would be cut between
two statements while the download pool's workers go on (every download in flight finished
before the command stopped), or, in a kernel, leave a build thread behind the cell that names
its image later. So the CLI and the magics run the work here: the main thread only waits, and
on Ctrl-C it sets the work's cancel token and waits for the work to undo itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

from kubenb.errors import Cancelled
from kubenb.events import CancelToken

__all__ = ["until_interrupted"]

_T = TypeVar("_T")
#: Seconds between two looks at an interrupt: a simulated Ctrl-C (``interrupt_main``) is only
#: seen between waits, and a wait on an event (not ``Thread.join``, which a KeyboardInterrupt
#: can leave marking a running thread as ended) returns at once when the work ends.
WAIT_STEP = 0.1


def until_interrupted(work: Callable[[], _T], token: CancelToken, interrupted: Callable[[], Cancelled], *,
                      name: str, patient: bool = False) -> _T:
    """``work()``'s result, the work run in a worker thread; on Ctrl-C, ``token`` is set and,
    once the work has undone itself, ``interrupted()`` is raised (unless the work had finished
    before the cancel reached it: then its result stands).

    ``patient``: further interrupts while the work undoes itself are let pass (a notebook cell
    must not return with the work still running); otherwise a second Ctrl-C stops the waiting
    (a terminal user who insists).
    """
    done = threading.Event()
    outcome: list[_T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # handed to the waiting thread, which raises it
            outcome.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        while not done.wait(WAIT_STEP):
            pass
    except KeyboardInterrupt:
        token.cancel()
        wait_out(done.wait, done.is_set) if patient else done.wait()
        if isinstance(outcome[0], BaseException):
            raise interrupted() from None
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def wait_out(wait: Callable[[float], object], ended: Callable[[], bool]) -> None:
    """Wait until ``ended()``, letting interrupts pass: leaving early would leave the work
    running behind the caller, writing into whatever runs next."""
    while not ended():
        with contextlib.suppress(KeyboardInterrupt):
            wait(WAIT_STEP)
