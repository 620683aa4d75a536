"""The build plan: a Kubefile read, parsed and expanded once, its COPY sources resolved once.

A preview and the build after it must agree on what goes where. So the Kubefile is read once,
here, and everything that needs it takes the plan: discovery's view of the rootfs, the
builders, the preview's base image. What a plan holds is what gets built, even when the
Kubefile changes on disk after the plan was made (only the bytes of the COPY sources are read
later, when they are copied).

COPY follows docs/kubefile.md: sources are relative to the build context and may not leave it
(no absolute path, no ``..``, no symlink out, no FIFO, socket or device); globs are allowed; a
source that matches nothing is an error naming the Kubefile line; DEST is relative to the
rootfs. Each source goes *into* DEST when DEST ends in ``/``, is the rootfs itself, is a
standard folder, is a folder already, or when there are several sources; otherwise DEST is its
new name. Only "is a folder already" depends on the rootfs at that step (a base image or a RUN
may have made it), so a step is resolved up to that one question, which its reader answers.

A COPY that cannot be resolved keeps its error in its step instead of raising it here: a
preview raises the first when it reads the rootfs, a build when it reaches that step, after the
steps before it ran. So errors arrive in Kubefile order, as each step is reached, and a build
can say that a missing source is one an earlier RUN wrote into the rootfs.
"""

from __future__ import annotations

import glob
import os
import posixpath
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from kubenb.errors import BuildError
from kubenb.kubefile.parser import words
from kubenb.kubefile.read import file_kind, load
from kubenb.model import Instruction, Kubefile

__all__ = ["STANDARD_FOLDERS", "BuildPlan", "CopySource", "CopyStep", "plan_build", "refuse_special"]

#: Folders every cluster rootfs has, even ``FROM scratch``: COPY into them goes *inside*.
STANDARD_FOLDERS = ("manifests", "charts", "etc", "registry")


@dataclass(frozen=True)
class CopySource:
    """One source of a COPY, found in the context: a file, or a folder with the files below it."""

    path: Path
    #: For a folder, each file below it: (its path relative to the folder, its host path); None for a file.
    below: tuple[tuple[str, Path], ...] | None = None


@dataclass(frozen=True)
class CopyStep:
    """One COPY, resolved: its sources in the context and where they go in the rootfs."""

    instruction: Instruction
    #: DEST relative to the rootfs, normalised ("" is the rootfs itself).
    target: str = ""
    #: Whether the sources go into ``target`` whatever the rootfs holds there.
    into: bool = False
    sources: tuple[CopySource, ...] = ()
    #: Why the step cannot be done (raised by ``files``), None when it can.
    problem: BuildError | None = None

    @property
    def line(self) -> int:
        return self.instruction.line

    def files(self, is_folder: Callable[[str], bool]) -> dict[str, Path]:
        """Rootfs path -> host file for each file this COPY writes; ``is_folder(target)`` says
        whether the rootfs so far has a folder at ``target``. Raises the step's problem."""
        if self.problem is not None:
            raise self.problem
        into = self.into or is_folder(self.target)
        files: dict[str, Path] = {}
        for source in self.sources:
            name = posixpath.join(self.target, source.path.name) if into else self.target
            if source.below is None:
                files[name] = source.path
            else:
                files.update({f"{name}/{relative}": host for relative, host in source.below})
        return files


@dataclass(frozen=True)
class BuildPlan:
    """What a build of ``context`` does, decided once: the expanded Kubefile and every COPY.

    ``kubefile`` is None when no Kubefile was named and the context has none: the context is
    then taken as a rootfs as it is (a preview of a folder of manifests and charts).
    """

    context: Path
    kubefile: Kubefile | None
    build_args: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: The FROM image as expanded; None for ``FROM scratch`` or without a Kubefile.
    base: str | None = None
    copies: tuple[CopyStep, ...] = ()

    @property
    def path(self) -> Path | None:
        """The Kubefile's path as it was given (None without a Kubefile)."""
        return Path(self.kubefile.path) if self.kubefile is not None else None

    def require_kubefile(self) -> Kubefile:
        """The Kubefile, for what cannot do without one (a build); a BuildError when there is none."""
        if self.kubefile is None:
            raise BuildError(f"the build context {self.context} has no Kubefile", file=str(self.context),
                             hint="write one there, or name it with -f")
        return self.kubefile

    def copy_step(self, instruction: Instruction) -> CopyStep:
        """The resolved step of one of the plan's COPY instructions."""
        return self._copy_steps[instruction.line]

    def rootfs_files(self) -> dict[str, Path]:
        """Rootfs path -> file in the context, for the rootfs ``FROM scratch`` plus the COPY
        steps make (a base image's files and what RUN writes only a build sees)."""
        files: dict[str, Path] = {}
        for step in self.copies:
            files.update(step.files(lambda target: _has_folder(files, target)))
        return files

    @cached_property
    def _copy_steps(self) -> dict[int, CopyStep]:
        return {step.line: step for step in self.copies}


