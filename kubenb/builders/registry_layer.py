"""The registry layer, written once: every image blob streams from its registry straight into
its place in the layer's tar.

A lite build's last layer is ``registry/`` as a plain tar. Pulling into ``registry/`` and then
tarring it wrote every image byte twice. Here the pull plans its downloads first (every blob
and its size, from the manifests), so where each blob's tar member goes is known before its
first byte: the blobs come first in the tar, in the order the pull asks for them (fixed by
the inputs, so the layer is reproducible whatever order the downloads finish in), each header
written at once, each download writing into its own window of the layer file. The rest of
``registry/`` (manifests, links, tags, the configs read while planning, the folders of every
blob) is never written into the work folder: the registry folder keeps it in memory, over
whatever ``registry/`` the base image brought (``registry_folder.files.MemoryFiles``), and it
is tarred from there after the blobs, sorted, with the folders on disk it changed, exactly as
tarring the folder written on disk would give. The work folder's registry serves the planned
blobs from the layer (its ``elsewhere``), so manifests are stored and the registry is checked
as before.

Each blob is verified against its digest as it streams (the registry client hashes it): one
that does not match fails the pull, and with it the build, and the layer file is removed
(``Store.place_layer``). The layer's own digest is taken by reading the file back in tar
order, each blob as soon as it and every blob before it have landed, while later downloads
still run.
"""

from __future__ import annotations

import os
import queue
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from kubenb.builders.layers import file_header, padded, write_layer
from kubenb.errors import BuildError
from kubenb.registry_folder import RegistryFolder
from kubenb.registry_folder.files import TEMP_DIR, MemoryFiles
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
        # a throwaway folder (its layer is what is kept): in memory; its planned blobs are in the layer;
        # a download that is not planned (a config read while planning) waits in the work folder
        self.files = MemoryFiles(registry / TEMP_DIR, spill=Path(tempfile.mkdtemp(prefix="pull-", dir=rootfs.parent)))
        self.folder = RegistryFolder(registry, durable=False, elsewhere=self.kept, files=self.files)
        self._regions: dict[str, tuple[int, int]] = {}  # digest -> (offset of its bytes, size)
        self._order: list[str] = []
        self._end = 0  # where the planned members end and the rest of the tar begins
        self._landed: queue.Queue[str | None] = queue.Queue()

    # -- the pull's side (its threads) ---------------------------------------------------------

    def plan(self, blobs: Mapping[str, int], /) -> None:
        """Lay out a member per blob, in the pull's order, and write their headers."""
        offset = 0
        for digest, size in blobs.items():
            path = self.folder.blob_path(digest)
            self.files.enter(path)  # its folders are in the layer, not made on disk
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

    def finish(self) -> None:
        """After a pull that succeeded: the rest of ``registry/`` (what the folder kept in
        memory, the folders that made and those on disk it changed), the end of the tar."""
        if missing := [digest for digest in self._order if digest not in self.kept]:
            raise BuildError(f"the pull ended without {len(missing)} planned blob(s), first {missing[0]}",
                             hint="nothing was stored; build again")
        self.out.final(self._end)
        mode = _new_folder_mode(self.rootfs.parent) if self.files.folders else 0
        write_layer(self.rootfs, sorted(self._in_rootfs(path) for path in self.files.touched), [], self.out,
                    folders={self._in_rootfs(folder): mode for folder in self.files.folders},
                    files={self._in_rootfs(path): content for path, content in self.files.files.items()})

    def _in_rootfs(self, path: str) -> str:
        """``path``'s name in the layer (``Path.relative_to`` costs 6 us, for thousands)."""
        prefix = f"{self.rootfs}{os.sep}"
        if not path.startswith(prefix):
            raise ValueError(f"{path} is not in {self.rootfs}")
        return path[len(prefix):]


def _new_folder_mode(work: Path) -> int:
    """The mode ``mkdir`` gives a new folder here (0777 less the umask), read off a probe
    folder made and removed in ``work``: setting the umask to read it would race other threads."""
    probe = Path(tempfile.mkdtemp(dir=work))  # 0700, whatever the umask
    try:
        (probe / "folder").mkdir()
        return stat.S_IMODE((probe / "folder").stat().st_mode)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
