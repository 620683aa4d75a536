"""The next chart renders while the current one is read (``kubenb/discover/ahead.py``)."""

from __future__ import annotations

import threading

import pytest

from kubenb.discover.ahead import one_ahead


def test_results_come_in_order_and_the_next_is_worked_on_meanwhile() -> None:
    started = {n: threading.Event() for n in range(3)}

    def work(n: int) -> int:
        started[n].set()
        return n * 10

    seen = []
    for result in one_ahead([0, 1, 2], work):
        if result < 20:  # while the caller holds this result, the next item's work has begun
            assert started[result // 10 + 1].wait(timeout=30)
        seen.append(result)
    assert seen == [0, 10, 20]


def test_an_error_surfaces_at_its_item_after_the_earlier_results() -> None:
    def work(n: int) -> int:
        if n == 1:
            raise ValueError("chart 1 cannot render")
        return n

    results = one_ahead([0, 1, 2], work)
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

    results = one_ahead([0, 1, 2], work)
    assert next(results) == 0
    assert running.wait(timeout=30)  # item 1 is in flight
    threading.Timer(0.2, release.set).start()
    results.close()
    assert finished.is_set()  # close waited for it
    assert begun == [0, 1]  # and never started the next
    assert not [t for t in threading.enumerate() if t.name.startswith("kubenb-render")]


def test_no_items_no_thread() -> None:
    assert list(one_ahead([], lambda n: n)) == []
