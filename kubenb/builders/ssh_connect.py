"""Reaching a machine over SSH (paramiko): the address, the host key check, the login.

A host's key is checked against a known_hosts file (``--known-hosts``, else ``~/.ssh/known_hosts``)
before anything is sent: an unknown key or one that changed stops the build with a line saying
how to add it or why a change matters. The one exception is a machine kubenb itself has just
provisioned: its key cannot be known yet, so the key it shows on the first connection is trusted
for that build only (kept in memory, never written to a known_hosts file) and every later
connection must show the same one. Every paramiko or socket error becomes a ``BuildError``
naming the address, here, so no layer above sees paramiko.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from kubenb.errors import BuildError, KubenbError
from kubenb.events import CancelToken

__all__ = ["CONNECT_TIMEOUT", "SshTarget", "connect", "parse_ssh_url"]

CONNECT_TIMEOUT = 30.0
_URL = re.compile(r"ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d+))?/?")


@dataclass(frozen=True)
class SshTarget:
    """Who logs in where: ``user@host:port``."""

    user: str
    host: str
    port: int = 22

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH names this host in known_hosts (``[host]:port`` unless the port is 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def parse_ssh_url(text: str) -> SshTarget:
    """``ssh://user@host[:port]`` (user defaults to root, port to 22; ``[::1]`` for IPv6)."""
    match = _URL.fullmatch(text.strip())
    port = int(match["port"]) if match and match["port"] else 22
    if match is None or not 0 < port < 65536:
        raise BuildError(f"--host {text!r} is not an SSH address", hint="write it as ssh://user@host or ssh://user@host:port")
    return SshTarget(match["user"] or "root", match["host"].strip("[]"), port)


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


class _Refuse(paramiko.MissingHostKeyPolicy):
    """An unknown host key: keep it for the message, then refuse."""

    def __init__(self) -> None:
        self.seen: paramiko.PKey | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self.seen = key
        raise paramiko.SSHException("unknown host key")


