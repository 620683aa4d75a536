"""The record of an unchanged rebuild: its key, and the check that lets it answer a build.

A build that ends well writes ``STORE/unchanged/<key>.json`` (``kubenb/builders/unchanged.py``
writes it; docs/build.md, "An unchanged rebuild", says what it holds). The key is a hash of
what the build was asked: the Kubefile's path and bytes, the context, ``--build-arg``, the
``--values`` paths, ``--set``, ``--kube-version``, ``--platform``, the skip flags, the tag,
``SOURCE_DATE_EPOCH``, the builder and the kubenb version (hashed: a ``--build-arg`` may be a
token). A build with the same key whose record checks out (see ``check``) is answered by the
stored image: nothing is built, and nothing of discovery, the Kubefile parser, the registry
client, the store's records or even the dataclasses is imported, so that ``kubenb build``
answers in little more than the interpreter's start. Anything missing, unreadable or foreign
is a miss, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NamedTuple

from kubenb.builders.fingerprints import Fingerprint, fingerprint, listing, settled, signature, unchanged
from kubenb.store.lock import StoreLock
from kubenb.store.root import blob_path, named_manifests

__all__ = ["ANSWERED", "FORMAT", "LIMIT", "REVIEW_FILES", "Answer", "Inputs", "answer", "check", "inputs",
           "walk_context", "write"]

#: Bumped whenever the record's form or meaning changes: an older record is then a miss.
FORMAT = 1
LIMIT = 64
KUBEFILE_LIMIT = 4 * 1024 * 1024  # kubenb.kubefile.read.MAX_BYTES: a larger one is the slow path's error
#: What the fast path says (tests look for its start).
ANSWERED = "unchanged since the last build"
#: The image-list review in a context (kubenb.discover.review's INCLUDE and EXCLUDE, spelled
#: here so that checking a record imports no discovery): read whole by every build.
REVIEW_FILES = (".kubenb/include", ".kubenb/exclude")


class Inputs:
    """What a build is about to read, taken before it reads anything (the plan included)."""

    def __init__(self, key: str, kubefile_bytes: bytes, context: Path, skip: Path | None,
                 values: dict[str, Fingerprint]) -> None:
        self.key = key  # the hash of what the build is asked
        self.kubefile_bytes = kubefile_bytes  # the build plans from these very bytes
        self.context = context
        self.skip = skip  # the store, when it lies in the context
        self.values = values  # the values and review files, hashed
        self.listing: str | None = None  # taken when a record is checked, or before a build plans


class Answer(NamedTuple):
    """The stored image that answers a build, and the warnings its build said."""

    name: str
    image_id: str
    manifest_digest: str
    size: int
    warnings: list[str]

    @property
    def message(self) -> str:
        return f"{ANSWERED}: {self.name} ({self.image_id.removeprefix('sha256:')[:12]}), checked whole; nothing rebuilt"


def inputs(root: Path, *, builder: str, tag: str, context: Path, kubefile: Path, build_args: Mapping[str, str],
           values: Mapping[str, Sequence[Path]], set_values: Mapping[str, Sequence[str]], kube_version: str | None,
           platforms: Iterable[str] | None, skip_invalid: bool, skip_missing_platform: bool) -> Inputs | None:
    """The inputs of a build into the store ``root``, or None when they cannot be taken here:
    a Kubefile or values file that cannot be read, or is no regular file (a FIFO would block),
    is the slow path's to report. The Kubefile is read here, once."""
    try:
        context = context.resolve()
        kubefile = kubefile.resolve()
        text = _read_regular(kubefile)
        named = [path.resolve() for paths in values.values() for path in paths]
        if text is None or not context.is_dir() or not all(stat.S_ISREG(os.stat(p).st_mode) for p in named):
            return None
        read = {str(path): fingerprint(path) for path in named}
        read |= {str(path): fingerprint(path) for name in REVIEW_FILES if (path := context / name).is_file()}
        store_root = root.resolve()
    except (OSError, RuntimeError):
        return None
    key = json.dumps([
        FORMAT, _version(), builder, tag, str(context), str(kubefile), hashlib.sha256(text).hexdigest(),
        sorted(build_args.items()),
        {chart: [str(p.resolve()) for p in paths] for chart, paths in sorted(values.items())},
        {chart: list(exprs) for chart, exprs in sorted(set_values.items())}, kube_version,
        sorted(platforms) if platforms is not None else None, skip_invalid, skip_missing_platform,
        os.environ.get("SOURCE_DATE_EPOCH"),
    ])
    skip = store_root if store_root.is_relative_to(context) else None
    return Inputs(hashlib.sha256(key.encode()).hexdigest(), text, context, skip, read)


def walk_context(found: Inputs) -> None:
    """Take the context's listing, if not yet: a build does it before its plan reads the context."""
    if found.listing is None:
        found.listing = listing(found.context, skip=found.skip)


