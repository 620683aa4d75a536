"""What ``%kubenb`` returns: the CLI's commands run with the CLI's own parser, as data.

``x = %kubenb images`` is a DataFrame, ``%kubenb inspect NAME`` a JSON view, ``%kubenb build``
the ClusterImage; a command that only reports, or one given an output format, prints the CLI's
text instead. ``login`` never takes a password on the line.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from IPython.core.error import UsageError

from kubenb.cli import build_options, build_parser, engine_for, list_images_of, run_command, run_until_interrupted
from kubenb.display import EventPrinter, JsonView, cluster_images_dataframe
from kubenb.engine import Engine, expand_kubefile, parse_kubefile
from kubenb.magic.build import run_build
from kubenb.model import ROW_KINDS, ClusterImage

_T = TypeVar("_T")

#: Commands whose ``-o`` is an output format: given, the magic prints the CLI's text.
_FORMATTED = ("images", "list-images", "parse")
#: Commands the engine's cancel token stops (``build`` stops through ``run_build``).
_CANCELLABLE_VALUES = ("save-images", "pull", "push")


def take_out(argv: list[str]) -> tuple[list[str], str | None]:
    """``--out VAR`` (or ``--out=VAR``) taken off the line: the CLI has no such option."""
    for index, arg in enumerate(argv):
        if arg.startswith("--out="):
            return [*argv[:index], *argv[index + 1:]], arg.removeprefix("--out=")
        if arg == "--out":
            if index + 1 == len(argv) or argv[index + 1].startswith("-"):
                raise UsageError("%kubenb: --out needs a variable name: --out VAR")
            return [*argv[:index], *argv[index + 2:]], argv[index + 1]
    return argv, None


def asks_for_text(options: argparse.Namespace, argv: list[str]) -> bool:
    """An output format named on the line (``-o json``), or ``--why``: the user asked for text."""
    named = any(arg in ("-o", "--output") or arg.startswith(("-o", "--output=")) for arg in argv[1:])
    return (named and options.command in _FORMATTED) or bool(getattr(options, "why", None))


def command_value(options: argparse.Namespace, text: bool, progress: str) -> Any:
    """Run the command; its value (data for code, with a rich display), or None once the CLI's
    own text is printed: for an asked-for format and for commands that only report."""
    make = None if text else _VALUES.get(options.command)
    if make is not None and options.command in _CANCELLABLE_VALUES:  # Ctrl-C stops them at once
        return run_until_interrupted(options, lambda parsed: make(parsed, progress))
    if make is not None:
        return make(options, progress)
    status = run_command(options)  # Ctrl-C stops save-images, pull, push at once
    if status:
        raise UsageError(f"kubenb {options.command} failed with status {status}")
    return None


def _list_images(options: argparse.Namespace, progress: str) -> Any:
    found = list_images_of(options)
    for warning in found.warnings:
        print(f"kubenb: warning: {warning}", file=sys.stderr)
    frame = found.to_dataframe(include=ROW_KINDS)
    frame.attrs["warnings"] = list(found.warnings)
    return frame


def _build(options: argparse.Namespace, progress: str) -> ClusterImage:
    context = Path(options.context)
    kubefile = Path(options.file) if options.file else context / "Kubefile"
    requested = build_options(options, context=context, kubefile=kubefile, tag=options.tag)
    image: ClusterImage = run_build(requested, getattr(options, "root", None), options.builder, progress, False)
    return image


def _with_progress(options: argparse.Namespace, call: Callable[[Engine], _T]) -> _T:
    """An engine call whose progress lines go to the cell's output."""
    with EventPrinter(sys.stdout) as printer:
        return call(engine_for(options, printer))


_VALUES: dict[str, Callable[[argparse.Namespace, str], Any]] = {
    "images": lambda o, _: cluster_images_dataframe(engine_for(o).images()),
    "list-images": _list_images,
    "inspect": lambda o, _: JsonView(engine_for(o).inspect(o.name), title=o.name),
    "parse": lambda o, _: expand_kubefile(parse_kubefile(o.file), dict(o.build_arg)),
    "build": _build,
    "tag": lambda o, _: engine_for(o).tag(o.source, o.target),
    "load": lambda o, _: engine_for(o).load(o.input),
    "check": lambda o, _: engine_for(o).check(o.registry_folder),
    "save-images": lambda o, _: _with_progress(o, lambda engine: engine.save_images(
        o.output, o.images, list_file=o.file, platforms=o.platform, skip_missing_platform=o.skip_missing_platform)),
    "pull": lambda o, _: _with_progress(o, lambda engine: engine.pull(o.reference, platform=o.platform)),
    "push": lambda o, _: _with_progress(o, lambda engine: engine.push(o.name, o.destination or o.name)),
}


def parse_cli(argv: list[str]) -> argparse.Namespace | None:
    """The CLI's parser, its errors (printed, then SystemExit) turned into a cell failure."""
    if argv[:1] == ["login"] and any(_names_password(arg) for arg in argv[1:]):
        raise UsageError("a password never goes on the magic line: %kubenb login REGISTRY [-u USER] asks for it")
    if argv[:1] == ["login"] and not any(arg in ("-u", "--username") or arg.startswith(("-u", "--username="))
                                         for arg in argv[1:]):
        argv = [*argv, "--username", "-"]  # the login form asks for the user
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return build_parser().parse_args(argv)
    except SystemExit as stop:
        if stop.code in (0, None):
            return None  # --help or --version printed
        raise UsageError(errors.getvalue().strip().replace("kubenb:", "%kubenb:", 1) or "bad arguments") from None


def _names_password(arg: str) -> bool:
    return arg in ("-p", "--password", "--password-stdin") or arg.startswith(("--password=", "-p"))


def login(options: argparse.Namespace) -> Any:
    """getpass when the user is named; the login form otherwise (in a kernel that draws it)."""
    if options.username != "-":
        password = getpass.getpass(f"Password for {options.username} at {options.registry}: ")
        insecure = [options.registry] if options.insecure_registry else []
        try:
            path = Engine(insecure=insecure, ca_files=options.registry_ca).login(
                options.registry, options.username, password)
        finally:
            del password
        print(f"Login succeeded: credentials for {options.registry} saved in {path}")
        return None
    from kubenb.widgets import LoginForm  # noqa: PLC0415

    return LoginForm(options.registry, insecure=options.insecure_registry, ca_files=options.registry_ca)
