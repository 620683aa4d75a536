"""A full disk, said plainly: which filesystem, while writing what, and how much to free.

Every writer of kubenb cleans up after a failed write (temp files, staging folders, build
folders), so a full disk leaves the store as it was; this module only makes the message
useful. Without it a full disk reads as "the layer may be damaged" or "not a readable OCI
archive", which sends the user after the wrong problem.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from kubenb.errors import StoreError, is_disk_full

__all__ = ["no_space", "translating_disk_full"]

_MB = 1024 * 1024



def no_space(folder: Path, what: str, needed: int = 0) -> StoreError:
    """The error for a full disk under ``folder`` while writing ``what``.

    ``needed`` is the size of what was being written, as far as the caller knows it; the
    message asks to free what of it is not free now (at least 1 MB).
    """
    existing = _existing(folder)
    device, mount_point = _mount_of(existing)
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        free = 0
    megabytes = max(1, math.ceil((needed - free) / _MB))
    return StoreError(f"no space left on {device} (mounted at {mount_point}) while writing {what}",
                      hint=f"free {megabytes} MB there (or more), then run it again")


@contextlib.contextmanager
def translating_disk_full(folder: Path, what: str, needed: Callable[[], int] = lambda: 0) -> Iterator[None]:
    """Turn a full disk inside the block into :func:`no_space`; other errors pass unchanged."""
    try:
        yield
    except OSError as error:
        if not is_disk_full(error):
            raise
        raise no_space(folder, what, _size(needed)) from None


def _size(needed: Callable[[], int]) -> int:
    try:
        return needed()
    except OSError:
        return 0


def _existing(folder: Path) -> Path:
    path = Path(os.path.abspath(folder))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mount_of(path: Path) -> tuple[str, str]:
    """(device, mount point) of the filesystem holding ``path``, from /proc/self/mounts."""
    best = ("the filesystem", "/")
    real = os.path.realpath(path)
    with contextlib.suppress(OSError), open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) < 2:
                continue
            point = fields[1].replace("\\040", " ")
            if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[1]):
                best = (fields[0], point)
    return best
