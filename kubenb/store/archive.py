"""OCI archives: ``save`` writes a tar of an OCI image layout, ``load`` reads one back safely.

An archive comes from anywhere, so ``load`` trusts nothing in it: every member is checked
before anything is written (no ``..``, no absolute path, no link of any kind, no device, only
``oci-layout``, ``index.json`` and ``blobs/sha256/<hex>``), every blob is hashed against its
name while it is copied into a staging folder under ``ROOT/tmp``, and every manifest's blobs
must be there. Only then does the store adopt the blobs, so a refused archive adds nothing.
Blobs are copied byte for byte, so a loaded image keeps its id and manifest digest.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from kubenb.errors import StoreError, is_disk_full
from kubenb.oci.digests import CHUNK, HashingWriter, is_sha256
from kubenb.oci.media_types import OCI_INDEX, OCI_MANIFEST
from kubenb.store import layout
from kubenb.store.blobs import STAGING_PREFIX, Blobs
from kubenb.store.image import normalize_name

__all__ = ["Staged", "save", "staged"]

_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_FOLDERS = {".", "blobs", "blobs/sha256"}
_FILES = {"oci-layout", "index.json"}
_HINT = "only load archives made by kubenb save, skopeo copy oci-archive: or another OCI tool"


# -- save ---------------------------------------------------------------------------------------

def _info(name: str, size: int = 0, *, folder: bool = False) -> tarfile.TarInfo:
    """A member with fixed owner, mode and time: saving twice gives the same archive."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if folder else tarfile.REGTYPE
    info.mode = 0o755 if folder else 0o644
    info.size = size
    info.mtime = 0
    return info


def save(blobs: Blobs, entry: layout.Entry, digests: Sequence[str], file: Path) -> None:
    """Write the archive to a temp file beside ``file`` and rename it, so it appears whole."""
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, "oci-layout", layout.encode(layout.LAYOUT))
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry.to_descriptor()]}
            _add_bytes(tar, "index.json", layout.encode(index))
            tar.addfile(_info("blobs", folder=True))
            tar.addfile(_info("blobs/sha256", folder=True))
            for digest in digests:
                path = blobs.path(digest)
                with blobs.open(digest) as blob:
                    tar.addfile(_info(f"blobs/sha256/{path.name}", path.stat().st_size), blob)
        os.replace(temp_name, file)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


# -- load ---------------------------------------------------------------------------------------

@dataclass
class Staged:
    """What a checked archive holds: verified blobs in staging, and the names to point."""

    blobs: dict[str, Path] = field(default_factory=dict)
    entries: list[layout.Entry] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


