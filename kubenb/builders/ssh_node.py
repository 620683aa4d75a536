"""A node reached over SSH: commands over exec channels, files over SFTP.

Commands run as ``sh -c`` through one exec channel each, their two streams read as they come
and cut into lines. The login shell first prints its process id on a line of its own (sshd
makes it the leader of a fresh process group): a cancel closes the channel at once, then kills
that group through a second channel, so no command outlives a cancelled build on the machine.

Files go over SFTP, the SSH server's own file transfer, rather than ``tar`` piped to the node:
it needs nothing on the node beyond what its sshd already serves (the node contract promises
only ``sh``, ``kubectl`` and ``crictl``), and it keeps modes and symlinks one by one. Every
folder ``put_folder`` had to create is remembered; ``cleanup`` removes exactly those, so an
existing host is left as it was found.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath

import paramiko

from kubenb.builders.node import CommandResult
from kubenb.builders.ssh_connect import SshTarget, closing
from kubenb.errors import BuildError
from kubenb.events import CancelToken

__all__ = ["SshNode", "script_for"]

_PID_MARK = "kubenb-ssh-pid "
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_POLL = 0.5  # seconds a read waits before it looks at the connection again


#: What the exec request asks for: a shell reading its script from the channel. The login shell
#: (``$SHELL -c``) execs it, so it keeps the pid sshd made a process-group leader.
_READ_SCRIPT = "exec sh -s"


def script_for(command: str, *, workdir: str | None, env: Mapping[str, str] | None) -> str:
    """The script sent on stdin: print the pid, export ``env``, enter ``workdir``, ``sh -c command``
    with stdin at its end. Sent on stdin, not in the exec request, so that ARG and ENV values never
    appear in the machine's process list."""
    parts = [f"printf '{_PID_MARK}%s\\n' \"$$\""]
    for name, value in (env or {}).items():
        if not _NAME.fullmatch(name):
            raise BuildError(f"{name!r} is not a variable name a shell can export", hint="rename the ARG or ENV")
        parts.append(f"export {name}={shlex.quote(value)}")
    if workdir is not None:
        parts.append(f"cd -- {shlex.quote(workdir)} || exit 1")
    parts.append(f"exec sh -c {shlex.quote(command)} </dev/null")
    return "; ".join(parts) + "\n"


