"""The registry layer, written once: every image blob streams from its registry straight into
its place in the layer's tar.

A lite build's last layer is ``registry/`` as a plain tar. Pulling into ``registry/`` and then
tarring it wrote every image byte twice. Here the pull plans its downloads first (every blob
and its size, from the manifests), so where each blob's tar member goes is known before its
first byte: the blobs come first in the tar, in the order the pull asks for them (fixed by
the inputs, so the layer is reproducible whatever order the downloads finish in), each header
written at once, each download writing into its own window of the layer file. What is left
in ``registry/`` (manifests, links, tags, the configs read while planning, the folders of
every blob) is tarred after them, sorted, as any other layer. The work folder's registry
serves the planned blobs from the layer (its ``elsewhere``), so manifests are stored and the
registry is checked as before.

Each blob is verified against its digest as it streams (the registry client hashes it): one
that does not match fails the pull, and with it the build, and the layer file is removed
(``Store.place_layer``). The layer's own digest is taken by reading the file back in tar
order, each blob as soon as it and every blob before it have landed, while later downloads
still run.
"""

from __future__ import annotations

import queue
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from kubenb.builders.layers import Snapshot, changes, file_header, padded, snapshot, write_layer
from kubenb.errors import BuildError
from kubenb.registry_folder import RegistryFolder
from kubenb.store import PlacedFile
from kubenb.store.placed import Window

__all__ = ["RegistryLayer"]


class RegistryLayer:
    """The layer of one build's ``registry/`` being written: the pull's ``BlobSink``, and the
    building thread's ``follow`` (hash what has landed) and ``finish`` (the rest of the tar)."""

    def __init__(self, rootfs: Path, registry: Path, out: PlacedFile) -> None:
        self.rootfs = rootfs
        self.out = out
        self.kept: dict[str, int] = {}  # digest -> size of each planned blob verified in place
        # a throwaway folder (its layer is what is kept): no fsync; its planned blobs are in the layer
        self.folder = RegistryFolder(registry, durable=False, elsewhere=self.kept)
        self._regions: dict[str, tuple[int, int]] = {}  # digest -> (offset of its bytes, size)
        self._order: list[str] = []
        self._end = 0  # where the planned members end and the rest of the tar begins
        self._landed: queue.Queue[str | None] = queue.Queue()
        self._blob_folders: set[Path] = set()  # the planned blobs' folders: in the layer, not made on disk

    # -- the pull's side (its threads) ---------------------------------------------------------

    def plan(self, blobs: Mapping[str, int], /) -> None:
        """Lay out a member per blob, in the pull's order, and write their headers."""
        offset = 0
        for digest, size in blobs.items():
            path = self.folder.blob_path(digest)
            self._blob_folders.add(path.parent)
            header = file_header(path.relative_to(self.rootfs).as_posix(), size)
            self.out.write_at(header, offset)
            self._regions[digest] = (offset + len(header), size)
            offset += len(header) + padded(size)
        self.out.reserve(offset)  # the padding after each blob: zeros that are never written
        self._order, self._end = list(blobs), offset

    def open(self, digest: str, /) -> Window | None:
        region = self._regions.get(digest)
        return self.out.window(*region) if region is not None else None

    def keep(self, digest: str, /) -> None:
        self.kept[digest] = self._regions[digest][1]
        self._landed.put(digest)

    def close(self) -> None:
        """The pull has ended (whichever way): ``follow`` returns."""
        self._landed.put(None)

    # -- the building thread's side ------------------------------------------------------------

    def follow(self) -> None:
        """Hash the layer in tar order while the pull runs: each blob once it and every blob
        before it have landed (a blob waits only for those before it)."""
        landed: set[str] = set()
        position = 0
        for digest in iter(self._landed.get, None):
            landed.add(digest)
            while position < len(self._order) and self._order[position] in landed:
                offset, size = self._regions[self._order[position]]
                self.out.final(offset + padded(size))
                position += 1

    def finish(self, before: Snapshot) -> None:
        """After a pull that succeeded: the rest of ``registry/`` (what changed in the rootfs
        since ``before``: manifests, links, folders), the end of the tar."""
        if missing := [digest for digest in self._order if digest not in self.kept]:
            raise BuildError(f"the pull ended without {len(missing)} planned blob(s), first {missing[0]}",
                             hint="nothing was stored; build again")
        self.out.final(self._end)
        changed, deleted = changes(before, snapshot(self.rootfs))
        folders, touched = self._folders_not_on_disk()
        write_layer(self.rootfs, sorted({*changed, *touched}), deleted, self.out, folders=folders)

    def _folders_not_on_disk(self) -> tuple[dict[str, int], set[str]]:
        """The folders of the planned blobs that are not on disk (path in the rootfs: the mode a
        new folder gets here), and the folders on disk that would have gained one of them as a
        new entry: the layer holds what it would if the blobs had been written into ``registry/``."""
        missing: set[Path] = set()
        touched: set[str] = set()
        for blob_folder in self._blob_folders:
            folder = blob_folder
            while folder not in missing and not folder.is_dir():
                missing.add(folder)
                folder = folder.parent
            if folder not in missing:
                touched.add(folder.relative_to(self.rootfs).as_posix())
        mode = _new_folder_mode(self.rootfs.parent) if missing else 0
        return {folder.relative_to(self.rootfs).as_posix(): mode for folder in missing}, touched


def _new_folder_mode(work: Path) -> int:
    """The mode ``mkdir`` gives a new folder here (0777 less the umask), read off a probe
    folder made and removed in ``work``: setting the umask to read it would race other threads."""
    probe = Path(tempfile.mkdtemp(dir=work))  # 0700, whatever the umask
    try:
        (probe / "folder").mkdir()
        return stat.S_IMODE((probe / "folder").stat().st_mode)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
