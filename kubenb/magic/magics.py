"""``%%kubefile`` and ``%kubenb``: the magics themselves, their options and their settings.

They stay thin: a cell's options come from the CLI's own parser pieces, its preview is a
``Plan`` (``plan``), its build runs through ``build``, and what ``%kubenb`` returns is made in
``values``. ``{{name}}`` on the line or in the cell is filled from the notebook's variables.
"""

from __future__ import annotations

import argparse
import functools
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.display import display
from traitlets import Bool, Enum, Unicode

from kubenb.cli import add_build_options, build_options
from kubenb.engine import Engine
from kubenb.errors import KubenbError
from kubenb.magic.build import run_build
from kubenb.magic.plan import Plan
from kubenb.magic.values import asks_for_text, command_value, login, parse_cli, take_out

PROGRESS = ("auto", "widget", "text", "none")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_F = TypeVar("_F", bound=Callable[..., Any])


class _CellParser(argparse.ArgumentParser):
    """Option errors fail the cell with one line, as every kubenb error does."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise UsageError(message.strip())
        raise _HelpShown


class _HelpShown(Exception):
    """``--help`` printed the usage; the magic ends quietly."""


def _kubefile_parser() -> _CellParser:
    parser = _CellParser(prog="%%kubefile", add_help=True,
                         description="Write the cell's Kubefile into the context, preview its images, or build.")
    parser.add_argument("--out", metavar="VAR", help="store the plan (or the built image) in VAR instead of showing it")
    parser.add_argument("-o", "--output", default=None, help=argparse.SUPPRESS)  # the old form: a clear error
    parser.add_argument("--context", default=None, metavar="DIR", help="the build context (default: this folder)")
    parser.add_argument("-f", "--file", default="Kubefile", metavar="NAME", help="the Kubefile's name in the context")
    parser.add_argument("--build", action="store_true", help="build now instead of previewing")
    parser.add_argument("--progress", choices=PROGRESS, default=None)
    parser.add_argument("--background", action="store_true", help="build in a thread; the kernel stays free")
    parser.add_argument("--root", default=None, metavar="DIR", help="the image store")
    add_build_options(parser, tag_required=False)
    return parser


def _friendly(method: _F) -> _F:
    """kubenb errors become one-line cell failures unless the full traceback is asked for."""

    @functools.wraps(method)
    def wrapper(self: KubenbMagics, *args: Any) -> Any:
        try:
            return method(self, *args)
        except _HelpShown:
            return None
        except KubenbError as error:
            if self.full_traceback:
                raise
            raise UsageError(str(error)) from None

    return wrapper  # type: ignore[return-value]


@magics_class
class KubenbMagics(Magics):
    """``%%kubefile`` and ``%kubenb``; settings through ``%config KubenbMagics.<name> = ...``."""

    full_traceback = Bool(False, help="show the full traceback of kubenb errors").tag(config=True)
    root = Unicode("", help="the image store when --root is not given (else $KUBENB_ROOT)").tag(config=True)
    progress = Enum(PROGRESS, "auto", help="build progress when --progress is not given").tag(config=True)

    @no_var_expand
    @cell_magic
    @_friendly
    def kubefile(self, line: str, cell: str) -> Any:
        """Write the Kubefile of this cell into the context, then preview its images or build."""
        namespace = self.shell.user_ns if self.shell is not None else {}
        options = _kubefile_parser().parse_args(shlex.split(_fill(line, namespace, "the magic line")))
        if options.output is not None:
            raise UsageError(f"%%kubefile: -o {options.output}: -o is an output format or file, as on the CLI, "
                             f"and %%kubefile has none; keep the result in a variable with --out {options.output}")
        if not cell.strip():
            raise UsageError("%%kubefile: the cell has no Kubefile; write its instructions below the magic line")
        context = Path(options.context).expanduser() if options.context else Path.cwd()
        if not context.is_dir():
            raise UsageError(f"--context {context}: no such folder; create it or name another")
        path = context / options.file
        path.write_text(_fill(cell, namespace, str(path)), encoding="utf-8")
        engine = Engine(options.root or self.root or None)
        plan = engine.plan(context, kubefile=path, build_args=dict(options.build_arg))  # the one read of it
        root = engine.root
        progress = options.progress or self.progress
        tag = options.tag or f"{context.resolve().name or 'cluster'}:latest".lower()
        requested = replace(build_options(options, context=context, kubefile=path, tag=tag), plan=plan)
        if options.build or options.background:
            result = run_build(requested, root, options.builder, progress, options.background)
        else:
            result = Plan(kubefile=plan.require_kubefile(), options=requested, root=root, builder=options.builder,
                          progress=progress, image_list=engine.list_plan_images(
                              plan, values={c: list(f) for c, f in requested.values.items()},
                              set={c: list(e) for c, e in requested.set_values.items()},
                              kube_version=options.kube_version))
        if options.out:
            namespace[options.out] = result
            if options.background:
                display(result)  # type: ignore[no-untyped-call]  # a running build stays in sight
            return None
        return result

    @no_var_expand
    @line_magic
    @_friendly
    def kubenb(self, line: str) -> Any:
        """The CLI's commands with the CLI's own parser, returning data as ``%sql`` does:
        ``x = %kubenb images`` is a DataFrame (see :func:`~kubenb.magic.values.command_value`); ``-o``
        means what it means on the CLI, and with an output format the CLI's text is printed instead.
        ``--out VAR`` stores the value in VAR. A password never goes on the line."""
        namespace = self.shell.user_ns if self.shell is not None else {}
        argv, variable = take_out(shlex.split(_fill(line, namespace, "the magic line")))
        options = parse_cli(argv)
        if options is None:
            return None
        if "root" not in options and self.root:
            options.root = self.root
        if options.command == "login":
            return login(options)
        value = command_value(options, asks_for_text(options, argv), self.progress)
        if variable:
            namespace[variable] = value
            return None
        return value


def _fill(text: str, namespace: Mapping[str, Any], where: str) -> str:
    """``{{name}}`` from the notebook's variables; an unknown name fails with its line."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in namespace:
            line = text.count("\n", 0, match.start()) + 1
            raise UsageError(f"{where}:{line}: {{{{{name}}}}} names no variable of the notebook; "
                             f"define {name} in a cell above, then run this one again")
        return str(namespace[name])

    return _PLACEHOLDER.sub(value, text)
