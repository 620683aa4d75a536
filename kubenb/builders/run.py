"""A build-host RUN: confined to the rootfs, and making sure it dies with kubenb.

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
kubenb never leaves a RUN behind; a cancel kills that group at once, from the cancelling
thread, and the RUN raises ``Cancelled`` rather than failing with the status of the kill.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kubenb.errors import BuildError
from kubenb.events import CancelToken, EventSink, Message
from kubenb.model import Instruction, Kubefile

__all__ = ["CONFINEMENT_ENV", "confinement_available", "links_leaving", "run_on_host"]

RUN_TAIL_LINES = 20

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
        with tempfile.TemporaryDirectory(prefix="kubenb-probe-") as folder:
            result = subprocess.run([bwrap, *_bwrap_arguments(Path(folder).resolve()), "--", "true"],
                                    stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
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
    """What the child runs before exec when ``setpriv`` is missing: ask the kernel for SIGKILL
    when its parent dies. libc is loaded here, in the parent, so the child only calls it."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return set_death_signal


#: Run beside an unconfined RUN: when kubenb dies its end of the pipe closes, and the watchdog
#: kills the RUN's whole process group (a parent-death signal reaches only the direct child).
_WATCHDOG = """
import os, signal, sys
if not sys.stdin.buffer.read(1):
    try:
        os.killpg(int(sys.argv[1]), signal.SIGKILL)
    except OSError:
        pass
"""


def _start(command: list[str], cwd: Path, env: dict[str, str], *, confined: bool) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own process group, output piped, stdin closed.

    Confined, bubblewrap's ``--die-with-parent`` and its own pid namespace kill the whole
    sandbox with kubenb. Unconfined, the parent-death signal is set by util-linux ``setpriv``
    (no Python code between fork and exec), else by a ``preexec_fn`` calling prctl.
    """
    options: dict[str, Any] = {"cwd": cwd, "env": env, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT,
                               "stdin": subprocess.DEVNULL, "process_group": 0}
    setpriv = shutil.which("setpriv")
    if confined:
        return subprocess.Popen(command, **options)
    if setpriv is not None:
        return subprocess.Popen([setpriv, "--pdeathsig", "KILL", "--", *command], **options)
    return subprocess.Popen(command, preexec_fn=_death_signal(), **options)  # noqa: PLW1509 (prctl only)


@contextlib.contextmanager
def _supervised(process: subprocess.Popen[bytes], *, confined: bool, cancel: CancelToken) -> Iterator[None]:
    """While the block reads the child's output: however it ends, the child and everything it
    left in its process group are gone afterwards, and so they are if kubenb is killed meanwhile;
    a cancel kills the group meanwhile, which ends the output the block waits on."""
    watchdog = None if confined else subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(process.pid)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    forget = cancel.on_cancel(lambda: _kill_group(process))
    try:
        yield
    except BaseException:  # cancelled or interrupted: the command must not outlive the build
        _kill_group(process)
        raise
    finally:
        forget()  # before the child is reaped: a late cancel never kills a reused group id
        with contextlib.suppress(ChildProcessError):  # exited, not reaped: its group id stays reserved
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        _kill_group(process)  # what it left running in the background
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if watchdog is not None:
            watchdog.communicate(b"done")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def run_on_host(instruction: Instruction, kubefile: Kubefile, rootfs: Path, environment: Mapping[str, str],
                events: EventSink, *, cancel: CancelToken | None = None) -> None:
    """Run on the build host, confined to the rootfs (its working folder), streaming lines; a
    failure names status and last lines. Unconfined only where no confinement works, and then
    never over a rootfs whose symlinks lead out of it. ``cancel`` kills it: ``Cancelled``."""
    token = cancel or CancelToken()
    token.check()
    command = _command(instruction, kubefile, rootfs, environment)
    confined = confinement_available()
    if confined:
        command = confined_command(command, rootfs)
    else:
        _refuse_links_out(instruction, kubefile, rootfs)
    tail: deque[str] = deque(maxlen=RUN_TAIL_LINES)
    try:
        process = _start(command, rootfs, {**os.environ, **environment}, confined=confined)
    except OSError as error:
        if error.errno == errno.E2BIG:  # Linux takes at most 128 KiB in one argument or variable
            raise BuildError("RUN cannot start: its command or an ARG/ENV value is too long for the build host "
                             "(Linux allows 128 KiB per argument or variable)", file=kubefile.path,
                             line=instruction.line, hint="write the long value into a file with COPY and read it "
                                                         "from there") from None
        raise BuildError(f"RUN cannot start {command[0]}: {error.strerror}", file=kubefile.path,
                         line=instruction.line, hint=_RUN_HINTS[confined]) from None
    with _supervised(process, confined=confined, cancel=token):
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            tail.append(line)
            events(Message(f"  {line}", level="output"))
    token.check()  # killed by the cancel: not a failure of the command
    if process.returncode != 0:
        last = " | ".join(tail) or "(no output)"
        raise BuildError(f"RUN failed with exit status {process.returncode}: {last}", file=kubefile.path,
                         line=instruction.line, hint=_RUN_HINTS[confined])


_RUN_HINTS = {
    True: "RUN runs on the build host, confined to the rootfs folder (docs/kubefile.md)",
    False: f"RUN runs on the build host in the rootfs folder, unconfined (no bubblewrap, or {CONFINEMENT_ENV}=none)",
}


def _command(instruction: Instruction, kubefile: Kubefile, rootfs: Path, environment: Mapping[str, str]) -> list[str]:
    """The argv of a RUN; a NUL byte or a program that is not there is a one-line error."""
    exec_form = isinstance(instruction.args, tuple)
    command = list(instruction.args) if isinstance(instruction.args, tuple) else ["/bin/sh", "-c", instruction.args]
    for text in [*command, *environment, *environment.values()]:
        if "\0" in text:
            raise BuildError("RUN: a NUL character in the command or its environment (ARG, ENV)",
                             file=kubefile.path, line=instruction.line, hint="remove the NUL (\\u0000) character")
    if not command:
        raise BuildError("RUN: the exec form is an empty list", file=kubefile.path, line=instruction.line,
                         hint='name the program first, e.g. RUN ["wget", "-O", "x.yaml", "URL"]')
    if exec_form and not _is_program(command[0], rootfs, environment):
        raise BuildError(f"RUN: {command[0]!r} is not a program on the build host", file=kubefile.path,
                         line=instruction.line, hint="install it, or give its path (relative to the rootfs)")
    return command


def _is_program(name: str, rootfs: Path, environment: Mapping[str, str]) -> bool:
    if "/" in name:
        path = Path(name) if name.startswith("/") else rootfs / name
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(name, path=environment.get("PATH", os.environ.get("PATH"))) is not None


def _refuse_links_out(instruction: Instruction, kubefile: Kubefile, rootfs: Path) -> None:
    """Unconfined, a RUN would write through a symlink that leads out: refuse it."""
    for link, target in links_leaving(rootfs):
        raise BuildError(
            f"RUN refused: {link} in the rootfs links outside it (to {target}) and RUN cannot be confined here",
            file=kubefile.path, line=instruction.line,
            hint=f"install bubblewrap (Debian package bubblewrap) so RUN runs confined to the rootfs"
                 f" (and unset {CONFINEMENT_ENV})",
        )
