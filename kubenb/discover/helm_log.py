"""Helm's own log lines, taken from file descriptor 2 while the engine renders.

Helm's engine (Go, inside helm-python-sdk's native library) reports some problems of values
with Go's ``log`` package, straight to file descriptor 2: ``2026/12/03 13:05:20 warning:
destination for web.a.b is a table. Ignoring non-table value (1)``. In a terminal that is a
stray line among kubenb's output, in a notebook a red box; and the SDK's log handler does not
receive them. So the render runs with descriptor 2 pointing at a temporary file, and the lines
that Go's logger wrote become warnings of the image list. Anything else written meanwhile
(another thread of the process printing to stderr) is passed on to the real stderr unchanged.

Descriptor 2 belongs to the whole process, so one capture at a time holds a lock: two renders
from two threads (widgets discover in workers) would otherwise restore each other's copy.
A temporary file, not a pipe: a pipe that nobody reads would block Go once it is full.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = ["helm_log_lines"]

#: Go's default logger prefix: date and time, then the message.
_GO_LOG = re.compile(rb"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? (.*)$")
_LOCK = threading.Lock()
_STDERR = 2


@contextmanager
def helm_log_lines() -> Iterator[list[str]]:
    """Capture descriptor 2 for the ``with`` body; the list fills with Go log messages (without
    their time stamp) when the body ends. Without a descriptor 2 (some embedded interpreters)
    nothing is captured."""
    messages: list[str] = []
    with _LOCK:
        try:
            saved = os.dup(_STDERR)
        except OSError:
            yield messages
            return
        try:
            with tempfile.TemporaryFile() as capture:
                _flush_python_stderr()
                os.dup2(capture.fileno(), _STDERR)
                try:
                    yield messages
                finally:
                    _flush_python_stderr()
                    os.dup2(saved, _STDERR)
                    capture.seek(0)
                    messages += _sort_out(capture.read(), saved)
        finally:
            os.close(saved)


def _sort_out(captured: bytes, real_stderr: int) -> list[str]:
    """Go log messages of ``captured``; its other lines go on to the real stderr."""
    messages: list[str] = []
    others: list[bytes] = []
    for line in captured.splitlines(keepends=True):
        match = _GO_LOG.match(line.rstrip(b"\r\n"))
        if match:
            messages.append(match[1].decode("utf-8", errors="replace").strip())
        else:
            others.append(line)
    if others:
        with suppress(OSError):  # the real stderr is gone: nothing to pass them on to
            os.write(real_stderr, b"".join(others))
    return messages


def _flush_python_stderr() -> None:
    """Python's buffered stderr writes to descriptor 2 too: what it holds belongs before or
    after the capture, not inside it."""
    with suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()
