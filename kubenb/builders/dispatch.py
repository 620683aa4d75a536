"""``build``: a builder picked by name, behind one interface (``kubenb.builders`` exports it).

``lite`` starts no cluster (the heart of kubenb). ``container`` runs the Kubefile's RUN and CMD
on a single-node cluster in a container (builders/container.py, builders/cluster.py); ``cloud``
does the same on a machine reached over SSH, existing or provisioned (builders/cloud_build.py).
"""

from __future__ import annotations

from typing import Protocol

from kubenb.builders import unchanged
from kubenb.builders.cloud_build import cloud_builder
from kubenb.builders.container import container_builder
from kubenb.builders.options import BuildOptions
from kubenb.errors import UnsupportedError
from kubenb.events import CancelToken, EventSink, ignore
from kubenb.store import ClusterImage, Store, normalize_name

__all__ = ["BUILDERS", "Builder", "build"]


class Builder(Protocol):
    name: str

    def build(self, options: BuildOptions, store: Store, events: EventSink,
              cancel: CancelToken | None = None) -> ClusterImage: ...


class _Lite:
    """The lite builder, imported when a build runs (discovery, the Kubefile parser and the
    registry client are not needed by an unchanged rebuild: ``unchanged`` answers it)."""

    name = "lite"

    def build(self, options: BuildOptions, store: Store, events: EventSink,
              cancel: CancelToken | None = None) -> ClusterImage:
        found = unchanged.inputs_of(options, store, self.name)
        if found is not None and not options.no_cache and (image := unchanged.answer_options(found, store, events)):
            return image
        from kubenb.builders.lite import LiteBuilder  # noqa: PLC0415

        return LiteBuilder().build(options, store, events, cancel, found=found)


BUILDERS: dict[str, Builder] = {
    "lite": _Lite(),
    "container": container_builder(),
    "cloud": cloud_builder(),
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
