"""The ``kubenb`` command line: a thin argparse front end over the engine.

Each subcommand is one function that turns parsed options into one engine call and renders
its result. The parser is built by ``build_parser`` so the ``%kubenb`` magic can share it.
Errors the user can fix are printed as one line on stderr with exit status 1; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import NoReturn, TextIO

from kubenb.errors import KubenbError
from kubenb.kubefile import declared_arguments, expand, parse, read_text
from kubenb.model import Kubefile

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, like every other kubenb error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _key_value(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _common_options() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = _Parser(prog="kubenb", parents=[common],
                     description="Build offline Kubernetes cluster images from a Kubefile.")
    parser.add_argument("--version", action="version", version=f"kubenb {version('kubenb')}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _add_parse(commands, common)
    return parser


def _add_parse(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    sub = commands.add_parser("parse", parents=[common], help="check a Kubefile and print its instructions")
    sub.add_argument("-f", "--file", default="Kubefile", help="the Kubefile ('-' reads standard input)")
    sub.add_argument("-o", "--output", choices=("text", "json"), default="text")
    sub.add_argument("--build-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE")
    sub.set_defaults(run=_run_parse)


def _read_kubefile(path: str, stdin: TextIO) -> Kubefile:
    if path == "-":
        return parse(stdin.read(), path="<stdin>")
    return parse(read_text(path), path=path)


def _run_parse(options: argparse.Namespace) -> int:
    kubefile = _read_kubefile(options.file, sys.stdin)
    build_args = dict(options.build_arg)
    unknown = sorted(set(build_args) - declared_arguments(kubefile))
    if unknown:
        print(f"kubenb: warning: {kubefile.path}: --build-arg {', '.join(unknown)} "
              "is not declared by any ARG and has no effect", file=sys.stderr)
    expanded = expand(kubefile, build_args)
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
        status: int = options.run(options)
        return status
    except KubenbError as error:
        if getattr(options, "debug", False):
            traceback.print_exc()
        print(f"kubenb: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kubenb: interrupted", file=sys.stderr)
        return 130
