"""The container build's node: a privileged container started through a Docker Engine API.

Any engine that speaks the API works: Docker itself, or Podman's compatible service
(``DOCKER_HOST=unix:///run/podman/podman.sock``); the ``docker`` SDK finds it as the docker CLI
does (``DOCKER_HOST``, else the default socket). The node image defaults to a pinned k3s release
(``--node-image`` overrides it): k3s needs a privileged container. Files go in with the API's
archive call; commands run with exec, their output and exit status written to files in the node
and read back with the archive call while they run (streamed line by line). Every path that
created a container removes it; the cluster build (builders/cluster.py) does the rest.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shlex
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kubenb.builders.cluster import ClusterBuilder
from kubenb.builders.node import CommandResult, NodeLauncher
from kubenb.errors import BuildError, UnsupportedError
from kubenb.events import CancelToken, EventSink, Message

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

__all__ = ["DEFAULT_NODE_IMAGE", "ContainerLauncher", "ContainerNode", "container_builder"]

DEFAULT_NODE_IMAGE = "docker.io/rancher/k3s:v1.31.4-k3s1"  # pinned: a build is repeatable
NODE_LABEL = "io.kubenb.node"  # on every node container, so a person can find leftovers
LOG_LINES = 20
EXEC_FOLDER = "/var/lib/kubenb/exec"  # in the node: each command's output and exit status
POLL_SECONDS = 0.25
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
        """``sh -c command`` by a detached exec writing its output and exit status to files in the
        node, which are read back with the archive call while it runs (streamed line by line).

        Not the exec's attached stream: Podman's compatible service may drop the first or last
        bytes of it under load, which lost a JSON answer's opening and a RUN's output in our tests;
        the archive call moves whole files. A cancel returns at once (the build then removes the
        container, which ends the command)."""
        from docker.errors import DockerException  # noqa: PLC0415

        folder = f"{EXEC_FOLDER}/{secrets.token_hex(8)}"
        api = self.client.api
        try:
            exec_id = str(api.exec_create(self.container.id, ["sh", "-c", _TO_FILES, "sh", command, folder],
                                          stdout=False, stderr=False, workdir=workdir,
                                          environment=[f"{k}={v}" for k, v in (env or {}).items()])["Id"])
            api.exec_start(exec_id, detach=True)
        except DockerException as error:
            raise BuildError(f"cannot run a command in the node container {self.name}: {_explanation(error)}",
                             hint="the container may have stopped; --keep-node keeps it to look") from None
        output = _Output(on_output)
        try:
            return self.follow(exec_id, folder, output, cancel or CancelToken())
        finally:
            self.forget(folder)

    def follow(self, exec_id: str, folder: str, output: _Output, cancel: CancelToken) -> CommandResult:
        """Read the command's files until its exit status is there."""
        ended = False
        while True:
            files = self.files(folder)
            output.update(files, final="status" in files)
            if "status" in files:
                status = files["status"].decode(errors="replace").strip()
                if not status.lstrip("-").isdigit():
                    raise BuildError(f"the command in the node container {self.name} wrote no exit status",
                                     hint="--keep-node keeps the node to look")
                return CommandResult(int(status), output.text("out"), output.text("err"))
            if ended:
                raise BuildError(f"the command in the node container {self.name} ended without an exit status "
                                 f"(the container stopped?): {self.log_tail() or 'no log'}",
                                 hint="--keep-node keeps the node to look")
            ended = not self.exec_running(exec_id)  # read the files once more before concluding
            if not ended and cancel.wait(POLL_SECONDS):
                cancel.check()

    def files(self, folder: str) -> dict[str, bytes]:
        """The files of ``folder`` in the node (none yet: empty)."""
        from docker.errors import DockerException, NotFound  # noqa: PLC0415

        try:
            chunks, _ = self.container.get_archive(folder)
            data = b"".join(chunks)
        except NotFound:
            return {}
        except DockerException as error:
            raise BuildError(f"cannot read the output of a command in the node container {self.name}: "
                             f"{_explanation(error)}", hint="--keep-node keeps the node to look") from None
        found: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    found[member.name.rsplit("/", 1)[-1]] = extracted.read()
        return found

    def exec_running(self, exec_id: str) -> bool:
        from docker.errors import DockerException  # noqa: PLC0415

        try:
            return bool(self.client.api.exec_inspect(exec_id).get("Running"))
        except DockerException:  # an engine may forget an ended exec at once
            return False

    def forget(self, folder: str) -> None:
        """Remove a command's files from the node, without waiting (the node goes anyway)."""
        from docker.errors import DockerException  # noqa: PLC0415

        with contextlib.suppress(DockerException):
            exec_id = self.client.api.exec_create(self.container.id, ["rm", "-rf", folder])["Id"]
            self.client.api.exec_start(exec_id, detach=True)

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


# The command's output and exit status, in files of a folder of its own; the status last, by rename,
# so its presence means the output is whole.
_TO_FILES = ('mkdir -p "$2" || exit 1; sh -c "$1" >"$2/out" 2>"$2/err" </dev/null; '
             'echo $? >"$2/status.new"; mv "$2/status.new" "$2/status"')


class _Output:
    """What a command wrote so far: new whole lines go to ``on_output`` as they appear."""

    def __init__(self, on_output: Callable[[str], None] | None) -> None:
        self.on_output = on_output
        self.data: dict[str, bytes] = {"out": b"", "err": b""}
        self.shown: dict[str, int] = {"out": 0, "err": 0}

    def update(self, files: Mapping[str, bytes], *, final: bool) -> None:
        for stream in ("out", "err"):
            self.data[stream] = files.get(stream, self.data[stream])
            new = self.data[stream][self.shown[stream]:]
            whole = new if final else new[:new.rfind(b"\n") + 1]
            self.shown[stream] += len(whole)
            for line in whole.decode("utf-8", errors="replace").splitlines():
                if self.on_output is not None:
                    self.on_output(line)

    def text(self, stream: str) -> str:
        return self.data[stream].decode("utf-8", errors="replace")
