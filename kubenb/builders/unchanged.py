"""The fast path of an unchanged rebuild: one small record in the store answers it.

A build that ends well writes ``STORE/unchanged/<hash of key>.json``: under a key made of
what it was asked (the Kubefile's path and bytes, the context, ``--build-arg``, ``--values``
paths, ``--set``, ``--kube-version``, ``--platform``, the skip flags, the tag,
``SOURCE_DATE_EPOCH``, the builder and the kubenb version) it keeps what it read (a hash of
the context's listing, the fingerprint of every COPY source, values file and review file
(``.kubenb/include`` and ``exclude``, which the build applies to discovery's list), the base
image's manifest) and what it made (the image's manifest and every blob of it, each with its
stat). A build with the same key whose inputs all check out (see fingerprints.py: a stat,
or a hash where the stat moved or was not settled), whose tag still names that manifest and
whose blobs are all there, unchanged, answers with the stored image: nothing of discovery,
the Kubefile parser or the registry client is imported, no layer is read. A blob whose stat
moved is hashed: one that no longer hashes to its name is removed, so the build that
follows makes it again. Anything missing, unreadable or foreign is a miss, never an error.

The record is written under the store lock, after the image is committed, and only when
nothing the build read changed while it ran (the listing, the Kubefile and every
fingerprint are taken again and compared); it is replaced atomically, so a concurrent build
reads a whole record or none. The folder keeps the ``LIMIT`` most recently used records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubenb.builders.fingerprints import Fingerprint, Fingerprints, fingerprint, listing, settled, signature, unchanged
from kubenb.errors import StoreError
from kubenb.events import EventSink, Message
from kubenb.oci.digests import atomic_file, file_digest
from kubenb.store import ClusterImage, Store

if TYPE_CHECKING:
    from kubenb.builders.options import BuildOptions
    from kubenb.kubefile import BuildPlan

__all__ = ["ANSWERED", "FORMAT", "LIMIT", "Inputs", "answer", "inputs", "known", "record", "walk_context",
           "warnings_of"]

#: Bumped whenever the record's form or meaning changes: an older record is then a miss.
FORMAT = 1
LIMIT = 64
KUBEFILE_LIMIT = 4 * 1024 * 1024  # kubenb.kubefile.read.MAX_BYTES: a larger one is the slow path's error
#: What the fast path says (tests look for its start).
ANSWERED = "unchanged since the last build"
#: The image-list review in a context (kubenb.discover.review's INCLUDE and EXCLUDE, spelled
#: here so that checking a record imports no discovery): read whole by every build.
REVIEW_FILES = (".kubenb/include", ".kubenb/exclude")


@dataclass
class Inputs:
    """What a build is about to read, taken before it reads anything (the plan included)."""

    key: str  # the hash of what the build is asked
    kubefile: Path
    kubefile_bytes: bytes
    context: Path
    skip: Path | None  # the store, when it lies in the context
    listing: str | None  # None until walked: a build with no record to check does not walk twice
    values: dict[str, Fingerprint] = field(default_factory=dict)  # the values and review files, hashed


def inputs(options: BuildOptions, store: Store, builder: str, *, walk: bool = True) -> Inputs | None:
    """The inputs of the build ``options`` asks for, or None when the fast path does not apply:
    a preview's plan is built as shown (its COPY sources were resolved earlier), and a
    Kubefile or values file that cannot be read, or is no regular file, is the slow path's to
    report. The Kubefile is read here, once: the build plans from these very bytes."""
    if options.plan is not None:
        return None
    try:
        context = options.context.resolve()
        kubefile = options.kubefile.resolve()
        text = _read_regular(kubefile)
        named = [path.resolve() for paths in options.values.values() for path in paths]
        if text is None or not all(stat.S_ISREG(os.stat(path).st_mode) for path in named):
            return None  # a FIFO or a device would block: the slow path refuses it in one line
        values = {str(path): fingerprint(path) for path in named}
        values |= {str(path): fingerprint(path) for name in REVIEW_FILES if (path := context / name).is_file()}
        store_root = store.root.resolve()
    except (OSError, RuntimeError):
        return None
    if not context.is_dir():
        return None
    skip = store_root if store_root.is_relative_to(context) else None
    # hashed: a --build-arg may be a token, and the record is written nowhere else but must not hold it
    key = json.dumps([
        FORMAT, _version(), builder, options.tag, str(context), str(kubefile), hashlib.sha256(text).hexdigest(),
        sorted(options.build_args.items()), {chart: [str(p.resolve()) for p in paths]
                                             for chart, paths in sorted(options.values.items())},
        {chart: list(exprs) for chart, exprs in sorted(options.set_values.items())}, options.kube_version,
        sorted(options.platforms) if options.platforms is not None else None,
        options.skip_invalid, options.skip_missing_platform, os.environ.get("SOURCE_DATE_EPOCH"),
    ])
    return Inputs(hashlib.sha256(key.encode()).hexdigest(), kubefile, text, context, skip,
                  listing(context, skip=skip) if walk else None, values)


def walk_context(found: Inputs) -> None:
    """Take the context's listing, if not yet: a build does it before its plan reads the context."""
    if found.listing is None:
        found.listing = listing(found.context, skip=found.skip)


