"""The ``kubenb`` command line: a thin argparse front end over the engine.

Each subcommand is one function that turns parsed options into one engine call and renders
its result. The parser is built by ``build_parser`` so the ``%kubenb`` magic can share it.
Errors the user can fix are printed as one line on stderr with exit status 1; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn, TextIO, TypeVar

from kubenb.display import EventPrinter, human_size, image_list_csv, image_list_plain, image_list_table, locations_text
from kubenb.engine import (
    BuildOptions,
    Engine,
    expand_kubefile,
    mirror_host,
    parse_kubefile,
    parse_platform,
    undeclared_arguments,
    why,
)
from kubenb.errors import Cancelled, InvalidReferenceError, KubenbError
from kubenb.events import CancelToken, EventSink, ignore
from kubenb.model import ImageList, Kubefile

__all__ = ["add_build_options", "build_options", "build_parser", "engine_for", "list_images_of", "main",
           "run_command", "run_until_interrupted"]

Command = Callable[[argparse.Namespace], int]
_T = TypeVar("_T")

#: The commands that take long (downloads, uploads, build steps) and stop where they are on
#: Ctrl-C: they run in a worker thread with a cancel token the main thread sets.
#: What an interrupted one leaves, said in its one line.
CANCELLABLE = {
    "build": "nothing was named; the store is as it was",
    "pull": "nothing was named; the store is as it was",
    "save-images": "nothing half-written was kept; run it again to fetch only what is missing",
    "push": "no tag was written at the destination; run it again to go on",
}


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
    try:
        return mirror_host(source), mirror_host(target)
    except KubenbError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
    parser.add_argument("--version", action="version", version=f"kubenb {version('kubenb')}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _add_parse(commands, common)
    _add_list_images(commands, common)
    _add_save_images(commands, common)
    _add_login(commands, common)
    _add_build(commands, common)
    _add_store_commands(commands, common)
    _add_push_pull(commands, common)
    _add_check(commands, common)
    return parser


def _add_parse(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    sub = commands.add_parser("parse", parents=[common], help="check a Kubefile and print its instructions")
    sub.add_argument("-f", "--file", default="Kubefile", help="the Kubefile ('-' reads standard input)")
    sub.add_argument("-o", "--output", choices=("text", "json"), default="text")
    sub.add_argument("--build-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE")
    sub.set_defaults(run=_run_parse)


def _chart_option(separator: str) -> Callable[[str], tuple[str, str]]:
    """``CHART=FILE`` (``--values``) or ``CHART:key=value`` (``--set``)."""

    def parse_option(text: str) -> tuple[str, str]:
        chart, found, rest = text.partition(separator)
        if not found or not chart or not rest:
            example = "CHART=FILE" if separator == "=" else "CHART:key=value"
            raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}")
        return chart, rest

    return parse_option


def _add_list_images(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    sub = commands.add_parser("list-images", parents=[common],
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
    sub.set_defaults(run=_run_list_images)


def _grouped(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def list_images_of(options: argparse.Namespace) -> ImageList:
    """The image list parsed ``list-images`` options ask for (the CLI prints it, the magic returns it)."""
    return engine_for(options).list_images(
        options.context, kubefile=options.file, values=_grouped(options.values), set=_grouped(options.set),
        kube_version=options.kube_version, build_args=dict(options.build_arg), helm_backend=options.helm_backend,
    )


def _run_list_images(options: argparse.Namespace) -> int:
    images = list_images_of(options)
    for warning in images.warnings:
        print(f"kubenb: warning: {warning}", file=sys.stderr)
    for invalid in images.invalid:
        print(f"kubenb: warning: {invalid.location}: invalid image reference {invalid.written!r}: "
              f"{invalid.reason}", file=sys.stderr)
    if options.why:
        return _print_why(images, options.why)
    print(_RENDERERS[options.output](images), end="")
    return 0


def _print_why(images: ImageList, image: str) -> int:
    locations = why(images, image)
    if not locations:
        raise KubenbError(f"{image} is not in the image list", hint="run kubenb list-images to see the list")
    print(locations_text(locations), end="")
    return 0


_RENDERERS: dict[str, Callable[[ImageList], str]] = {
    "table": image_list_table,
    "json": lambda images: json.dumps(images.to_dict(), indent=2) + "\n",
    "csv": image_list_csv,
    "plain": image_list_plain,
}


SKIP_MISSING_HELP = "warn about images lacking a --platform (listing them) instead of failing"


def _add_registry_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--registry-mirror", action="append", type=_mirror, default=[], metavar="SRC=DST",
                     help="pull the images of registry SRC from DST, keeping their names")
    sub.add_argument("--insecure-registry", action="append", default=[], metavar="HOST",
                     help="allow plain HTTP, or TLS without verification, to HOST (loopback: HTTP always may)")
    sub.add_argument("--registry-ca", action="append", type=Path, default=[], metavar="FILE",
                     help="trust the CA certificates of this PEM file too (besides the system's)")


def _add_save_images(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    sub = commands.add_parser("save-images", parents=[common], help="pull images into a registry folder")
    sub.add_argument("images", nargs="*", metavar="IMAGE")
    sub.add_argument("-o", "--output", required=True, metavar="DIR", help="the registry folder")
    sub.add_argument("-f", "--file", metavar="LIST", help="an imageList file: one image per line")
    sub.add_argument("--platform", type=_platform_list, metavar="P[,P]",
                     help="only these platforms of multi-arch images (os/arch[/variant])")
    sub.add_argument("--skip-missing-platform", action="store_true", help=SKIP_MISSING_HELP)
    _add_registry_options(sub)
    sub.set_defaults(run=_run_save_images)


def _run_save_images(options: argparse.Namespace) -> int:
    with EventPrinter(sys.stderr) as printer:
        result = engine_for(options, printer).save_images(
            options.output, options.images, list_file=options.file, platforms=options.platform,
            skip_missing_platform=options.skip_missing_platform,
        )
    skipped = sum(image.skipped for image in result.images)
    left_out = sum(image.left_out for image in result.images)
    print(f"saved {len(result.images) - left_out} images into {options.output} "
          f"({human_size(result.fetched_bytes)} fetched, {skipped} already complete"
          + (f", {left_out} left out: no requested platform)" if left_out else ")"))
    return 0


def _add_login(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    login = commands.add_parser("login", parents=[common], help="check and save credentials for a registry")
    login.add_argument("registry", metavar="REGISTRY")
    login.add_argument("-u", "--username", required=True)
    secret = login.add_mutually_exclusive_group()
    secret.add_argument("-p", "--password", help="visible to other users in the process list: prefer --password-stdin")
    secret.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.add_argument("--insecure-registry", action="store_true",
                       help="allow plain HTTP, or TLS without verification, to REGISTRY")
    login.add_argument("--registry-ca", action="append", type=Path, default=[], metavar="FILE",
                       help="trust the CA certificates of this PEM file too (besides the system's)")
    login.set_defaults(run=_run_login)
    logout = commands.add_parser("logout", parents=[common], help="forget the credentials of a registry")
    logout.add_argument("registry", metavar="REGISTRY")
    logout.set_defaults(run=_run_logout)


def _run_login(options: argparse.Namespace) -> int:
    if options.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif options.password is not None:
        password = options.password
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {options.username} at {options.registry}: ")
    else:
        raise KubenbError("no password given", hint="use --password-stdin and pipe the password in")
    insecure = [options.registry] if options.insecure_registry else []
    path = Engine(insecure=insecure, ca_files=options.registry_ca).login(options.registry, options.username, password)
    print(f"Login succeeded: credentials for {options.registry} saved in {path}")
    return 0


def _run_logout(options: argparse.Namespace) -> int:
    if Engine().logout(options.registry):
        print(f"Removed the credentials for {options.registry}")
        return 0
    raise KubenbError(f"no credentials saved for {options.registry}")


def engine_for(options: argparse.Namespace, events: EventSink = ignore) -> Engine:
    """The engine parsed options ask for: ``--root``, the registry options a command has, and
    the cancel token ``main`` set for a command that Ctrl-C stops."""
    return Engine(
        getattr(options, "root", None), mirrors=dict(getattr(options, "registry_mirror", [])),
        insecure=getattr(options, "insecure_registry", None) or [], ca_files=getattr(options, "registry_ca", []),
        events=events, cancel_token=getattr(options, "cancel_token", None),
    )


def _add_build(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    sub = commands.add_parser("build", parents=[common], help="build a cluster image from a Kubefile")
    sub.add_argument("context", nargs="?", default=".", metavar="CONTEXT")
    sub.add_argument("-f", "--file", default=None, help="the Kubefile (default: CONTEXT/Kubefile)")
    add_build_options(sub, tag_required=True)
    sub.set_defaults(run=_run_build)


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


def build_options(options: argparse.Namespace, *, context: Path, kubefile: Path, tag: str) -> BuildOptions:
    """The BuildOptions that parsed :func:`add_build_options` ask for."""
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
    )


def _run_build(options: argparse.Namespace) -> int:
    context = Path(options.context)
    kubefile = Path(options.file) if options.file else context / "Kubefile"
    requested = build_options(options, context=context, kubefile=kubefile, tag=options.tag)
    with EventPrinter(sys.stderr) as printer:
        image = engine_for(options, printer).build(requested, builder=options.builder)
    print(f"built {image.name} ({image.short_id}, {human_size(image.size)})")
    return 0


def _add_store_commands(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    images = commands.add_parser("images", parents=[common], help="list the cluster images in the store")
    images.add_argument("-o", "--output", choices=("table", "json"), default="table")
    images.set_defaults(run=_run_images)
    inspect = commands.add_parser("inspect", parents=[common], help="show a cluster image as JSON")
    inspect.add_argument("name", metavar="NAME")
    inspect.set_defaults(run=lambda o: _print_json(engine_for(o).inspect(o.name)))
    tag = commands.add_parser("tag", parents=[common], help="give an image another name")
    tag.add_argument("source", metavar="SRC")
    tag.add_argument("target", metavar="DST")
    tag.set_defaults(run=lambda o: _done(f"tagged {engine_for(o).tag(o.source, o.target).name}"))
    rmi = commands.add_parser("rmi", parents=[common], help="remove an image name (and unused blobs)")
    rmi.add_argument("name", metavar="NAME")
    rmi.set_defaults(run=_run_rmi)
    save = commands.add_parser("save", parents=[common], help="write an image to an OCI archive")
    save.add_argument("name", metavar="NAME")
    save.add_argument("-o", "--output", required=True, metavar="FILE")
    save.set_defaults(run=_run_save)
    load = commands.add_parser("load", parents=[common], help="read images from an OCI archive")
    load.add_argument("-i", "--input", required=True, metavar="FILE")
    load.set_defaults(run=lambda o: _done("loaded " + ", ".join(i.name for i in engine_for(o).load(o.input))))
    export = commands.add_parser("export", parents=[common], help="write an image's merged rootfs to a folder")
    export.add_argument("name", metavar="NAME")
    export.add_argument("-o", "--output", required=True, metavar="DIR")
    export.set_defaults(run=_run_export)


def _add_push_pull(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    push = commands.add_parser("push", parents=[common], help="push a cluster image to an OCI registry")
    push.add_argument("name", metavar="NAME")
    push.add_argument("destination", nargs="?", default=None, metavar="DEST",
                      help="REGISTRY/REPOSITORY:TAG to push to (default: NAME)")
    _add_registry_options(push)
    push.set_defaults(run=_run_push)
    pull = commands.add_parser("pull", parents=[common], help="pull a cluster image from an OCI registry")
    pull.add_argument("reference", metavar="REF")
    pull.add_argument("--platform", type=_platform, metavar="P",
                      help="the child of a multi-platform index to pull (default: this host's)")
    _add_registry_options(pull)
    pull.set_defaults(run=_run_pull)


def _run_push(options: argparse.Namespace) -> int:
    destination = options.destination or options.name
    with EventPrinter(sys.stderr) as printer:
        digest = engine_for(options, printer).push(options.name, destination)
    return _done(f"pushed {options.name} to {destination} ({digest})")


def _run_pull(options: argparse.Namespace) -> int:
    with EventPrinter(sys.stderr) as printer:
        image = engine_for(options, printer).pull(options.reference, platform=options.platform)
    return _done(f"pulled {image.name} ({image.short_id})")


def _add_check(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    sub = commands.add_parser("check", parents=[common],
                              help="verify the store (and a registry folder): every blob hashed, every reference")
    sub.add_argument("--registry-folder", metavar="DIR", help="also verify this registry folder")
    sub.set_defaults(run=_run_check)


def _run_check(options: argparse.Namespace) -> int:
    result = engine_for(options).check(options.registry_folder)
    for problem in result.problems:
        print(f"kubenb: {problem}", file=sys.stderr)
    if not result.ok:
        print(f"kubenb: {len(result.problems)} problem(s) found ({result.summary()})", file=sys.stderr)
        return 1
    return _done(f"OK: {result.summary()}")


def _platform(text: str) -> str:
    try:
        return parse_platform(text)
    except InvalidReferenceError as error:
        raise argparse.ArgumentTypeError(f"{error.message}; {error.hint}") from None


def _platform_list(text: str) -> list[str]:
    return [_platform(part) for part in text.split(",")]


def _run_images(options: argparse.Namespace) -> int:
    images = engine_for(options).images()
    if options.output == "json":
        return _print_json([image.to_dict() for image in images])
    rows = [("NAME", "ID", "CREATED", "SIZE")] + [
        (i.name, i.short_id, i.created, human_size(i.size)) for i in images
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    return 0


def _print_json(value: object) -> int:
    print(json.dumps(value, indent=2))
    return 0


def _done(message: str) -> int:
    print(message)
    return 0


def _run_rmi(options: argparse.Namespace) -> int:
    engine_for(options).rmi(options.name)
    return _done(f"removed {options.name}")


def _run_save(options: argparse.Namespace) -> int:
    engine_for(options).save(options.name, options.output)
    return _done(f"saved {options.name} to {options.output}")


def _run_export(options: argparse.Namespace) -> int:
    engine_for(options).export(options.name, options.output)
    return _done(f"exported {options.name} to {options.output}")


def _read_kubefile(path: str, stdin: TextIO) -> Kubefile:
    if path == "-":
        return parse_kubefile("<stdin>", text=stdin.read())
    return parse_kubefile(path)


def _run_parse(options: argparse.Namespace) -> int:
    kubefile = _read_kubefile(options.file, sys.stdin)
    build_args = dict(options.build_arg)
    unknown = undeclared_arguments(kubefile, build_args)
    if unknown:
        print(f"kubenb: warning: {kubefile.path}: --build-arg {', '.join(unknown)} "
              "is not declared by any ARG and has no effect", file=sys.stderr)
    expanded = expand_kubefile(kubefile, build_args)
    if options.output == "json":
        print(json.dumps([i.to_dict() for i in expanded.instructions], indent=2))
    else:
        for instruction in expanded.instructions:
            print(f"{instruction.line:>4}  {instruction.to_text()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the return value is the process exit status."""
    options = build_parser().parse_args(argv)
    try:
        return run_command(options)
    except Cancelled as error:
        print(f"kubenb: {error}", file=sys.stderr)
        return 130
    except KubenbError as error:
        if getattr(options, "debug", False):
            traceback.print_exc()
        print(f"kubenb: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kubenb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kubenb images | head`: the reader has what it wanted
        # stdout is gone: point it at /dev/null so the interpreter's final flush raises nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it


def run_command(options: argparse.Namespace) -> int:
    """Run parsed options (the CLI's and ``%kubenb``'s); Ctrl-C stops a long command where it is."""
    run: Command = options.run
    return run_until_interrupted(options, run) if options.command in CANCELLABLE else run(options)


def run_until_interrupted(options: argparse.Namespace, work: Callable[[argparse.Namespace], _T]) -> _T:
    """Run ``work(options)`` in a worker thread while this one waits; Ctrl-C (KeyboardInterrupt,
    which only the main thread receives) sets the command's cancel token, so in-flight downloads
    are cut at once and the work undoes itself, and then raises ``Cancelled``. ``%kubenb`` runs
    the commands whose value it returns through here too.

    Without this, the interrupt lands in the main thread while the download pool's workers go
    on: every download in flight finished before the command could stop. The wait is on an
    event, not ``Thread.join``: a join broken by KeyboardInterrupt can mark the thread ended
    while it still runs. A second Ctrl-C while the work undoes itself stops the waiting.
    """
    token = options.cancel_token = CancelToken()
    done = threading.Event()
    outcome: list[_T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(work(options))
        except BaseException as error:  # handed to the main thread, which raises it
            outcome.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name=f"kubenb {options.command}", daemon=True).start()
    try:
        while not done.wait(0.1):  # short waits: a simulated Ctrl-C (interrupt_main) is seen between them
            pass
    except KeyboardInterrupt:
        token.cancel()
        done.wait()  # quick: the cancel shut the sockets down and killed any RUN
        if isinstance(outcome[0], BaseException):  # ended by the cancel (or failed meanwhile): nothing named
            hint = CANCELLABLE.get(options.command, "nothing was named; the store is as it was")
            raise Cancelled(f"{options.command} interrupted", hint=hint) from None
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]
