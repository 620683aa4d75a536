"""The container build's node: a privileged container started through a Docker Engine API.

Any engine that speaks the API works: Docker itself, or Podman's compatible service
(``DOCKER_HOST=unix:///run/podman/podman.sock``); the ``docker`` SDK finds it as the docker CLI
does (``DOCKER_HOST``, else the default socket). The node image defaults to a pinned k3s release
(``--node-image`` overrides it): k3s needs a privileged container. Files go in with the API's
archive call, commands run with exec, their output streamed. Every path that created a
container removes it; the cluster build (builders/cluster.py) does the rest.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shlex
import tarfile
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubenb.builders.cluster import ClusterBuilder
from kubenb.builders.node import CommandResult, NodeLauncher
from kubenb.errors import BuildError, Cancelled, UnsupportedError
from kubenb.events import CancelToken, EventSink, Message

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

__all__ = ["DEFAULT_NODE_IMAGE", "ContainerLauncher", "ContainerNode", "container_builder"]

DEFAULT_NODE_IMAGE = "docker.io/rancher/k3s:v1.31.4-k3s1"  # pinned: a build is repeatable
NODE_LABEL = "io.kubenb.node"  # on every node container, so a person can find leftovers
LOG_LINES = 20
_START_HINT = ("start one and point DOCKER_HOST at it, e.g. `podman system service --time=0 "
               "unix:///run/podman/podman.sock` then DOCKER_HOST=unix:///run/podman/podman.sock, or start Docker")


def container_builder() -> ClusterBuilder:
    return ClusterBuilder("container", lambda options: ContainerLauncher(options.node_image or DEFAULT_NODE_IMAGE))


def _engine_url() -> str:
    return os.environ.get("DOCKER_HOST") or "the default socket (/var/run/docker.sock)"


class ContainerLauncher(NodeLauncher):
    """Starts ``image`` as a privileged container running ``server`` (k3s's server command)."""

    def __init__(self, image: str, command: tuple[str, ...] = ("server",)) -> None:
        self.image = image
        self.command = command

    def start(self, events: EventSink, cancel: CancelToken) -> ContainerNode:
        client = _client()
        try:
            cancel.check()
            self.ensure_image(client, events)
            cancel.check()
            name = f"kubenb-node-{secrets.token_hex(4)}"
            events(Message(f"  starting {self.image} as container {name} (privileged)"))
            container = self.create(client, name)
        except BaseException:
            client.close()
            raise
        node = ContainerNode(client, container, name)
        try:
            cancel.check()
            node.check_running()
        except BaseException:
            node.remove()
            raise
        return node

    def ensure_image(self, client: DockerClient, events: EventSink) -> None:
        from docker.errors import APIError, ImageNotFound  # noqa: PLC0415

        try:
            client.images.get(self.image)
            return
        except ImageNotFound:
            pass
        except APIError as error:
            raise _api_error(error, f"looking for the node image {self.image}") from None
        events(Message(f"  the node image {self.image} is not in the engine: pulling it"))
        try:
            client.images.pull(self.image)
        except APIError as error:
            raise BuildError(f"the node image {self.image} is not in the Docker engine and cannot be pulled: "
                             f"{_explanation(error)}",
                             hint="load it into the engine (docker load / podman load), or name another "
                                  "with --node-image") from None

    def create(self, client: DockerClient, name: str) -> Container:
        from docker.errors import APIError  # noqa: PLC0415

        try:
            return client.containers.run(self.image, list(self.command), name=name, detach=True, privileged=True,
                                         labels={NODE_LABEL: "build"}, tmpfs={"/run": "", "/var/run": ""})
        except APIError as error:
            _remove_named(client, name)  # created but not started: still a container
            raise BuildError(f"the node container of {self.image} did not start: {_explanation(error)}",
                             hint="k3s needs a privileged container: a rootful engine") from None


def _client() -> DockerClient:
    try:
        import docker  # noqa: PLC0415  (only a container build loads the SDK)
        from docker.errors import DockerException  # noqa: PLC0415
    except ImportError:
        raise UnsupportedError("the container builder needs the docker package",
                               hint="pip install 'kubenb[container]'") from None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException as error:
        raise BuildError(f"no Docker Engine API reachable at {_engine_url()}: {_explanation(error)}",
                         hint=_START_HINT) from None
    return client


def _explanation(error: BaseException) -> str:
    """The engine's own words, on one line."""
    text = getattr(error, "explanation", None) or str(error)
    return " ".join(str(text).split())[:300]


def _api_error(error: BaseException, doing: str) -> BuildError:
    return BuildError(f"the Docker engine failed {doing}: {_explanation(error)}", hint=_START_HINT)


def _remove_named(client: DockerClient, name: str) -> None:
    from docker.errors import DockerException  # noqa: PLC0415

    with contextlib.suppress(DockerException):
        client.containers.get(name).remove(force=True, v=True)


class ContainerNode:
    """A started node container; see :class:`kubenb.builders.node.Node`."""

    def __init__(self, client: DockerClient, container: Container, name: str) -> None:
        self.client = client
        self.container = container
        self.name = name
        self.removed = False

    @property
    def description(self) -> str:
        host = os.environ.get("DOCKER_HOST")
        prefix = f"DOCKER_HOST={host} " if host else ""
        return f"container {self.name}: {prefix}docker exec -it {self.name} sh"

    def check_running(self) -> None:
        """The container must still run: a node image whose command ended is no node."""
        self.container.reload()
        if self.container.status != "running":
            raise BuildError(f"the node container {self.name} stopped at once ({self.container.status}): "
                             f"{self.log_tail() or 'no output'}",
                             hint="is --node-image a k3s image? its command is run as `server`")

    def log_tail(self, lines: int = LOG_LINES) -> str:
        from docker.errors import DockerException  # noqa: PLC0415

        try:
            raw = self.container.logs(tail=lines)
        except DockerException:
            return ""
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        return " | ".join(line for line in text.splitlines() if line.strip())

    def run(self, command: str, *, workdir: str | None = None, env: Mapping[str, str] | None = None,
            on_output: Callable[[str], None] | None = None, cancel: CancelToken | None = None) -> CommandResult:
        """``sh -c command`` by exec; a reader thread streams the output, so a cancel returns at
        once (the build then removes the container, which ends the command)."""
        from docker.errors import DockerException  # noqa: PLC0415

        api = self.client.api
        marker = f"kubenb-exit-{secrets.token_hex(8)}"
        try:
            exec_id = str(api.exec_create(self.container.id, ["sh", "-c", _WITH_STATUS, "sh", command, marker],
                                          stdout=True, stderr=True, workdir=workdir,
                                          environment=[f"{k}={v}" for k, v in (env or {}).items()])["Id"])
            stream = api.exec_start(exec_id, stream=True, demux=True)
        except DockerException as error:
            raise BuildError(f"cannot run a command in the node container {self.name}: {_explanation(error)}",
                             hint="the container may have stopped; --keep-node keeps it to look") from None
        out = _Collected(on_output, marker)
        done = threading.Event()
        failures: list[BaseException] = []
        reader = threading.Thread(target=_read, args=(stream, out, done, failures), daemon=True,
                                  name="kubenb-node-exec")
        reader.start()
        forget = cancel.on_cancel(done.set) if cancel is not None else None
        try:
            done.wait()
        finally:
            if forget is not None:
                forget()
        if cancel is not None and cancel.cancelled:
            raise Cancelled("the work was cancelled", hint="nothing half-written was kept; run it again to go on")
        if failures:
            raise BuildError(f"the command in the node container {self.name} broke off: "
                             f"{_explanation(failures[0])}", hint="--keep-node keeps the node to look") from None
        if out.status is None:
            raise BuildError(f"the command in the node container {self.name} ended without an exit status "
                             f"(the container stopped?): {self.log_tail() or 'no log'}",
                             hint="--keep-node keeps the node to look")
        return CommandResult(out.status, out.text("stdout"), out.text("stderr"))

    def put_folder(self, source: Path, destination: str) -> None:
        """Tar ``source`` (modes and symlinks kept) into ``destination`` through the archive call."""
        from docker.errors import DockerException  # noqa: PLC0415

        made = self.run(f"mkdir -p {shlex.quote(destination)}")
        if made.status != 0:
            raise BuildError(f"cannot make {destination} in the node container {self.name}: "
                             f"{(made.stderr or made.stdout).strip()}", hint="--keep-node keeps the node to look")
        with tempfile.TemporaryFile() as archive:
            with tarfile.open(fileobj=archive, mode="w") as tar:
                for child in sorted(source.iterdir()):
                    tar.add(child, arcname=child.name)
            archive.seek(0)
            try:
                ok = self.container.put_archive(destination, archive)
            except DockerException as error:
                ok = False
                reason = _explanation(error)
            else:
                reason = "the engine refused the archive"
        if not ok:
            raise BuildError(f"cannot copy the rootfs into the node container {self.name}: {reason}",
                             hint="--keep-node keeps the node to look")

    def remove(self) -> None:
        """Force-remove the container (and its anonymous volumes); gone already is fine."""
        from docker.errors import DockerException, NotFound  # noqa: PLC0415

        if self.removed:
            return
        try:
            self.container.remove(force=True, v=True)
        except NotFound:
            pass
        except DockerException as error:
            raise BuildError(f"the node container {self.name} could not be removed: {_explanation(error)}",
                             hint=f"remove it by hand: docker rm -f {self.name}") from None
        finally:
            self.client.close()
        self.removed = True


# The exit status comes after the command's output, behind a marker: an engine may forget an ended
# exec session at once (Podman without exit_command_delay), so asking it afterwards is not reliable.
_WITH_STATUS = 'sh -c "$1"; status=$?; printf "%s %d\\n" "$2" "$status"'


class _Collected:
    """Output of one command: whole lines to ``on_output`` as they arrive, all of it kept per
    stream; the marker line (written last, on stdout) gives the exit status and is not output."""

    def __init__(self, on_output: Callable[[str], None] | None, marker: str) -> None:
        self.on_output = on_output
        self.marker = marker
        self.status: int | None = None
        self.parts: dict[str, io.StringIO] = {"stdout": io.StringIO(), "stderr": io.StringIO()}
        self.pending: dict[str, str] = {"stdout": "", "stderr": ""}

    def add(self, stream: str, data: bytes | None) -> None:
        if not data:
            return
        *lines, self.pending[stream] = (self.pending[stream] + data.decode("utf-8", errors="replace")).split("\n")
        for line in lines:
            self.line(stream, line, ended=True)

    def close(self) -> None:
        for stream, rest in self.pending.items():
            if rest:
                self.line(stream, rest, ended=False)
            self.pending[stream] = ""

    def line(self, stream: str, line: str, *, ended: bool) -> None:
        if stream == "stdout" and self.marker in line:
            line, _, status = line.partition(self.marker)
            self.status = int(status.strip()) if status.strip().lstrip("-").isdigit() else None
            ended = False  # the command's last line had no newline: the marker's was not its own
            if not line:
                return
        self.parts[stream].write(line + ("\n" if ended else ""))
        if self.on_output is not None:
            self.on_output(line.rstrip("\r"))

    def text(self, stream: str) -> str:
        return self.parts[stream].getvalue()


def _read(stream: Any, out: _Collected, done: threading.Event, failures: list[BaseException]) -> None:
    try:
        for stdout, stderr in stream:
            out.add("stdout", stdout)
            out.add("stderr", stderr)
        out.close()
    except Exception as error:  # handed to the waiting thread, which raises it
        failures.append(error)
    finally:
        done.set()
