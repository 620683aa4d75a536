"""A layer file written out of order: each part at its place, from any thread, hashed in order.

A build's registry layer is a tar whose members are image blobs downloaded in parallel. Once
the blobs and their sizes are known, so is where each member's bytes go in the tar; every
download then writes straight into its own window of the layer file, and no byte of an image
is written anywhere else (the registry folder in the work folder keeps only manifests and
links). The layer's digest is taken by reading the file back in order, as far as its writer
says it is final, while later downloads still run: the digest covers the file's own bytes,
never what a writer meant to write.
"""

from __future__ import annotations

import hashlib
import os

from kubenb.errors import StoreError
from kubenb.oci.digests import CHUNK

__all__ = ["PlacedFile", "Window"]


class PlacedFile:
    """The open temp file of a layer being placed (``Store.place_layer`` makes it).

    Writers put bytes at offsets (``write_at``, or a ``window``); ``final(upto)`` declares
    everything before ``upto`` written for good and hashes it; ``write`` appends at the end of
    what is final (tarfile writes the layer's last members through it, and ``tell`` says where).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._hash = hashlib.sha256()
        self._final = 0  # bytes hashed so far: everything before this is final

    def write_at(self, data: bytes, offset: int) -> None:
        """Write all of ``data`` at ``offset`` (which must lie past what is final)."""
        if offset < self._final:
            raise StoreError(f"a layer write at {offset} falls in its final part (up to {self._final})")
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            view, offset = view[written:], offset + written

    def reserve(self, size: int) -> None:
        """Make the file ``size`` bytes long (sparse: nothing is written), so that its parts can
        be written in any order and what no part covers (tar padding) reads as zeros."""
        if os.fstat(self.fd).st_size < size:
            os.ftruncate(self.fd, size)

    def window(self, offset: int, size: int) -> Window:
        """A file-like window onto ``size`` bytes at ``offset``, for one download."""
        return Window(self, offset, size)

    def final(self, upto: int) -> None:
        """Everything before ``upto`` is written for good: hash it, reading it back in chunks."""
        while self._final < upto:
            chunk = os.pread(self.fd, min(CHUNK, upto - self._final), self._final)
            if not chunk:
                raise StoreError(f"the layer file ends at {self._final}, before {upto}")
            self._hash.update(chunk)
            self._final += len(chunk)

    def write(self, data: bytes) -> int:
        """Append ``data`` right after the final part, final at once."""
        self.write_at(data, self._final)
        self._hash.update(data)
        self._final += len(data)
        return len(data)

    def tell(self) -> int:
        return self._final

    def finish(self) -> tuple[str, int]:
        """(digest, size) of the whole file: refused unless every byte of it was declared final."""
        size = os.fstat(self.fd).st_size
        if size != self._final:
            raise StoreError(f"the layer file holds {size} bytes but only {self._final} were written for good")
        return f"sha256:{self._hash.hexdigest()}", size


class Window:
    """A download's view of its member's bytes: it writes only inside ``size`` bytes at
    ``offset`` (what would go past is dropped: the download then fails its size check), and a
    restart (``seek(0)``) writes over its own bytes again."""

    def __init__(self, file: PlacedFile, offset: int, size: int) -> None:
        self._file, self._offset, self._size = file, offset, size
        self._position = 0

    def write(self, data: bytes, /) -> int:
        room = max(0, self._size - self._position)
        if room:
            self._file.write_at(data[:room], self._offset + self._position)
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0, /) -> int:
        if whence != os.SEEK_SET:
            raise ValueError("a layer window seeks from its start only")
        self._position = offset
        return offset

    def truncate(self, size: int | None = None, /) -> int:
        """Nothing to cut: the member's room is fixed, and a restart writes over it."""
        return self._position if size is None else size

    def flush(self) -> None:
        """Every write went to the file already."""

    def tell(self) -> int:
        return self._position

    def __str__(self) -> str:
        return f"the layer file at offset {self._offset}"
