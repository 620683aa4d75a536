"""Layers of a build: what changed in the rootfs, as a tar with whiteouts (``kubenb.oci``
applies them back).

A layer is the difference an instruction made. Comparing two snapshots of the rootfs (size,
mtime, mode, link target) finds it without copying anything; the tar is written with fixed
owners and times so an unchanged input gives the same layer, which is what the build cache
and reproducible image IDs need.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kubenb.oci import WHITEOUT

__all__ = ["Snapshot", "changes", "file_header", "padded", "snapshot", "write_layer"]

Snapshot = dict[str, tuple[int, int, int, str]]


def snapshot(root: Path) -> Snapshot:
    """Every path below ``root`` with (size, mtime, mode, link target)."""
    result: Snapshot = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(current, name)
            info = os.lstat(path)
            link = os.readlink(path) if os.path.islink(path) else ""
            result[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns, info.st_mode, link)
    return result


def changes(before: Snapshot, after: Snapshot) -> tuple[list[str], list[str]]:
    """(added or changed paths, deleted paths), sorted; a deleted folder hides what it held."""
    changed = sorted(path for path, state in after.items() if before.get(path) != state)
    gone = sorted(path for path in before if path not in after)
    deleted = [path for path in gone if os.path.dirname(path) not in set(gone)]
    return changed, deleted


def write_layer(root: Path, changed: Iterable[str], deleted: Iterable[str], destination: Any,
                *, folders: Mapping[str, int] | None = None, files: Mapping[str, bytes | Path] | None = None) -> None:
    """A plain tar of ``changed`` paths and a whiteout for each deleted one (OCI layer rules),
    streamed to ``destination`` (any object with ``write`` and ``tell``).

    ``folders`` (path: mode) and ``files`` (path: bytes, or the file elsewhere that holds
    them) are what the layer holds that is not on disk: the registry layer's folders and
    metadata, kept in memory. Each is written as a folder of that mode, or a file of mode
    0644, would be, in its sorted place among ``changed``.
    """
    folders, files = folders or {}, files or {}
    with _tar(destination) as tar:
        for path in sorted({*changed, *folders, *files}) if folders or files else changed:
            if path in folders:
                tar.addfile(_Built(path, tarfile.DIRTYPE, folders[path]))
            elif path in files:
                _add_content(tar, path, files[path])
            else:
                _add_all(tar, root, [path])
        _add_whiteouts(tar, deleted)


def file_header(path: str, size: int) -> bytes:
    """The tar header (with its PAX record for a long name) of a regular file ``path`` of
    ``size`` bytes, as :func:`write_layer` writes it for such a file of mode 0644: the
    registry layer writes a blob's header before the blob's bytes arrive."""
    return member_header(path, tarfile.REGTYPE, 0o644, size)


def member_header(path: str, kind: bytes, mode: int, size: int = 0) -> bytes:
    """The tar header ``tarfile`` writes for a normalised member (owner 0, mtime 0) of type
    ``kind`` (a file or a folder), byte for byte: the PAX record of a long name, then the
    ustar block. Made here for an ASCII name (a registry layer's thousands of paths: about
    a sixth of ``tarfile``'s time), by ``tarfile`` itself otherwise."""
    name = f"{path}/" if kind == tarfile.DIRTYPE and not path.endswith("/") else path
    if not name.isascii() or size >= _MAX_USTAR_SIZE or kind not in (tarfile.REGTYPE, tarfile.DIRTYPE):
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.size = kind, mode, size
        return _normalise(info).tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    encoded = name.encode("ascii")
    if len(encoded) <= tarfile.LENGTH_NAME:
        return _ustar_block(encoded, kind, mode, size)
    records = _pax_record(b"path", encoded)
    return (_ustar_block(b"././@PaxHeader", tarfile.XHDTYPE, 0, len(records))
            + records + bytes(-len(records) % tarfile.BLOCKSIZE) + _ustar_block(encoded, kind, mode, size))


def padded(size: int) -> int:
    """The bytes a member's content of ``size`` bytes takes in a tar: whole 512-byte blocks."""
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


_MAX_USTAR_SIZE = 8 ** 11  # a size from here on takes a PAX record
#: magic and version, then uname, gname, devmajor, devminor and prefix, all empty
_USTAR_TAIL = tarfile.POSIX_MAGIC + bytes(32 + 32 + 8 + 8 + 155)


def _ustar_block(name: bytes, kind: bytes, mode: int, size: int) -> bytes:
    """One 512-byte ustar header (name cut at 100 bytes), its checksum counted as ``tarfile``
    does: over the block with eight spaces in the checksum field."""
    block = b"".join((name[:tarfile.LENGTH_NAME].ljust(tarfile.LENGTH_NAME, b"\0"), b"%07o\0" % (mode & 0o7777),
                      b"0000000\0" * 2, b"%011o\0" % size, b"00000000000\0", b" " * 8, kind,
                      bytes(tarfile.LENGTH_LINK), _USTAR_TAIL)).ljust(tarfile.BLOCKSIZE, b"\0")
    return block[:148] + b"%06o\0" % sum(block) + block[155:]


def _pax_record(keyword: bytes, value: bytes) -> bytes:
    """``LEN keyword=value\\n``, LEN counting its own digits."""
    length = len(keyword) + len(value) + 3
    total = length + len(str(length))
    total = length + len(str(total))
    return b"%d %s=%s\n" % (total, keyword, value)


class _Built(tarfile.TarInfo):
    """A member whose header ``member_header`` makes (``addfile`` writes what ``tobuf`` gives;
    the tar keeps every member it wrote, so the header is made there, not kept)."""

    def __init__(self, path: str, kind: bytes, mode: int, size: int = 0) -> None:
        super().__init__(path)
        self.type, self.mode, self.size = kind, mode, size

    def tobuf(self, format: int | None = None, encoding: str | None = None,
              errors: str = "surrogateescape") -> bytes:
        return member_header(self.name, self.type, self.mode, self.size)


def _tar(destination: Any) -> tarfile.TarFile:
    # copybufsize: 16 KiB by default, and a registry layer is hundreds of MB
    return tarfile.TarFile(fileobj=destination, mode="w", format=tarfile.PAX_FORMAT, copybufsize=1 << 20)


def _add_all(tar: tarfile.TarFile, root: Path, paths: Iterable[str]) -> None:
    for path in paths:
        tar.add(root / path, arcname=path, recursive=False, filter=_normalise)


def _add_content(tar: tarfile.TarFile, path: str, content: bytes | Path) -> None:
    """A regular file of mode 0644 holding ``content`` (or the bytes of the file it names)."""
    if isinstance(content, bytes):
        tar.addfile(_Built(path, tarfile.REGTYPE, 0o644, len(content)), io.BytesIO(content))
        return
    with content.open("rb") as source:
        tar.addfile(_Built(path, tarfile.REGTYPE, 0o644, os.fstat(source.fileno()).st_size), source)


def _add_whiteouts(tar: tarfile.TarFile, deleted: Iterable[str]) -> None:
    for path in deleted:
        folder, name = os.path.split(path)
        info = tarfile.TarInfo(os.path.join(folder, WHITEOUT + name))
        info.mtime = 0
        tar.addfile(info)


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info
