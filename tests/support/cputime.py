"""CPU seconds spent, for the tests that promise bounded work ("ends quickly").

Wall-clock time measures how busy the machine is as much as the work done: on a loaded 2-core
machine a 50 ms check can take seconds. The CPU time of this process and of the children it
waited for counts only the work itself, so a bound on it holds however many other jobs run.
"""

from __future__ import annotations

import resource
from collections.abc import Callable

__all__ = ["cpu_clock"]


def _used() -> float:
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def cpu_clock() -> Callable[[], float]:
    """A stopwatch started now: calling it gives the CPU seconds used since, by this process
    and by the child processes it has waited for (``subprocess.run`` waits)."""
    started = _used()
    return lambda: _used() - started