def answer(found: Inputs, store: Store, events: EventSink) -> ClusterImage | None:
    """The stored image when the record of ``found.key`` shows nothing changed, else None."""
    path = _path(store, found.key)
    if not path.is_file():
        return None
    walk_context(found)
    with store.lock():  # read under it: a build that held it may have just replaced the record
        try:
            data = json.loads(path.read_bytes())
            if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != found.key:
                return None
            image, refreshed = _check(data, found, store)
        except (OSError, KeyError, TypeError, ValueError, AttributeError, IndexError, StoreError):
            return None
        if image is None:
            return None
        if refreshed:  # stats that were not settled are now: the next check needs no hashing
            _write(store, found.key, data)
        else:
            with contextlib.suppress(OSError):
                os.utime(path)  # used now: the last to go when the folder is full
    events(Message(f"{ANSWERED}: {image.name} ({image.short_id}), checked whole; nothing rebuilt"))
    for warning in data.get("warnings", []):
        events(Message(str(warning), level="warning"))
    return image


def _check(data: dict[str, Any], found: Inputs, store: Store) -> tuple[ClusterImage | None, bool]:
    """The recorded image if every input and blob checks out; whether a stat was refreshed."""
    refreshed = _inputs_same(data, found)
    if refreshed is None or any(store.get(base).manifest_digest != digest for base, digest in data["bases"].items()):
        return None, False
    image = store.get(data["tag"])
    if image.manifest_digest != data["manifest"]:
        return None, False
    for digest, entry in data["blobs"].items():
        whole = _blob_whole(store, digest, entry)
        if whole is None:
            return None, False
        refreshed |= whole
    return image, refreshed


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


def _blob_whole(store: Store, digest: str, entry: list[Any]) -> bool | None:
    """None when the blob is gone or no longer hashes to its name (then it is removed: the
    build after this makes it again); else whether its stat was refreshed."""
    path = store.blobs.path(digest)
    looked_at = time.time_ns()
    try:
        info = os.stat(path)
    except OSError:
        return None
    if entry[1] and signature(info) == entry[0]:
        return False
    if file_digest(path) != digest:
        store.blobs.delete(digest)
        return None
    entry[0], entry[1] = signature(info), settled(info, looked_at)
    return True


