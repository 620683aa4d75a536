"""Pull images into a registry folder: the ``save-images`` step of every lite build.

The registry client (layer 3) knows HTTP; the folder (``layout``) knows the storage layout;
this module only decides what to fetch. A blob already in the folder is never fetched again,
a blob several images share is fetched once even when they are pulled at the same time, and
an image already complete in the folder is skipped without a request.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kubenb.cache.layout import Descriptor, RegistryFolder, parse_references
from kubenb.errors import KubenbError, StoreError
from kubenb.events import BlobDone, BlobProgress, BlobStarted, EventSink, ImageDone, ImageSkipped, ImageStarted, ignore
from kubenb.model import ImageRef
from kubenb.registry import Manifest, Registries, RegistryClient

__all__ = ["SaveResult", "SavedImage", "save_images"]


@dataclass(frozen=True)
class SavedImage:
    image: ImageRef
    digest: str
    fetched_bytes: int
    skipped: bool


@dataclass(frozen=True)
class SaveResult:
    images: tuple[SavedImage, ...]

    @property
    def fetched_bytes(self) -> int:
        return sum(image.fetched_bytes for image in self.images)


def save_images(
    images: Sequence[ImageRef],
    folder: Path,
    *,
    registries: Registries | None = None,
    platforms: Collection[str] | None = None,
    workers: int = 8,
    events: EventSink = ignore,
) -> SaveResult:
    """Every image of ``images`` complete in the registry folder at ``folder``.

    Images that fail are reported together at the end, each named, after the others are
    saved: what was saved stays saved, and a rerun fetches only what is missing.
    """
    _refuse_name_clashes(images)
    saver = _Saver(RegistryFolder(folder), registries or Registries(), platforms, workers, events)
    try:
        return saver.run(images)
    finally:
        saver.close()


def _refuse_name_clashes(images: Sequence[ImageRef]) -> None:
    """Two images that would land on one repository and tag (mirror semantics drop the domain)."""
    seen: dict[tuple[str, str | None, str | None], ImageRef] = {}
    for ref in images:
        key = (ref.repository, ref.tag, ref.digest if ref.tag is None else None)
        other = seen.setdefault(key, ref)
        if other.name != ref.name:
            raise StoreError(
                f"{other} and {ref} would both be served as {ref.repository}:{ref.tag or ref.digest}",
                hint="a registry folder drops the source registry from names; keep one of them",
            )


class _Saver:
    def __init__(self, folder: RegistryFolder, registries: Registries, platforms: Collection[str] | None,
                 workers: int, events: EventSink) -> None:
        self.folder = folder
        self.registries = registries
        self.platforms = platforms
        self.events = events
        self.blob_pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="kubenb-blob")
        self.image_pool = ThreadPoolExecutor(max(1, min(4, workers)), thread_name_prefix="kubenb-image")
        self.in_flight: dict[str, Future[int]] = {}
        self.lock = threading.Lock()

    def close(self) -> None:
        self.image_pool.shutdown(wait=True, cancel_futures=True)
        self.blob_pool.shutdown(wait=True, cancel_futures=True)

    def run(self, images: Sequence[ImageRef]) -> SaveResult:
        unique = list(dict.fromkeys(images))
        futures = [self.image_pool.submit(self.save, ref, n, len(unique)) for n, ref in enumerate(unique, 1)]
        results: list[SavedImage] = []
        failures: list[str] = []
        for ref, future in zip(unique, futures, strict=True):
            try:
                results.append(future.result())
            except KubenbError as error:
                failures.append(f"{ref}: {error}")
        if failures:
            raise StoreError(
                f"{len(failures)} of {len(unique)} images could not be saved: " + "; ".join(failures),
                hint="fix the cause and run again: images already saved are not fetched again",
            )
        return SaveResult(tuple(results))

    def save(self, ref: ImageRef, index: int, total: int) -> SavedImage:
        self.events(ImageStarted(str(ref), index, total))
        known = ref.digest or self.folder.tag_digest(ref.repository, ref.tag or "latest")
        if known and self.folder.is_complete(ref.repository, known, self.platforms):
            if ref.tag and ref.digest:
                self.folder.put_manifest(ref.repository, self.folder.blob_path(known).read_bytes(), known, ref.tag)
            self.events(ImageSkipped(str(ref), known))
            return SavedImage(ref, known, 0, skipped=True)
        client = self.registries.client_for(ref)
        manifest = client.get_manifest(ref.repository, ref.digest or ref.tag or "latest")
        references = parse_references(manifest.data, manifest.media_type)
        fetched = 0
        for child in references.children(self.platforms) if references.is_index else ():
            fetched += self.save_manifest(client, ref, client.get_manifest(ref.repository, child.digest), None)
        fetched += self.save_manifest(client, ref, manifest, ref.tag)
        self.events(ImageDone(str(ref), manifest.digest, fetched))
        return SavedImage(ref, manifest.digest, fetched, skipped=False)

    def save_manifest(self, client: RegistryClient, ref: ImageRef, manifest: Manifest, tag: str | None) -> int:
        """Fetch what ``manifest`` references (children of an index are saved before it), then store it."""
        references = parse_references(manifest.data, manifest.media_type)
        blobs = [self.fetch(client, ref, blob) for blob in references.blobs if not blob.foreign]
        fetched = 0
        for future, first in blobs:
            size = future.result()  # waits for a download another image started, too
            fetched += size if first else 0
        self.folder.put_manifest(ref.repository, manifest.data, manifest.digest, tag)
        return fetched

    def fetch(self, client: RegistryClient, ref: ImageRef, blob: Descriptor) -> tuple[Future[int], bool]:
        """The download of ``blob`` (one per digest, whoever asks) and whether this caller started it.

        Only the caller that started a download counts its bytes, so the totals of images
        that share a layer add up to the bytes that really crossed the network.
        """
        with self.lock:
            first = blob.digest not in self.in_flight
            if first:
                self.in_flight[blob.digest] = self.blob_pool.submit(self.download, client, ref, blob)
            return self.in_flight[blob.digest], first

    def download(self, client: RegistryClient, ref: ImageRef, blob: Descriptor) -> int:
        image = str(ref)
        if self.folder.has_blob(blob.digest):
            self.events(BlobDone(image, blob.digest, blob.size, fetched=False))
            return 0
        self.events(BlobStarted(image, blob.digest, blob.size))
        temp = self.folder.new_blob_file()
        try:
            fetched = client.download_blob(
                ref.repository, blob.digest, temp, expected_size=blob.size,
                on_bytes=lambda n: self.events(BlobProgress(image, blob.digest, n)),
            )
            self.folder.commit_blob(temp, blob.digest, verified=True)  # the client hashed while streaming
        finally:
            temp.unlink(missing_ok=True)
        self.events(BlobDone(image, blob.digest, blob.size, fetched=True))
        return fetched
