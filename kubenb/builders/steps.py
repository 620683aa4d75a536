"""What a lite build does with each instruction: the rules, apart from running them.

A RUN whose command needs a live cluster (kubectl, helm, ...) cannot run at build time: it is
recorded in the image, to run at deploy time. Anything else runs on the build host. Keeping
the rule here, as data, lets the preview show it and the tests check it without a build.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CLUSTER_COMMANDS", "needs_cluster"]

#: Commands that talk to a cluster or its runtime; at build time there is none.
CLUSTER_COMMANDS = frozenset({
    "kubectl", "helm", "kubeadm", "kubelet", "crictl", "ctr", "nerdctl", "sealer", "sealos", "kk",
    "k3s", "k0s", "kustomize-apply", "istioctl", "calicoctl", "velero", "argocd", "flux", "cilium",
})


def needs_cluster(command: str | tuple[str, ...]) -> bool:
    """True when any command of the line (``a && b | c``) is a cluster command.

    A line that mixes build-host work with cluster work cannot be split safely, so the whole
    line waits for the cluster.
    """
    return any(_program(segment) in CLUSTER_COMMANDS for segment in _segments(command))


_OPERATORS = frozenset({"&&", "||", ";", "|", "&", ";;", "(", ")"})
_PREFIXES = frozenset({"sudo", "env", "exec", "command", "time", "nohup"})


def _segments(command: str | tuple[str, ...]) -> list[list[str]]:
    if isinstance(command, tuple):
        return [list(command)]
    from kubenb.kubefile.parser import split_words  # noqa: PLC0415  (an unchanged rebuild needs no parser)

    try:
        tokens: Sequence[str] = split_words(command, punctuation=True)  # linear: RUN lines may be long
    except ValueError:
        tokens = command.split()
    segments: list[list[str]] = [[]]
    for token in tokens:
        if token in _OPERATORS:
            segments.append([])
        else:
            segments[-1].append(token)
    return [segment for segment in segments if segment]


def _program(words: list[str]) -> str:
    """The program a segment runs, past ``VAR=value`` assignments and wrappers like sudo."""
    index = 0
    while index < len(words) and ("=" in words[index].split("/")[0] or words[index] in _PREFIXES):
        index += 1
    return words[index].rsplit("/", 1)[-1] if index < len(words) else ""
