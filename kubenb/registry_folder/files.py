"""Where a registry folder's files live: on disk (``DiskFiles``), or in memory over what is on
disk (``MemoryFiles``: a build's work folder, whose ``registry/`` only becomes a layer).

``RegistryFolder`` reads, writes and lists through one of these, so the layout and its checks
are the same code either way. A build used to write its manifests, links and tags into the
work folder, snapshot the rootfs to find them, read them back into the layer's tar and remove
them: hundreds of small files and folders made, stat'ed, read and deleted for a layer that is
all that is kept. ``MemoryFiles`` keeps what the folder writes (and which folders that makes or
changes) in memory, reads through to the folder on disk (a base image's ``registry/``, which
the build adds to), and never writes under it; the registry layer then tars those members
straight from memory (``builders/registry_layer.py``).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

from kubenb.oci.digests import atomic_file, check_digest, compute_digest, file_digest, keep_verified

__all__ = ["TEMP_DIR", "DiskFiles", "MemoryFiles"]

FILE_MODE = 0o644  # the registry serving the folder may run as another user
TEMP_DIR = ".kubenb-tmp"


class DiskFiles:
    """The folder's files on disk, each appearing whole by a rename from ``temp`` (fsynced
    first when ``durable``)."""

    def __init__(self, temp: Path, *, durable: bool) -> None:
        self.temp = temp
        self.durable = durable

    def read(self, path: Path) -> bytes | None:
        """The bytes of the file at ``path``, None when there is none."""
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def size(self, path: Path) -> int | None:
        """The size of the regular file at ``path`` (symlinks followed), None when there is none."""
        try:
            info = path.stat()
        except (OSError, ValueError):  # what Path.is_file takes as "not a file"
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def write(self, path: Path, data: bytes, *, exclusive: bool = False) -> bool:
        """``path`` holds ``data``, whole; with ``exclusive``, False if it already exists."""
        try:
            with atomic_file(path, self.temp, durable=self.durable, exclusive=exclusive, mode=FILE_MODE) as out:
                out.write(data)
            return True
        except FileExistsError:
            return False

    def digest(self, path: Path, algorithm: str) -> str:
        """The digest of the file at ``path``, read in chunks."""
        return file_digest(path, algorithm)

    def new_temp(self, prefix: str) -> tuple[int, Path]:
        """A new temp file (open descriptor, path) on the filesystem of the folder's files."""
        self.temp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=self.temp)
        return fd, Path(name)

    def keep(self, temp: Path, path: Path, digest: str, *, verified: bool) -> None:
        """Keep the temp file ``temp`` as blob file ``path`` if it hashes to ``digest``."""
        keep_verified(temp, path, digest, verified=verified, durable=self.durable, mode=FILE_MODE)

    def glob(self, folder: Path, pattern: str) -> list[Path]:
        """The paths under ``folder`` matching ``pattern`` (``/``-separated parts of ``*`` and
        names), sorted."""
        paths = [folder]
        for part in pattern.split("/"):
            paths = [path / name for path in paths for name in self.entries(path) if fnmatch(name, part)]
        return sorted(paths)

    def entries(self, folder: Path) -> set[str]:
        """The names in ``folder`` (none when it is no folder)."""
        try:
            return set(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return set()

    def subfolders(self, folder: Path) -> dict[str, bool]:
        """The folders in ``folder``: name -> whether it is a symlink (listed, never entered)."""
        try:
            with os.scandir(folder) as scan:
                return {entry.name: entry.is_symlink() for entry in scan if entry.is_dir()}
        except (FileNotFoundError, NotADirectoryError):
            return {}

    def walk(self, top: Path) -> Iterator[tuple[Path, list[str]]]:
        """``top`` and every folder below it, each with the names of its sub-folders; as with
        ``os.walk``, the caller may remove names from the list to keep the walk out of them."""
        subfolders = self.subfolders(top)
        names = sorted(subfolders)
        yield top, names
        for name in names:
            if not subfolders.get(name, True):
                yield from self.walk(top / name)


class MemoryFiles(DiskFiles):
    """What a registry folder writes, kept in memory over the folder on disk, which is read
    but never written: ``files`` (path: bytes, or the file in ``spill`` a download that was
    not planned went to), the folders writing them on disk would make (``folders``) and those
    on disk it would change (``touched``: an entry added or replaced, so their mtime moves),
    the folder's temp folder included, as the layer of the same folder written on disk holds.
    Paths are kept as strings: a ``Path`` takes about 1 KB, and a build of 500 images keeps
    some 14,000 of them."""

    def __init__(self, temp: Path, spill: Path) -> None:
        super().__init__(temp, durable=False)
        self.spill = spill
        self.files: dict[str, bytes | Path] = {}
        self.folders: set[str] = set()
        self.touched: set[str] = set()
        self._children: dict[str, set[str]] = {}  # folder -> names of the entries written in it
        self._on_disk: set[str] = set()  # folders known to be on disk
        self._lock = threading.Lock()  # the save's threads write at once

    def read(self, path: Path) -> bytes | None:
        content = self.files.get(key := str(path))
        if content is None:
            return None if key in self.folders else super().read(path)
        return content if isinstance(content, bytes) else content.read_bytes()

    def size(self, path: Path) -> int | None:
        content = self.files.get(key := str(path))
        if content is None:
            return None if key in self.folders else super().size(path)
        return len(content) if isinstance(content, bytes) else content.stat().st_size

    def digest(self, path: Path, algorithm: str) -> str:
        content = self.files.get(str(path))
        if isinstance(content, bytes):
            return compute_digest(content, algorithm)
        return file_digest(content if content is not None else path, algorithm)

    def write(self, path: Path, data: bytes, *, exclusive: bool = False) -> bool:
        key = str(path)
        with self._lock:
            self._use_temp()
            try:
                self._enter_folder(os.path.dirname(key))
            except FileExistsError:  # a file where a folder belongs: as the folder on disk answers
                return False
            if exclusive and (key in self.files or os.path.lexists(key)):
                return False
            self.files[key] = data
            self._enter(key)
            return True

    def new_temp(self, prefix: str) -> tuple[int, Path]:
        with self._lock:
            self._use_temp()
        self.spill.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=self.spill)
        return fd, Path(name)

    def keep(self, temp: Path, path: Path, digest: str, *, verified: bool) -> None:
        """Keep ``temp`` (in ``spill``, where its bytes stay) as the content of ``path``, once it
        hashes to ``digest``; ``temp`` is gone afterwards either way."""
        key = str(path)
        try:
            check_digest(temp, digest, verified=verified)
            with self._lock:
                if self.size(path) != temp.stat().st_size:  # else the blob is there whole already
                    self._enter_folder(os.path.dirname(key))
                    self.files[key] = temp.rename(temp.with_name(f"{temp.name}.kept"))
                    self._enter(key)
        finally:
            temp.unlink(missing_ok=True)

    def enter(self, path: Path) -> None:
        """Count ``path`` as a file written into the folder whose content lives elsewhere (the
        planned blobs, in the layer): its folders are made or touched as writing it would."""
        parent = os.path.dirname(str(path))
        with self._lock:
            self._enter_folder(parent)
            if parent not in self.folders:
                self.touched.add(parent)

    def entries(self, folder: Path) -> set[str]:
        key = str(folder)
        disk = set() if key in self.folders else super().entries(folder)
        with self._lock:
            return disk | self._children.get(key, set())

    def subfolders(self, folder: Path) -> dict[str, bool]:
        key = str(folder)
        found = {} if key in self.folders else super().subfolders(folder)
        with self._lock:
            found.update({name: False for name in self._children.get(key, set())
                          if os.path.join(key, name) in self.folders})
        return found

    # -- under the lock ------------------------------------------------------------------------

    def _use_temp(self) -> None:
        """A temp file made and removed in the temp folder: made if missing, changed if not."""
        temp = str(self.temp)
        if temp not in self.folders and temp not in self.touched:
            self._enter_folder(temp)
            if temp not in self.folders:
                self.touched.add(temp)

    def _enter_folder(self, folder: str) -> None:
        """``mkdir -p folder``: each missing folder is made, entered in its parent."""
        if folder in self.folders or folder in self._on_disk:
            return
        if _is_folder(folder):
            self._on_disk.add(folder)
            return
        self.folders.add(folder)
        self._enter_folder(os.path.dirname(folder))
        self._enter(folder)

    def _enter(self, path: str) -> None:
        """``path`` was added to (or replaced in) its folder, which exists by now."""
        parent, name = os.path.split(path)
        self._children.setdefault(parent, set()).add(name)
        if parent not in self.folders:
            self.touched.add(parent)


def _is_folder(path: str) -> bool:
    """Whether ``path`` is a folder on disk; anything else there is an error, as ``mkdir`` has."""
    if os.path.isdir(path):
        return True
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "a file where a folder belongs", path)
    return False
