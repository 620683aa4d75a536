"""Pulling a cluster image from an OCI registry into the store.

The store sits in the same layer as ``registry`` and may not import it, so the caller (the
engine or the CLI) hands in the registry client; anything with ``get_manifest`` and
``download_blob`` like ``kubenb.registry.RegistryClient`` will do. The manifest is stored as
the exact bytes served and every blob is verified by the client, so a pulled image keeps the
id and manifest digest it had where it was pushed. A cancel (the token the caller made the
client with, checked here between blobs too) leaves the store as it was: staged blobs go.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from kubenb.errors import StoreError
from kubenb.events import CancelToken
from kubenb.model import ImageRef
from kubenb.oci.digests import is_sha256
from kubenb.oci.manifests import ManifestLike
from kubenb.oci.media_types import INDEX_TYPES, OCI_MANIFEST
from kubenb.oci.selection import select
from kubenb.store import layout
from kubenb.store.blobs import Blobs

__all__ = ["RegistrySource", "fetch"]


class RegistrySource(Protocol):
    """The part of ``kubenb.registry.RegistryClient`` a pull needs."""

    def get_manifest(self, repository: str, reference: str) -> ManifestLike: ...

    def download_blob(self, repository: str, digest: str, destination: Path, *, expected_size: int | None = None,
                      on_bytes: Callable[[int], None] | None = None) -> int: ...


def _platform_manifest(ref: ImageRef, index: ManifestLike, source: RegistrySource, platform: str) -> ManifestLike:
    """The manifest of ``platform`` in an index: a cluster image holds images for one platform.

    ``linux/arm64`` takes any variant of it; ``linux/arm64/v8`` only that one. Nested indexes
    are followed by the one walk of ``kubenb.oci.selection``; the first image manifest whose
    index entry names the platform wins.
    """
    selection = select(index, [platform], lambda child: source.get_manifest(ref.path, child.digest),
                       root_platform=lambda _: None, where=str(ref))
    if not selection.matched:
        raise StoreError(f"{ref} has no {platform} image (it offers {', '.join(selection.offered) or 'none'})",
                         hint="choose one of its platforms with FROM --platform=...")
    return selection.matched[0]


def _manifest(ref: ImageRef, source: RegistrySource, platform: str) -> tuple[ManifestLike, dict[str, Any]]:
    reference = ref.digest or ref.tag or "latest"
    manifest = source.get_manifest(ref.path, reference)
    if manifest.media_type in INDEX_TYPES:
        manifest = _platform_manifest(ref, manifest, source, platform)
    if manifest.media_type != OCI_MANIFEST:
        raise StoreError(f"{ref} is a {manifest.media_type}, not an OCI image manifest",
                         hint="a cluster image is an OCI image; push it with kubenb push")
    document = layout.load_json(manifest.data, f"manifest of {ref}")
    return manifest, document


def _needed(ref: ImageRef, document: dict[str, Any]) -> list[tuple[str, int]]:
    try:
        descriptors = [document["config"], *document.get("layers", [])]
        needed = [(str(d["digest"]), int(d["size"])) for d in descriptors]
    except (KeyError, TypeError, ValueError):
        raise StoreError(f"the manifest of {ref} is not an OCI image manifest", hint="check the image") from None
    for digest, _ in needed:
        if not is_sha256(digest):
            raise StoreError(f"{ref}: blob {digest!r} is not a sha256 digest", hint="check the image")
    return needed


@contextlib.contextmanager
def fetch(ref: ImageRef, source: RegistrySource, blobs: Blobs, platform: str,
          cancel: CancelToken) -> Iterator[tuple[str, bytes]]:
    """Download what the store lacks into staging; yield (manifest digest, manifest bytes).

    The caller adopts the staged blobs and names the image inside the block, under the lock;
    the staging folder goes away however the block ends.
    """
    manifest, document = _manifest(ref, source, platform)
    blobs.temp_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=blobs.temp_dir, prefix="pull."))
    try:
        for digest, size in _needed(ref, document):
            cancel.check()
            if not blobs.has(digest):
                staged = folder / digest.removeprefix("sha256:")
                source.download_blob(ref.path, digest, staged, expected_size=size)
                blobs.adopt(staged, digest)
        cancel.check()
        yield manifest.digest, manifest.data
    finally:
        shutil.rmtree(folder, ignore_errors=True)
