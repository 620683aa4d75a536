"""Cheap proof that a file is unchanged: its stat, trusted only when a later write must show in it.

A content hash proves a file unchanged but reads every byte; the stat (mode, size, mtime,
ctime, inode) costs one system call. ``ctime`` is the one to trust: any write, ``chmod`` or
``utime`` sets it to the kernel's clock, and no call sets it back (``touch -d`` sets the
mtime only). The clock has a granularity (a kernel tick of 1 to 10 ms on local file
systems, whole seconds on some others), so a file written in the tick in which it is looked
at can be written again, with the same size, and keep the same times. As git's index does,
a stat is therefore *settled* only when the file's times are older than the moment it was
looked at by more than that granularity (``MARGIN_NS``, or ``COARSE_MARGIN_NS`` for a file
system whose times are whole seconds); an unsettled stat proves nothing and the content is
hashed again by whoever checks it, who may then keep the now settled stat.

The listing of a folder (names, kinds and symlink targets, not contents) is what decides which
files a COPY takes (globs, folders walked); it is hashed whole.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import NamedTuple

__all__ = ["COARSE_MARGIN_NS", "MARGIN_NS", "Fingerprint", "Fingerprints", "listing", "settled", "signature"]

#: Older than this before the moment it was looked at, a file's times show any later write:
#: several kernel ticks (HZ 100 gives 10 ms ticks) with room to spare.
MARGIN_NS = 50_000_000
#: The same for a file system that keeps whole seconds (FAT: two seconds).
COARSE_MARGIN_NS = 3_000_000_000
_CHUNK = 2**20


def signature(info: os.stat_result) -> list[int]:
    """What a write, a rename over the file or a mode change alters."""
    return [info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def settled(info: os.stat_result, looked_at_ns: int) -> bool:
    """Whether any write after ``looked_at_ns`` (``time.time_ns()`` taken before the stat)
    must change the stat ``info``: its times are older than the clock's granularity."""
    coarse = info.st_mtime_ns % 10**9 == 0 and info.st_ctime_ns % 10**9 == 0
    margin = COARSE_MARGIN_NS if coarse else MARGIN_NS
    return max(info.st_mtime_ns, info.st_ctime_ns) < looked_at_ns - margin


class Fingerprint(NamedTuple):
    """A file's content hash with the stat it had the whole time it was hashed (a named tuple:
    an unchanged rebuild answers without loading dataclasses)."""

    signature: list[int]
    sha256: str  # hex
    settled: bool  # the stat alone proves the content unchanged (see the module docstring)


class Fingerprints:
    """The files a build hashed (its COPY sources), each with the stat it had meanwhile.

    ``digest`` is what the build cache keys use; the record of an unchanged rebuild keeps the
    fingerprints, so that the next build stats these files instead of hashing them.
    """

    def __init__(self, known: dict[str, Fingerprint] | None = None) -> None:
        self.seen: dict[str, Fingerprint] = {}
        self.known = known or {}  # the last build's, by path: a settled stat that still holds is the hash

    def digest(self, path: Path) -> bytes:
        """The sha256 of ``path``'s bytes: the last build's when its settled stat still holds,
        else read 1 MiB at a time (a 1.5 GB source read whole cost 1.5 GB)."""
        known = self.known.get(str(path))
        if known is not None and known.settled and signature(os.stat(path)) == known.signature:
            found = known
        else:
            found = fingerprint(path)
        self.seen[str(path)] = found
        return bytes.fromhex(found.sha256)


def fingerprint(path: Path) -> Fingerprint:
    """Hash ``path``, stat before and after: a stat that moved meanwhile is never settled."""
    looked_at = time.time_ns()
    before = os.stat(path)
    content = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            content.update(chunk)
    after = os.stat(path)
    same = signature(before) == signature(after)
    return Fingerprint(signature(after), content.hexdigest(), same and settled(after, looked_at))


def unchanged(path: Path, signature_then: list[int], sha256: str | None, was_settled: bool) -> Fingerprint | None:
    """``path``'s fingerprint now when it still holds what it held (mode and bytes), else None.
    The stat answers when it was settled and has not moved; otherwise the bytes are hashed
    (``sha256`` None: there is nothing to compare them with, so not proven)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if was_settled and signature(info) == signature_then:
        return Fingerprint(signature_then, sha256 or "", True)
    if sha256 is None or info.st_mode != signature_then[0]:
        return None
    try:
        now = fingerprint(path)
    except OSError:
        return None
    return now if now.sha256 == sha256 and now.signature[0] == signature_then[0] else None


def listing(root: Path, *, skip: Path | None = None) -> str:
    """A hash of every name below ``root`` with its kind and, for a symlink, its target;
    symlinked folders are followed (once each). ``skip`` (the store, when it lies inside) is
    left out. Contents are not read: only which files there are."""
    digest = hashlib.sha256()
    skipped = _identity(skip) if skip is not None else None
    visited = {identity} if (identity := _identity(root)) is not None else set()

    def walk(folder: str, prefix: str) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            digest.update(f"{prefix}\0unreadable {error.errno}\n".encode())
            return
        for entry in entries:
            name = f"{prefix}{entry.name}"
            try:
                link = os.readlink(entry.path) if entry.is_symlink() else None
                is_dir = entry.is_dir()
                kind = "d" if is_dir else "f" if entry.is_file() else "o"
            except OSError as error:  # a symlink loop: the build says so; here it is one more name
                digest.update(f"{name}\0error {error.errno}\n".encode())
                continue
            digest.update(f"{name}\0{kind}\0{link}\n".encode())
            identity = _identity(Path(entry.path)) if is_dir else None
            if identity is not None and identity != skipped and identity not in visited:
                visited.add(identity)
                walk(entry.path, f"{name}/")

    walk(str(root), "")
    return digest.hexdigest()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino
