"""Memoise discovery by the content that went in: same bytes and options, same answer.

A notebook previews the image list on every cell run; rendering charts again for an
unchanged context would make that slow. The key hashes every input file's path and bytes
and the options; a file's digest is reused while its stat (including ctime) is unchanged.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

__all__ = ["DiscoveryMemo", "content_key"]

T = TypeVar("T")


def content_key(files: Iterable[tuple[str, Path]], options: str) -> str:
    """A digest of the named files' bytes and the options; missing files hash as absent."""
    digest = hashlib.sha256(options.encode())
    for name, path in files:
        digest.update(b"\0" + name.encode() + b"\0")
        digest.update(_file_digest(path))
    return digest.hexdigest()


#: File digests by (path, device, inode, size, mtime, ctime): a file whose stat is unchanged
#: has unchanged bytes (ctime moves on every write, and no user can set it), so it is not read.
_DIGESTS: dict[tuple[str, int, int, int, int, int], bytes] = {}


def _file_digest(path: Path) -> bytes:
    try:
        info = path.stat()
    except OSError:
        return b"<unreadable>"
    key = (str(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    if key not in _DIGESTS:
        if len(_DIGESTS) > 100_000:
            _DIGESTS.clear()
        _DIGESTS[key] = _read_digest(path)
    return _DIGESTS[key]


def _read_digest(path: Path) -> bytes:
    file_digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                file_digest.update(chunk)
    except OSError:
        return b"<unreadable>"
    return file_digest.digest()


class DiscoveryMemo:
    """A small thread-safe LRU of results by key (widgets discover from worker threads)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._items: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: str, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[return-value]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
