"""Pull images into a registry folder: the ``save-images`` step of every lite build.

The registry client (layer 3) knows HTTP; the folder (``folder``) knows the storage layout;
this module only decides what to fetch. A blob already in the folder is never fetched again,
a blob several images share is fetched once even when they are pulled at the same time, and
an image already complete in the folder is skipped without a request.

A cancel (``cancel``, the token the registry clients share) starts no new download, stops
those running at their next chunk, and raises ``Cancelled`` as it is, never inside the error
that names the images that failed: what was saved before stays saved (every blob and manifest
lands whole or not at all), and a rerun fetches only the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from kubenb.errors import Cancelled, KubenbError, StoreError
from kubenb.events import (
    BlobDone,
    BlobProgress,
    BlobsPlanned,
    BlobStarted,
    CancelToken,
    EventSink,
    ImageDone,
    ImageSkipped,
    ImageStarted,
    Message,
    ignore,
)
from kubenb.model import ImageRef
from kubenb.oci.manifests import Descriptor, ManifestLike, References, parse_references
from kubenb.oci.media_types import IMAGE_CONFIG_TYPES
from kubenb.oci.platforms import config_platform
from kubenb.oci.selection import Selection, select
from kubenb.registry_folder.folder import RegistryFolder

if TYPE_CHECKING:  # the HTTP client is imported only by a save that runs (an unchanged rebuild needs none)
    from kubenb.registry import Registries, RegistryClient
    from kubenb.registry.download import BlobFile

__all__ = ["BlobSink", "SaveResult", "SavedImage", "save_images", "saved_problems"]

T = TypeVar("T")
R = TypeVar("R")


class BlobSink(Protocol):
    """Where the blobs a save plans go instead of the folder's blob files: a build's registry
    layer, which takes each one straight from its download (written once, never copied).

    ``plan`` gets every blob the save will download, in the order it asks for them, before the
    first of them starts; ``open`` gives the file a planned blob streams into (None: not
    planned, so it goes into the folder as usual: the configs read while planning); ``keep``
    says that what streamed into it was verified against its digest. A blob the sink keeps
    must be in the folder's ``elsewhere``, so that its manifests can be stored.
    """

    def plan(self, blobs: Mapping[str, int], /) -> None: ...

    def open(self, digest: str, /) -> BlobFile | None: ...

    def keep(self, digest: str, /) -> None: ...


@dataclass(frozen=True)
class SavedImage:
    image: ImageRef
    digest: str
    fetched_bytes: int
    skipped: bool
    missing_platforms: tuple[str, ...] = ()  # requested platforms it lacks (--skip-missing-platform)
    left_out: bool = False  # it offers none of the requested platforms: nothing of it was saved


@dataclass(frozen=True)
class SaveResult:
    images: tuple[SavedImage, ...]

    @property
    def fetched_bytes(self) -> int:
        return sum(image.fetched_bytes for image in self.images)


@dataclass
class _Plan:
    """What one image needs, known from its manifests before any layer is fetched."""

    ref: ImageRef
    complete: str | None = None  # the digest of an image already whole in the folder
    client: RegistryClient | None = None
    selection: Selection | None = None
    prefetched: int = 0  # bytes of a config fetched to learn a plain manifest's platform

    @property
    def left_out(self) -> bool:
        return self.selection is not None and bool(self.selection.missing) and not self.selection.found


def save_images(
    images: Sequence[ImageRef],
    folder: Path | RegistryFolder,
    *,
    registries: Registries | None = None,
    platforms: Collection[str] | None = None,
    skip_missing_platform: bool = False,
    verb: str = "save",
    workers: int = 8,
    events: EventSink = ignore,
    cancel: CancelToken | None = None,
    sink: BlobSink | None = None,
) -> SaveResult:
    """Every image of ``images`` complete in the registry folder at ``folder``.

    Every image's manifests are read first: a requested platform that an image lacks is one
    error naming each such image and what it offers, before a layer is fetched (``verb``, the
    user's command, words its hint), unless ``skip_missing_platform``: then each is a warning
    and an image lacking every requested platform is left out. Images that fail are reported
    together at the end, each named, after the others are saved: what was saved stays saved,
    and a rerun fetches only what is missing. Setting ``cancel`` stops the save with
    ``Cancelled``; ``registries``, when given, must be made with the same token (its own, when
    ``cancel`` is not given), so that the downloads it runs stop too. ``sink`` takes the blobs
    to download instead of the folder (see ``BlobSink``).
    """
    _refuse_name_clashes(images)
    if registries is None:
        from kubenb.registry import Registries  # noqa: PLC0415  (see the import at the top)
        registries = Registries(cancel=cancel)
    elif cancel is not None and registries.cancel is not cancel:
        raise ValueError("save_images: make the registries with the same cancel token")
    token = registries.cancel or CancelToken()
    registry = folder if isinstance(folder, RegistryFolder) else RegistryFolder(folder)
    saver = _Saver(registry, registries, platforms, workers, events, cancel=token, sink=sink)
    try:
        return saver.run(images, skip_missing_platform, verb)
    finally:
        saver.close()


def saved_problems(folder: Path | RegistryFolder, images: Sequence[ImageRef], platforms: Collection[str] | None,
                   left_out: Collection[ImageRef] = ()) -> list[str]:
    """What keeps the registry folder from serving ``images`` whole, one line each: every image
    (but those ``left_out`` by ``--skip-missing-platform``) resolves to its manifests and all
    their blobs, and the folder passes ``RegistryFolder.check`` (blobs not hashed again: they
    were as they arrived). A build runs this on its registry layer, whoever made it."""
    registry = folder if isinstance(folder, RegistryFolder) else RegistryFolder(folder)
    problems = [f"{ref}: {problem}" for ref in dict.fromkeys(images) if ref not in left_out
                for problem in registry.image_problems(ref.repository, ref.tag or ref.digest or "latest", platforms)]
    return problems + registry.check(hash_blobs=False)


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
                 workers: int, events: EventSink, *, cancel: CancelToken, sink: BlobSink | None = None) -> None:
        self.folder = folder
        self.sink = sink
        self.cancel = cancel
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

    def run(self, images: Sequence[ImageRef], skip_missing_platform: bool, verb: str) -> SaveResult:
        unique = list(dict.fromkeys(images))
        plans, failures = self.each(unique, self.plan)
        lacking = [plan for plan in plans if plan.selection is not None and plan.selection.missing]
        if lacking and not skip_missing_platform:
            raise _missing_platforms(lacking, verb)
        for plan in lacking:
            self.events(Message(_skipped_line(plan), level="warning"))
        needed = self.to_fetch(plans)
        if self.sink is not None:
            self.sink.plan(needed)
        self.events(BlobsPlanned(tuple(needed), tuple(needed.values())))
        numbered = {plan.ref: n for n, plan in enumerate(plans, 1)}
        saved, more = self.each(plans, lambda plan: self.save(plan, numbered[plan.ref], len(plans)))
        self.cancel.check()  # an image cut short by the cancel is not one that failed
        if failures := failures + more:
            raise StoreError(
                f"{len(failures)} of {len(unique)} images could not be saved: " + "; ".join(failures),
                hint="fix the cause and run again: images already saved are not fetched again",
            )
        return SaveResult(tuple(saved))

    def to_fetch(self, plans: Sequence[_Plan]) -> dict[str, int]:
        """The blobs the plans still need from their registries and their sizes, in the order
        the saves ask for them (image by image, each manifest's blobs in its order): fixed by
        the inputs, and close to the order in which they land."""
        needed = {blob.digest: blob.size for plan in plans if plan.selection is not None and not plan.left_out
                  for manifest in plan.selection.manifests
                  for blob in parse_references(manifest.data, manifest.media_type).blobs if not blob.foreign}
        return {digest: size for digest, size in needed.items() if not self.folder.has_blob(digest)}

    def each(self, items: Sequence[T], work: Callable[[T], R]) -> tuple[list[R], list[str]]:
        """``work`` on every item in the image pool: the results, and each failure named; a
        cancel leaves at once, as itself (``close`` waits for the work still running)."""
        futures = [self.image_pool.submit(work, item) for item in items]
        results: list[R] = []
        failures: list[str] = []
        for item, future in zip(items, futures, strict=True):
            try:
                results.append(future.result())
            except Cancelled:
                raise
            except KubenbError as error:
                self.cancel.check()
                failures.append(f"{getattr(item, 'ref', item)}: {error}")
        return results, failures

    def plan(self, ref: ImageRef) -> _Plan:
        """Skip a complete image; else read its manifests and select what the platforms keep."""
        self.cancel.check()
        known = ref.digest or self.folder.tag_digest(ref.repository, ref.tag or "latest")
        if known and self.folder.is_complete(ref.repository, known, self.platforms):
            return _Plan(ref, complete=known)
        plan = _Plan(ref, client=self.registries.client_for(ref))
        client = plan.client
        assert client is not None
        manifest = client.get_manifest(ref.repository, ref.digest or ref.tag or "latest")

        def root_platform(references: References) -> str | None:
            return self.config_platform(plan, references)

        plan.selection = select(manifest, self.platforms,
                                lambda child: client.get_manifest(ref.repository, child.digest),
                                root_platform=root_platform, where=str(ref))
        if not plan.selection.images and not plan.selection.missing:
            raise StoreError(f"{ref} is an index that names no image" + _for(self.platforms),
                             hint="check the image on its registry: saving it would store an empty image")
        return plan

    def config_platform(self, plan: _Plan, references: References) -> str | None:
        """The platform a plain image manifest's config declares, fetching the (small) config."""
        config = references.config
        if config is None or config.media_type not in IMAGE_CONFIG_TYPES or plan.client is None:
            return None
        future, first = self.fetch(plan.client, plan.ref, config)
        fetched = future.result()
        plan.prefetched += fetched if first else 0
        return config_platform(self.folder.blob_bytes(config.digest), config.media_type)

    def save(self, plan: _Plan, index: int, total: int) -> SavedImage:
        ref, image = plan.ref, str(plan.ref)
        self.cancel.check()
        self.events(ImageStarted(image, index, total))
        if plan.complete is not None:
            known = plan.complete
            if ref.tag and ref.digest:
                self.folder.put_manifest(ref.repository, self.folder.blob_bytes(known), known, ref.tag)
            self.events(ImageSkipped(image, known))
            return SavedImage(ref, known, 0, skipped=True)
        assert plan.client is not None and plan.selection is not None
        missing = plan.selection.missing
        if plan.left_out:
            return SavedImage(ref, "", plan.prefetched, skipped=False, missing_platforms=missing, left_out=True)
        *children, manifest = plan.selection.manifests
        fetched = plan.prefetched + sum(self.save_manifest(plan.client, ref, child, None) for child in children)
        fetched += self.save_manifest(plan.client, ref, manifest, ref.tag)
        self.events(ImageDone(image, manifest.digest, fetched))
        return SavedImage(ref, manifest.digest, fetched, skipped=False, missing_platforms=missing)

    def save_manifest(self, client: RegistryClient, ref: ImageRef, manifest: ManifestLike, tag: str | None) -> int:
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
        self.cancel.check()  # cancelled while it waited for a worker: no new download starts
        if self.folder.has_blob(blob.digest):
            self.events(BlobDone(image, blob.digest, blob.size, fetched=False))
            return 0
        self.events(BlobStarted(image, blob.digest, blob.size))

        def progress(count: int) -> None:
            self.events(BlobProgress(image, blob.digest, count))

        window = self.sink.open(blob.digest) if self.sink is not None else None
        if window is not None:  # straight into the build's layer; the client hashed while streaming
            fetched = client.download_blob(ref.repository, blob.digest, window, expected_size=blob.size,
                                           on_bytes=progress)
            assert self.sink is not None
            self.sink.keep(blob.digest)
        else:
            temp = self.folder.new_blob_file()
            try:
                fetched = client.download_blob(ref.repository, blob.digest, temp, expected_size=blob.size,
                                               on_bytes=progress)
                self.folder.commit_blob(temp, blob.digest, verified=True)  # the client hashed while streaming
            finally:
                temp.unlink(missing_ok=True)
        self.events(BlobDone(image, blob.digest, blob.size, fetched=True))
        return fetched


def _for(platforms: Collection[str] | None) -> str:
    return f" for {', '.join(platforms)}" if platforms else ""


def _lacks(plan: _Plan) -> str:
    """``REF has no P image (it offers A, B)``: what one image lacks."""
    assert plan.selection is not None
    return (f"{plan.ref} has no {' or '.join(plan.selection.missing)} image "
            f"(it offers {', '.join(plan.selection.offered)})")


def _missing_platforms(plans: Sequence[_Plan], verb: str) -> StoreError:
    """One error for every image lacking a requested platform, each with what it offers."""
    hint = f"{verb} without --platform, pick one it offers, or pass --skip-missing-platform"
    if len(plans) == 1:
        return StoreError(_lacks(plans[0]), hint=hint)
    return StoreError(f"{len(plans)} images lack a requested platform: " + "; ".join(map(_lacks, plans)),
                      hint=hint.replace("one it offers", "ones they offer"))


def _skipped_line(plan: _Plan) -> str:
    """The warning of ``--skip-missing-platform`` for one image."""
    assert plan.selection is not None
    kept = ("left out" if plan.left_out
            else f"kept its {', '.join(plan.selection.found)} image(s)")
    return f"warning: {_lacks(plan)}: {kept} (--skip-missing-platform)"
