"""The cluster build: a Kubefile run against a real single-node cluster, carrying what it pulled.

Written once against :class:`~kubenb.builders.node.Node`; the container and cloud builders only
say how a node is started. The build lays out the rootfs as the lite build does (FROM, COPY: the
same steps, layers and build cache), puts a copy on the node, waits until its cluster is ready,
notes the node's own images, runs every RUN and CMD in order on the node, waits until the
cluster settles, and adds every image the runtime pulled (minus the node's own) to the lite
discovery list with source ``cluster``. The images are then cached into ``registry/`` by the
lite build's own code, so the cluster image has the same registry layer and annotations and
everything downstream is unchanged. Nothing of the Kubefile runs on the build host, and the node
is removed on every path (``--keep-node`` keeps it and says how to reach it).

Only the commands of the node contract (DESIGN.md) are run on a node.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubenb.builders.lite import LiteBuild, build_workspace, image_annotations
from kubenb.builders.node import KUBECONFIG, CommandResult, Node, NodeLauncher
from kubenb.builders.options import BuildOptions
from kubenb.builders.steps import needs_cluster
from kubenb.errors import BuildError, InvalidReferenceError, KubenbError
from kubenb.events import CancelToken, EventSink, Message
from kubenb.kubefile import plan_build
from kubenb.model import CLUSTER_IMAGES_ANNOTATION, FoundImage, ImageList, ImageRef, Instruction, Location
from kubenb.reference import parse_reference
from kubenb.store import ClusterImage, Store
from kubenb.store.space import translating_disk_full

__all__ = ["NODE_ROOTFS", "ClusterBuilder", "ClusterRun"]

NODE_ROOTFS = "/var/lib/kubenb/rootfs"  # the rootfs copy on the node: RUN and CMD's working folder
POLL_SECONDS = 1.0
SYSTEM_PODS_GRACE = 60.0  # seconds a node that says ready may take to list its first pod
_PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
_SETTLED = frozenset({"Running", "Succeeded"})
_TAIL_LINES = 10


class ClusterBuilder:
    """A builder whose RUN and CMD run on a node that ``launcher_for(options)`` starts."""

    def __init__(self, name: str, launcher_for: Callable[[BuildOptions], NodeLauncher]) -> None:
        self.name = name
        self.launcher_for = launcher_for

    def build(self, options: BuildOptions, store: Store, events: EventSink,
              cancel: CancelToken | None = None) -> ClusterImage:
        """Build as the lite build does, with the node's images added (see the module's docstring)."""
        plan = options.plan or plan_build(options.context, options.kubefile, options.build_args)
        kubefile = plan.require_kubefile()
        launcher = self.launcher_for(options)  # a missing SDK or bad option fails before any work
        with translating_disk_full(store.root, f"the build of {options.tag}"), store.lock(), \
                build_workspace(store.root) as work:
            store.remove_leftovers()
            return _ClusterBuild(plan, kubefile, options, store, events, work, cancel or CancelToken(),
                                 launcher=launcher, builder=self.name).run()


@dataclass
class _ClusterBuild(LiteBuild):
    """The lite build's steps, with RUN and CMD kept for the node and the node's images added."""

    launcher: NodeLauncher | None = None
    builder: str = "container"
    on_node: list[Instruction] = field(default_factory=list)
    pulled: list[FoundImage] = field(default_factory=list)

    def step(self, instruction: Instruction) -> None:
        if instruction.keyword not in ("RUN", "CMD"):
            super().step(instruction)
            return
        if instruction.keyword == "CMD" or needs_cluster(instruction.args):
            self.state.deploy_commands.append(instruction.to_text())  # as a lite build records it
        self.on_node.append(instruction)
        self.events(Message("  runs on the node, after the rootfs is laid out"))

    def after_steps(self) -> None:
        assert self.launcher is not None
        self.events(Message(f"Starting the build node ({self.builder})"))
        node = self.launcher.start(self.events, self.cancel)
        try:
            run = ClusterRun(node, self.events, self.cancel, wait_timeout=self.options.wait_timeout,
                             ready_timeout=self.options.wait_timeout)
            self.pulled = run.build(self.rootfs, self.on_node, self.state.run_environment, self.kubefile.path)
        finally:
            _let_go(node, self.options.keep_node, self.events)

    def more_images(self, found: ImageList) -> ImageList:
        locations: dict[ImageRef, tuple[Location, ...]] = {f.image: f.locations for f in found.images}
        for image in self.pulled:
            locations[image.image] = locations.get(image.image, ()) + image.locations
        return replace(found, images=tuple(FoundImage(ref, locations[ref]) for ref in sorted(locations, key=str)))

    def annotations(self, images: Mapping[str, str]) -> dict[str, str]:
        pulled = {str(f.image): [loc.file for loc in f.locations if loc.source == "cluster"] for f in self.pulled}
        return {**image_annotations(self.kubefile, self.state, images, builder=self.builder),
                CLUSTER_IMAGES_ANNOTATION: json.dumps({ref: pods for ref, pods in sorted(pulled.items())
                                                       if ref in images})}


def _let_go(node: Node, keep: bool, events: EventSink) -> None:
    """Remove the node, or keep it (``--keep-node``) and say how to reach it. A failed removal is
    a warning naming the node: the build's own outcome (or error) stands."""
    if keep:
        events(Message(f"kept the build node (--keep-node): {node.description}; "
                       f"KUBECONFIG={KUBECONFIG}, the rootfs copy in {NODE_ROOTFS}", level="warning"))
        return
    try:
        node.remove()
    except KubenbError as error:
        events(Message(f"warning: the build node was not removed ({error.message}): {node.description}",
                       level="warning"))


