"""A cloud for tests: Libcloud's own dummy driver, recording every call kubenb makes to it.

``RecordingDriver`` is ``libcloud.compute.drivers.dummy.DummyNodeDriver`` with an empty machine
list; a machine it creates is pending for ``pending_polls`` listings, then runs at ``address``
(the tests' sshd on 127.0.0.1, so the "created machine" is the stand-in node behind it). It can
fail its create call (after or before the machine exists), its destroy call, or run a hook on
each listing (a test cancels the build there). ``register`` makes it the ``--cloud`` provider
``dummy`` for the duration of a ``with`` block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from libcloud.common.types import LibcloudError
from libcloud.compute.base import Node
from libcloud.compute.drivers.dummy import DummyNodeDriver
from libcloud.compute.types import NodeState

from kubenb.builders.cloud_providers import CloudProvider, register_provider, ssh_key_auth

__all__ = ["SECRET_VARIABLE", "RecordingDriver", "register"]

SECRET_VARIABLE = "KUBENB_DUMMY_CLOUD_SECRET"


class RecordingDriver(DummyNodeDriver):  # type: ignore[misc]
    """The dummy driver, recording ``create``, ``list`` and ``destroy`` in ``calls``."""

    features: ClassVar[dict[str, list[str]]] = {"create_node": ["ssh_key"]}

    def __init__(self, *, address: str = "127.0.0.1", pending_polls: int = 1, fail_create: str | None = None,
                 fail_destroy: int = 0, on_list: Callable[[], None] | None = None, error_text: str = "") -> None:
        super().__init__(0)
        self.nl: list[Node] = []
        self.calls: list[str] = []
        self.auth: list[Any] = []
        self.extra: list[dict[str, Any]] = []
        self.address = address
        self.pending_polls = pending_polls
        self.fail_create = fail_create  # None, "after" (the machine exists) or "before"
        self.fail_destroy = fail_destroy  # this many destroy calls fail first
        self.on_list = on_list
        self.error_text = error_text  # put into the errors it raises (a test puts a credential there)
        self.polls = 0

    def create_node(self, name: str, size: Any, image: Any, auth: Any = None, **extra: Any) -> Node:
        self.calls.append("create")
        self.auth.append(auth)
        self.extra.append(extra)
        if self.fail_create == "before":
            raise LibcloudError(f"quota exceeded {self.error_text}", driver=self)
        node = Node(id=f"m-{len(self.calls)}", name=name, state=NodeState.PENDING, public_ips=[], private_ips=[],
                    driver=self, size=size, image=image)
        self.nl.append(node)
        if self.fail_create == "after":
            raise LibcloudError(f"the request timed out {self.error_text}", driver=self)
        return node

    def list_nodes(self) -> list[Node]:
        self.calls.append("list")
        self.polls += 1
        if self.on_list is not None:
            self.on_list()
        if self.polls > self.pending_polls:
            for node in self.nl:
                node.state = NodeState.RUNNING
                node.public_ips = [self.address]
        return list(self.nl)

    def destroy_node(self, node: Node) -> bool:
        self.calls.append("destroy")
        if self.fail_destroy > 0:
            self.fail_destroy -= 1
            raise LibcloudError(f"the API is down {self.error_text}", driver=self)
        self.nl = [known for known in self.nl if known.id != node.id]
        return True

    @property
    def machines(self) -> list[Node]:
        return list(self.nl)


def steps(calls: list[str]) -> list[str]:
    """``calls`` with repeats folded (polling lists many times)."""
    folded: list[str] = []
    for call in calls:
        if not folded or folded[-1] != call:
            folded.append(call)
    return folded


@contextlib.contextmanager
def register(driver: RecordingDriver, *, variables: tuple[str, ...] = ()) -> Iterator[RecordingDriver]:
    """``--cloud dummy`` is ``driver`` inside the block (its credentials ``variables``, if any)."""
    forget = register_provider(CloudProvider("dummy", variables, lambda env, region: driver,
                                             key_arguments=ssh_key_auth))
    try:
        yield driver
    finally:
        forget()
