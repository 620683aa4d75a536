"""A machine provisioned for one build through Apache Libcloud, and always deleted afterwards.

``--cloud PROVIDER --region R --size S --image I``: one driver API for Alibaba Cloud ECS
(``aliyun_ecs``), AWS (``ec2``), GCE, Azure, OpenStack. The launcher creates a machine named
``kubenb-build-XXXXXXXX`` (with the public half of ``--ssh-key`` where the driver installs keys),
waits for it to run and show an address, logs in over SSH (retrying while it boots; its host key,
new by nature, is trusted on first sight for this build only), installs k3s from ``--k3s-binary``
if the image lacks it, and hands back a node whose ``remove`` disconnects and destroys the machine.

Deleting is the promise that matters (a forgotten machine costs money): it happens on success,
on a failing step, on cancel or Ctrl-C, and when provisioning itself fails halfway, including a
``create_node`` call that failed after the cloud had made the machine (it is looked up by its
unique name and destroyed). When the delete call itself fails, the error names the machine.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from kubenb.builders.cloud_providers import PROVIDERS, CloudProvider, scrub
from kubenb.builders.node import CommandResult
from kubenb.builders.ssh_connect import SshTarget, connect
from kubenb.builders.ssh_host import ensure_k3s
from kubenb.builders.ssh_node import SshNode
from kubenb.errors import BuildError, KubenbError
from kubenb.events import CancelToken, EventSink, Message

__all__ = ["CloudLauncher", "MachineNode"]

POLL_SECONDS = 5.0
DESTROY_ATTEMPTS = 3


@dataclass
class _Cloud:
    """A driver and what its errors must never show."""

    provider: CloudProvider
    driver: Any
    secrets: list[str]

    def call(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, a driver error turned into one scrubbed BuildError."""
        try:
            return function(*args, **kwargs)
        except KubenbError:
            raise
        except Exception as error:
            text = scrub(_reason(error), self.secrets)
            raise BuildError(f"{self.provider.name}: cannot {what}: {text}",
                             hint="check the credentials' rights, --region, --size and --image") from None


class MachineNode:
    """An SSH node on a provisioned machine; ``remove`` destroys the machine."""

    def __init__(self, ssh: SshNode, cloud: _Cloud, machine: Any) -> None:
        self.ssh = ssh
        self.cloud = cloud
        self.machine = machine
        self.removed = False

    @property
    def description(self) -> str:
        return (f"{self.ssh.description} (machine {self.machine.name}, id {self.machine.id}, at "
                f"{self.cloud.provider.name}: it stays until you delete it)")

    def run(self, command: str, *, workdir: str | None = None, env: Mapping[str, str] | None = None,
            on_output: Callable[[str], None] | None = None, cancel: CancelToken | None = None) -> CommandResult:
        return self.ssh.run(command, workdir=workdir, env=env, on_output=on_output, cancel=cancel)

    def put_folder(self, source: Path, destination: str) -> None:
        self.ssh.put_folder(source, destination)

    def log_tail(self, lines: int = 20) -> str:
        return self.ssh.log_tail(lines)

    def remove(self) -> None:
        """Disconnect, then destroy the machine (once; a machine already gone is no error)."""
        if self.removed:
            return
        self.ssh.close()
        _destroy(self.cloud, self.machine)
        self.removed = True


def _reason(error: BaseException | None) -> str:
    """A driver error's own text (Libcloud's errors print as their repr, naming the driver object)."""
    value = getattr(error, "value", None)
    text = value if isinstance(value, str) and value.strip() else str(error)
    return text.strip() or type(error).__name__


def _destroy(cloud: _Cloud, machine: Any) -> None:
    last: BaseException | None = None
    for _ in range(DESTROY_ATTEMPTS):
        try:
            cloud.driver.destroy_node(machine)
            return
        except Exception as error:
            if _gone(cloud, machine):
                return
            last = error
    reason = scrub(_reason(last), cloud.secrets)
    raise BuildError(f"{cloud.provider.name}: cannot delete the machine {machine.name} (id {machine.id}): {reason}",
                     hint="delete it in the provider's console: it costs money while it exists")


def _destroy_after(cloud: _Cloud, machine: Any, error: BaseException, events: EventSink) -> None:
    """Destroy ``machine`` after ``error`` stopped its start; if that fails too, the user hears both."""
    events(Message(f"Deleting the machine {machine.name}"))
    try:
        _destroy(cloud, machine)
    except BuildError:
        events(Message(f"kubenb: {error}" if isinstance(error, KubenbError) else f"kubenb: {error!r}", level="error"))
        raise


def _gone(cloud: _Cloud, machine: Any) -> bool:
    try:
        return all(node.id != machine.id for node in cloud.driver.list_nodes())
    except Exception:
        return False


def _pick(items: list[Any], wanted: str, what: str, provider: str) -> Any:
    for item in items:
        if wanted in (str(item.id), str(item.name)):
            return item
    known = ", ".join(sorted(str(item.id) for item in items)[:12])
    raise BuildError(f"{provider} has no {what} {wanted!r}", hint=f"choose one of: {known}")


def _public_key(key_file: Path | None) -> str | None:
    """The public half of ``--ssh-key`` (its .pub file, else derived from the private key)."""
    if key_file is None:
        return None
    public = Path(f"{key_file}.pub")
    if public.is_file():
        return public.read_text(encoding="utf-8").strip()
    try:
        key = paramiko.PKey.from_path(key_file)
    except (OSError, paramiko.SSHException, ValueError) as error:
        raise BuildError(f"cannot read the SSH key {key_file}: {error}",
                         hint="give an unencrypted private key (or put KEY.pub beside it)") from None
    return f"{key.get_name()} {key.get_base64()}"


