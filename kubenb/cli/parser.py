"""The ``kubenb`` parser: every subcommand, its options and the types that read their values.

Built by ``build_parser`` so the ``%kubenb`` magic can share it; ``add_build_options`` is shared
by ``kubenb build`` and ``%%kubefile``. Each subcommand names its handler (``run=``) in
``kubenb.cli.commands``; option values are checked here, so a bad one is a usage error.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from kubenb import __version__  # the facade's constant: importlib.metadata would take 20 ms
from kubenb.errors import InvalidReferenceError, KubenbError

Command = Callable[[argparse.Namespace], int]

SKIP_MISSING_HELP = "warn about images lacking a --platform (listing them) instead of failing"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, like every other kubenb error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _key_value(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _mirror(text: str) -> tuple[str, str]:
    """``SRC=DST`` of --registry-mirror; DST holding ``user:password@`` is refused, never echoed."""
    source, equals, target = text.partition("=")
    if not equals or not source:
        raise argparse.ArgumentTypeError("expected SRC=DST" + ("" if "@" in text else f", got {text!r}"))
    from kubenb.engine import mirror_host  # noqa: PLC0415

    try:
        return mirror_host(source), mirror_host(target)
    except KubenbError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _chart_option(separator: str) -> Callable[[str], tuple[str, str]]:
    """``CHART=FILE`` (``--values``) or ``CHART:key=value`` (``--set``)."""

    def parse_option(text: str) -> tuple[str, str]:
        chart, found, rest = text.partition(separator)
        if not found or not chart or not rest:
            example = "CHART=FILE" if separator == "=" else "CHART:key=value"
            raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}")
        return chart, rest

    return parse_option


def _platform(text: str) -> str:
    from kubenb.engine import parse_platform  # noqa: PLC0415  (only when the option is given)

    try:
        return parse_platform(text)
    except InvalidReferenceError as error:
        raise argparse.ArgumentTypeError(f"{error.message}; {error.hint}") from None


def _platform_list(text: str) -> list[str]:
    return [_platform(part) for part in text.split(",")]


def _handler(name: str) -> Command:
    """The handler ``name`` of ``kubenb.cli.commands``, imported when the command runs: building the
    parser (which ``--version`` and ``--help`` do) must not load the engine (bench/startup.py)."""

    def run(options: argparse.Namespace) -> int:
        from kubenb.cli import commands  # noqa: PLC0415

        handler: Command = getattr(commands, name)
        return handler(options)

    run.__name__ = run.__qualname__ = name
    return run


def _common_options() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    common.add_argument("--root", default=argparse.SUPPRESS, metavar="DIR",
                        help="the image store (default: $KUBENB_ROOT or $XDG_DATA_HOME/kubenb)")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = _Parser(prog="kubenb", parents=[common],
                     description="Build offline Kubernetes cluster images from a Kubefile.")
    parser.add_argument("--version", action="version", version=f"kubenb {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subcommands.required = True
    _add_parse(subcommands, common)
    _add_list_images(subcommands, common)
    _add_save_images(subcommands, common)
    _add_login(subcommands, common)
    _add_build(subcommands, common)
    _add_store_commands(subcommands, common)
    _add_push_pull(subcommands, common)
    _add_check(subcommands, common)
    return parser


def _add_parse(subcommands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    sub = subcommands.add_parser("parse", parents=[common], help="check a Kubefile and print its instructions")
    sub.add_argument("-f", "--file", default="Kubefile", help="the Kubefile ('-' reads standard input)")
    sub.add_argument("-o", "--output", choices=("text", "json"), default="text")
    sub.add_argument("--build-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE")
    sub.set_defaults(run=_handler("run_parse"))


def _add_list_images(subcommands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    sub = subcommands.add_parser("list-images", parents=[common],
                                 help="list every image a lite build of CONTEXT would carry")
    sub.add_argument("context", nargs="?", default=".", metavar="CONTEXT")
    sub.add_argument("-f", "--file", default=None, help="the Kubefile (default: CONTEXT/Kubefile if present)")
    sub.add_argument("-o", "--output", choices=("table", "json", "csv", "plain"), default="table")
    sub.add_argument("--why", metavar="IMAGE", help="show every place IMAGE was found")
    sub.add_argument("--values", action="append", type=_chart_option("="), default=[], metavar="CHART=FILE")
    sub.add_argument("--set", action="append", type=_chart_option(":"), default=[], metavar="CHART:K=V")
    sub.add_argument("--kube-version", help="the Kubernetes version charts see (.Capabilities.KubeVersion)")
    sub.add_argument("--helm-backend", choices=("sdk", "cli"), default="sdk",
                     help="render charts with helm-python-sdk (default) or a helm binary on PATH")
    sub.add_argument("--build-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE")
    sub.set_defaults(run=_handler("run_list_images"))


def _add_registry_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--registry-mirror", action="append", type=_mirror, default=[], metavar="SRC=DST",
                     help="pull the images of registry SRC from DST, keeping their names")
    sub.add_argument("--insecure-registry", action="append", default=[], metavar="HOST",
                     help="allow plain HTTP, or TLS without verification, to HOST (loopback: HTTP always may)")
    sub.add_argument("--registry-ca", action="append", type=Path, default=[], metavar="FILE",
                     help="trust the CA certificates of this PEM file too (besides the system's)")


def _add_save_images(subcommands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    sub = subcommands.add_parser("save-images", parents=[common], help="pull images into a registry folder")
    sub.add_argument("images", nargs="*", metavar="IMAGE")
    sub.add_argument("-o", "--output", required=True, metavar="DIR", help="the registry folder")
    sub.add_argument("-f", "--file", metavar="LIST", help="an imageList file: one image per line")
    sub.add_argument("--platform", type=_platform_list, metavar="P[,P]",
                     help="only these platforms of multi-arch images (os/arch[/variant])")
    sub.add_argument("--skip-missing-platform", action="store_true", help=SKIP_MISSING_HELP)
    _add_registry_options(sub)
    sub.set_defaults(run=_handler("run_save_images"))


def _add_login(subcommands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    login = subcommands.add_parser("login", parents=[common], help="check and save credentials for a registry")
    login.add_argument("registry", metavar="REGISTRY")
    login.add_argument("-u", "--username", required=True)
    secret = login.add_mutually_exclusive_group()
    secret.add_argument("-p", "--password", help="visible to other users in the process list: prefer --password-stdin")
    secret.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.add_argument("--insecure-registry", action="store_true",
                       help="allow plain HTTP, or TLS without verification, to REGISTRY")
    login.add_argument("--registry-ca", action="append", type=Path, default=[], metavar="FILE",
                       help="trust the CA certificates of this PEM file too (besides the system's)")
    login.set_defaults(run=_handler("run_login"))
    logout = subcommands.add_parser("logout", parents=[common], help="forget the credentials of a registry")
    logout.add_argument("registry", metavar="REGISTRY")
    logout.set_defaults(run=_handler("run_logout"))


def _add_build(subcommands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    sub = subcommands.add_parser("build", parents=[common], help="build a cluster image from a Kubefile")
    sub.add_argument("context", nargs="?", default=".", metavar="CONTEXT")
    sub.add_argument("-f", "--file", default=None, help="the Kubefile (default: CONTEXT/Kubefile)")
    add_build_options(sub, tag_required=True)
    sub.set_defaults(run=_handler("run_build"))


def add_build_options(parser: argparse.ArgumentParser, *, tag_required: bool) -> None:
    """The options of a build, shared by ``kubenb build`` and the ``%%kubefile`` magic."""
    parser.add_argument("-t", "--tag", required=tag_required, metavar="NAME:TAG")
    parser.add_argument("-b", "--builder", choices=("lite", "container", "cloud"), default="lite")
    parser.add_argument("--platform", type=_platform_list, metavar="P[,P]",
                        help="the platforms of multi-arch images to cache (default: FROM --platform, else all)")
    parser.add_argument("--build-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE")
    parser.add_argument("--values", action="append", type=_chart_option("="), default=[], metavar="CHART=FILE")
    parser.add_argument("--set", action="append", type=_chart_option(":"), default=[], metavar="CHART:K=V")
    parser.add_argument("--kube-version")
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    parser.add_argument("--skip-invalid", action="store_true", help="leave invalid references out instead of failing")
    parser.add_argument("--skip-missing-platform", action="store_true", help=SKIP_MISSING_HELP)
    _add_registry_options(parser)
    _add_node_options(parser)
    _add_cloud_options(parser)


def _add_node_options(parser: argparse.ArgumentParser) -> None:
    """The options of the builds that run the Kubefile on a cluster node (docs/build.md)."""
    node = parser.add_argument_group("cluster builds (-b container, -b cloud)")
    node.add_argument("--node-image", metavar="NAME",
                      help="-b container: the node container's image (default: a pinned rancher/k3s release)")
    node.add_argument("--keep-node", action="store_true",
                      help="keep the node after the build, to look into it (the build says how to reach it)")
    node.add_argument("--wait-timeout", type=_seconds, default=600.0, metavar="SECONDS",
                      help="how long the node's cluster may take to become ready, and to settle after "
                           "the last RUN/CMD (default 600)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _add_cloud_options(parser: argparse.ArgumentParser) -> None:
    """Where ``-b cloud`` builds (docs/build.md, "The cloud build"): cloud credentials are never
    options, only the provider's environment variables."""
    cloud = parser.add_argument_group("-b cloud: an existing machine (--host) or one made for the build (--cloud)")
    cloud.add_argument("--host", metavar="ssh://USER@HOST[:PORT]", help="build on this machine, reached over SSH")
    cloud.add_argument("--cloud", metavar="PROVIDER",
                       help="make a machine for the build and delete it afterwards: aliyun_ecs, ec2, gce, azure_arm, "
                            "openstack (credentials from the provider's usual environment variables)")
    cloud.add_argument("--region", metavar="R", help="--cloud: the region (GCE: the zone)")
    cloud.add_argument("--size", metavar="S", help="--cloud: the machine size, as the provider names it")
    cloud.add_argument("--image", metavar="I", help="--cloud: the machine image, as the provider names it")
    cloud.add_argument("--cloud-arg", action="append", type=_cloud_argument, default=[], metavar="ex_NAME=VALUE",
                       help="--cloud: a provider's own create_node argument (e.g. ex_security_group_id=sg-1 for "
                            "aliyun_ecs, ex_resource_group=RG for azure_arm)")
    cloud.add_argument("--ssh-user", default="root", metavar="USER", help="--cloud: who logs in (default root)")
    cloud.add_argument("--ssh-port", type=int, default=22, metavar="PORT",
                       help="--cloud: the machine's SSH port (default 22)")
    cloud.add_argument("--ssh-key", type=Path, metavar="FILE", help="the private key to log in with")
    cloud.add_argument("--known-hosts", type=Path, metavar="FILE",
                       help="--host: the known_hosts file that lists its key (default ~/.ssh/known_hosts)")
    cloud.add_argument("--k3s-binary", type=Path, metavar="FILE",
                       help="install k3s from this binary where the machine has no kubectl (nothing is downloaded)")


