"""The build cache: ``ROOT/cache/<sha256 of key>.json`` -> the layer a build step made.

The key is whatever the engine says identifies a step with its inputs (instruction text,
parent layers, hashes of COPY sources...); the store only remembers it. One small file per key
written atomically keeps concurrent builds from ever seeing a torn entry, and the garbage
collector keeps the blobs these files name, so ``rmi`` does not throw away the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from kubenb.oci.digests import atomic_file, is_sha256
from kubenb.store.image import Layer

__all__ = ["first_built", "lookup", "note", "referenced", "remember", "remember_note"]


def _path(root: Path, key: str) -> Path:
    return root / "cache" / f"{hashlib.sha256(key.encode()).hexdigest()}.json"


def _layer(data: object) -> Layer | None:
    """The layer an entry names, or None for anything malformed (a cache miss, not an error)."""
    if not isinstance(data, dict):
        return None
    digest, diff_id, size = data.get("digest"), data.get("diff_id"), data.get("size")
    if isinstance(digest, str) and isinstance(diff_id, str) and isinstance(size, int) \
            and is_sha256(digest) and is_sha256(diff_id):
        return Layer(digest=digest, diff_id=diff_id, size=size)
    return None


def lookup(root: Path, key: str) -> Layer | None:
    """The layer cached under ``key``, or None."""
    try:
        data = json.loads(_path(root, key).read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    return _layer(data) if isinstance(data, dict) and data.get("key") == key else None


def remember(root: Path, key: str, layer: Layer, created: str) -> None:
    """Cache ``layer`` under ``key`` (replacing an older entry).

    ``created`` is kept from the key's first build, even when ``--no-cache`` makes the layer
    again: an image's timestamps then come from its inputs, not from the clock of the latest
    build, so the same inputs give the same image ID.
    """
    path = _path(root, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = first_built(root, key) or created
    with atomic_file(path, root / "tmp") as file:
        file.write(json.dumps({"key": key, **layer.to_dict(), "created": created}).encode())


def remember_note(root: Path, key: str, note: dict[str, Any]) -> None:
    """Keep ``note`` about the layer of ``key`` in its own small file (written atomically), so
    that a build can use the layer without reading it (the registry layer's image digests)."""
    path = _path(root, f"note\n{key}")
    with atomic_file(path, root / "tmp") as file:
        file.write(json.dumps({"key": key, "note": note}).encode())


def note(root: Path, key: str) -> dict[str, Any] | None:
    """The note kept for ``key``, or None (none, or unreadable: a miss, never an error)."""
    try:
        data = json.loads(_path(root, f"note\n{key}").read_bytes())
    except (OSError, ValueError):
        return None
    found = data.get("note") if isinstance(data, dict) and data.get("key") == key else None
    return found if isinstance(found, dict) else None


def first_built(root: Path, key: str) -> str | None:
    """When the step of ``key`` was first built (RFC 3339), or None for a key never seen."""
    try:
        data = json.loads(_path(root, key).read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    created = data.get("created") if isinstance(data, dict) and data.get("key") == key else None
    return created if isinstance(created, str) else None


def referenced(root: Path) -> list[str]:
    """The blob digests cache entries name, so garbage collection keeps them."""
    folder = root / "cache"
    if not folder.is_dir():
        return []
    digests = []
    for path in folder.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            layer = _layer(json.loads(path.read_bytes()))
            if layer is not None:
                digests.append(layer.digest)
    return digests
