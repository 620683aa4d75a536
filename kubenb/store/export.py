"""The merged rootfs of an image: its layers applied in order, with OCI whiteouts.

A layer is a gzip tar of changes: ``.wh.NAME`` deletes ``NAME`` of the layers below, and
``.wh..wh..opq`` in a folder hides everything the layers below put there. Layers of a
loaded or pulled image come from elsewhere, so no member may write outside the destination:
no absolute path, no ``..``, no write through a symlink that leads out, no hard link to a
file outside. Symlinks themselves are kept as they are (a rootfs may well hold absolute
ones); they are never followed while writing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from kubenb.errors import StoreError
from kubenb.store.blobs import CHUNK, Blobs
from kubenb.store.image import Layer
from kubenb.store.space import is_disk_full

__all__ = ["export"]

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def export(blobs: Blobs, layers: Sequence[Layer], destination: Path) -> None:
    """Apply ``layers`` (lowest first) into ``destination``, which must be new or empty."""
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise StoreError(f"{destination} exists and is not an empty folder", hint="export into a new folder")
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    for layer in layers:
        with blobs.open(layer.digest) as blob:
            try:
                with tarfile.open(fileobj=blob, mode="r|*") as tar:
                    _apply(tar, root, layer)
            except (tarfile.TarError, EOFError, OSError) as error:
                if is_disk_full(error):
                    raise  # a full disk, said as such by Store.export; the layer is fine
                raise StoreError(f"layer {layer.digest} could not be applied: {error}",
                                 hint="run check; the layer may be damaged") from None


def _apply(tar: tarfile.TarFile, root: Path, layer: Layer) -> None:
    """Apply one layer; ``written`` keeps what it added, which its own opaque marker keeps."""
    written: set[Path] = set()
    for member in tar:
        relative = _relative(member.name, layer)
        if relative is None:
            continue
        target = root / relative
        _check_parent(target, root, member.name, layer)
        if target.name == OPAQUE:
            _clear(target.parent, written)
        elif target.name.startswith(WHITEOUT):
            _remove(target.parent / target.name[len(WHITEOUT):])
        else:
            _write(tar, member, target, root, layer)
            written.add(target)


def _relative(name: str, layer: Layer) -> PurePosixPath | None:
    """The member's path inside the rootfs, refusing absolute paths and ``..``."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise StoreError(f"layer {layer.digest}: member {name!r} escapes the rootfs", hint="the image is hostile")
    parts = [part for part in path.parts if part != "."]
    return PurePosixPath(*parts) if parts else None


def _check_parent(target: Path, root: Path, name: str, layer: Layer) -> None:
    """The folder ``target`` goes into must really be inside ``root`` (no symlink out)."""
    parent = target.parent.resolve()
    if parent != root and root not in parent.parents:
        raise StoreError(f"layer {layer.digest}: member {name!r} would be written through a link out of the rootfs",
                         hint="the image is hostile")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _clear(folder: Path, written: set[Path]) -> None:
    """Hide what lower layers put in ``folder``: remove every child this layer did not write."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for child in folder.iterdir():
        if child not in written and not any(child in path.parents for path in written):
            _remove(child)


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, root: Path, layer: Layer) -> None:
    if member.isdir():
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            _remove(target)
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(member.mode & 0o777 | 0o700)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        _remove(target)
    if member.issym():
        os.symlink(member.linkname, target)
    elif member.islnk():
        _link(member, target, root, layer)
    elif member.isfile():
        _copy(tar, member, target)
    # devices and fifos are skipped: a cluster rootfs has none and an unprivileged user can't make them


def _link(member: tarfile.TarInfo, target: Path, root: Path, layer: Layer) -> None:
    source = _relative(member.linkname, layer)
    if source is None:
        raise StoreError(f"layer {layer.digest}: hard link {member.name!r} has no target", hint="the image is hostile")
    source_path = root / source
    resolved = source_path.parent.resolve() / source_path.name
    if resolved.parent != root and root not in resolved.parent.parents:
        raise StoreError(f"layer {layer.digest}: hard link {member.name!r} points out of the rootfs",
                         hint="the image is hostile")
    os.link(source_path, target, follow_symlinks=False)


def _copy(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = tar.extractfile(member)
    assert source is not None  # a regular file always has contents
    with target.open("xb") as out:
        while chunk := source.read(CHUNK):
            out.write(chunk)
    target.chmod(member.mode & 0o777)
    os.utime(target, (member.mtime, member.mtime))