def _cloud_argument(text: str) -> tuple[str, str]:
    """``ex_NAME=VALUE``: Libcloud names a provider's own arguments ``ex_``; no other is taken."""
    name, value = _key_value(text)
    if not name.startswith("ex_") or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected ex_NAME=VALUE (a provider's own argument), got {name!r}")
    return name, value


def _add_store_commands(subcommands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    images = subcommands.add_parser("images", parents=[common], help="list the cluster images in the store")
    images.add_argument("-o", "--output", choices=("table", "json"), default="table")
    images.set_defaults(run=_handler("run_images"))
    inspect = subcommands.add_parser("inspect", parents=[common], help="show a cluster image as JSON")
    inspect.add_argument("name", metavar="NAME")
    inspect.set_defaults(run=_handler("run_inspect"))
    tag = subcommands.add_parser("tag", parents=[common], help="give an image another name")
    tag.add_argument("source", metavar="SRC")
    tag.add_argument("target", metavar="DST")
    tag.set_defaults(run=_handler("run_tag"))
    rmi = subcommands.add_parser("rmi", parents=[common], help="remove an image name (and unused blobs)")
    rmi.add_argument("name", metavar="NAME")
    rmi.set_defaults(run=_handler("run_rmi"))
    save = subcommands.add_parser("save", parents=[common], help="write an image to an OCI archive")
    save.add_argument("name", metavar="NAME")
    save.add_argument("-o", "--output", required=True, metavar="FILE")
    save.set_defaults(run=_handler("run_save"))
    load = subcommands.add_parser("load", parents=[common], help="read images from an OCI archive")
    load.add_argument("-i", "--input", required=True, metavar="FILE")
    load.set_defaults(run=_handler("run_load"))
    export = subcommands.add_parser("export", parents=[common], help="write an image's merged rootfs to a folder")
    export.add_argument("name", metavar="NAME")
    export.add_argument("-o", "--output", required=True, metavar="DIR")
    export.set_defaults(run=_handler("run_export"))


def _add_push_pull(subcommands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    push = subcommands.add_parser("push", parents=[common], help="push a cluster image to an OCI registry")
    push.add_argument("name", metavar="NAME")
    push.add_argument("destination", nargs="?", default=None, metavar="DEST",
                      help="REGISTRY/REPOSITORY:TAG to push to (default: NAME)")
    _add_registry_options(push)
    push.set_defaults(run=_handler("run_push"))
    pull = subcommands.add_parser("pull", parents=[common], help="pull a cluster image from an OCI registry")
    pull.add_argument("reference", metavar="REF")
    pull.add_argument("--platform", type=_platform, metavar="P",
                      help="the child of a multi-platform index to pull (default: this host's)")
    _add_registry_options(pull)
    pull.set_defaults(run=_handler("run_pull"))


def _add_check(subcommands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    sub = subcommands.add_parser("check", parents=[common],
                                 help="verify the store (and a registry folder): every blob hashed, every reference")
    sub.add_argument("--registry-folder", metavar="DIR", help="also verify this registry folder")
    sub.set_defaults(run=_handler("run_check"))
