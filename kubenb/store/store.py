"""The local cluster-image store: named OCI images under one root, safe for several processes.

Layout (an OCI image layout, so OCI tools read it as it is): ``ROOT/oci-layout``,
``ROOT/index.json``, ``ROOT/blobs/sha256/<hex>``, plus ``ROOT/cache/`` (the build cache),
``ROOT/tmp/`` (temp files, renamed into place) and ``ROOT/lock``. Blobs are immutable and
content-addressed, so readers need no lock; writers of ``index.json`` and the garbage
collector take it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from kubenb.errors import StoreError
from kubenb.events import CancelToken
from kubenb.model import ImageRef
from kubenb.oci.digests import HashingWriter, file_digest, is_sha256
from kubenb.oci.media_types import OCI_MANIFEST
from kubenb.oci.platforms import host_platform, platform_of
from kubenb.store import build_cache, layout
from kubenb.store.blobs import Blobs
from kubenb.store.image import ClusterImage, Layer, normalize_name
from kubenb.store.lock import StoreLock
from kubenb.store.placed import PlacedFile
from kubenb.store.root import default_root
from kubenb.store.space import translating_disk_full

if TYPE_CHECKING:  # archives, pulls, pushes and exports import their modules when they run
    from kubenb.store import pull, push

__all__ = ["Store", "default_root"]

_ID_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{12,64})")
_LIST_HINT = "kubenb images lists them"


class Store:
    """Cluster images of one store root; see the module docstring for the layout."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the store {self.root} is a file, not a folder",
                             hint="give a folder with --root (or KUBENB_ROOT); kubenb creates it if needed")
        self.blobs = Blobs(self.root)
        self._lock = StoreLock(self.root / "lock")

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive ownership of the store; re-entrant, so a build may hold it throughout."""
        return self._lock.hold()

    # -- writing ------------------------------------------------------------------------------

    def add_layer(self, tar_path: Path, *, compresslevel: int = 6) -> Layer:
        """Gzip a plain tar into a layer blob (streaming); digest of the gzip, diff_id of the tar.

        Until ``commit`` or ``cache_layer`` names it, the blob is garbage to a collector in
        another process: a build holds ``lock()`` from its first layer to its commit.
        """
        self._ensure_layout()
        return self.blobs.put_layer(Path(tar_path), compresslevel)

    def write_layer(self, produce: Callable[[HashingWriter], None], *, compresslevel: int = 6,
                    what: str = "a layer", expected: int = 0) -> Layer:
        """A layer blob from the tar that ``produce`` writes, with no temporary tar file; a full
        disk names ``what`` and asks for room for ``expected`` bytes."""
        self._ensure_layout()
        return self.blobs.write_layer(produce, compresslevel, what=what, expected=expected)

    def place_layer(self, produce: Callable[[PlacedFile], None], *, what: str = "a layer",
                    expected: int = 0) -> Layer:
        """A plain-tar layer blob written part by part at its places (``kubenb.store.placed``):
        the registry layer, each blob written once, by its download."""
        self._ensure_layout()
        return self.blobs.place_layer(produce, what=what, expected=expected)

    def remove_leftovers(self) -> int:
        """Remove the partial layers and staging folders of killed builds and loads, at once
        rather than after a day. Holds the lock, so no live writer's file is touched."""
        with self.lock():
            return self.blobs.remove_partial_layers()

    def commit(self, name: str, layers: Sequence[Layer], *, labels: Mapping[str, str],
               annotations: Mapping[str, str], history: Sequence[str] = (),
               platform: str | None = None, created: str | None = None) -> ClusterImage:
        """Write config and manifest for ``layers`` and point ``name`` at them (replacing);
        the config declares ``platform`` (``os/arch[/variant]``, the host's by default) and
        ``created`` (RFC 3339; now by default)."""
        name = normalize_name(name)
        self._ensure_layout()
        created = created or layout.now()
        config = layout.encode(layout.make_config(layers, labels, history, created, platform))
        with self.lock():  # a garbage collector must not see the new blobs before the name
            for layer in layers:
                if not self.blobs.has(layer.digest):
                    raise StoreError(f"layer {layer.digest} is not in the store",
                                     hint="add it with add_layer, holding store.lock() until commit")
            config_digest = self.blobs.put_bytes(config)
            manifest = layout.encode(layout.make_manifest(
                config_digest, len(config), layers, {layout.CREATED: created, **annotations}))
            entry = layout.Entry(name=name, digest=self.blobs.put_bytes(manifest), size=len(manifest))
            self._point(entry)
        return self._image(entry)

    def tag(self, source: str, target: str) -> ClusterImage:
        """Give the image ``source`` names a second name ``target`` (replacing ``target``)."""
        target = normalize_name(target)
        with self.lock():
            entry = self._entry(source)
            new = layout.Entry(name=target, digest=entry.digest, size=entry.size)
            self._point(new)
        return self._image(new)

    def remove(self, name: str) -> None:
        """Untag ``name``, then delete every blob no other name or cache entry still needs."""
        with self.lock():
            entries = layout.read_index(self.root)
            wanted = self._normalized(name)
            kept = [entry for entry in entries if entry.name != wanted]
            if len(kept) == len(entries):
                raise StoreError(f"no cluster image named {name!r} in {self.root}", hint=_LIST_HINT)
            layout.write_index(self.root, kept)
            self._collect_garbage(kept)

    def _point(self, entry: layout.Entry) -> None:
        entries = [e for e in layout.read_index(self.root) if e.name != entry.name]
        layout.write_index(self.root, [*entries, entry])

    def _collect_garbage(self, entries: Sequence[layout.Entry]) -> None:
        """Delete unreferenced blobs (under the lock: a build holding it is never robbed)."""
        wanted = set(build_cache.referenced(self.root))
        for entry in entries:
            wanted |= self._blobs_of(entry)
        for digest in self.blobs.digests():
            if digest not in wanted:
                self.blobs.delete(digest)
        self.blobs.clean_temp()

    def _blobs_of(self, entry: layout.Entry) -> set[str]:
        manifest = self._manifest(entry)
        return {entry.digest, manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])}

    def _ensure_layout(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        layout.write_layout_file(self.root)

    # -- reading ------------------------------------------------------------------------------

    def images(self) -> list[ClusterImage]:
        """Every named image, sorted by name."""
        return [self._image(entry) for entry in layout.read_index(self.root)]

    def get(self, name_or_id: str) -> ClusterImage:
        """The image named ``NAME[:TAG]``, or with id (or id prefix of 12+ hex digits)."""
        return self._image(self._entry(name_or_id))

    def layers(self, name_or_id: str) -> list[Layer]:
        """The layers of an image, lowest first, with their blob and diff digests."""
        entry = self._entry(name_or_id)
        manifest = self._manifest(entry)
        config = self._config(manifest)
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(manifest["layers"]):
            raise StoreError(f"{entry.name}: config and manifest disagree on the layers", hint="run check")
        return [Layer(digest=d["digest"], diff_id=diff_id, size=d["size"])
                for d, diff_id in zip(manifest["layers"], diff_ids, strict=True)]

    def open_layer(self, layer: Layer) -> BinaryIO:
        """The gzip blob of ``layer``, for reading."""
        return self.blobs.open(layer.digest)

    def inspect(self, name_or_id: str) -> dict[str, Any]:
        """Everything about one image, JSON-ready (``kubenb inspect``)."""
        entry = self._entry(name_or_id)
        image = self._image(entry)
        manifest = self._manifest(entry)
        return {
            "image": image.to_dict(),
            "config": self._config(manifest),
            "manifest": manifest,
            "labels": dict(image.labels),
            "annotations": dict(image.annotations),
            "layers": [layer.to_dict() for layer in self.layers(entry.name)],
        }

    def _normalized(self, name: str) -> str:
        try:
            return normalize_name(name)
        except StoreError:
            return name

    def _entry(self, name_or_id: str) -> layout.Entry:
        entries = layout.read_index(self.root)
        wanted = self._normalized(name_or_id)
        for entry in entries:
            if entry.name == wanted:
                return entry
        match = _ID_PREFIX.fullmatch(name_or_id)
        if match:
            found = {e.name: e for e in entries if self._config_digest(e).startswith(f"sha256:{match[1]}")}
            ids = {self._config_digest(e) for e in found.values()}
            if len(ids) > 1:
                raise StoreError(f"{name_or_id!r} names more than one image", hint="give more digits of the id")
            if found:
                return found[min(found)]
        raise StoreError(f"no cluster image {name_or_id!r} in {self.root}", hint=_LIST_HINT)

    def _manifest(self, entry: layout.Entry) -> dict[str, Any]:
        manifest = layout.load_json(self.blobs.read_bytes(entry.digest), f"manifest of {entry.name}")
        if manifest.get("mediaType", OCI_MANIFEST) != OCI_MANIFEST or "config" not in manifest:
            raise StoreError(f"{entry.name} is not an OCI image manifest", hint="run check")
        manifest.setdefault("layers", [])
        return manifest

    def _config(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return layout.load_json(self.blobs.read_bytes(manifest["config"]["digest"]), "image config")

    def _config_digest(self, entry: layout.Entry) -> str:
        return str(self._manifest(entry)["config"]["digest"])

    def _image(self, entry: layout.Entry) -> ClusterImage:
        manifest = self._manifest(entry)
        config = self._config(manifest)
        return ClusterImage(
            name=entry.name,
            id=manifest["config"]["digest"],
            manifest_digest=entry.digest,
            created=str(config.get("created", "")),
            size=sum(int(d["size"]) for d in manifest["layers"]),
            labels=dict((config.get("config") or {}).get("Labels") or {}),
            annotations=dict(manifest.get("annotations") or {}),
            platform=platform_of(config),
        )

    # -- archives, rootfs, cache, check ---------------------------------------------------------

    def save(self, name: str, file: Path) -> None:
        """Write an OCI archive (a tar of an OCI image layout) holding the image ``name``."""
        entry = self._entry(name)
        digests = sorted(self._blobs_of(entry))
        with translating_disk_full(Path(file).parent, str(file),
                                   lambda: sum(self.blobs.path(d).stat().st_size for d in digests)):
            from kubenb.store import archive  # noqa: PLC0415

            archive.save(self.blobs, entry, digests, Path(file))

    def load(self, file: Path) -> list[ClusterImage]:
        """Add the images of an OCI archive; a hostile or damaged archive adds nothing."""
        from kubenb.store import archive  # noqa: PLC0415

        self._ensure_layout()
        archive_size = lambda: Path(file).stat().st_size  # noqa: E731  (only asked for when the disk is full)
        with translating_disk_full(self.root, f"the images of {file} into the store", archive_size), \
                self.lock(), archive.staged(Path(file), self.blobs) as staged:
            for digest, path in staged.blobs.items():
                self.blobs.adopt(path, digest)
            for entry in staged.entries:
                self._point(entry)
        return [self._image(entry) for entry in staged.entries]

    def pull(self, ref: ImageRef, source: pull.RegistrySource, *, name: str | None = None,
             platform: str | None = None, cancel: CancelToken | None = None) -> ClusterImage:
        """Pull ``ref`` through ``source`` (its registry's client) and name it ``name``; from a
        multi-platform index, the child of ``platform`` (the host's by default). ``cancel`` (the
        token ``source`` was made with) stops it with ``Cancelled``, nothing named.

        The default name is the reference as written (its tag, never its digest). The lock is
        held throughout: fetched blobs are unnamed until the end, and a collector must wait.
        """
        if name is None:
            written = ref.written if ref.written and "@" not in ref.written else f"{ref.name}:{ref.tag or 'latest'}"
            name = written
        from kubenb.store.pull import fetch  # noqa: PLC0415

        name = normalize_name(name)
        self._ensure_layout()
        with self.lock(), fetch(ref, source, self.blobs, platform or host_platform(),
                                     cancel or CancelToken()) as (digest, data):
            if self.blobs.put_bytes(data) != digest:
                raise StoreError(f"the manifest of {ref} does not hash to {digest}", hint="pull it again")
            entry = layout.Entry(name=name, digest=digest, size=len(data))
            self._point(entry)
        return self._image(entry)

    def push(self, name: str, client: push.RegistryTarget, repository: str, tag: str, *,
             cancel: CancelToken | None = None) -> str:
        """Push the image ``name`` to ``repository:tag`` through ``client``; return the manifest digest.
        ``cancel`` (the token ``client`` was made with) stops it before the manifest is sent.

        The stored manifest bytes are sent unchanged, so the digest returned is the image's
        ``manifest_digest`` and a pull elsewhere gives the same image ID.
        """
        entry = self._entry(name)
        data = self.blobs.read_bytes(entry.digest)
        from kubenb.store.push import send  # noqa: PLC0415

        return send(self.blobs, self._manifest(entry), data, client, repository=repository, tag=tag,
                         cancel=cancel or CancelToken())

    def export(self, name: str, destination: Path) -> None:
        """Write the merged rootfs of ``name`` into ``destination`` (new or empty)."""
        layers, destination = self.layers(name), Path(destination)
        # export.export renames a finished rootfs into place, so a full disk leaves nothing behind
        with translating_disk_full(destination, f"the rootfs of {name} into {destination}",
                                   lambda: sum(layer.size for layer in layers)):
            from kubenb.store.export import export  # noqa: PLC0415

            export(self.blobs, layers, destination)

    @property
    def memo_folder(self) -> Path:
        """Where discovery keeps its results between processes (``kubenb.discover.persist``)."""
        return self.root / "memo"

    def step_note(self, key: str) -> dict[str, Any] | None:
        """What a build step with cache key ``key`` noted about its layer (``note_step``), or None."""
        return build_cache.note(self.root, key)

    def note_step(self, key: str, note: dict[str, Any]) -> None:
        """Keep ``note`` (JSON values) beside the cache entry of ``key``: what a later build needs
        to know of the layer without reading it."""
        self._ensure_layout()
        build_cache.remember_note(self.root, key, note)

    def cached_layer(self, key: str) -> Layer | None:
        """The layer a build step with this cache key made before, if its blob is still here."""
        layer = build_cache.lookup(self.root, key)
        return layer if layer is not None and self.blobs.has(layer.digest) else None

    def cache_layer(self, key: str, layer: Layer) -> None:
        """Remember that a build step with this cache key made ``layer``."""
        self._ensure_layout()
        build_cache.remember(self.root, key, layer, layout.now())

    def creation_time(self, key: str) -> str:
        """The ``created`` of an image whose last build step has cache key ``key``:
        ``SOURCE_DATE_EPOCH`` when set (the reproducible-builds convention), else when that
        step was first built, else now."""
        return layout.source_date_epoch() or build_cache.first_built(self.root, key) or layout.now()

    def check(self) -> list[str]:
        """Every problem of the store as one line each: bad blobs, missing ones, bad index."""
        problems = [f"blob {digest} does not hash to its name ({actual})"
                    for digest in self.blobs.digests()
                    if (actual := file_digest(self.blobs.path(digest))) != digest]
        if self.blobs.folder.is_dir():
            problems += [f"{path}: not a blob name" for path in sorted(self.blobs.folder.iterdir())
                         if not is_sha256(f"sha256:{path.name}")]
        try:
            entries = layout.read_index(self.root)
        except StoreError as error:
            return [*problems, str(error)]
        for entry in entries:
            problems += self._check_entry(entry)
        return problems

    def _check_entry(self, entry: layout.Entry) -> list[str]:
        try:
            needed = self._blobs_of(entry)
            self._image(entry)
        except (StoreError, KeyError, TypeError, ValueError) as error:
            return [f"{entry.name}: {error}"]
        return [f"{entry.name}: blob {digest} is missing" for digest in sorted(needed) if not self.blobs.has(digest)]

    def __iter__(self) -> Iterator[ClusterImage]:
        return iter(self.images())
