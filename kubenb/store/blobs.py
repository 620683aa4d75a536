"""Content-addressed blobs of the store (``ROOT/blobs/sha256/<hex>``), written atomically.

Every file of the store appears whole: it is written to a temp file in ``ROOT/tmp`` (same
filesystem, so ``os.replace`` is atomic) and renamed into place, so a crash or a SIGKILL can
leave a stray temp file but never a half-written blob under a valid name. A blob's name is
its digest, so writing it twice is harmless and readers need no lock.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from kubenb.errors import StoreError
from kubenb.store.image import Layer, is_digest

__all__ = ["CHUNK", "Blobs", "HashingWriter", "atomic_file", "hash_file"]

CHUNK = 1024 * 1024
STALE_SECONDS = 24 * 3600.0


class HashingWriter:
    """A write-only file that hashes and counts what passes through it to ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()

    @property
    def digest(self) -> str:
        return f"sha256:{self.hash.hexdigest()}"


def hash_file(path: Path) -> str:
    """The sha256 digest of a file, read in chunks so a registry layer never fills memory."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


@contextlib.contextmanager
def atomic_file(path: Path, temp_dir: Path) -> Iterator[IO[bytes]]:
    """A temp file that becomes ``path`` only when the block ends without an error.

    On any error the temp file is removed, so failures leave nothing behind.
    """
    temp_dir.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=temp_dir, prefix=f"{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


class Blobs:
    """The ``blobs/sha256`` folder of one store and its ``tmp`` folder for writes."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "blobs" / "sha256"
        self.temp_dir = root / "tmp"

    def path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise StoreError(f"{digest!r} is not a sha256 digest", hint="the store may be damaged; run check")
        return self.folder / digest.removeprefix("sha256:")

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def digests(self) -> list[str]:
        """Every blob name that looks like a digest, sorted (other files are for ``check``)."""
        if not self.folder.is_dir():
            return []
        return sorted(f"sha256:{p.name}" for p in self.folder.iterdir() if is_digest(f"sha256:{p.name}"))

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` (a manifest or config) and return its digest."""
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if not self.has(digest):
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_file(self.path(digest), self.temp_dir) as file:
                file.write(data)
        return digest

    def read_bytes(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store",
                             hint="the store is damaged; run check, then remove and rebuild the image") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store",
                             hint="the store is damaged; run check, then remove and rebuild the image") from None

    def put_layer(self, tar_path: Path, compresslevel: int = 6) -> Layer:
        """Gzip a plain tar into a blob in one streaming pass, hashing both forms on the way.

        The gzip header carries no name or time, so the same tar gives the same blob digest
        and an unchanged build step gives an unchanged image.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=self.temp_dir, prefix="layer.")
        try:
            diff_id, writer = (self._gzip_into(tar_path, fd, compresslevel) if compresslevel
                               else self._copy_into(tar_path, fd))
            layer = Layer(digest=writer.digest, diff_id=diff_id, size=writer.size)
            if self.has(layer.digest):
                os.unlink(temp_name)
            else:
                os.chmod(temp_name, 0o644)
                os.replace(temp_name, self.path(layer.digest))
            return layer
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise

    @staticmethod
    def _copy_into(tar_path: Path, fd: int) -> tuple[str, HashingWriter]:
        """An uncompressed layer (its digest is its diff_id): for content that is compressed
        already, such as a registry folder of image layers, where gzip costs time and saves nothing."""
        with os.fdopen(fd, "wb") as out, tar_path.open("rb") as source:
            writer = HashingWriter(out)
            while chunk := source.read(CHUNK):
                writer.write(chunk)
        return writer.digest, writer

    @staticmethod
    def _gzip_into(tar_path: Path, fd: int, compresslevel: int) -> tuple[str, HashingWriter]:
        plain = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            writer = HashingWriter(out)
            with tar_path.open("rb") as source, gzip.GzipFile(
                filename="", mode="wb", fileobj=writer, compresslevel=compresslevel, mtime=0,
            ) as compressed:
                while chunk := source.read(CHUNK):
                    plain.update(chunk)
                    compressed.write(chunk)
        return f"sha256:{plain.hexdigest()}", writer

    def adopt(self, temp_path: Path, digest: str) -> None:
        """Move a verified temp file (from a loaded archive) into place under ``digest``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.has(digest):
            temp_path.unlink()
        else:
            os.chmod(temp_path, 0o644)
            os.replace(temp_path, self.path(digest))

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def clean_temp(self, older_than: float = STALE_SECONDS) -> None:
        """Remove temp files a killed process left behind; recent ones may still be written."""
        if not self.temp_dir.is_dir():
            return
        limit = time.time() - older_than
        for entry in self.temp_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if entry.lstat().st_mtime < limit:
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()