class _Lines:
    """Bytes of one stream cut into lines as they arrive."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.pending = b""
        self.lines: list[str] = []

    def feed(self, data: bytes) -> None:
        *complete, self.pending = (self.pending + data).split(b"\n")
        for raw in complete:
            self._line(raw)

    def close(self) -> None:
        if self.pending:
            self._line(self.pending)
            self.pending = b""

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        self.lines.append(text)
        self.emit(text)


class SshNode:
    """A logged-in SSH connection used as a node (see the module's docstring)."""

    def __init__(self, client: paramiko.SSHClient, target: SshTarget, *, key_file: Path | None,
                 cancel: CancelToken | None = None) -> None:
        self.client = client
        self.target = target
        self.key_file = key_file
        self.cancel = cancel or CancelToken()  # the build's: stops a copy (put_folder takes none)
        self.created: list[str] = []  # folders put_folder made, removed by cleanup
        self._sftp: paramiko.SFTPClient | None = None

    @property
    def description(self) -> str:
        key = f" -i {shlex.quote(str(self.key_file))}" if self.key_file is not None else ""
        port = f" -p {self.target.port}" if self.target.port != 22 else ""
        return f"ssh{key}{port} {self.target.user}@{self.target.host}"

    def _transport(self) -> paramiko.Transport:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise BuildError(f"the SSH connection to {self.target.host}:{self.target.port} was lost",
                             hint="check the machine and the network, then build again")
        return transport

    def run(self, command: str, *, workdir: str | None = None, env: Mapping[str, str] | None = None,
            on_output: Callable[[str], None] | None = None, cancel: CancelToken | None = None) -> CommandResult:
        """Run ``sh -c command`` on the node (see :class:`kubenb.builders.node.Node`)."""
        token = cancel or CancelToken()
        token.check()
        emit = on_output or (lambda line: None)
        pid: list[str] = []

        def stdout_line(line: str) -> None:
            if not pid and line.startswith(_PID_MARK):
                pid.append(line[len(_PID_MARK):].strip())
            else:
                emit(line)

        out, err = _Lines(stdout_line), _Lines(emit)
        try:
            channel = self._transport().open_session()
            channel.exec_command(_READ_SCRIPT)
            channel.sendall(script_for(command, workdir=workdir, env=env).encode())
            channel.shutdown_write()  # the script's end; the command's own stdin is /dev/null
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise self._lost(error) from None
        forget = token.on_cancel(channel.close)
        try:
            status = self._pump(channel, out, err)
        finally:
            forget()
        if token.cancelled:
            self._kill(pid)
            token.check()
        if status is None:
            raise self._lost(None)
        out.close()
        err.close()
        stdout = [line for line in out.lines if not (line.startswith(_PID_MARK) and pid and line.endswith(pid[0]))]
        return CommandResult(status, "\n".join(stdout), "\n".join(err.lines))

    def _pump(self, channel: paramiko.Channel, out: _Lines, err: _Lines) -> int | None:
        """Read both streams until the command's exit status arrives; None if the channel closed first."""
        while True:
            busy = False
            if channel.recv_ready():
                out.feed(channel.recv(65536))
                busy = True
            if channel.recv_stderr_ready():
                err.feed(channel.recv_stderr(65536))
                busy = True
            if busy:
                continue
            if channel.exit_status_ready() and channel.eof_received:
                return channel.recv_exit_status()
            if channel.closed or not self._transport_alive():
                return channel.exit_status if channel.exit_status_ready() else None
            try:
                select.select([channel], [], [], _POLL)
            except (OSError, ValueError):  # closed by a cancel meanwhile: the next look sees it
                continue

    def _transport_alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def _kill(self, pid: list[str]) -> None:
        """Kill the process group of a cancelled command (its channel is closed already)."""
        if not pid or not pid[0].isdigit():
            return
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError, BuildError):
            channel = self._transport().open_session()
            channel.exec_command(f"kill -KILL -- -{pid[0]} 2>/dev/null || kill -KILL {pid[0]} 2>/dev/null; true")
            channel.recv_exit_status()
            channel.close()

    def _lost(self, error: BaseException | None) -> BuildError:
        reason = f": {error}" if error is not None and str(error) else ""
        return BuildError(f"the SSH connection to {self.target.host}:{self.target.port} was lost{reason}",
                          hint="check the machine and the network, then build again")

    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self.client.open_sftp()
            except (paramiko.SSHException, OSError, EOFError) as error:
                raise BuildError(f"{self.target.host}:{self.target.port} serves no SFTP: {error}",
                                 hint="enable sshd's sftp subsystem (Subsystem sftp ... in sshd_config)") from None
        return self._sftp

    def put_folder(self, source: Path, destination: str) -> None:
        """Copy ``source`` to ``destination`` over SFTP, keeping modes and symlinks."""
        with self._copying(source, destination):
            self._put_folder(source, PurePosixPath(destination))

    def put_file(self, source: Path, destination: str, mode: int) -> None:
        """Copy one file (the k3s binary) to ``destination``, parents created, with ``mode``."""
        with self._copying(source, destination):
            target = PurePosixPath(destination)
            self._make_parents(target.parent)
            self.sftp().put(str(source), str(target))
            self.sftp().chmod(str(target), mode)

    @contextlib.contextmanager
    def _copying(self, source: Path, destination: str) -> Iterator[None]:
        """One copy: the build's cancel token stops it between two files, and within one by
        closing the SFTP channel; any other failure is one ``BuildError``."""
        self.cancel.check()
        forget = self.cancel.on_cancel(closing(self.sftp()))
        try:
            yield
        except (paramiko.SSHException, OSError, EOFError) as error:
            self.cancel.check()
            raise BuildError(f"cannot copy {source} to {destination} on {self.target.host}: {error}",
                             hint="check the free space and permissions there") from None
        finally:
            forget()
            if self.cancel.cancelled:
                self._sftp = None  # closed by the cancel; a later cleanup opens another

    def _make_parents(self, folder: PurePosixPath) -> None:
        """Create ``folder`` and missing parents, remembering the topmost one created."""
        sftp = self.sftp()
        missing: list[PurePosixPath] = []
        for path in [folder, *folder.parents]:
            try:
                sftp.stat(str(path))
                break
            except FileNotFoundError:
                missing.append(path)
        for path in reversed(missing):
            sftp.mkdir(str(path))
        if missing:
            self.created.append(str(missing[-1]))

    def _put_folder(self, source: Path, destination: PurePosixPath) -> None:
        sftp = self.sftp()
        self._make_parents(destination)
        folders: list[tuple[str, int]] = [(str(destination), stat.S_IMODE(source.stat().st_mode))]
        for root, dirs, files in os.walk(source):
            local_root = Path(root)
            remote_root = destination / local_root.relative_to(source)
            for name in [*dirs, *files]:
                self.cancel.check()
                local, remote = local_root / name, str(remote_root / name)
                info = local.lstat()
                if stat.S_ISLNK(info.st_mode):
                    sftp.symlink(os.readlink(local), remote)
                elif stat.S_ISDIR(info.st_mode):
                    sftp.mkdir(remote)
                    folders.append((remote, stat.S_IMODE(info.st_mode)))
                elif stat.S_ISREG(info.st_mode):
                    sftp.put(str(local), remote, confirm=False)
                    sftp.chmod(remote, stat.S_IMODE(info.st_mode))
            dirs[:] = [name for name in dirs if not (local_root / name).is_symlink()]
        for remote, mode in reversed(folders):  # last: a read-only folder is filled first
            sftp.chmod(remote, mode)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the k3s log kubenb started (``--k3s-binary``), on one line; empty
        when there is none (a k3s kubenb did not start logs where its service manager says)."""
        from kubenb.builders.ssh_host import K3S_LOG  # noqa: PLC0415  (that module imports this one)

        try:
            result = self.run(f"[ -f {K3S_LOG} ] && tail -n {int(lines)} {K3S_LOG}")
        except BuildError:
            return ""
        return " | ".join(line for line in result.stdout.splitlines() if line.strip()) if result.status == 0 else ""

    def cleanup(self) -> None:
        """Remove the folders ``put_folder`` created (an existing host is left as it was)."""
        while self.created:
            folder = self.created[-1]
            result = self.run(f"rm -rf -- {shlex.quote(folder)}")
            if result.status != 0:
                raise BuildError(f"cannot remove {folder} on {self.target.host}: {result.stderr or result.stdout}",
                                 hint=f"remove it by hand: {self.description} rm -rf {folder}")
            self.created.pop()

    def close(self) -> None:
        """Close the connection; idempotent."""
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
            self._sftp = None
        closing(self.client)()

    def remove(self) -> None:
        """Leave the host clean (the folders kubenb made removed) and disconnect; the host stays."""
        try:
            if self.created and self._transport_alive():
                self.cleanup()
        finally:
            self.close()