def answer(root: Path, found: Inputs, hold: Callable[[], AbstractContextManager[None]] | None = None) -> Answer | None:
    """The stored image when the record of ``found.key`` shows nothing changed, else None.
    Checked holding the store lock, so no build or ``rmi`` changes the store meanwhile:
    ``hold``, the caller's ``Store.lock`` when it has one; else (the command line) the lock
    only if it is free now: while another build runs, the build that follows waits for it,
    with Ctrl-C at hand, and checks the record again."""
    path = record_path(root, found.key)
    if not path.is_file():
        return None
    walk_context(found)
    if hold is not None:
        with hold():
            return _answer(root, found, path)
    with StoreLock(root / "lock").hold_if_free() as held:
        return _answer(root, found, path) if held else None


def _answer(root: Path, found: Inputs, path: Path) -> Answer | None:
    """``answer``, the lock held: read under it, since a build may have just replaced the record."""
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != found.key:
            return None
        checked = check(root, data, found)
        if checked is None:
            return None
        manifest = json.loads(_blob(root, data["manifest"]).read_bytes())
        image = Answer(data["tag"], str(manifest["config"]["digest"]), data["manifest"],
                       sum(int(layer["size"]) for layer in manifest.get("layers", [])),
                       [str(warning) for warning in data.get("warnings", [])])
    except (OSError, KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None
    if checked:  # stats that were not settled are now: the next check needs no hashing
        write(root, found.key, data)
    else:
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: the last to go when the folder is full
    return image


def check(root: Path, data: dict[str, Any], found: Inputs) -> bool | None:
    """None unless every input and blob of the record checks out; else whether a stat was
    refreshed in ``data`` (to be written back)."""
    refreshed = _inputs_same(data, found)
    names = named_manifests(root)
    if refreshed is None or any(names.get(base) != digest for base, digest in data["bases"].items()):
        return None
    if names.get(data["tag"]) != data["manifest"]:
        return None
    for digest, entry in data["blobs"].items():
        whole = _blob_whole(root, digest, entry)
        if whole is None:
            return None
        refreshed |= whole
    return refreshed


def _inputs_same(data: dict[str, Any], found: Inputs) -> bool | None:
    """None when an input changed: the listing, a values file, a COPY source; else whether a
    recorded stat was refreshed."""
    if data["listing"] != found.listing:
        return None
    refreshed = False
    for name, entry in data["values"].items():
        now = found.values.get(name)
        if now is None or now.sha256 != entry[1]:
            return None
        refreshed |= _refresh(entry, now)
    for name, entry in data["files"].items():
        now = unchanged(Path(name), entry[0], entry[1], entry[2])
        if now is None:
            return None
        refreshed |= _refresh(entry, now)
    return refreshed


def _refresh(entry: list[Any], now: Fingerprint) -> bool:
    """Keep ``now``'s stat in ``entry`` when it moved or became settled; True when it changed."""
    if now.signature == entry[0] and now.settled == entry[2]:
        return False
    entry[0], entry[2] = now.signature, now.settled
    return True


def _blob_whole(root: Path, digest: str, entry: list[Any]) -> bool | None:
    """None when the blob is gone or no longer hashes to its name (then it is removed: the
    build after this makes it again); else whether its stat was refreshed."""
    path = _blob(root, digest)
    looked_at = time.time_ns()
    try:
        info = os.stat(path)
    except OSError:
        return None
    if entry[1] and signature(info) == entry[0]:
        return False
    if "sha256:" + fingerprint(path).sha256 != digest:
        path.unlink(missing_ok=True)
        return None
    entry[0], entry[1] = signature(info), settled(info, looked_at)
    return True


def _blob(root: Path, digest: str) -> Path:
    path = blob_path(root, digest)
    if path is None:
        raise ValueError(digest)
    return path


def write(root: Path, key: str, data: Mapping[str, Any]) -> None:
    """Replace the record of ``key`` atomically, then drop the least recently used past ``LIMIT``."""
    from kubenb.oci.digests import atomic_file  # noqa: PLC0415  (an answer that writes nothing needs no tempfile)

    folder = root / "unchanged"
    with contextlib.suppress(OSError):
        with atomic_file(record_path(root, key), root / "tmp") as file:
            file.write(json.dumps(data).encode())
        entries = []
        for path in folder.glob("*.json"):
            with contextlib.suppress(OSError):
                entries.append((path.stat().st_mtime_ns, path))
        for _, path in sorted(entries)[:max(0, len(entries) - LIMIT)]:
            path.unlink(missing_ok=True)


def record_path(root: Path, key: str) -> Path:
    return root / "unchanged" / f"{key}.json"


def _read_regular(path: Path) -> bytes | None:
    """The bytes of ``path`` when it is a regular file of at most 4 MiB (the Kubefile reader's
    limit), opened without blocking; else None."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = file.read(KUBEFILE_LIMIT + 1)
    return data if len(data) <= KUBEFILE_LIMIT else None


def _version() -> str:
    """kubenb's version (another version may build other bytes from the same inputs)."""
    return str(getattr(sys.modules.get("kubenb"), "__version__", "unknown"))
