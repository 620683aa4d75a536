"""Layers of a build: what changed in the rootfs, as a tar with whiteouts (``kubenb.oci``
applies them back).

A layer is the difference an instruction made. Comparing two snapshots of the rootfs (size,
mtime, mode, link target) finds it without copying anything; the tar is written with fixed
owners and times so an unchanged input gives the same layer, which is what the build cache
and reproducible image IDs need.
"""

from __future__ import annotations

import os
import queue
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kubenb.oci import WHITEOUT

__all__ = ["InOrder", "Snapshot", "changes", "snapshot", "stream_layer", "write_layer"]

Snapshot = dict[str, tuple[int, int, int, str]]


def snapshot(root: Path) -> Snapshot:
    """Every path below ``root`` with (size, mtime, mode, link target)."""
    result: Snapshot = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(current, name)
            info = os.lstat(path)
            link = os.readlink(path) if os.path.islink(path) else ""
            result[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns, info.st_mode, link)
    return result


def changes(before: Snapshot, after: Snapshot) -> tuple[list[str], list[str]]:
    """(added or changed paths, deleted paths), sorted; a deleted folder hides what it held."""
    changed = sorted(path for path, state in after.items() if before.get(path) != state)
    gone = sorted(path for path in before if path not in after)
    deleted = [path for path in gone if os.path.dirname(path) not in set(gone)]
    return changed, deleted


def write_layer(root: Path, changed: Iterable[str], deleted: Iterable[str], destination: Any) -> None:
    """A plain tar of ``changed`` paths and a whiteout for each deleted one (OCI layer rules),
    streamed to ``destination`` (any object with ``write`` and ``tell``)."""
    with _tar(destination) as tar:
        _add_all(tar, root, changed)
        _add_whiteouts(tar, deleted)


def stream_layer(root: Path, before: Snapshot, ready: Iterable[str], destination: Any) -> None:
    """Tar the paths of ``ready`` as they arrive (files finished while the step still runs), then
    whatever else changed since ``before``, then whiteouts.

    A step that writes hundreds of MB (pulling images into ``registry/``) is then tarred while
    it runs instead of after it: the two overlap, on two cores, rather than add up.
    """
    with _tar(destination) as tar:
        added: set[str] = set()
        for path in ready:
            _add_all(tar, root, [path])
            added.add(path)
        changed, deleted = changes(before, snapshot(root))
        _add_all(tar, root, [path for path in changed if path not in added])
        _add_whiteouts(tar, deleted)


def _tar(destination: Any) -> tarfile.TarFile:
    # copybufsize: 16 KiB by default, and a registry layer is hundreds of MB
    return tarfile.TarFile(fileobj=destination, mode="w", format=tarfile.PAX_FORMAT, copybufsize=1 << 20)


def _add_all(tar: tarfile.TarFile, root: Path, paths: Iterable[str]) -> None:
    for path in paths:
        tar.add(root / path, arcname=path, recursive=False, filter=_normalise)


def _add_whiteouts(tar: tarfile.TarFile, deleted: Iterable[str]) -> None:
    for path in deleted:
        folder, name = os.path.split(path)
        info = tarfile.TarInfo(os.path.join(folder, WHITEOUT + name))
        info.mtime = 0
        tar.addfile(info)


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


class InOrder:
    """Paths that land in any order (parallel downloads), handed on in one fixed order.

    A layer's digest depends on the order of its tar members, so for the same images to give
    the same layer (and the same image ID) the blobs must be tarred in an order the timing of
    downloads cannot change. Until that order is known (``expect``), arrivals are held; then
    the held ones go first, sorted, and each expected path follows as soon as every path
    before it has arrived (the expected order is the order downloads are asked for, so little
    waits). What never comes in that order is left to the final sweep of :func:`stream_layer`,
    which is sorted.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, tuple[str, ...]] | None] = queue.Queue()

    def arrived(self, path: str) -> None:
        self._queue.put(("arrived", (path,)))

    def expect(self, paths: Iterable[str]) -> None:
        self._queue.put(("expect", tuple(paths)))

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[str]:
        held: set[str] = set()
        order: list[str] = []
        position = 0
        for kind, paths in iter(self._queue.get, None):
            if kind == "arrived":
                held.update(paths)
            else:
                order = sorted(held) + [path for path in dict.fromkeys(paths) if path not in held]
            while position < len(order) and order[position] in held:
                yield order[position]
                position += 1