class _TrustFirst(paramiko.MissingHostKeyPolicy):
    """A machine kubenb just made: trust the key it shows first, in memory only."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)


def _known_hosts(path: Path | None) -> Path:
    return path if path is not None else Path.home() / ".ssh" / "known_hosts"


def connect(target: SshTarget, *, key_file: Path | None, known_hosts: Path | None, cancel: CancelToken,
            trust_first: bool = False, pinned: paramiko.HostKeys | None = None,
            timeout: float = CONNECT_TIMEOUT) -> paramiko.SSHClient:
    """A logged-in client for ``target``, its host key checked (see the module's docstring).

    ``trust_first`` (a machine just provisioned) accepts an unknown key into ``pinned`` (shared by
    the reconnects of one build) instead of refusing it. ``cancel`` closes a connection in progress.
    """
    if key_file is not None and not key_file.is_file():
        raise BuildError(f"--ssh-key {key_file}: no such file", hint="give the private key that logs in to the host")
    client = paramiko.SSHClient()
    hosts_file = _known_hosts(known_hosts)
    refuse = _Refuse()
    if trust_first:
        _trust_first(client, pinned)
    else:
        _check_against(client, hosts_file, given=known_hosts is not None)
        client.set_missing_host_key_policy(refuse)
    forget = cancel.on_cancel(closing(client))
    try:
        _login(client, target, key_file, timeout)
    except paramiko.BadHostKeyException as error:
        client.close()
        if trust_first:
            raise BuildError(f"the host key of {target.host}:{target.port} changed since this build first connected "
                             f"(it shows {_fingerprint(error.key)}): someone may be in between",
                             hint="check the machine in the provider's console, then build again") from None
        raise BuildError(
            f"the host key of {target.host}:{target.port} is not the one {hosts_file} records "
            f"(it shows {_fingerprint(error.key)}): the machine was reinstalled, or someone is in between",
            hint=f"if it was reinstalled, remove the old key with ssh-keygen -R '{target.known_hosts_name}' "
                 f"-f {hosts_file}, then add the new one",
        ) from None
    except (paramiko.SSHException, OSError, EOFError, ValueError) as error:
        client.close()
        cancel.check()
        raise _translated(error, target, key_file, hosts_file, refuse.seen) from None
    finally:
        forget()
    if cancel.cancelled:  # connected just as the cancel came: the cancel wins
        client.close()
        cancel.check()
    if trust_first and pinned is not None:
        for name, keys in client.get_host_keys().items():
            for key_type, key in keys.items():
                pinned.add(name, key_type, key)
    return client


def _trust_first(client: paramiko.SSHClient, pinned: paramiko.HostKeys | None) -> None:
    """Accept an unknown key (kept in memory), but hold the machine to a key already pinned."""
    for name, keys in (pinned or {}).items():
        for key_type, key in keys.items():
            client.get_host_keys().add(name, key_type, key)
    client.set_missing_host_key_policy(_TrustFirst())


def _check_against(client: paramiko.SSHClient, hosts_file: Path, *, given: bool) -> None:
    if given and not hosts_file.is_file():
        raise BuildError(f"--known-hosts {hosts_file}: no such file",
                         hint="give the known_hosts file that lists the host's key")
    if hosts_file.is_file():
        _load(client, hosts_file)


def _load(client: paramiko.SSHClient, hosts_file: Path) -> None:
    try:
        client.get_host_keys().load(str(hosts_file))  # read only: never written back
    except (OSError, paramiko.SSHException, ValueError) as error:
        raise BuildError(f"cannot read the known_hosts file {hosts_file}: {error}",
                         hint="fix or replace it (one 'host keytype key' per line)") from None


def _login(client: paramiko.SSHClient, target: SshTarget, key_file: Path | None, timeout: float) -> None:
    client.connect(
        target.host, port=target.port, username=target.user,
        key_filename=str(key_file) if key_file is not None else None,
        look_for_keys=key_file is None, allow_agent=key_file is None,
        timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout,
    )


def _translated(error: BaseException, target: SshTarget, key_file: Path | None, hosts_file: Path,
                unknown_key: paramiko.PKey | None) -> KubenbError:
    """The one line a failed connection shows (never the key's content, never a password)."""
    where = f"{target.host}:{target.port}"
    if unknown_key is not None:
        return BuildError(
            f"the host key of {where} ({_fingerprint(unknown_key)}) is not in {hosts_file}",
            hint=f"check that fingerprint with the machine's owner, then add it: ssh-keyscan -p {target.port} "
                 f"{target.host} >> {hosts_file} (or give another file with --known-hosts)",
        )
    if isinstance(error, paramiko.PasswordRequiredException):
        return BuildError(f"the SSH key {key_file} is protected by a passphrase",
                          hint="load it into ssh-agent and leave out --ssh-key")
    if key_file is not None and _unreadable_key(error):
        return BuildError(f"cannot read the SSH key {key_file}: {error}",
                          hint="give an OpenSSH private key (ed25519, ecdsa or rsa)")
    if isinstance(error, paramiko.AuthenticationException):
        which = f"the key {key_file}" if key_file is not None else "every key of ssh-agent and ~/.ssh"
        return BuildError(f"{target.user}@{where} refused {which}",
                          hint=f"add its public key to ~{target.user}/.ssh/authorized_keys on the host, "
                               "or give the right one with --ssh-key")
    reason = str(error) or type(error).__name__
    if isinstance(error, (socket.timeout, TimeoutError)):
        reason = "no answer in time"
    return BuildError(f"cannot reach {where} over SSH: {reason}",
                      hint="check the address and port, and that sshd runs there and lets this machine in")


def _unreadable_key(error: BaseException) -> bool:
    """paramiko's way of saying the key file is no key it can read."""
    return isinstance(error, ValueError) or (isinstance(error, paramiko.SSHException) and "private key" in str(error))


def closing(client: paramiko.SSHClient | paramiko.SFTPClient) -> Callable[[], None]:
    """A quick, never-raising close for a cancel callback."""

    def close() -> None:
        with contextlib.suppress(Exception):
            client.close()

    return close

