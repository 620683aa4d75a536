"""Cancel work running in another thread, as a Cancel button or Ctrl-C does, and get its outcome."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection

from kubenb.events import CancelToken

#: Only so that a broken cancel fails the test instead of hanging it; never a speed limit.
GENEROUS = 120.0


def cancelled_when(ready: Collection[threading.Event], work: Callable[[CancelToken], object]) -> object:
    """Run ``work(token)`` in a thread, cancel the token once every event of ``ready`` is set
    (e.g. a request the proxy holds), and return what ``work`` returned or raised. The work must end by itself after
    the cancel: a request held for ever is only ended by the cancel, so its ending proves it."""
    token = CancelToken()
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work(token))
        except BaseException as error:  # the caller asserts what it was
            outcome.append(error)

    worker = threading.Thread(target=run, name="cancelled work", daemon=True)
    worker.start()
    for event in ready:
        assert event.wait(GENEROUS), "the work never reached the point to cancel at"
    token.cancel()
    worker.join(GENEROUS)
    assert not worker.is_alive(), "the work did not stop when cancelled"
    return outcome[0]
