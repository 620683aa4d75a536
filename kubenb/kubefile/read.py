"""Reading a Kubefile from disk (the plan in ``plan.py`` is the one caller a build or preview needs).

Only a regular file of sensible size and UTF-8 text is read, so that ``-f /dev/zero``, a FIFO
with no writer or a binary file each stop with one line instead of hanging or filling memory.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from kubenb.errors import KubefileError
from kubenb.kubefile.expand import expand
from kubenb.kubefile.parser import parse
from kubenb.model import Kubefile

__all__ = ["MAX_BYTES", "file_kind", "load", "read_kubefile"]

#: A Kubefile is a handful of lines; anything far larger is a mistake, not a Kubefile.
MAX_BYTES = 4 * 1024 * 1024


def read_kubefile(path: str | Path, data: bytes | None = None) -> str:
    """The Kubefile's text; unreadable, binary or non-UTF-8 files are a ``KubefileError``.

    Only a regular file is read: a FIFO, socket or device (``-f /dev/zero``) is refused, and it
    is opened without blocking so that a FIFO with no writer cannot hang kubenb. ``data``, when
    given, is its bytes as read already (by a build keying its record on them): checked alike.
    """
    path = Path(path)
    hint = "give its path with -f, or run in the folder that holds it"
    try:
        read = _read_regular(path) if data is None else data
    except OSError as error:
        raise KubefileError(f"cannot read the Kubefile: {error.strerror}", file=path, hint=hint) from None
    if isinstance(read, str):
        raise KubefileError(f"the Kubefile is {read}, not a regular file", file=path, hint=hint)
    if read is None or len(read) > MAX_BYTES:
        raise KubefileError(f"the Kubefile is larger than {MAX_BYTES // 2**20} MiB", file=path)
    data = read
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise KubefileError("the Kubefile holds a NUL character", file=path, line=line,
                            hint="a Kubefile is text; remove the NUL byte")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise KubefileError(
            "the Kubefile is not UTF-8 text", file=path, line=line, hint="save it as UTF-8"
        ) from None


def _read_regular(path: Path) -> bytes | str | None:
    """The bytes of a regular file of at most MAX_BYTES; else None (too large) or what it is.

    Checked before opening (opening a socket fails, a FIFO may block) and again after.
    """
    kind = file_kind(os.stat(path).st_mode)
    if kind != "a regular file":
        return kind
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind != "a regular file":
            return kind
        data = file.read(MAX_BYTES + 1)
    return data if len(data) <= MAX_BYTES else None


def file_kind(mode: int) -> str:
    """What ``st_mode`` describes, in words (for messages refusing anything but regular files)."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def load(path: str | Path, build_args: Mapping[str, str] | None = None, *, data: bytes | None = None) -> Kubefile:
    """Read, parse and expand the Kubefile at ``path`` (``data``: its bytes, read already):
    what a build or preview starts from."""
    return expand(parse(read_kubefile(path, data), path=str(path)), build_args)
