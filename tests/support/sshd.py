"""A real OpenSSH sshd for the cloud builder's tests, with the machine behind it kept in a chroot.

Debian's ``openssh-server`` runs as root on a free 127.0.0.1 port, with a config, a generated
ed25519 host key and a generated user key (its public half as the only authorized key) in a
fresh folder; nothing in /etc is read or written. Every login is confined by sshd's
``ChrootDirectory`` to a rootfs the test provides (the stand-in node: busybox ``sh`` with
stand-in ``kubectl``/``crictl``), so commands kubenb runs "on the machine" run inside that
folder and the build host is untouched; SFTP is sshd's ``internal-sftp``, confined the same way.

sshd insists that every folder on the chroot's path is root-owned and writable by nobody else,
which rules out /tmp (world-writable): the folder is made under /run. The only thing left
outside it is /run/sshd, the empty privilege-separation folder sshd needs, created if missing.

Stopping kills sshd, its per-connection children and anything still running inside the chroot,
and checks that no such process is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Sshd", "busybox_rootfs", "running_sshd"]

SSHD = "/usr/sbin/sshd"
BUSYBOX = "/usr/bin/busybox"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)


def busybox_rootfs(dest: Path) -> None:
    """The smallest machine: busybox's ``sh`` and its applets, nothing Kubernetes."""
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    for applet in ("sh", "cat", "ls", "mkdir", "rm", "sleep", "kill", "echo", "printf", "ps", "tar", "ln",
                   "chmod", "stat", "readlink", "test", "env", "true", "false", "pwd", "id"):
        link = dest / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")


def _prepare_chroot(root: Path) -> None:
    """What sshd and a shell need inside the chroot, whatever the rootfs brought."""
    os.chmod(root, 0o755)
    for folder in ("dev", "tmp", "root", "etc", "bin"):
        (root / folder).mkdir(exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    null = root / "dev" / "null"
    if not null.exists():
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chmod(null, 0o666)
    # root's login shell is /bin/bash on the host; busybox has no bash applet, so a one-line
    # stand-in hands the command to busybox sh.
    bash = root / "bin" / "bash"
    if not bash.exists():
        bash.write_text('#!/bin/sh\nexec /bin/sh "$@"\n')
        bash.chmod(0o755)


@dataclass
class Sshd:
    """A running sshd: where it listens, the keys to reach it, the chroot behind it."""

    port: int
    folder: Path
    chroot: Path
    user_key: Path
    known_hosts: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def processes_in_chroot(self) -> list[int]:
        """Pids of processes whose root is the chroot (commands kubenb left running there)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "root") == str(self.chroot):
                        found.append(int(entry.name))
        return found

    def commands_left(self, within: float = 10.0) -> list[str]:
        """What still runs in the chroot besides sshd's own session processes (which chroot
        themselves too, and end a moment after their connection closes), waiting up to ``within``
        seconds for killed commands to be gone: a kill is delivered at once, the exit a moment later."""
        deadline = time.monotonic() + within
        while True:
            left = []
            for pid in self.processes_in_chroot():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/exe") != SSHD:
                        left.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def descendants(self) -> list[int]:
        """Pids of sshd's children and theirs (one per connection, and what they run)."""
        parents: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    parents.setdefault(int(fields[1]), []).append(int(entry.name))
        result, todo = [], [self.process.pid]
        while todo:
            for child in parents.get(todo.pop(), []):
                result.append(child)
                todo.append(child)
        return result

    def stop(self) -> None:
        """Stop sshd and everything it started; fail if any of it is still alive afterwards."""
        left = set(self.descendants()) | set(self.processes_in_chroot())
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (still := [p for p in left if _alive(p)]):
            time.sleep(0.05)
        still = [p for p in left if _alive(p)] + self.processes_in_chroot()
        assert not still, f"processes left by the test sshd: {still}"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _config(sshd_folder: Path, port: int, chroot: Path) -> str:
    return "\n".join([
        f"ListenAddress 127.0.0.1:{port}",
        f"HostKey {sshd_folder / 'host_key'}",
        f"AuthorizedKeysFile {sshd_folder / 'authorized_keys'}",
        "PidFile none",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PrintMotd no",
        "MaxSessions 64",
        "MaxStartups 64",
        "LogLevel INFO",
        f"ChrootDirectory {chroot}",
        "Subsystem sftp internal-sftp",
        "",
    ])


def _wait_listening(sshd: Sshd) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if sshd.process.poll() is not None:
            raise RuntimeError(f"sshd stopped: {sshd.log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", sshd.port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen in time: {sshd.log.read_text()}")


@contextlib.contextmanager
def running_sshd(make_rootfs: Callable[[Path], None] = busybox_rootfs) -> Iterator[Sshd]:
    """An sshd whose logins land in a chroot made by ``make_rootfs(folder)``; stopped afterwards."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="kubenb-sshd-", dir="/run"))
    try:
        os.chmod(folder, 0o755)
        server, client, chroot = folder / "server", folder / "client", folder / "machine"
        server.mkdir(mode=0o700)
        client.mkdir(mode=0o700)
        chroot.mkdir(mode=0o755)
        make_rootfs(chroot)
        _prepare_chroot(chroot)
        _keygen(server / "host_key", "kubenb-test-host")
        _keygen(client / "id_ed25519", "kubenb-test-user")
        shutil.copy(client / "id_ed25519.pub", server / "authorized_keys")
        port = _free_port()
        host_key = (server / "host_key.pub").read_text().split()
        (client / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        (server / "sshd_config").write_text(_config(server, port, chroot))
        log = folder / "sshd.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(server / "sshd_config")],
                                       stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
        sshd = Sshd(port, folder, chroot, client / "id_ed25519", client / "known_hosts", process, log)
        try:
            _wait_listening(sshd)
            yield sshd
        finally:
            sshd.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
