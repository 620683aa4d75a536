"""``-b cloud``: the cluster build (builders/cluster.py) on a machine reached over SSH.

The node is an existing machine (``--host ssh://user@host[:port]``, builders/ssh_host.py) or one
provisioned for the build through Libcloud (``--cloud PROVIDER``, builders/cloud.py). Which one
is decided here from the options, before any work; paramiko and Libcloud are imported only then,
so a lite build never loads them.
"""

from __future__ import annotations

from kubenb.builders.cluster import ClusterBuilder
from kubenb.builders.node import NodeLauncher
from kubenb.builders.options import BuildOptions
from kubenb.errors import BuildError

__all__ = ["cloud_builder", "cloud_launcher"]


def cloud_builder() -> ClusterBuilder:
    return ClusterBuilder("cloud", cloud_launcher)


def cloud_launcher(options: BuildOptions) -> NodeLauncher:
    """The launcher ``options.cloud`` asks for; a missing or contradictory choice is an error now."""
    cloud = options.cloud
    if cloud.host and cloud.provider:
        raise BuildError("-b cloud takes --host or --cloud, not both",
                         hint="--host builds on an existing machine, --cloud on one made for the build")
    if cloud.host:
        from kubenb.builders.ssh_connect import parse_ssh_url  # noqa: PLC0415  (paramiko: only for cloud builds)
        from kubenb.builders.ssh_host import SshHostLauncher  # noqa: PLC0415

        return SshHostLauncher(parse_ssh_url(cloud.host), key_file=cloud.ssh_key, known_hosts=cloud.known_hosts,
                               k3s_binary=cloud.k3s_binary)
    if cloud.provider:
        missing = [flag for flag, value in (("--size", cloud.size), ("--image", cloud.image)) if not value]
        if missing:
            raise BuildError(f"--cloud {cloud.provider} needs {' and '.join(missing)}",
                             hint="name the machine's size and image as the provider lists them")
        from kubenb.builders.cloud import CloudLauncher  # noqa: PLC0415  (Libcloud: only for --cloud)

        assert cloud.size is not None and cloud.image is not None
        return CloudLauncher(cloud.provider, size=cloud.size, image=cloud.image, region=cloud.region, user=cloud.user,
                             key_file=cloud.ssh_key, k3s_binary=cloud.k3s_binary, ssh_port=cloud.ssh_port,
                             create_arguments=cloud.create_arguments)
    raise BuildError("-b cloud needs a machine: --host ssh://user@host[:port], or --cloud PROVIDER with "
                     "--region, --size and --image", hint="or build with -b lite or -b container")
