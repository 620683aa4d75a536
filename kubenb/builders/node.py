"""The node: somewhere a single-node Kubernetes runs and kubenb can run commands and move files.

The container and cloud builders differ only in how a node is started, reached and removed; the
cluster build itself (lay out the rootfs, run RUN and CMD on the node, wait for the cluster to
settle, list what the runtime pulled) is written once against this interface. What kubenb may
run on a node is the node contract of DESIGN.md, and nothing more: a POSIX ``sh``, ``kubectl``
and ``crictl`` on PATH, the kubeconfig at ``/etc/rancher/k3s/k3s.yaml``. Keeping to it is what
lets a stand-in node (tests) or any k3s-like node work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kubenb.events import CancelToken, EventSink

__all__ = ["KUBECONFIG", "CommandResult", "Node", "NodeLauncher"]

KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"


@dataclass(frozen=True)
class CommandResult:
    """What a command on the node did: its exit status and what it wrote to each stream."""

    status: int
    stdout: str
    stderr: str


class Node(Protocol):
    """A started node. Every method may raise :class:`kubenb.errors.BuildError` when the node
    cannot be reached, and :class:`kubenb.errors.Cancelled` when ``cancel`` is set."""

    @property
    def description(self) -> str:
        """How a person reaches this node (``--keep-node`` prints it): a container name with the
        command that opens a shell in it, or ``ssh user@host -p PORT``."""
        ...

    def run(self, command: str, *, workdir: str | None = None, env: Mapping[str, str] | None = None,
            on_output: Callable[[str], None] | None = None, cancel: CancelToken | None = None) -> CommandResult:
        """Run ``sh -c command`` on the node and wait for it. Output lines go to ``on_output`` as
        they arrive (both streams) and are also kept in the result; a non-zero status is returned,
        not raised, since the caller knows what the command meant."""
        ...

    def put_folder(self, source: Path, destination: str) -> None:
        """Copy the local folder ``source`` to the absolute path ``destination`` on the node
        (created, parents included), keeping modes and symlinks."""
        ...

    def log_tail(self, lines: int = 20) -> str:
        """The node's last log lines on one line (the container's log, the k3s service's journal),
        for the error of a node that never became ready; empty when there is none."""
        ...

    def remove(self) -> None:
        """Delete the node (the container, or the provisioned machine); idempotent, and never
        raises for a node that is already gone."""
        ...


class NodeLauncher(Protocol):
    """Starts a node for one build; the build always calls ``remove`` on what it returns."""

    def start(self, events: EventSink, cancel: CancelToken) -> Node:
        """Start (or reach) a node and return it once commands can run on it; readiness of the
        cluster on it (``kubectl get --raw /readyz``) is the cluster build's job. If starting fails
        or is cancelled halfway, whatever was already created (a container, a machine) is removed
        before the error is raised: the caller has no node to remove yet."""
        ...
