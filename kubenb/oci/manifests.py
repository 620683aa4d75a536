"""Manifests wherever they come from: what kind each is and what it references.

A registry, a registry folder and the local store all hand over manifests; the code that walks
them (platform selection, a base image's pull, a folder's checks) only needs the exact bytes,
their media type and their digest, so one protocol serves them all. Which kind a manifest is
(the declared ``mediaType``, else the Content-Type it came with, else its shape) and what it
names (child manifests with platforms, or a config and layers) are read here, once.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from kubenb.errors import StoreError
from kubenb.oci.digests import split_digest
from kubenb.oci.media_types import INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST, SCHEMA1_TYPES
from kubenb.oci.platforms import platform_matches

__all__ = [
    "MAX_INDEX_DEPTH",
    "MAX_MANIFEST_BYTES",
    "Descriptor",
    "ManifestLike",
    "References",
    "is_schema1",
    "manifest_kind",
    "parse_references",
]

#: Real images nest one index in another once or twice at most; deeper is a mistake or an attack.
MAX_INDEX_DEPTH = 8
#: The distribution registry's own limit; anything larger is not a manifest but an attack.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class ManifestLike(Protocol):
    """A manifest's exact bytes, media type and digest (``kubenb.registry.Manifest`` is one)."""

    @property
    def data(self) -> bytes: ...

    @property
    def media_type(self) -> str: ...

    @property
    def digest(self) -> str: ...


def manifest_kind(document: Mapping[str, object], content_type: str = "") -> str:
    """The media type of a parsed manifest: its own ``mediaType``, else ``content_type`` (the
    Content-Type it was served with) when that names a manifest, else what its fields say
    (``manifests``: an OCI index; ``config``: an OCI image manifest), else ``content_type``
    as it is (maybe empty), for the caller to refuse."""
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    served = content_type.partition(";")[0].strip().lower()
    if served in MANIFEST_TYPES or served in SCHEMA1_TYPES:
        return served
    if "manifests" in document:
        return OCI_INDEX
    return OCI_MANIFEST if "config" in document else served


def is_schema1(document: Mapping[str, object], kind: str) -> bool:
    """A schema 1 manifest (signed, pre-2017), which kubenb cannot verify and never keeps."""
    return kind in SCHEMA1_TYPES or document.get("schemaVersion") == 1


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
        """Config and layers a store or folder must hold (foreign layers left out)."""
        return tuple(b for b in (self.config, *self.layers) if b is not None and not b.foreign)

    def children(self, platforms: Collection[str] | None = None) -> tuple[Descriptor, ...]:
        """The index's children that ``--platform`` keeps (all without a filter)."""
        return tuple(child for child in self.manifests if child.matches(platforms))


def parse_references(data: bytes, media_type: str = "") -> References:
    """Parse a manifest or index (``media_type``: the Content-Type it came with, if any)."""
    try:
        document = json.loads(data)
    except ValueError as error:
        raise StoreError(f"manifest is not JSON: {error}") from error
    except RecursionError:
        raise StoreError("manifest is JSON nested too deeply to be a manifest") from None
    if not isinstance(document, dict):
        raise StoreError("manifest is not a JSON object")
    kind = manifest_kind(document, media_type)
    if is_schema1(document, kind):
        raise StoreError("schema 1 manifests are not supported", hint="pull a tag pushed with a current client")
    if kind in INDEX_TYPES:
        return References(kind, manifests=_descriptors(document, "manifests"))
    if kind not in MANIFEST_TYPES:
        raise StoreError(f"{kind or 'content without a media type'} is not an image manifest or index")
    return References(kind, config=_descriptor(document.get("config")), layers=_descriptors(document, "layers"))


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
