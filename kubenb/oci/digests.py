"""Content digests and the writes that trust them: hash while streaming, check, then rename.

The registry client, the registry folder and the store all keep content under its digest, so
the rules live here once: a digest that becomes a file name or is checked against bytes is
exactly ``is_content_digest``; a blob is hashed in chunks, never held whole in memory; a file
appears under its final name only whole (written to a temp file on the same filesystem, then
renamed) and only once its bytes hash to the digest it is kept under; the temp file is gone
afterwards whatever happened; and temp files a killed process left behind are swept by age.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from kubenb.errors import StoreError

__all__ = [
    "CHUNK",
    "VERIFIABLE_DIGESTS",
    "HashingWriter",
    "atomic_file",
    "check_digest",
    "compute_digest",
    "file_digest",
    "hasher_for",
    "is_content_digest",
    "is_sha256",
    "is_whole",
    "keep_verified",
    "remove_stale",
    "split_digest",
]

#: Read size when hashing a file (readinto a reused buffer, so no fresh allocation per chunk).
CHUNK = 1024 * 1024
#: The algorithms registries, registry folders and the store can verify, with their hex lengths.
VERIFIABLE_DIGESTS = {"sha256": 64, "sha384": 96, "sha512": 128}
_CONTENT_DIGEST = re.compile(r"(sha256|sha384|sha512):([0-9a-f]+)")


def is_content_digest(text: str) -> bool:
    """``text`` is a digest kubenb can verify and store by (``sha256:`` + 64 lowercase hex...)."""
    match = _CONTENT_DIGEST.fullmatch(text)
    return match is not None and len(match[2]) == VERIFIABLE_DIGESTS[match[1]]


def is_sha256(text: str) -> bool:
    """A sha256 content digest: the only algorithm the store writes and trusts."""
    return text.startswith("sha256:") and is_content_digest(text)


def split_digest(digest: str) -> tuple[str, str]:
    """(algorithm, hex): refused unless it is a content digest, since it becomes a path."""
    if not is_content_digest(digest):
        raise StoreError(f"{digest!r} is not a digest (sha256:<64 hex digits>)")
    algorithm, hex_ = digest.split(":")
    return algorithm, hex_


def hasher_for(digest: str) -> Any:
    """A fresh hashlib object for the algorithm of the content digest ``digest``."""
    return hashlib.new(split_digest(digest)[0])


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """The ``algorithm:hex`` digest of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def file_digest(path: Path, algorithm: str = "sha256", *, sync: bool = False) -> str:
    """The digest of a file read in chunks, never whole in memory; fsynced on the way if ``sync``."""
    hasher, buffer = hashlib.new(algorithm), bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as source:
        while count := source.readinto(buffer):
            hasher.update(view[:count])
        if sync:
            os.fsync(source.fileno())
    return f"{algorithm}:{hasher.hexdigest()}"


class Sink(Protocol):
    """Anything bytes can be written to: a file, a GzipFile, another HashingWriter."""

    def write(self, data: bytes, /) -> int: ...


class HashingWriter:
    """A write-only file that hashes (sha256) and counts what passes through it to ``target``."""

    def __init__(self, target: Sink) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        flush = getattr(self.target, "flush", None)
        if flush is not None:
            flush()

    def tell(self) -> int:
        """Bytes written so far (tarfile asks, to write straight through without its own buffer)."""
        return self.size

    @property
    def digest(self) -> str:
        return f"sha256:{self.hash.hexdigest()}"


def check_digest(temp: Path, digest: str, *, verified: bool = False, sync: bool = False) -> None:
    """Refuse ``temp`` unless its bytes hash to ``digest`` (read back unless ``verified``: the
    caller hashed them as it wrote them); ``sync`` fsyncs the file during that read."""
    actual = digest if verified else file_digest(temp, split_digest(digest)[0], sync=sync)
    if actual != digest:
        raise StoreError(f"blob {digest} not kept: its data hashes to {actual}",
                         hint="the download was corrupted or the registry sent other content")


def keep_verified(temp: Path, target: Path, digest: str, *, verified: bool = False,
                  durable: bool = False, mode: int = 0o644) -> None:
    """Rename ``temp`` to ``target`` only if its bytes hash to ``digest``; ``temp`` is gone
    afterwards either way. A wrong digest is a StoreError and keeps nothing.

    ``verified`` says the caller hashed the bytes as it wrote them (a download streaming
    through a hasher): reading the file again would only cost a second pass. ``durable``
    fsyncs the file before the rename, so a power cut leaves no empty file under a valid name.
    A whole ``target`` already there wins (content-addressed: it holds the same bytes).
    """
    try:
        check_digest(temp, digest, verified=verified, sync=durable)
        if verified and durable:
            with temp.open("rb+") as stream:
                os.fsync(stream.fileno())
        if not is_whole(target, temp.stat().st_size):
            os.chmod(temp, mode)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: Path, temp_dir: Path, *, durable: bool = False, exclusive: bool = False,
                mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A temp file in ``temp_dir`` that becomes ``path`` only when the block ends without an
    error; on any error it is removed, so failures leave nothing behind.

    ``temp_dir`` must be on the filesystem of ``path`` (the rename is then atomic). With
    ``exclusive`` an existing ``path`` is never replaced: ``os.link`` raises FileExistsError.
    """
    temp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=temp_dir, prefix=f"{path.name}.", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            os.fchmod(file.fileno(), mode)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        path.parent.mkdir(parents=True, exist_ok=True)
        (os.link if exclusive else os.replace)(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def remove_stale(temp_dir: Path, max_age: float) -> int:
    """Delete the entries of ``temp_dir`` untouched for ``max_age`` seconds (younger ones may
    be another process's live write); return how many went."""
    if not temp_dir.is_dir():
        return 0
    limit, removed = time.time() - max_age, 0
    for entry in temp_dir.iterdir():
        with contextlib.suppress(FileNotFoundError):  # its writer renamed it meanwhile
            if entry.lstat().st_mtime <= limit:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
                removed += 1
    return removed


def is_whole(target: Path, size: int) -> bool:
    """Whether a blob is there whole: a size check, since content was verified on entry."""
    try:
        return target.stat().st_size == size
    except FileNotFoundError:
        return False
