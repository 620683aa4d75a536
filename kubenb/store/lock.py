"""The store lock: one exclusive ``flock`` on ``ROOT/lock`` per store, re-entrant per object.

Two builds on one store must serialise (they rewrite ``index.json`` and garbage collecting
under a running build would delete its fresh layers), so every writer takes this lock. It is
re-entrant inside one ``StoreLock`` so an engine holding it for a whole build can still call
``Store`` methods that take it themselves: ``flock`` on a second descriptor of the same file
would otherwise wait forever for ourselves. The kernel drops the lock when a process dies,
so a SIGKILLed build never leaves the store locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["StoreLock"]


class StoreLock:
    """Exclusive across processes (``flock``), re-entrant within one thread of this object."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Block until this process owns the store, then keep it for the ``with`` block."""
        with self._thread_lock:
            if self._depth == 0:
                self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release()

    @contextlib.contextmanager
    def hold_if_free(self) -> Iterator[bool]:
        """Own the store for the ``with`` block if no other process does now (True), else
        do not wait (False): for work that may as well be left to a caller who waits."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
