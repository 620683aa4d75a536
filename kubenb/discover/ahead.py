"""Work ahead: the next items' slow work runs in a worker thread while the caller uses the
current one.

A chart renders in Helm's Go engine, which leaves Python's interpreter free, while its
documents are parsed and walked in Python: with the next charts rendering meanwhile, the two
overlap on a machine with two cores. The worker goes from one render straight to the next
(up to ``depth`` items beyond the one the caller holds), so it never waits for the caller to
pick up a result: handing each render over one at a time left a thread wake-up between
renders, 1 to 2 ms each (``docs/benchmarks.md``). Results come in the items' order and an
error surfaces where it would have without the overlap: when its item is reached, after
every earlier item's results. There is one worker, so the work stays serial (Helm's log
capture holds descriptor 2 for one render at a time).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["ahead"]

T = TypeVar("T")
R = TypeVar("R")


def ahead(items: Sequence[T], work: Callable[[T], R], *, depth: int = 2) -> Iterator[R]:
    """``work(item)`` of each item in order, done by one worker up to ``depth`` items ahead of
    the caller (their results wait in memory: a few rendered charts). A caller that stops
    early (an error, a closed generator) cancels what has not started and waits for the one
    piece of work in flight, so nothing runs on after the caller has returned."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubenb-render") as worker:
        queued: deque[Future[R]] = deque()
        submitted = 0
        try:
            for _ in range(len(items)):
                while submitted < len(items) and len(queued) <= depth:
                    queued.append(worker.submit(work, items[submitted]))
                    submitted += 1
                yield queued.popleft().result()
        finally:
            for future in queued:
                future.cancel()
