"""The next charts render while the current one is read (``kubenb/discover/ahead.py``)."""

from __future__ import annotations

import threading

import pytest

from kubenb.discover.ahead import ahead


def test_results_come_in_order_and_the_next_is_worked_on_meanwhile() -> None:
    started = {n: threading.Event() for n in range(3)}

    def work(n: int) -> int:
        started[n].set()
        return n * 10

    seen = []
    for result in ahead([0, 1, 2], work):
        if result < 20:  # while the caller holds this result, the next item's work has begun
            assert started[result // 10 + 1].wait(timeout=30)
        seen.append(result)
    assert seen == [0, 10, 20]


def test_the_worker_goes_on_to_the_next_items_while_the_caller_holds_a_result() -> None:
    """No hand-over between renders: with depth 2, items 1 and 2 are worked on while the
    caller still holds item 0's result, and item 3 waits until the caller moves on."""
    started = {n: threading.Event() for n in range(4)}

    def work(n: int) -> int:
        started[n].set()
        return n

    results = ahead([0, 1, 2, 3], work, depth=2)
    assert next(results) == 0
    assert started[1].wait(timeout=30) and started[2].wait(timeout=30)
    assert not started[3].wait(timeout=0.2)
    assert list(results) == [1, 2, 3]


def test_an_error_surfaces_at_its_item_after_the_earlier_results() -> None:
    def work(n: int) -> int:
        if n == 1:
            raise ValueError("chart 1 cannot render")
        return n

    results = ahead([0, 1, 2], work)
    assert next(results) == 0
    with pytest.raises(ValueError, match="chart 1"):
        next(results)


def test_a_caller_that_stops_early_leaves_no_work_running() -> None:
    running, release, finished = threading.Event(), threading.Event(), threading.Event()
    begun: list[int] = []

    def work(n: int) -> int:
        begun.append(n)
        if n == 1:
            running.set()
            release.wait(timeout=30)
            finished.set()
        return n

    results = ahead([0, 1, 2, 3], work)
    assert next(results) == 0
    assert running.wait(timeout=30)  # item 1 is in flight, 2 and 3 queued behind it
    threading.Timer(0.2, release.set).start()
    results.close()
    assert finished.is_set()  # close waited for it
    assert begun == [0, 1]  # and never started the queued ones
    assert not [t for t in threading.enumerate() if t.name.startswith("kubenb-render")]


def test_no_items_no_thread() -> None:
    assert list(ahead([], lambda n: n)) == []