def record(found: Inputs | None, store: Store, image: ClusterImage, *, plan: BuildPlan, hashed: Fingerprints,
           warnings: Iterable[str]) -> None:
    """Keep what the build of ``found`` read and made, unless something it read changed while
    it ran or was never fingerprinted. Called under the store lock, after the commit."""
    if found is None:
        return
    with contextlib.suppress(OSError, StoreError):
        files = _sources(plan, hashed)
        if files is None or not _still(found):
            return
        looked_at = time.time_ns()
        blobs = {}
        for layer_digest in [image.manifest_digest, image.id, *(layer.digest for layer in store.layers(image.name))]:
            info = os.stat(store.blobs.path(layer_digest))
            blobs[layer_digest] = [signature(info), settled(info, looked_at)]
        bases = {plan.base: store.get(plan.base).manifest_digest} if plan.base else {}
        _write(store, found.key, {
            "format": FORMAT, "key": found.key, "listing": found.listing, "tag": image.name,
            "manifest": image.manifest_digest, "bases": bases, "blobs": blobs, "warnings": list(warnings),
            "values": {name: [f.signature, f.sha256, f.settled] for name, f in found.values.items()},
            "files": {name: [f.signature, f.sha256, f.settled] for name, f in files.items()},
        })


def known(found: Inputs | None, store: Store) -> Fingerprints:
    """Fingerprints that start from the COPY sources the last build of ``found.key`` hashed:
    after one file changed, the others are not read again to make their cache keys."""
    files: dict[str, Fingerprint] = {}
    if found is not None:
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            data = json.loads(_path(store, found.key).read_bytes())
            if data.get("format") == FORMAT and data.get("key") == found.key:
                files = {str(name): Fingerprint([int(n) for n in entry[0]], str(entry[1]), entry[2] is True)
                         for name, entry in data["files"].items()}
    return Fingerprints(files)


def _sources(plan: BuildPlan, hashed: Fingerprints) -> dict[str, Fingerprint] | None:
    """The fingerprint of every COPY source file, each as the build hashed it; None when one
    was not hashed or its stat moved since (it changed while the build ran)."""
    files: dict[str, Fingerprint] = {}
    for step in plan.copies:
        for source in step.sources:
            for path in [source.path] if source.below is None else [host for _, host in source.below]:
                known = hashed.seen.get(str(path))
                if known is None or signature(os.stat(path)) != known.signature:
                    return None
                files[str(path)] = known
    return files


def _still(found: Inputs) -> bool:
    """Whether the values files and the context's listing are as they were (the plan was made
    from the very Kubefile bytes in the key)."""
    if any(signature(os.stat(name)) != f.signature for name, f in found.values.items()):
        return False
    return listing(found.context, skip=found.skip) == found.listing


def _write(store: Store, key: str, data: Mapping[str, Any]) -> None:
    """Replace the record of ``key`` atomically, then drop the least recently used past ``LIMIT``."""
    folder = store.root / "unchanged"
    with contextlib.suppress(OSError):
        with atomic_file(_path(store, key), store.root / "tmp") as file:
            file.write(json.dumps(data).encode())
        entries = []
        for path in folder.glob("*.json"):
            with contextlib.suppress(OSError):
                entries.append((path.stat().st_mtime_ns, path))
        for _, path in sorted(entries)[:max(0, len(entries) - LIMIT)]:
            path.unlink(missing_ok=True)


def _read_regular(path: Path) -> bytes | None:
    """The bytes of ``path`` when it is a regular file of at most 4 MiB (the Kubefile reader's
    limit), opened without blocking; else None."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = file.read(KUBEFILE_LIMIT + 1)
    return data if len(data) <= KUBEFILE_LIMIT else None


def _path(store: Store, key: str) -> Path:
    return store.root / "unchanged" / f"{key}.json"


def _version() -> str:
    """kubenb's version (another version may build other bytes from the same inputs)."""
    return str(getattr(sys.modules.get("kubenb"), "__version__", "unknown"))


def warnings_of(events: EventSink, said: list[str]) -> EventSink:
    """``events``, keeping the text of each warning in ``said``: the fast path says them again."""
    def tap(event: Any) -> None:
        if isinstance(event, Message) and event.level == "warning":
            said.append(event.text)
        events(event)
    return tap