@contextlib.contextmanager
def staged(file: Path, blobs: Blobs) -> Iterator[Staged]:
    """Check and stage an archive; the staging folder is removed however the block ends."""
    blobs.temp_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=blobs.temp_dir, prefix=STAGING_PREFIX))
    try:
        result = _stage(file, folder)
        result.entries = _entries(file, result, blobs)
        yield result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _stage(file: Path, folder: Path) -> Staged:
    try:
        with tarfile.open(file, mode="r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(file, member)
            _check_unique(file, members)
            return _extract(file, tar, members, folder)
    except (tarfile.TarError, EOFError, OSError) as error:
        if is_disk_full(error):
            raise  # said as a full disk by the caller, not as a bad archive
        detail = " ".join(str(error).split())  # tarfile's "r:*" error lists each method on its own line
        raise StoreError(f"{file}: not a readable OCI archive: {detail}", hint=_HINT) from None


def _member_name(member: tarfile.TarInfo) -> str:
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/") or "."


def _check_member(file: Path, member: tarfile.TarInfo) -> None:
    """Refuse anything that could write outside the store or is no part of an OCI layout."""
    name = member.name
    why = None
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        why = "has an absolute path"
    elif ".." in PurePosixPath(name).parts:
        why = "climbs out with '..'"
    elif member.issym() or member.islnk():
        why = f"is a link (to {member.linkname!r})"
    elif member.ischr() or member.isblk() or member.isfifo():
        why = "is a device or fifo"
    elif not (member.isfile() or member.isdir()):
        why = "is not a regular file or folder"
    else:
        plain = _member_name(member)
        allowed = plain in _FOLDERS if member.isdir() else (plain in _FILES or _BLOB.fullmatch(plain))
        why = None if allowed else "is not part of an OCI image layout"
    if why:
        raise StoreError(f"{file}: refusing archive: entry {name!r} {why}; nothing was loaded", hint=_HINT)


def _check_unique(file: Path, members: Sequence[tarfile.TarInfo]) -> None:
    """Two members with one name would make the archive mean two things; refuse it."""
    seen: set[str] = set()
    for member in members:
        name = _member_name(member)
        if member.isfile() and name in seen:
            raise StoreError(f"{file}: refusing archive: entry {name!r} appears twice", hint=_HINT)
        seen.add(name)


def _extract(file: Path, tar: tarfile.TarFile, members: Sequence[tarfile.TarInfo], folder: Path) -> Staged:
    result = Staged()
    for member in members:
        if not member.isfile():
            continue
        name = _member_name(member)
        source = tar.extractfile(member)
        assert source is not None  # a regular file always has contents
        match = _BLOB.fullmatch(name)
        if match is None:
            result.files[name] = source.read(layout.MAX_DOCUMENT + 1)
            continue
        digest = f"sha256:{match[1]}"
        result.blobs[digest] = _copy_verified(file, source, folder / match[1], digest)
    return result


def _copy_verified(file: Path, source: IO[bytes], target: Path, digest: str) -> Path:
    with target.open("wb") as out:
        writer = HashingWriter(out)
        while chunk := source.read(CHUNK):
            writer.write(chunk)
    if writer.digest != digest:
        raise StoreError(f"{file}: refusing archive: blob {digest} hashes to {writer.digest}; nothing was loaded",
                         hint="the archive is damaged; save it again")
    return target


def _entries(file: Path, result: Staged, blobs: Blobs) -> list[layout.Entry]:
    """The named manifests of the archive's ``index.json``, each with all its blobs present."""
    if "index.json" not in result.files:
        raise StoreError(f"{file}: not an OCI archive: it has no index.json", hint=_HINT)
    index = layout.load_json(result.files["index.json"], f"{file}: index.json")
    entries = [_entry(file, descriptor, result, blobs) for descriptor in index.get("manifests") or []]
    if not entries:
        raise StoreError(f"{file}: the archive holds no image", hint=_HINT)
    return entries


def _entry(file: Path, descriptor: object, result: Staged, blobs: Blobs) -> layout.Entry:
    if not isinstance(descriptor, dict) or descriptor.get("mediaType") != OCI_MANIFEST:
        raise StoreError(f"{file}: only single-platform OCI image manifests can be loaded", hint=_HINT)
    digest, size = descriptor.get("digest"), descriptor.get("size")
    name = (descriptor.get("annotations") or {}).get(layout.REF_NAME)
    if not isinstance(name, str):
        raise StoreError(f"{file}: manifest {digest} has no {layout.REF_NAME} annotation", hint=_HINT)
    if not isinstance(digest, str) or not is_sha256(digest) or not isinstance(size, int):
        raise StoreError(f"{file}: manifest of {name!r} has a bad digest or size", hint=_HINT)
    manifest = layout.load_json(_read(file, digest, result, blobs), f"{file}: manifest {digest}")
    try:
        needed = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest.get("layers", []))]
    except (KeyError, TypeError):
        raise StoreError(f"{file}: manifest {digest} is not an OCI image manifest", hint=_HINT) from None
    for blob in needed:
        if not (isinstance(blob, str) and is_sha256(blob) and (blob in result.blobs or blobs.has(blob))):
            raise StoreError(f"{file}: blob {blob} of {name!r} is missing from the archive", hint=_HINT)
    return layout.Entry(name=normalize_name(name), digest=digest, size=size)


def _read(file: Path, digest: str, result: Staged, blobs: Blobs) -> bytes:
    if digest in result.blobs:
        return result.blobs[digest].read_bytes()
    if blobs.has(digest):
        return blobs.read_bytes(digest)
    raise StoreError(f"{file}: manifest {digest} is missing from the archive", hint=_HINT)
