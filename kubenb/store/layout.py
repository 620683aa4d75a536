"""The OCI image layout of the store: ``oci-layout``, ``index.json``, and the JSON documents.

The store *is* an OCI image layout so that skopeo, oras or any OCI tool can read it as it is
(``oci:ROOT:NAME:TAG``). ``index.json`` maps names to manifests through the
``org.opencontainers.image.ref.name`` annotation, which holds the full ``NAME:TAG``.
It is only rewritten under the store lock, read-modify-write, by atomic rename.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kubenb.errors import StoreError
from kubenb.oci.digests import atomic_file, is_sha256
from kubenb.oci.media_types import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST
from kubenb.oci.platforms import host_platform
from kubenb.store.image import Layer
from kubenb.store.root import REF_NAME

__all__ = [
    "REF_NAME",
    "Entry",
    "encode",
    "load_json",
    "make_config",
    "make_manifest",
    "read_index",
    "write_index",
    "write_layout_file",
]

CREATED = "org.opencontainers.image.created"
LAYOUT = {"imageLayoutVersion": "1.0.0"}
MAX_DOCUMENT = 4 * 1024 * 1024  # distribution's limit for a manifest: anything bigger is no document


@dataclass(frozen=True)
class Entry:
    """One manifest of ``index.json``: the name pointing at it and its descriptor."""

    name: str
    digest: str
    size: int

    def to_descriptor(self) -> dict[str, Any]:
        return {"mediaType": OCI_MANIFEST, "digest": self.digest, "size": self.size,
                "annotations": {REF_NAME: self.name}}


def encode(document: Mapping[str, Any]) -> bytes:
    """Compact, key-ordered JSON: the same document always gives the same digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def load_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise StoreError(f"{what} is not valid JSON: {error}", hint="the store may be damaged; run check") from None
    except RecursionError:
        raise StoreError(f"{what} is JSON nested too deeply", hint="it is damaged or hostile; remove it") from None
    if not isinstance(document, dict):
        raise StoreError(f"{what} is not a JSON object", hint="the store may be damaged; run check")
    return document


def now() -> str:
    """The current time in RFC 3339 (UTC, seconds), as OCI configs write it."""
    return _rfc3339(datetime.now(timezone.utc))


def source_date_epoch() -> str | None:
    """``SOURCE_DATE_EPOCH`` as RFC 3339, or None when unset; a malformed value is an error,
    never silently the clock (the build would then not be the reproducible one asked for)."""
    written = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not written:
        return None
    if not written.isdigit():
        raise StoreError(f"SOURCE_DATE_EPOCH={written[:40]!r} is not a number of seconds since 1970",
                         hint="set it to an integer such as $(git log -1 --format=%ct), or unset it")
    try:
        return _rfc3339(datetime.fromtimestamp(int(written), timezone.utc))
    except (OverflowError, OSError, ValueError):
        raise StoreError(f"SOURCE_DATE_EPOCH={written[:40]} is out of range",
                         hint="set it to seconds since 1970, such as $(git log -1 --format=%ct)") from None


def _rfc3339(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def layer_type(layer: Layer) -> str:
    """An uncompressed layer's blob is its tar, so its digest is its diff_id."""
    return OCI_LAYER if layer.digest == layer.diff_id else OCI_LAYER_GZIP


def make_config(layers: Sequence[Layer], labels: Mapping[str, str], history: Sequence[str],
                created: str, platform: str | None = None) -> dict[str, Any]:
    """An OCI image config: what ``docker inspect`` of a cluster image would show."""
    os_name, architecture, *variant = (platform or host_platform()).split("/")
    return {
        "created": created,
        "architecture": architecture,
        "os": os_name,
        **({"variant": variant[0]} if variant else {}),
        "config": {"Labels": dict(labels)},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": created, "created_by": step} for step in history],
    }


def make_manifest(config_digest: str, config_size: int, layers: Sequence[Layer],
                  annotations: Mapping[str, str]) -> dict[str, Any]:
    """An OCI image manifest pointing at the config and the gzip layers."""
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": layer_type(layer), "digest": layer.digest, "size": layer.size} for layer in layers],
        "annotations": dict(annotations),
    }


def write_layout_file(root: Path) -> None:
    """``oci-layout``, written once: it tells OCI tools the folder is an image layout."""
    path = root / "oci-layout"
    if not path.exists():
        with atomic_file(path, root / "tmp") as file:
            file.write(encode(LAYOUT))


def read_index(root: Path) -> list[Entry]:
    """The named manifests of ``index.json`` (an absent file is an empty store)."""
    try:
        data = (root / "index.json").read_bytes()
    except FileNotFoundError:
        return []
    index = load_json(data, str(root / "index.json"))
    return [_entry(descriptor, root) for descriptor in index.get("manifests", [])]


def _entry(descriptor: Any, root: Path) -> Entry:
    try:
        name = descriptor["annotations"][REF_NAME]
        digest, size = descriptor["digest"], descriptor["size"]
    except (KeyError, TypeError):
        raise StoreError(f"{root / 'index.json'} holds a manifest with no name, digest or size",
                         hint="the store may be damaged; run check") from None
    if not (isinstance(name, str) and isinstance(digest, str) and is_sha256(digest) and isinstance(size, int)):
        raise StoreError(f"{root / 'index.json'} holds a bad entry for {name!r}", hint="run check")
    return Entry(name=name, digest=digest, size=size)


def write_index(root: Path, entries: Sequence[Entry]) -> None:
    """Rewrite ``index.json`` whole, sorted by name (call it under the store lock)."""
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": [e.to_descriptor() for e in sorted(entries, key=lambda e: e.name)]}
    with atomic_file(root / "index.json", root / "tmp") as file:
        file.write(encode(document))
