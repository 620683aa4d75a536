"""Parsed options turned into what the engine takes: its settings, a build's options, a listing.

Shared by the subcommands and the ``%kubenb``/``%%kubefile`` magics, which parse with the same
parser pieces and must ask the engine the same things.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kubenb.errors import UnsupportedError
from kubenb.events import EventSink, ignore

if TYPE_CHECKING:
    from kubenb.engine import BuildOptions, CloudOptions, Engine
    from kubenb.model import ImageList


def _grouped(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def engine_for(options: argparse.Namespace, events: EventSink = ignore) -> Engine:
    """The engine parsed options ask for: ``--root``, the registry options a command has, and
    the cancel token ``main`` set for a command that Ctrl-C stops."""
    from kubenb.engine import Engine  # noqa: PLC0415  (imported when a command runs, not by --help)

    return Engine(
        getattr(options, "root", None), mirrors=dict(getattr(options, "registry_mirror", [])),
        insecure=getattr(options, "insecure_registry", None) or [], ca_files=getattr(options, "registry_ca", []),
        events=events, cancel_token=getattr(options, "cancel_token", None),
    )


def list_images_of(options: argparse.Namespace) -> ImageList:
    """The image list parsed ``list-images`` options ask for (the CLI prints it, the magic returns it)."""
    return engine_for(options).list_images(
        options.context, kubefile=options.file, values=_grouped(options.values), set=_grouped(options.set),
        kube_version=options.kube_version, build_args=dict(options.build_arg), helm_backend=options.helm_backend,
    )


def build_options(options: argparse.Namespace, *, context: Path, kubefile: Path, tag: str) -> BuildOptions:
    """The BuildOptions that parsed :func:`~kubenb.cli.parser.add_build_options` ask for."""
    from kubenb.engine import BuildOptions  # noqa: PLC0415  (it loads the builders)

    return BuildOptions(
        tag=tag, context=context, kubefile=kubefile,
        build_args=dict(options.build_arg),
        values={chart: tuple(Path(f) for f in files) for chart, files in _grouped(options.values).items()},
        set_values={chart: tuple(exprs) for chart, exprs in _grouped(options.set).items()},
        kube_version=options.kube_version,
        platforms=options.platform,
        mirrors=dict(options.registry_mirror), insecure=options.insecure_registry,
        ca_files=tuple(options.registry_ca),
        no_cache=options.no_cache, skip_invalid=options.skip_invalid,
        skip_missing_platform=options.skip_missing_platform,
        node_image=options.node_image, keep_node=options.keep_node, wait_timeout=options.wait_timeout,
        cloud=_cloud_options(options),
    )


#: The options only ``-b cloud`` reads (parser._add_cloud_options): given to another builder, they
#: would be ignored without a word, and a build meant for a machine would run here instead.
_CLOUD_FLAGS = {"host": "--host", "cloud": "--cloud", "region": "--region", "size": "--size", "image": "--image",
                "ssh_key": "--ssh-key", "known_hosts": "--known-hosts", "k3s_binary": "--k3s-binary",
                "cloud_arg": "--cloud-arg"}


def _cloud_options(options: argparse.Namespace) -> CloudOptions:
    from kubenb.engine import CloudOptions  # noqa: PLC0415

    given = [flag for name, flag in _CLOUD_FLAGS.items() if getattr(options, name, None) not in (None, [])]
    if given and options.builder != "cloud":
        raise UnsupportedError(f"{', '.join(given)} {'is an option' if len(given) == 1 else 'are options'} of "
                               f"-b cloud, not -b {options.builder}", hint="add -b cloud, or leave them out")
    return CloudOptions(host=options.host, provider=options.cloud, region=options.region, size=options.size,
                        image=options.image, user=options.ssh_user, ssh_key=options.ssh_key,
                        known_hosts=options.known_hosts, k3s_binary=options.k3s_binary, ssh_port=options.ssh_port,
                        create_arguments=tuple(options.cloud_arg))
