"""Pushing a cluster image from the store to an OCI registry.

Like ``pull``, this module may not import ``kubenb.registry`` (both sit in layer 3), so the
caller hands in the registry client; anything with ``upload_blob`` and ``put_manifest`` like
``kubenb.registry.RegistryClient`` will do. The manifest goes up as the exact bytes stored, so
the registry serves the manifest digest (and the config digest, the image ID) the store has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from kubenb.errors import StoreError
from kubenb.events import CancelToken
from kubenb.oci.media_types import OCI_MANIFEST
from kubenb.store.blobs import Blobs

__all__ = ["RegistryTarget", "send"]


class RegistryTarget(Protocol):
    """The part of ``kubenb.registry.RegistryClient`` a push needs."""

    def upload_blob(self, repository: str, digest: str, path: Path, *, size: int) -> bool: ...

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str: ...


def _descriptors(manifest: dict[str, Any]) -> list[tuple[str, int]]:
    """(digest, size) of the layers, then the config: a registry checks both exist at the manifest PUT."""
    return [(str(d["digest"]), int(d["size"])) for d in [*manifest["layers"], manifest["config"]]]


def send(blobs: Blobs, manifest: dict[str, Any], data: bytes, target: RegistryTarget, *, repository: str,
         tag: str, cancel: CancelToken) -> str:
    """Upload the blobs ``manifest`` names (those missing there), then ``data`` under ``tag``.

    Every blob is checked first, so an incomplete image fails before anything is sent. A cancel
    between blobs sends no manifest: the tag never names a partly pushed image.
    """
    descriptors = _descriptors(manifest)
    missing = [digest for digest, _ in descriptors if not blobs.has(digest)]
    if missing:
        raise StoreError(f"blob {missing[0]} of the image is missing from the store", hint="run check")
    for digest, size in descriptors:
        cancel.check()
        target.upload_blob(repository, digest, blobs.path(digest), size=size)
    cancel.check()
    media_type = str(manifest.get("mediaType") or OCI_MANIFEST)
    return target.put_manifest(repository, tag, data, media_type)
