"""The rootfs discovery reads, as a map from rootfs paths to files on the build host.

Discovery must see exactly what a build will put in the image, without copying anything: a
preview runs on every notebook cell. A preview's view is the one its ``BuildPlan`` describes
(``kubenb/kubefile/plan.py`` resolves COPY, once, and the build copies what it names); a
build's view is its finished rootfs folder; a context without a Kubefile is a rootfs as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubenb.kubefile import BuildPlan, refuse_special
from kubenb.oci import resolve_in_root

__all__ = ["RootfsView", "view_of_folder", "view_of_plan"]


@dataclass(frozen=True)
class RootfsView:
    """Rootfs-relative POSIX path -> file on the build host, for every file of the rootfs."""

    files: Mapping[str, Path] = field(default_factory=dict)

    def under(self, folder: str) -> Iterator[tuple[str, Path]]:
        """Files below ``folder``, sorted, as (rootfs path, host path)."""
        prefix = folder.rstrip("/") + "/"
        for path in sorted(self.files):
            if path.startswith(prefix):
                yield path, self.files[path]


def view_of_folder(root: Path) -> RootfsView:
    """A folder taken as a rootfs as it is: a build's rootfs, or a context without a Kubefile.

    Symlinks resolve inside the folder, as they will in the cluster (chroot semantics: an
    absolute ``etc/localtime -> /usr/share/zoneinfo/UTC`` is the rootfs's own file), so none
    can lead out of it; one that resolves to nothing is ignored, and a loop is an error naming
    it. A folder reached through a symlink is listed under the link's path, once: a second
    link to it is not followed again, which keeps the walk linear whatever links the rootfs
    holds (``self -> .`` included).
    """
    root = root.resolve()
    files: dict[str, Path] = {}
    followed: set[Path] = set()
    pending: list[tuple[Path, str, bool]] = [(root, "", False)]
    while pending:
        folder, prefix, through_link = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                name = prefix + entry.name
                if not entry.is_symlink():  # the entry's own type, read with the folder: no stat
                    if entry.is_dir(follow_symlinks=False):
                        host = Path(entry.path)
                        if not (through_link and host in followed):
                            followed.update([host] if through_link else [])
                            pending.append((host, name + "/", through_link))
                    elif entry.is_file(follow_symlinks=False):
                        files[name] = Path(entry.path)
                    else:  # a FIFO, socket or device
                        refuse_special(Path(entry.path))
                    continue
                host = resolve_in_root(root, name)
                if host.is_dir() and host not in followed:
                    followed.add(host)
                    pending.append((host, name + "/", True))
                elif host.is_file():
                    files[name] = host
                elif host.exists() and not host.is_dir():
                    refuse_special(host)
    return RootfsView(dict(sorted(files.items())))


def view_of_plan(plan: BuildPlan) -> RootfsView:
    """The rootfs a preview of ``plan`` sees: its Kubefile's FROM scratch plus COPY (raising the
    first COPY that cannot be done), or the context itself when it has no Kubefile."""
    if plan.kubefile is None:
        return view_of_folder(plan.context)
    return RootfsView(plan.rootfs_files())
