"""The ``kubenb`` command line: a thin argparse front end over the engine.

Each subcommand is one function (``commands``) that turns parsed options into one engine call
and renders its result. The parser is built by ``build_parser`` (``parser``) so the ``%kubenb``
magic can share it; ``engine_calls`` turns parsed options into what the engine takes, and
``interrupt`` runs the long commands so Ctrl-C stops them where they are. Errors the user can
fix are printed as one line on stderr with exit status 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import typing as _typing
from collections.abc import Sequence

from kubenb.cli.parser import add_build_options, build_parser
from kubenb.errors import Cancelled, KubenbError
from kubenb.lazy import lazy_attributes as _lazy_attributes

if _typing.TYPE_CHECKING:  # the names for type checkers; at run time __getattr__ imports each on first use
    from kubenb.cli.engine_calls import build_options, engine_for, list_images_of
    from kubenb.cli.interrupt import run_command, run_until_interrupted

__all__ = ["add_build_options", "build_options", "build_parser", "engine_for", "list_images_of", "main",
           "run_command", "run_until_interrupted"]

#: Imported on first use (PEP 562): ``kubenb --version`` and ``--help`` end inside the parser and
#: need neither (the events and their dataclasses come with them; bench/startup.py).
_LAZY = {
    **dict.fromkeys(("build_options", "engine_for", "list_images_of"), "kubenb.cli.engine_calls"),
    **dict.fromkeys(("run_command", "run_until_interrupted"), "kubenb.cli.interrupt"),
}


__getattr__ = _lazy_attributes(__name__, _LAZY)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the return value is the process exit status."""
    options = build_parser().parse_args(argv)
    try:
        if options.command == "build":  # an unchanged one is answered before the commands load
            from kubenb.cli.unchanged import answered_build  # noqa: PLC0415

            if answered_build(options):
                return 0
        from kubenb.cli.interrupt import run_command  # noqa: PLC0415  (not needed by --version and --help)

        return run_command(options)
    except Cancelled as error:
        print(f"kubenb: {error}", file=sys.stderr)
        return 130
    except KubenbError as error:
        if getattr(options, "debug", False):
            import traceback  # noqa: PLC0415  (30 modules: only --debug needs it)

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