@dataclass
class ClusterRun:
    """What the build does on one started node; only the commands of the node contract."""

    node: Node
    events: EventSink
    cancel: CancelToken
    wait_timeout: float = 600.0
    ready_timeout: float = 600.0  # until `kubectl get --raw /readyz` says ok

    def build(self, rootfs: Path, steps: list[Instruction], environment: Mapping[str, str],
              kubefile: str | None) -> list[FoundImage]:
        """Run ``steps`` on the node over a copy of ``rootfs``; the images its cluster pulled."""
        self.wait_ready()
        self.events(Message(f"Copying the rootfs to the node ({NODE_ROOTFS})"))
        self.node.put_folder(rootfs, NODE_ROOTFS)
        self.settle(steady=True)  # the node's own pods (k3s's coredns, ...) pull after /readyz says ok
        own = self.images()
        self.events(Message(f"  the node's own images: {len(own)} (not carried)"))
        for instruction in steps:
            self.run_step(instruction, environment, kubefile)
        pods = self.settle()
        known = set(own.values())
        pulled = [refs for entry in self.image_entries()
                  if not (refs := _refs_of(entry)) & set(own) and _id_of(entry) not in known]
        found = [_found(refs, pods, self.events) for refs in pulled]
        result = [f for f in found if f is not None]
        self.events(Message(f"The cluster pulled {len(result)} image(s) besides the node's own"))
        return result

    def command(self, command: str, *, workdir: str | None = None, env: Mapping[str, str] | None = None,
                on_output: Callable[[str], None] | None = None) -> CommandResult:
        self.cancel.check()
        result = self.node.run(command, workdir=workdir, env={"KUBECONFIG": KUBECONFIG, **(env or {})},
                               on_output=on_output, cancel=self.cancel)
        self.cancel.check()
        return result

    def wait_ready(self) -> None:
        """Until ``kubectl get --raw /readyz`` prints ok; past the timeout, an error with its last words."""
        self.events(Message("Waiting for the node's cluster to be ready"))
        deadline = time.monotonic() + self.ready_timeout
        while True:
            result = self.command("kubectl get --raw /readyz")
            if result.status == 0 and result.stdout.strip() == "ok":
                return
            if time.monotonic() >= deadline:
                said = _tail(result.stdout + result.stderr) or f"exit status {result.status}, no output"
                logs = f"; its log ends: {tail}" if (tail := self.node.log_tail()) else ""
                raise BuildError(f"the build node's cluster was not ready after {self.ready_timeout:.0f} s: "
                                 f"kubectl get --raw /readyz said: {said}{logs}",
                                 hint="look at the node with --keep-node; is the node image a k3s one?")
            self.cancel.wait(POLL_SECONDS)

    def images(self) -> dict[str, str]:
        """What the runtime holds: each reference of each image -> the image's id."""
        return {ref: _id_of(entry) for entry in self.image_entries() for ref in _refs_of(entry)}

    def image_entries(self) -> list[dict[str, Any]]:
        result = self.command("crictl images -o json")
        images = _json(result, "crictl images -o json").get("images")
        if not isinstance(images, list):
            raise BuildError("crictl images -o json on the build node gave no image list",
                             hint="the node must honour the node contract (docs/build.md)")
        return [entry for entry in images if isinstance(entry, dict)]

    def run_step(self, instruction: Instruction, environment: Mapping[str, str], kubefile: str | None) -> None:
        """``sh -c LINE`` on the node, output streamed; a failure names the line and its last output."""
        line = (shlex.join(instruction.args) if isinstance(instruction.args, tuple) else str(instruction.args))
        self.events(Message(f"On the node: {instruction.to_text()}"))
        result = self.command(line, workdir=NODE_ROOTFS, env=environment,
                              on_output=lambda text: self.events(Message(f"  {text}", level="output")))
        if result.status != 0:
            output = _tail(result.stdout + "\n" + result.stderr) or "(no output)"
            raise BuildError(f"{instruction.keyword} failed on the build node with exit status {result.status}: "
                             f"{output}", file=kubefile, line=instruction.line,
                             hint=f"it ran as sh -c on the node, in {NODE_ROOTFS}; --keep-node keeps the node "
                                  "to look into it")

    def settle(self, *, steady: bool = False) -> list[dict[str, Any]]:
        """Until every pod is Running or Succeeded; a pod that cannot pull its image, a failed pod,
        or ``wait_timeout`` is an error naming it. Returns the pods.

        ``steady`` (the node's own pods, before the first RUN): also until the same pods are
        listed twice in a row, and some pod at all unless ``SYSTEM_PODS_GRACE`` passed; a k3s
        node says ready before its add-ons (coredns, the helm jobs) have made their pods, and
        their images must count as the node's own, not as the Kubefile's."""
        self.events(Message(f"Waiting for the cluster to settle (at most {self.wait_timeout:.0f} s)"))
        start = time.monotonic()
        deadline, before = start + self.wait_timeout, None
        while True:
            pods = self.pods()
            names = sorted(_name(pod) for pod in pods)
            unsteady = steady and (names != before or (not names and time.monotonic() < start + SYSTEM_PODS_GRACE))
            before = names
            _raise_pull_failure(pods)
            waiting = [pod for pod in pods if _phase(pod) not in _SETTLED]
            for pod in waiting:
                if _phase(pod) == "Failed":
                    raise BuildError(f"pod {_name(pod)} failed on the build node",
                                     hint="--keep-node keeps the node; kubectl logs there says why")
            if not waiting and (not unsteady or time.monotonic() >= deadline):
                return pods
            if time.monotonic() >= deadline:
                raise BuildError(f"the cluster did not settle in {self.wait_timeout:.0f} s: {len(waiting)} pod(s) "
                                 f"not running, first {_name(waiting[0])} ({_phase(waiting[0])})",
                                 hint="give it longer with --wait-timeout SECONDS, or keep the node (--keep-node)")
            self.cancel.wait(POLL_SECONDS)

    def pods(self) -> list[dict[str, Any]]:
        items = _json(self.command("kubectl get pods -A -o json"), "kubectl get pods -A -o json").get("items")
        return [pod for pod in items if isinstance(pod, dict)] if isinstance(items, list) else []


