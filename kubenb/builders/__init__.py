"""Builders: one interface, three ways to turn a Kubefile into a cluster image.

``lite`` starts no cluster (the heart of kubenb). ``container`` runs the Kubefile's RUN and CMD
on a single-node cluster in a container (builders/container.py, builders/cluster.py); ``cloud``
(cloud VMs) stops with a message saying what it would need rather than pretending to build.
"""

from __future__ import annotations

from typing import Protocol

from kubenb.builders.container import container_builder
from kubenb.builders.lite import LiteBuilder
from kubenb.builders.options import BuildOptions
from kubenb.builders.steps import CLUSTER_COMMANDS, needs_cluster
from kubenb.errors import UnsupportedError
from kubenb.events import CancelToken, EventSink, ignore
from kubenb.store import ClusterImage, Store, normalize_name

__all__ = ["BUILDERS", "CLUSTER_COMMANDS", "BuildOptions", "Builder", "build", "needs_cluster"]


class Builder(Protocol):
    name: str

    def build(self, options: BuildOptions, store: Store, events: EventSink,
              cancel: CancelToken | None = None) -> ClusterImage: ...


class _NotHere:
    """A builder this installation cannot run; says what it would need."""

    def __init__(self, name: str, needs: str) -> None:
        self.name = name
        self.needs = needs

    def build(self, options: BuildOptions, store: Store, events: EventSink,
              cancel: CancelToken | None = None) -> ClusterImage:
        raise UnsupportedError(
            f"the {self.name} builder is not available: it needs {self.needs}",
            hint="build with -b lite, which starts no cluster",
        )


BUILDERS: dict[str, Builder] = {
    "lite": LiteBuilder(),
    "container": container_builder(),
    "cloud": _NotHere("cloud", "cloud credentials and VM images to start cluster nodes, and is not implemented yet"),
}


def build(options: BuildOptions, *, builder: str = "lite", store: Store | None = None,
          events: EventSink = ignore, cancel: CancelToken | None = None) -> ClusterImage:
    """Build ``options.kubefile`` into the image ``options.tag`` with the named builder.

    Setting ``cancel`` (from another thread: a Cancel button, Ctrl-C) stops the build where it
    is (between steps, a RUN killed, downloads at their next chunk) with :class:`Cancelled`;
    like any failure it leaves the store as it was.
    """
    if builder not in BUILDERS:
        raise UnsupportedError(f"unknown builder {builder!r}", hint=f"use one of {', '.join(BUILDERS)}")
    normalize_name(options.tag)  # a bad name fails now, not after every image is pulled
    return BUILDERS[builder].build(options, store or Store(), events, cancel)
