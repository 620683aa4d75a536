"""Writing the record of an unchanged rebuild, and answering a build with it from Python.

``kubenb/builders/record.py`` holds the record's key and its check (light enough for the
command line to answer before it loads the builders); here the lite builder keeps what it
read and made: written under the store lock, after the image is committed, and only when
nothing the build read changed while it ran (the listing and every fingerprint are taken
again and compared; the plan was made from the very Kubefile bytes in the key). The
fingerprints of the last build also spare the next one hashing its COPY sources (``known``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kubenb.builders.fingerprints import Fingerprint, Fingerprints, listing, signature
from kubenb.builders.record import ANSWERED, FORMAT, Inputs, answer, inputs, record_path, walk_context, write
from kubenb.errors import StoreError
from kubenb.events import EventSink, Message
from kubenb.store import ClusterImage, Store

if TYPE_CHECKING:
    from kubenb.builders.options import BuildOptions
    from kubenb.kubefile import BuildPlan

__all__ = ["ANSWERED", "Inputs", "answer_options", "inputs_of", "known", "record", "walk_context", "warnings_of"]


def inputs_of(options: BuildOptions, store: Store, builder: str) -> Inputs | None:
    """The inputs of the build ``options`` asks for (see ``record.inputs``), or None when the
    fast path does not apply: a preview's plan is built as shown (its COPY sources were
    resolved earlier)."""
    if options.plan is not None:
        return None
    return inputs(store.root, builder=builder, tag=options.tag, context=options.context, kubefile=options.kubefile,
                  build_args=options.build_args, values=options.values, set_values=options.set_values,
                  kube_version=options.kube_version, platforms=options.platforms, skip_invalid=options.skip_invalid,
                  skip_missing_platform=options.skip_missing_platform)


def answer_options(found: Inputs, store: Store, events: EventSink) -> ClusterImage | None:
    """The stored image when the record of ``found`` shows nothing changed (said in ``events``)."""
    answered = answer(store.root, found, store.lock)
    if answered is None:
        return None
    try:
        image = store.get(answered.name)
    except StoreError:
        return None
    events(Message(answered.message))
    for warning in answered.warnings:
        events(Message(warning, level="warning"))
    return image


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
        blobs = {}
        for layer_digest in [image.manifest_digest, image.id, *(layer.digest for layer in store.layers(image.name))]:
            info = os.stat(store.blobs.path(layer_digest))
            # Settled at once, though just written: a store blob is written once, under this
            # lock, and its bytes were checked against its name as they were written. What an
            # unsettled stat guards against, a second write in the same clock tick, would be
            # another process writing into the store behind it within milliseconds. Left
            # unsettled, the next rebuild would hash the registry layer (80 MB in
            # bench/build.py: 0.146 s instead of about 0.06 s).
            blobs[layer_digest] = [signature(info), True]
        base = store.get(plan.base) if plan.base else None
        bases = {base.name: base.manifest_digest} if base is not None else {}
        write(store.root, found.key, {
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
            data = json.loads(record_path(store.root, found.key).read_bytes())
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


def warnings_of(events: EventSink, said: list[str]) -> EventSink:
    """``events``, keeping the text of each warning in ``said``: the fast path says them again."""
    def tap(event: Any) -> None:
        if isinstance(event, Message) and event.level == "warning":
            said.append(event.text)
        events(event)
    return tap

