"""One step ahead: the next item's slow work runs in a worker thread while the caller uses
the current one.

A chart renders in Helm's Go engine, which leaves Python's interpreter free, while its
documents are parsed and walked in Python: with the next chart rendering meanwhile, the two
overlap on a machine with two cores. Results come in the items' order and an error surfaces
where it would have without the overlap: when its item is reached, after every earlier
item's results. Only one item is worked on at a time, so the work stays serial (Helm's log
capture holds descriptor 2 for one render at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["one_ahead"]

T = TypeVar("T")
R = TypeVar("R")


def one_ahead(items: Sequence[T], work: Callable[[T], R]) -> Iterator[R]:
    """``work(item)`` of each item in order, the next item's started as the current one's is
    handed over. A caller that stops early (an error, a closed generator) waits for the one
    piece of work in flight, so nothing runs on after the caller has returned."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubenb-render") as worker:
        pending: Future[R] = worker.submit(work, items[0])
        try:
            for index in range(len(items)):
                result = pending.result()
                if index + 1 < len(items):
                    pending = worker.submit(work, items[index + 1])
                yield result
        finally:
            pending.cancel()