@dataclass(frozen=True)
class CloudLauncher:
    """Provisions, reaches and (through the node) deletes one machine per build."""

    provider: str
    size: str
    image: str
    region: str | None = None
    user: str = "root"
    key_file: Path | None = None
    k3s_binary: Path | None = None
    ssh_port: int = 22
    boot_timeout: float = 600.0  # seconds for the machine to run and let SSH in
    poll_seconds: float = POLL_SECONDS  # between two looks at a starting machine
    create_arguments: tuple[tuple[str, str], ...] = ()  # --cloud-arg ex_NAME=VALUE, to create_node

    def _cloud(self) -> _Cloud:
        provider = PROVIDERS.get(self.provider)
        if provider is None:
            raise BuildError(f"--cloud {self.provider!r} is not a provider kubenb knows",
                             hint=f"use one of {', '.join(sorted(PROVIDERS))}")
        cloud = _Cloud(provider, None, provider.secret_values())
        cloud.driver = cloud.call("start the driver", provider.driver, self.region)
        return cloud

    def start(self, events: EventSink, cancel: CancelToken) -> MachineNode:
        """Create the machine, wait for it, log in; on any failure or cancel, destroy it first."""
        cancel.check()
        cloud = self._cloud()
        size = _pick(cloud.call("list sizes", cloud.driver.list_sizes), self.size, "size", self.provider)
        image = self._image(cloud)
        public_key = _public_key(self.key_file)
        name = f"kubenb-build-{secrets.token_hex(4)}"
        cancel.check()
        machine: Any = None
        ssh: SshNode | None = None
        try:
            events(Message(f"Creating the machine {name} at {self.provider} ({size.name}, {image.name})"))
            machine = self._create(cloud, name, size, image, public_key)
            address = self._wait_address(cloud, machine, events, cancel)
            ssh = self._login(address, events, cancel)
            ensure_k3s(ssh, self.k3s_binary, events, cancel)
        except BaseException as error:
            if ssh is not None:
                ssh.close()
            if machine is not None:
                _destroy_after(cloud, machine, error, events)
            raise
        return MachineNode(ssh, cloud, machine)

    def _image(self, cloud: _Cloud) -> Any:
        """``--image`` by id straight from the provider where it can (a cloud's public image list
        can hold thousands), else from its list by id or name."""
        try:
            found = cloud.driver.get_image(self.image)
        except Exception:  # not implemented, or not an id: look in the list
            found = None
        if found is not None:
            return found
        return _pick(cloud.call("list images", cloud.driver.list_images), self.image, "image", self.provider)

    def _create(self, cloud: _Cloud, name: str, size: Any, image: Any, public_key: str | None) -> Any:
        extra: dict[str, Any] = dict(self.create_arguments)
        if public_key is not None and cloud.provider.key_arguments is not None:
            extra.update(cloud.provider.key_arguments(public_key, self.user))
        try:
            return cloud.call("create the machine", cloud.driver.create_node, name=name, size=size, image=image,
                              **extra)
        except BaseException:
            made = self._named(cloud, name)  # made before the call failed: found by its unique name
            if made is not None:
                _destroy(cloud, made)
            raise

    @staticmethod
    def _named(cloud: _Cloud, name: str) -> Any:
        try:
            return next((node for node in cloud.driver.list_nodes() if node.name == name), None)
        except Exception:
            return None

    def _wait_address(self, cloud: _Cloud, machine: Any, events: EventSink, cancel: CancelToken) -> str:
        """Poll until the machine runs with an address (public first); cancel wakes the wait."""
        from libcloud.compute.types import NodeState  # noqa: PLC0415

        deadline = time.monotonic() + self.boot_timeout
        while True:
            cancel.check()
            current = next((node for node in cloud.call("list machines", cloud.driver.list_nodes)
                            if node.id == machine.id), None)
            if current is None:
                raise BuildError(f"{self.provider}: the machine {machine.name} disappeared while starting",
                                 hint="look at the provider's console for why (quota, image, size)")
            addresses = [*(current.public_ips or []), *(current.private_ips or [])]
            if current.state == NodeState.RUNNING and addresses:
                events(Message(f"The machine {machine.name} runs at {addresses[0]}"))
                return str(addresses[0])
            if time.monotonic() > deadline:
                raise BuildError(f"{self.provider}: the machine {machine.name} did not run with an address "
                                 f"in {self.boot_timeout:.0f} s (state {current.state})",
                                 hint="try again, or another --size or --image")
            cancel.wait(self.poll_seconds)

    def _login(self, address: str, events: EventSink, cancel: CancelToken) -> SshNode:
        """Log in, retrying while the machine boots; the first host key seen is pinned."""
        target = SshTarget(self.user, address, self.ssh_port)
        events(Message(f"Connecting to {target} over SSH"))
        pinned = paramiko.HostKeys()
        deadline = time.monotonic() + self.boot_timeout
        while True:
            try:
                client = connect(target, key_file=self.key_file, known_hosts=None, cancel=cancel,
                                 trust_first=True, pinned=pinned, timeout=min(30.0, self.boot_timeout))
                return SshNode(client, target, key_file=self.key_file, cancel=cancel)
            except BuildError:
                if time.monotonic() > deadline:
                    raise
            cancel.check()
            cancel.wait(self.poll_seconds)
