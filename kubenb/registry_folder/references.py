"""What a manifest or index references: child manifests with platforms, a config, layers.

Parsed apart from the folder that stores them so the saver (what to fetch) and the folder (what
must be present and linked) read manifests the same way.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

from kubenb.errors import StoreError
from kubenb.reference import is_content_digest, platform_matches

__all__ = [
    "INDEX_TYPES", "MANIFEST_TYPES", "Descriptor", "References",
    "parse_references",
    "split_digest",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPES = frozenset({OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"})


def split_digest(digest: str) -> tuple[str, str]:
    """(algorithm, hex): refused unless distribution would store it, since it becomes a path."""
    if not is_content_digest(digest):
        raise StoreError(f"{digest!r} is not a digest (sha256:<64 hex digits>)")
    algorithm, hex_ = digest.split(":")
    return algorithm, hex_


@dataclass(frozen=True)
class Descriptor:
    """What a manifest names: digest and size to fetch, media type, the ``os/arch[/variant]`` of
    an index's child (for ``--platform``), and whether it is a foreign layer registries never serve."""

    digest: str
    size: int
    media_type: str
    platform: str | None = None
    foreign: bool = False

    def matches(self, platforms: Collection[str] | None) -> bool:
        """Kept by ``--platform``: no filter, no platform, or equal (``linux/arm64`` takes any variant)."""
        if platforms is None or self.platform is None:
            return True
        return any(platform_matches(self.platform, p) for p in platforms)


@dataclass(frozen=True)
class References:
    """What a manifest or index needs beside itself: child manifests, or a config and layers."""

    media_type: str
    manifests: tuple[Descriptor, ...] = ()
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config and layers the folder must hold and link (foreign layers left out)."""
        return tuple(b for b in (self.config, *self.layers) if b is not None and not b.foreign)

    def children(self, platforms: Collection[str] | None = None) -> tuple[Descriptor, ...]:
        """The index's children that ``--platform`` keeps (all without a filter)."""
        return tuple(child for child in self.manifests if child.matches(platforms))


def _kind(document: dict[str, object], media_type: str) -> str:
    """The type the registry will serve: the declared one, else the Content-Type, else the shape."""
    declared = document.get("mediaType")
    kind = declared if isinstance(declared, str) and declared else media_type.partition(";")[0].strip()
    if kind.startswith("application/vnd.docker.distribution.manifest.v1+") or document.get("schemaVersion") == 1:
        raise StoreError("schema 1 manifests are not supported", hint="pull a tag pushed with a current client")
    if kind in INDEX_TYPES or kind in MANIFEST_TYPES:
        return kind
    if "manifests" in document or "config" in document:
        return OCI_INDEX if "manifests" in document else OCI_MANIFEST
    raise StoreError(f"{kind or 'content without a media type'} is not an image manifest or index")


def _descriptor(raw: object) -> Descriptor:
    fields = raw if isinstance(raw, dict) else {}
    digest, size, media_type = fields.get("digest"), fields.get("size"), fields.get("mediaType")
    if not isinstance(digest, str) or type(size) is not int or size < 0 or not isinstance(media_type, str):
        raise StoreError(f"manifest descriptor without digest, size or media type: {json.dumps(raw)[:200]}")
    split_digest(digest)
    platform = fields.get("platform")
    if isinstance(platform, dict):
        platform = "/".join(str(platform[k]) for k in ("os", "architecture", "variant") if platform.get(k))
    foreign = bool(fields.get("urls")) and ("foreign" in media_type or "nondistributable" in media_type)
    return Descriptor(digest, size, media_type, platform if isinstance(platform, str) else None, foreign)


def _descriptors(document: dict[str, object], key: str) -> tuple[Descriptor, ...]:
    listed = document.get(key) or []
    if not isinstance(listed, list):
        raise StoreError(f"manifest {key} is not a list")
    return tuple(map(_descriptor, listed))


def parse_references(data: bytes, media_type: str = "") -> References:
    """Parse a manifest or index (``media_type``: the Content-Type it came with, if any)."""
    try:
        document = json.loads(data)
    except ValueError as error:
        raise StoreError(f"manifest is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise StoreError("manifest is not a JSON object")
    kind = _kind(document, media_type)
    if kind in INDEX_TYPES:
        return References(kind, manifests=_descriptors(document, "manifests"))
    return References(kind, config=_descriptor(document.get("config")), layers=_descriptors(document, "layers"))


