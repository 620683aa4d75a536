"""Builders: one interface, three ways to turn a Kubefile into a cluster image.

``build`` picks one by name (``kubenb/builders/dispatch.py``); ``lite`` starts no cluster (the
heart of kubenb), ``container`` and ``cloud`` run RUN and CMD on a cluster node. The names are imported
on first use (PEP 562): an unchanged rebuild, answered by ``kubenb/builders/record.py`` from
the command line, loads none of the builders.
"""

from __future__ import annotations

import typing as _typing

from kubenb.lazy import lazy_attributes as _lazy_attributes

if _typing.TYPE_CHECKING:
    from kubenb.builders.dispatch import BUILDERS, Builder, build
    from kubenb.builders.options import BuildOptions
    from kubenb.builders.steps import CLUSTER_COMMANDS, needs_cluster

__all__ = ["BUILDERS", "CLUSTER_COMMANDS", "BuildOptions", "Builder", "build", "needs_cluster"]

_LAZY = {
    **dict.fromkeys(("BUILDERS", "Builder", "build"), "kubenb.builders.dispatch"),
    "BuildOptions": "kubenb.builders.options",
    **dict.fromkeys(("CLUSTER_COMMANDS", "needs_cluster"), "kubenb.builders.steps"),
}


__getattr__ = _lazy_attributes(__name__, _LAZY)
