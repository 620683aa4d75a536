"""COPY into a build's rootfs: the files the build plan resolved, written inside the rootfs.

Sources come from the build context (confined to it by ``kubenb/kubefile/plan.py``); destinations are
resolved inside the rootfs with chroot semantics, so a base image's symlinks (``etc ->
/some/where``) lead to the rootfs's own copy of that folder, never the host's.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from kubenb.errors import BuildError
from kubenb.kubefile import words
from kubenb.model import Instruction, Kubefile
from kubenb.oci import resolve_in_root

__all__ = ["copy_into_rootfs", "explain_sources_run_wrote"]


def copy_into_rootfs(instruction: Instruction, files: Mapping[str, Path], kubefile: Kubefile, rootfs: Path) -> None:
    """Copy ``files`` (rootfs path -> host file: the planned step's); ``--chmod`` sets their mode.
    Every file of a cluster image is owned by root (layers are written with owner 0), so
    ``--chown`` would be a promise not kept."""
    if instruction.flag("chown") is not None:
        raise BuildError("COPY --chown is not supported: files in a cluster image are owned by root",
                         file=kubefile.path, line=instruction.line, hint="remove --chown; set modes with --chmod")
    mode = _mode(instruction, kubefile)
    for target, source in files.items():
        # the folder through the image's symlinks, inside the rootfs; the name itself is replaced, never followed
        destination = resolve_in_root(rootfs, target, follow_last=False)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.is_symlink():  # replaced, never followed: it may point anywhere on the host
            destination.unlink()
        shutil.copyfile(source, destination)
        if mode is None:
            shutil.copymode(source, destination)
        else:
            destination.chmod(mode)


def _mode(instruction: Instruction, kubefile: Kubefile) -> int | None:
    written = instruction.flag("chmod")
    if written is None:
        return None
    if not re.fullmatch(r"[0-7]{3,4}", written):
        raise BuildError(f"COPY --chmod={written}: expected an octal mode such as 644 or 0755",
                         file=kubefile.path, line=instruction.line, hint="write the mode in octal digits")
    return int(written, 8)


def explain_sources_run_wrote(instruction: Instruction, kubefile: Kubefile, context: Path,
                              run_wrote: Mapping[str, int]) -> None:
    """A COPY source missing from the context that an earlier RUN wrote into the rootfs: say so."""
    *sources, destination = words(instruction, path=kubefile.path)
    for source in sources:
        name = os.path.normpath(source)
        if name in run_wrote and not os.path.lexists(context / source):
            raise BuildError(
                f"COPY source {source!r} is not in the build context {context}: the RUN at line "
                f"{run_wrote[name]} wrote it into the rootfs, and COPY reads the build context",
                file=kubefile.path, line=instruction.line,
                hint=f"move it inside the rootfs instead: RUN mv {source} {destination.rstrip('/')}/",
            )
