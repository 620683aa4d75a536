"""What kubenb needs of a manifest wherever it comes from, and how deep indexes may nest.

A registry, a registry folder and the local store all hand over manifests; the code that walks
them (platform selection, a base image's pull) only needs the exact bytes, their media type and
their digest, so one protocol serves them all and the nesting limit is the same everywhere.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["MAX_INDEX_DEPTH", "ManifestLike"]

#: Real images nest one index in another once or twice at most; deeper is a mistake or an attack.
MAX_INDEX_DEPTH = 8


class ManifestLike(Protocol):
    """A manifest's exact bytes, media type and digest (``kubenb.registry.Manifest`` is one)."""

    @property
    def data(self) -> bytes: ...

    @property
    def media_type(self) -> str: ...

    @property
    def digest(self) -> str: ...
