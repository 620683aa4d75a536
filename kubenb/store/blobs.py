"""Content-addressed blobs of the store (``ROOT/blobs/sha256/<hex>``), written atomically.

Every file of the store appears whole: it is written to a temp file in ``ROOT/tmp`` (same
filesystem, so ``os.replace`` is atomic) and renamed into place, so a crash or a SIGKILL can
leave a stray temp file but never a half-written blob under a valid name. A blob's name is
its digest, so writing it twice is harmless and readers need no lock. The hashing, the atomic
writes and the temp sweep are ``kubenb.oci.digests``'s, shared with the registry folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO, cast

from kubenb.errors import StoreError, is_disk_full
from kubenb.oci.digests import CHUNK, HashingWriter, atomic_file, compute_digest, is_sha256, keep_verified, remove_stale
from kubenb.store.image import Layer
from kubenb.store.placed import PlacedFile
from kubenb.store.root import blob_folder
from kubenb.store.space import no_space

__all__ = ["Blobs"]

STALE_SECONDS = 24 * 3600.0
#: Temp names of what is written only under the store lock: layer blobs, staged archives.
LAYER_PREFIX = "layer."
STAGING_PREFIX = "load."


class Blobs:
    """The ``blobs/sha256`` folder of one store and its ``tmp`` folder for writes."""

    def __init__(self, root: Path) -> None:
        self.folder = blob_folder(root)
        self.temp_dir = root / "tmp"

    def path(self, digest: str) -> Path:
        if not is_sha256(digest):
            raise StoreError(f"{digest!r} is not a sha256 digest", hint="the store may be damaged; run check")
        return self.folder / digest.removeprefix("sha256:")

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def digests(self) -> list[str]:
        """Every blob name that looks like a digest, sorted (other files are for ``check``)."""
        if not self.folder.is_dir():
            return []
        return sorted(f"sha256:{p.name}" for p in self.folder.iterdir() if is_sha256(f"sha256:{p.name}"))

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` (a manifest or config) and return its digest."""
        digest = compute_digest(data)
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
        """A layer blob from a plain tar file (see :meth:`write_layer`)."""

        def copy(out: HashingWriter) -> None:
            with tar_path.open("rb") as source:
                while chunk := source.read(CHUNK):
                    out.write(chunk)

        return self.write_layer(copy, compresslevel)

    def write_layer(self, produce: Callable[[HashingWriter], None], compresslevel: int = 6, *,
                    what: str = "a layer", expected: int = 0) -> Layer:
        """A layer blob from whatever ``produce`` writes (a plain tar), in one streaming pass.

        Both forms are hashed on the way: the blob (gzip, or the tar itself when
        ``compresslevel`` is 0, for content that is compressed already, like image layers) and
        the plain tar (the diff_id). The gzip header carries no name or time, so the same tar
        gives the same blob digest and an unchanged build step an unchanged image. Writing
        the tar straight into the store spares a build a second copy of every byte. A full
        disk is said as such (``what`` names the layer; ``expected`` is its likely size).
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=self.temp_dir, prefix=LAYER_PREFIX)
        blob: HashingWriter | None = None
        try:
            with os.fdopen(fd, "wb") as out:
                blob = HashingWriter(out)
                if compresslevel:
                    import gzip  # noqa: PLC0415  (only a layer being written needs it)

                    with gzip.GzipFile(filename="", mode="wb", fileobj=cast(IO[bytes], blob),
                                       compresslevel=compresslevel, mtime=0) as compressed:
                        plain = HashingWriter(compressed)
                        produce(plain)
                else:
                    plain = blob
                    produce(blob)
            layer = Layer(digest=blob.digest, diff_id=plain.digest, size=blob.size)
            keep_verified(Path(temp_name), self.path(layer.digest), layer.digest, verified=True)
            return layer
        except BaseException as error:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            if is_disk_full(error):
                written = blob.size if blob is not None else 0
                raise no_space(self.temp_dir, f"{what} into the store", max(expected, written)) from None
            raise

    def place_layer(self, produce: Callable[[PlacedFile], None], *, what: str = "a layer",
                    expected: int = 0) -> Layer:
        """A plain-tar layer blob whose parts ``produce`` writes at their places, in any order
        and from several threads (a registry layer: each blob straight from its download);
        hashed by reading the file back once, in order (``kubenb.store.placed``).

        Like :meth:`write_layer`, the temp file is a ``layer.*`` of ``tmp``: removed on any
        error here, and by the next holder of the lock after a kill.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=self.temp_dir, prefix=LAYER_PREFIX)
        placed: PlacedFile | None = None
        try:
            try:
                placed = PlacedFile(fd)
                produce(placed)
                digest, size = placed.finish()
            finally:
                os.close(fd)
            keep_verified(Path(temp_name), self.path(digest), digest, verified=True)
            return Layer(digest=digest, diff_id=digest, size=size)
        except BaseException as error:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            if is_disk_full(error):
                written = placed.tell() if placed is not None else 0
                raise no_space(self.temp_dir, f"{what} into the store", max(expected, written)) from None
            raise

    def adopt(self, temp_path: Path, digest: str) -> None:
        """Move a temp file the caller verified (a loaded archive's, a download's) into place
        under ``digest``; the temp file is gone afterwards either way."""
        keep_verified(temp_path, self.path(digest), digest, verified=True)

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def remove_partial_layers(self) -> int:
        """Remove the ``layer.*`` temp files and ``load.*`` staging folders of dead processes.

        Only a holder of the store lock writes those, so the caller must hold it: then every
        one found belongs to a build or load that was killed. Returns how many went.
        """
        if not self.temp_dir.is_dir():
            return 0
        removed = 0
        for entry in self.temp_dir.iterdir():
            if entry.name.startswith(LAYER_PREFIX) and not entry.is_dir():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed += 1
            elif entry.name.startswith(STAGING_PREFIX) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed

    def clean_temp(self, older_than: float = STALE_SECONDS) -> None:
        """Remove temp files a killed process left behind; recent ones may still be written."""
        remove_stale(self.temp_dir, older_than)
