"""The notebook front end: ``%%kubefile`` and ``%kubenb``, registered by ``%load_ext kubenb``.

A cell is the fastest loop there is: write a Kubefile, see at once which images the build
would carry and where each was found, untick what should stay out, build. The default is
therefore a preview whose only side effect is writing the Kubefile into the context (so the
CLI, the build and a colleague see the same file); ``--build`` builds at once.

The magics stay thin: options come from the CLI's own parser pieces, discovery and builds
from the engine, tables from ``display``, widgets from ``widgets``. A kubenb error fails the
cell with its one line (file:line: what; what to do), never a traceback, unless
``%config KubenbMagics.full_traceback = True``.

``magics`` holds the two magics, ``plan`` the cell's preview, ``build`` a build run from a cell
(Ctrl-C cancels it), ``values`` what ``%kubenb`` returns; this module registers them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kubenb.display import (
    cluster_image_html,
    cluster_image_text,
    image_list_html,
    image_list_table,
    kubefile_html,
    kubefile_text,
)
from kubenb.magic.magics import KubenbMagics
from kubenb.magic.plan import Plan
from kubenb.model import ClusterImage, ImageList, Kubefile

__all__ = ["KubenbMagics", "Plan", "load_ipython_extension"]

_MAGIC_LINE = re.compile(r"%%kubefile(?:[ \t]|$)")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext kubenb``: the magics, and HTML/text reprs for kubenb's results."""
    ipython.register_magics(KubenbMagics)
    cleanup = ipython.input_transformers_cleanup
    if _body_for_help not in cleanup:
        cleanup.append(_body_for_help)
    formatters = ipython.display_formatter.formatters
    renderings: list[tuple[type, Callable[[Any], str], Callable[[Any], str]]] = [
        (ImageList, image_list_html, image_list_table),
        (Kubefile, kubefile_html, kubefile_text),
        (ClusterImage, cluster_image_html, cluster_image_text),
    ]
    for kind, as_html, as_text in renderings:
        formatters["text/html"].for_type(kind, as_html)
        formatters["text/plain"].for_type(kind, _pretty(as_text))


def _body_for_help(lines: list[str]) -> list[str]:
    """Give an empty ``%%kubefile`` cell an empty line for a body.

    IPython refuses a cell magic with an empty body before calling it, so ``%%kubefile --help``
    alone in a cell would fail with "the cell body is empty"; the magic itself then answers
    (the help, or a line saying the Kubefile is missing).
    """
    if lines and _MAGIC_LINE.match(lines[0]) and not "".join(lines[1:]).strip():
        return [lines[0].rstrip("\n") + "\n", "\n"]
    return lines


def _pretty(render: Callable[[Any], str]) -> Callable[[Any, Any, bool], None]:
    """IPython's plain-text printers write through a pretty-printer object."""

    def printer(value: Any, pretty: Any, cycle: bool) -> None:
        pretty.text(render(value))

    return printer
