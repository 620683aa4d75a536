"""The cluster rootfs a Kubefile describes, as a map from rootfs paths to files in the context.

Discovery must see exactly what a build will put in the image, without copying anything: a
preview runs on every notebook cell. So COPY is resolved here, once, with the semantics of
docs/kubefile.md (sources confined to the context, globs, "into a folder" versus "as a new name"),
and the build later copies what this view names.
"""

from __future__ import annotations

import glob
import os
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kubenb.errors import BuildError
from kubenb.kubefile import file_kind, words
from kubenb.model import Instruction, Kubefile
from kubenb.oci import resolve_in_root

__all__ = ["STANDARD_FOLDERS", "RootfsView", "copy_files", "view_of_folder", "view_of_kubefile"]

#: Folders every cluster rootfs has, even ``FROM scratch``: COPY into them goes *inside*.
STANDARD_FOLDERS = ("manifests", "charts", "etc", "registry")


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

    def is_dir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return path in STANDARD_FOLDERS or any(p.startswith(prefix) for p in self.files)


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
                linked = through_link or entry.is_symlink()
                host = resolve_in_root(root, name) if entry.is_symlink() else Path(entry.path)
                if host.is_dir() and not (linked and host in followed):
                    followed.update([host] if linked else [])
                    pending.append((host, name + "/", linked))
                elif host.is_file():
                    files[name] = host
                elif host.exists() and not host.is_dir():  # a FIFO, socket or device
                    _refuse_special(host)
    return RootfsView(dict(sorted(files.items())))


def view_of_kubefile(kubefile: Kubefile, context: Path) -> RootfsView:
    """The rootfs that FROM scratch plus the Kubefile's COPY instructions produce."""
    context = context.resolve()
    files: dict[str, Path] = {}
    for copy in kubefile.of_kind("COPY"):
        files.update(copy_files(copy, context, RootfsView(files), kubefile.path))
    return RootfsView(files)


def copy_files(copy: Instruction, context: Path, current: RootfsView, kubefile: str) -> dict[str, Path]:
    """What one COPY puts where: rootfs path -> file in the context (``current`` is the rootfs so far)."""
    *patterns, destination = words(copy, path=kubefile)
    target = _destination(destination, copy, kubefile)
    sources = [source for pattern in patterns for source in _sources(pattern, context, copy, kubefile)]
    # the rootfs itself ("." or "/") is always a folder; a bare "/" + name would be a host path
    into = not target or destination.endswith("/") or current.is_dir(target) or len(sources) > 1
    files: dict[str, Path] = {}
    for source in sources:
        name = posixpath.join(target, source.name) if into else target
        if source.is_dir():
            files.update({f"{name}/{rel}": host for rel, host in _files_below(source, context, source)})
        else:
            files[name] = source
    return files


def _destination(destination: str, copy: Instruction, kubefile: str) -> str:
    target = os.path.normpath(destination.lstrip("/"))
    if target == ".." or target.startswith("../"):
        raise BuildError(
            f"COPY destination {destination!r} leaves the cluster rootfs", file=kubefile, line=copy.line,
            hint="destinations are relative to the rootfs, e.g. manifests/ or charts/",
        )
    return "" if target == "." else target


def _sources(pattern: str, context: Path, copy: Instruction, kubefile: str) -> list[Path]:
    if Path(pattern).is_absolute() or ".." in PurePosixPath(pattern).parts:
        raise _escape(pattern, copy, kubefile)
    matches = sorted(glob.glob(glob.escape(str(context)) + "/" + pattern)) if glob.has_magic(pattern) else [
        str(context / pattern)
    ]
    sources = [Path(match) for match in matches if os.path.lexists(match)]
    if not sources:
        raise BuildError(
            f"COPY source {pattern!r} is not in the build context {context}", file=kubefile, line=copy.line,
            hint="paths are relative to the context folder; check the name",
        )
    for source in sources:
        if not _inside(source, context):
            raise _escape(pattern, copy, kubefile)
        if not (source.is_file() or source.is_dir()):
            _refuse_special(source, kubefile, copy.line)
    return sources


def _files_below(folder: Path, context: Path, base: Path) -> Iterator[tuple[str, Path]]:
    """Files below ``folder``; only symlinks can lead out (os.walk does not follow them)."""
    prefix = len(str(base)) + 1
    for current, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(current, d))]:
            path = os.path.join(current, name)
            if os.path.islink(path) and not _inside(Path(path), context):
                raise BuildError(
                    f"{path} links outside the build context", hint="copy the target into the context instead"
                )
            if os.path.isfile(path):
                yield path[prefix:], Path(path)
            elif not os.path.isdir(path):
                _refuse_special(Path(path))


def _refuse_special(path: Path, kubefile: str | None = None, line: int | None = None) -> None:
    """A FIFO, socket or device is no file to copy or read (reading one may block forever)."""
    try:
        kind = file_kind(path.stat().st_mode)
    except OSError:
        return  # a dangling link: nothing there
    raise BuildError(f"{path} is {kind}, not a regular file", file=kubefile, line=line,
                     hint="remove it; only files and folders are copied")


def _inside(path: Path, context: Path) -> bool:
    try:
        return path.resolve().is_relative_to(context)
    except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError for a loop, 3.13 OSError
        raise BuildError(f"{path} is a symlink loop", hint="remove the link or point it at a file") from None


def _escape(pattern: str, copy: Instruction, kubefile: str) -> BuildError:
    return BuildError(
        f"COPY source {pattern!r} is outside the build context", file=kubefile, line=copy.line,
        hint="sources must be inside the context folder; move or copy them there",
    )
