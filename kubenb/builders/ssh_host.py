"""An existing machine as the node (``--host ssh://user@host[:port]``, sealer's bare-metal path).

kubenb logs in, checks that the node contract's ``kubectl`` and ``crictl`` are there
(``command -v``, a shell builtin), and otherwise installs k3s from a binary the user gives
(``--k3s-binary``: nothing is downloaded, so an air-gapped site works). The install is exactly:

1. the binary copied over SFTP to ``/usr/local/bin/k3s`` (mode 755);
2. ``ln -s k3s /usr/local/bin/kubectl`` and ``ln -s k3s /usr/local/bin/crictl`` where those
   names are free (k3s answers to both names);
3. ``nohup /usr/local/bin/k3s server`` started in the background, its log in
   ``/var/log/kubenb-k3s.log``; readiness is then the cluster build's wait for ``/readyz``.

The host is never deleted: at the end kubenb removes the build folder it made there and
disconnects. k3s, once installed this way, stays installed and running (the host is a k3s host
from then on, and the next build reuses it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import paramiko

from kubenb.builders.ssh_connect import SshTarget, connect
from kubenb.builders.ssh_node import SshNode
from kubenb.errors import BuildError
from kubenb.events import CancelToken, EventSink, Message

__all__ = ["K3S_LOG", "K3S_PATH", "SshHostLauncher", "ensure_k3s"]

K3S_PATH = "/usr/local/bin/k3s"
K3S_LOG = "/var/log/kubenb-k3s.log"
_HAS_CONTRACT = "command -v kubectl >/dev/null 2>&1 && command -v crictl >/dev/null 2>&1"
_START_K3S = (
    "cd /usr/local/bin && for name in kubectl crictl; do [ -e \"$name\" ] || ln -s k3s \"$name\"; done && "
    f"mkdir -p /var/log && nohup {K3S_PATH} server >{K3S_LOG} 2>&1 </dev/null &"
)


def ensure_k3s(node: SshNode, k3s_binary: Path | None, events: EventSink, cancel: CancelToken) -> None:
    """Leave ``node`` with ``kubectl`` and ``crictl`` on PATH: as found, or by installing k3s."""
    if node.run(_HAS_CONTRACT, cancel=cancel).status == 0:
        return
    where = f"{node.target.host}:{node.target.port}"
    if k3s_binary is None:
        raise BuildError(f"{where} has no kubectl and crictl (no k3s runs there)",
                         hint="give --k3s-binary PATH (the k3s binary for that machine): kubenb copies and starts it")
    if not k3s_binary.is_file():
        raise BuildError(f"--k3s-binary {k3s_binary}: no such file", hint="give the k3s binary to install")
    events(Message(f"Installing k3s on {where} from {k3s_binary}"))
    node.put_file(k3s_binary, K3S_PATH, 0o755)
    cancel.check()
    started = node.run(_START_K3S, cancel=cancel)
    if started.status != 0:
        raise BuildError(f"cannot start k3s on {where}: {started.stderr or started.stdout}",
                         hint=f"look at {K3S_LOG} there ({node.description})")


@dataclass(frozen=True)
class SshHostLauncher:
    """Reaches an existing machine over SSH; its ``remove`` leaves the machine clean, not deleted."""

    target: SshTarget
    key_file: Path | None = None
    known_hosts: Path | None = None
    k3s_binary: Path | None = None

    def start(self, events: EventSink, cancel: CancelToken) -> SshNode:
        """Log in (the host key checked against known_hosts) and make sure k3s is there."""
        cancel.check()
        events(Message(f"Connecting to {self.target} over SSH"))
        client: paramiko.SSHClient = connect(self.target, key_file=self.key_file, known_hosts=self.known_hosts,
                                             cancel=cancel)
        node = SshNode(client, self.target, key_file=self.key_file, cancel=cancel)
        try:
            ensure_k3s(node, self.k3s_binary, events, cancel)
        except BaseException:
            node.remove()
            raise
        return node
