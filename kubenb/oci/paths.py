"""Paths inside a rootfs, resolved the way a process chrooted into it would see them.

An image may hold absolute symlinks (``etc/localtime -> /usr/share/zoneinfo/UTC``): inside the
cluster they point into its own rootfs, so on the build host they must too. Resolving one
component at a time, with ``/`` meaning the rootfs and ``..`` stopping at it, gives a path that
is inside the rootfs by construction: no symlink, absolute or relative, can lead out.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from kubenb.errors import StoreError

__all__ = ["MAX_LINKS", "resolve_in_root"]

#: Symlinks followed in one resolution before it counts as a loop (Linux allows 40).
MAX_LINKS = 40


def resolve_in_root(root: Path, relative: str | PurePosixPath, *, follow_last: bool = True) -> Path:
    """``relative`` (a path inside the rootfs ``root``; a leading ``/`` means ``root``) as a host
    path inside ``root``, symlinks followed with chroot semantics.

    Only what lies below ``root`` is resolved (the host's own links above it are the host's
    business), so the answer always starts with ``root``. Every component of it after ``root``
    but the last is a real folder or does not exist yet; the last is followed too unless
    ``follow_last`` is false (to replace or delete a link, not its target). A loop raises
    StoreError.
    """
    pending = [part for part in reversed(PurePosixPath(relative).parts) if part != "/"]
    base = os.fspath(root)
    resolved: list[str] = []  # strings, not Paths: this runs for every member of every layer
    links = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(base, *resolved, part)
        if (pending or follow_last) and os.path.islink(candidate):
            links += 1
            if links > MAX_LINKS:
                raise StoreError(f"{PurePosixPath(relative)}: too many levels of symbolic links",
                                 hint="the rootfs holds a symlink loop; remove it")
            target = PurePosixPath(os.readlink(candidate))
            if target.is_absolute():
                resolved.clear()
            pending.extend(part for part in reversed(target.parts) if part != "/")
            continue
        resolved.append(part)
    return root.joinpath(*resolved)
