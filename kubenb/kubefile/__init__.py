"""The Kubefile language: lexer, parser and variable expansion (pure; I/O only in ``read``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kubenb.errors import KubefileError
from kubenb.kubefile.expand import declared_arguments, expand, substitute
from kubenb.kubefile.lexer import LogicalLine, lex
from kubenb.kubefile.parser import pairs, parse, words
from kubenb.model import Kubefile

__all__ = [
    "LogicalLine",
    "declared_arguments",
    "expand",
    "lex",
    "load",
    "pairs",
    "parse",
    "read_text",
    "substitute",
    "words",
]

#: A Kubefile is a handful of lines; anything far larger is a mistake, not a Kubefile.
MAX_BYTES = 4 * 1024 * 1024


def read_text(path: str | Path) -> str:
    """The Kubefile's text; unreadable, binary or non-UTF-8 files are a ``KubefileError``."""
    path = Path(path)
    try:
        data = path.read_bytes() if path.stat().st_size <= MAX_BYTES else None
    except OSError as error:
        raise KubefileError(
            f"cannot read the Kubefile: {error.strerror}", file=path,
            hint="give its path with -f, or run in the folder that holds it",
        ) from None
    if data is None:
        raise KubefileError(f"the Kubefile is larger than {MAX_BYTES // 2**20} MiB", file=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise KubefileError(
            "the Kubefile is not UTF-8 text", file=path, line=line, hint="save it as UTF-8"
        ) from None


def load(path: str | Path, build_args: Mapping[str, str] | None = None) -> Kubefile:
    """Read, parse and expand the Kubefile at ``path``: what a build or preview starts from."""
    return expand(parse(read_text(path), path=str(path)), build_args)
