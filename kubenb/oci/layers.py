"""The one layer applier: an OCI layer tar over a rootfs folder, confined to that folder.

A layer is a tar of changes: ``.wh.NAME`` deletes ``NAME`` of the layers below, and
``.wh..wh..opq`` in a folder hides everything the layers below put there. Layers come from
images made elsewhere, so every member, whiteout and hard link is resolved inside the rootfs
(chroot semantics, see ``paths``) before anything is written or deleted, and a member that
could only mean harm (``..``, a whiteout of an empty name, ``.`` or ``..``, a whiteout used as
a folder, a hard link to nothing) refuses the whole layer with one line naming the layer and
the member. Symlinks are kept as written (an image may hold absolute ones); they are followed
only through ``resolve_in_root``. Devices, FIFOs and sockets are skipped: a cluster rootfs
has none, and an unprivileged user could not create them anyway.

The tar is read as a stream, one member at a time, so no blob is ever held in memory. A
hostile member late in a layer may come after earlier members were applied: callers apply
into a folder they can throw away (export writes a temporary sibling and renames it into
place; a build's rootfs is a temporary workspace).
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from kubenb.errors import StoreError, is_disk_full
from kubenb.oci.paths import resolve_in_root

__all__ = ["OPAQUE", "WHITEOUT", "apply_layer"]

WHITEOUT = ".wh."
#: The marker that hides the lower layers' content of its folder.
OPAQUE = ".wh..wh..opq"
#: Other names with this prefix are aufs bookkeeping (``.wh..wh.plnk``...): ignored, as docker does.
RESERVED = ".wh..wh."
#: 64 KiB: reads of 1 MiB allocate fresh pages each time and copied a 300 MB file 2-3 times slower
CHUNK = 64 * 1024
ILLEGAL_TARGETS = ("", ".", "..")

def apply_layer(stream: BinaryIO, root: Path, digest: str) -> None:
    """Apply the (gzip or plain) layer tar read from ``stream`` over the folder ``root``.

    ``digest`` names the layer in errors. Raises StoreError, with one line naming the layer
    and the member, for a hostile or damaged layer.
    """
    applier = _Applier(root.resolve(), digest)
    try:
        with tarfile.open(fileobj=stream, mode="r|*", bufsize=CHUNK) as tar:  # not 10 KiB reads
            for member in tar:
                applier.apply(tar, member)
    except (tarfile.TarError, EOFError, OSError) as error:
        if is_disk_full(error):
            raise  # the layer is fine; the caller knows which disk and says so
        raise StoreError(f"layer {digest} could not be applied: {error}",
                         hint="run check; the layer may be damaged") from None


class _Applier:
    """One layer being applied: ``kept`` holds what it wrote and their folders, which its
    whiteouts and opaque markers must leave alone (they hide only the layers below)."""

    def __init__(self, root: Path, digest: str) -> None:
        self.root = root
        self.digest = digest
        self.kept: set[Path] = set()

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = self.parts(member.name, member)
        if not parts:
            return  # the rootfs folder itself
        *folders, name = parts
        if any(folder.startswith(WHITEOUT) for folder in folders):
            raise self.hostile(member, "has a whiteout as a folder")
        if name == OPAQUE:
            self.clear(resolve_in_root(self.root, PurePosixPath(*folders)))
        elif name.startswith(RESERVED):
            return
        elif name.startswith(WHITEOUT):
            self.whiteout(member, folders, name[len(WHITEOUT):])
        else:
            target = resolve_in_root(self.root, PurePosixPath(*parts), follow_last=False)
            if self.write(tar, member, target):
                self.keep(target)

    def parts(self, name: str, member: tarfile.TarInfo) -> tuple[str, ...]:
        """The components of a member (or hard link) name; ``/`` and ``.`` mean the rootfs,
        ``..`` is refused: a layer that needs it to say what it means is not a layer."""
        parts = tuple(part for part in PurePosixPath(name).parts if part not in ("/", "."))
        if ".." in parts:
            named = "" if name == member.name else f"links to {name!r}, which "
            raise self.hostile(member, f"{named}climbs out of the rootfs with '..'")
        return parts

    def hostile(self, member: tarfile.TarInfo, why: str) -> StoreError:
        return StoreError(f"layer {self.digest} is hostile: member {member.name!r} {why}",
                          hint="nothing was written; do not use this image")

    def keep(self, path: Path) -> None:
        while path != self.root and path not in self.kept:
            self.kept.add(path)
            path = path.parent

    def whiteout(self, member: tarfile.TarInfo, folders: list[str], target: str) -> None:
        if target in ILLEGAL_TARGETS:
            raise self.hostile(member, f"is a whiteout of {target or 'an empty name'!r}, which names no file")
        path = resolve_in_root(self.root, PurePosixPath(*folders, target), follow_last=False)
        if path not in self.kept:
            _remove(path)

    def clear(self, folder: Path) -> None:
        """Hide what lower layers put in ``folder``: remove every child this layer did not write."""
        if folder.is_dir() and not folder.is_symlink():
            for child in list(folder.iterdir()):
                if child not in self.kept:
                    _remove(child)

    def write(self, tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> bool:
        """Write one member at ``target`` (replacing what is there); False if it was skipped."""
        if member.isdir():
            if os.path.lexists(target) and (target.is_symlink() or not target.is_dir()):
                _remove(target)
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(member.mode & 0o777 | 0o700)
            return True
        if not (member.issym() or member.islnk() or member.isfile()):
            return False  # devices, FIFOs: skipped (see the module docstring)
        source = self.link_source(member) if member.islnk() else None
        if not target.parent.is_dir():  # a stat: cheaper than a failing mkdir for every member
            target.parent.mkdir(parents=True)
        _remove(target)
        if member.issym():
            os.symlink(member.linkname, target)
        elif source is not None:
            os.link(source, target, follow_symlinks=False)
        else:
            _copy(tar, member, target)
        return True

    def link_source(self, member: tarfile.TarInfo) -> Path:
        """The file a hard link names, inside the rootfs; it must exist and not be a folder."""
        parts = self.parts(member.linkname, member)
        source = resolve_in_root(self.root, PurePosixPath(*parts), follow_last=False) if parts else self.root
        if not os.path.lexists(source) or (source.is_dir() and not source.is_symlink()):
            raise self.hostile(member, f"is a hard link to {member.linkname!r}, which is no file of the rootfs")
        return source


def _remove(path: Path) -> None:
    """Delete ``path`` itself: a link is unlinked, never followed; a folder goes whole."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _copy(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = tar.extractfile(member)
    assert source is not None  # a regular file always has contents
    with target.open("xb") as out:
        while chunk := source.read(CHUNK):
            out.write(chunk)
    target.chmod(member.mode & 0o777)
    os.utime(target, (member.mtime, member.mtime))
