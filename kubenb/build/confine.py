"""Confining a build-host RUN to the rootfs, and making sure it dies with kubenb.

A RUN of a lite build executes on the build host, over a rootfs that may come from a
downloaded base image. Such an image can hold symlinks (``manifests -> /home/me``) that would
make ``RUN echo hi > manifests/x`` write on the host. So RUN runs under bubblewrap: the host
filesystem read-only, only the rootfs bound read-write, a fresh ``/tmp``, ``/dev`` and
``/proc``, its own process namespace, the network kept (``wget`` works). A symlink pointing
out then leads into a read-only or empty tree, never onto the host.

Where bubblewrap is missing or cannot make namespaces (probed once), RUN runs unconfined,
and is refused as soon as the rootfs holds a symlink that leads out of it.
``KUBENB_RUN_CONFINEMENT=none`` forces that path (for tests and hosts without namespaces).

Either way the child gets its own process group and a parent-death signal, so a SIGKILLed
kubenb never leaves a RUN behind.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "CONFINEMENT_ENV", "confined_command", "confinement_available", "kill_group", "links_leaving", "start_child",
]

CONFINEMENT_ENV = "KUBENB_RUN_CONFINEMENT"
_PR_SET_PDEATHSIG = 1


def _bwrap_arguments(rootfs: Path) -> list[str]:
    """Host read-only, fresh /tmp, /dev, /proc; then the rootfs read-write at its own path."""
    return ["--ro-bind", "/", "/", "--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc",
            "--unshare-pid", "--die-with-parent", "--bind", str(rootfs), str(rootfs), "--chdir", str(rootfs)]


@functools.lru_cache(maxsize=1)
def _probe(bwrap: str) -> bool:
    """Whether bubblewrap can start a namespace here (a tiny ``true`` with the real options)."""
    try:
        result = subprocess.run([bwrap, *_bwrap_arguments(Path("/")), "--", "true"], stdin=subprocess.DEVNULL,
                                capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def confinement_available() -> bool:
    """True when RUN can be confined: bubblewrap is installed, works, and is not turned off."""
    if os.environ.get(CONFINEMENT_ENV, "").lower() == "none":
        return False
    bwrap = shutil.which("bwrap")
    return bwrap is not None and _probe(bwrap)


def confined_command(command: list[str], rootfs: Path) -> list[str]:
    """``command`` wrapped in bubblewrap for ``rootfs`` (call only when confinement is available)."""
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    return [bwrap, *_bwrap_arguments(rootfs.resolve()), "--", *command]


def links_leaving(rootfs: Path) -> Iterator[tuple[str, str]]:
    """(link, target) for every symlink of ``rootfs`` that the host would resolve outside it."""
    root = rootfs.resolve()
    for current, folders, names in os.walk(root):
        folders.sort()
        for name in sorted(names + folders):
            path = os.path.join(current, name)
            if os.path.islink(path) and not Path(os.path.realpath(path)).is_relative_to(root):
                yield os.path.relpath(path, root), os.readlink(path)


def _death_signal() -> Callable[[], None]:
    """What the child runs before exec: ask the kernel for SIGKILL when its parent dies.

    libc is loaded here, in the parent, so the child between fork and exec only calls it.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return set_death_signal


def start_child(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own process group, output piped, stdin closed, dying with kubenb."""
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, process_group=0, preexec_fn=_death_signal())


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the child and everything it started (its process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