def _json(result: CommandResult, what: str) -> dict[str, Any]:
    if result.status != 0:
        raise BuildError(f"{what} failed on the build node (exit status {result.status}): "
                         f"{_tail(result.stderr + result.stdout) or '(no output)'}",
                         hint="the node must honour the node contract (docs/build.md)")
    try:
        value = json.loads(result.stdout)
    except ValueError:
        raise BuildError(f"{what} on the build node did not print JSON: {_tail(result.stdout)[:200]}",
                         hint="the node must honour the node contract (docs/build.md)") from None
    return value if isinstance(value, dict) else {}


def _tail(text: str) -> str:
    return " | ".join([line for line in text.splitlines() if line.strip()][-_TAIL_LINES:])


def _name(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return f"{metadata.get('namespace', 'default')}/{metadata.get('name', '?')}"


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Unknown")


def _statuses(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    every = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    return [s for s in every if isinstance(s, dict)]


def _raise_pull_failure(pods: list[dict[str, Any]]) -> None:
    """A container waiting because its image cannot be pulled: the build cannot carry it."""
    for pod in pods:
        for status in _statuses(pod):
            reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
            if reason in _PULL_FAILURES:
                raise BuildError(f"the build node cannot pull {status.get('image', '?')} "
                                 f"(pod {_name(pod)}: {reason})",
                                 hint="check the image name, and that the node reaches its registry")


def _refs_of(entry: Mapping[str, Any]) -> set[str]:
    """The references crictl gives for one image (its tags, else its digests)."""
    tags = [t for t in entry.get("repoTags") or [] if isinstance(t, str) and not t.startswith("<none>")]
    return set(tags or [d for d in entry.get("repoDigests") or [] if isinstance(d, str)])


def _id_of(entry: Mapping[str, Any]) -> str:
    return str(entry.get("id") or "")


def _found(refs: set[str], pods: list[dict[str, Any]], events: EventSink) -> FoundImage | None:
    """The image under its first valid reference, found in each pod that ran it."""
    for written in sorted(refs):
        try:
            ref = parse_reference(written)
        except InvalidReferenceError:
            continue
        ran = [_name(pod) for pod in pods if any(_same(status.get("image"), ref) for status in _statuses(pod))
               or any(_same(c.get("image"), ref) for c in (pod.get("spec") or {}).get("containers") or []
                      if isinstance(c, dict))]
        locations = tuple(Location("cluster", name, object=f"Pod/{name.split('/', 1)[1]}", written=written)
                          for name in ran) or (Location("cluster", "crictl images", written=written),)
        return FoundImage(ref, locations)
    events(Message(f"warning: the build node holds an image with no usable reference: {sorted(refs)}",
                   level="warning"))
    return None


def _same(written: object, ref: ImageRef) -> bool:
    if not isinstance(written, str):
        return False
    try:
        return parse_reference(written) == ref
    except InvalidReferenceError:
        return False