def plan_build(context: str | Path, kubefile: str | Path | None = None,
               build_args: Mapping[str, str] | None = None, *, data: bytes | None = None) -> BuildPlan:
    """The plan of a build of ``context``: the Kubefile read (``kubefile``, else
    ``context/Kubefile`` when there is one; ``data``, its bytes when read already), parsed and
    expanded for ``build_args``, and each COPY resolved in the context."""
    context = Path(context)
    arguments: Mapping[str, str] = MappingProxyType(dict(build_args or {}))
    if kubefile is None:
        kubefile = context / "Kubefile"
        if not kubefile.exists():
            return BuildPlan(context, None, arguments)
    parsed = load(kubefile, arguments, data=data)
    root = context.resolve()
    return BuildPlan(
        context, parsed, arguments, base=None if parsed.base == "scratch" else parsed.base,
        copies=tuple(_resolve_copy(copy, root, parsed.path) for copy in parsed.of_kind("COPY")),
    )


def _resolve_copy(copy: Instruction, context: Path, kubefile: str) -> CopyStep:
    """One COPY resolved in ``context`` (an absolute, resolved folder); a problem is kept in the step."""
    *patterns, destination = words(copy, path=kubefile)
    try:
        target = _destination(destination, copy, kubefile)
        found = [source for pattern in patterns for source in _sources(pattern, context, copy, kubefile)]
        sources = tuple(
            CopySource(source, tuple(_files_below(source, context)) if source.is_dir() else None) for source in found
        )
    except BuildError as problem:
        return CopyStep(copy, problem=problem.with_traceback(None))
    # the rootfs itself ("." or "/") is always a folder; a bare "/" + name would be a host path
    into = not target or destination.endswith("/") or target in STANDARD_FOLDERS or len(sources) > 1
    return CopyStep(copy, target, into, sources)


def _has_folder(files: Mapping[str, Path], path: str) -> bool:
    prefix = path.rstrip("/") + "/"
    return any(name.startswith(prefix) for name in files)


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
            refuse_special(source, kubefile, copy.line)
    return sources


def _files_below(folder: Path, context: Path) -> Iterator[tuple[str, Path]]:
    """Files below ``folder``; only symlinks can lead out (os.walk does not follow them)."""
    prefix = len(str(folder)) + 1
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
                refuse_special(Path(path))


def refuse_special(path: Path, kubefile: str | None = None, line: int | None = None) -> None:
    """A FIFO, socket or device is no file to copy or read (reading one may block forever)."""
    try:
        kind = file_kind(path.stat().st_mode)
    except OSError:
        return  # a dangling link: nothing there
    raise BuildError(f"{path} is {kind}, not a regular file", file=kubefile, line=line,
                     hint="remove it; only files and folders are copied")


def _inside(path: Path, context: Path) -> bool:
    """Whether ``path``, symlinks followed, lies in ``context`` (a symlink loop is an error)."""
    try:
        return path.resolve().is_relative_to(context)
    except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError for a loop, 3.13 OSError
        raise BuildError(f"{path} is a symlink loop", hint="remove the link or point it at a file") from None


def _escape(pattern: str, copy: Instruction, kubefile: str) -> BuildError:
    return BuildError(
        f"COPY source {pattern!r} is outside the build context", file=kubefile, line=copy.line,
        hint="sources must be inside the context folder; move or copy them there",
    )
