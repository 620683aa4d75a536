"""Split Kubefile text into logical lines, the way docker's Dockerfile parser does.

A logical line is one instruction: physical lines joined where a line ends in ``\\``, with
comment and blank lines inside a continuation skipped (as docker does). The lexer knows
nothing about keywords; it only keeps line spans and the original text, so that every later
error can point at the user's own lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubenb.errors import KubefileError

__all__ = ["LogicalLine", "lex"]

_BOM = "\ufeff"


@dataclass(frozen=True)
class LogicalLine:
    """One instruction's text with its 1-based inclusive line span."""

    text: str
    line: int
    end_line: int
    original: str


def _physical_lines(text: str) -> list[str]:
    """Lines without their terminators; CRLF and a leading BOM are accepted as written."""
    if text.startswith(_BOM):
        text = text[len(_BOM) :]
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _is_skippable(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _continues(line: str) -> bool:
    return line.rstrip().endswith("\\")


def lex(text: str, *, path: str = "Kubefile") -> list[LogicalLine]:
    """Logical lines of ``text``; a continuation that never ends is a ``KubefileError``."""
    lines = _physical_lines(text)
    result: list[LogicalLine] = []
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if not stripped or stripped.startswith("#"):
            index += 1
            continue
        if not stripped.endswith("\\"):  # one physical line: most instructions (kept fast for 1e5 lines)
            result.append(LogicalLine(text=stripped, line=index + 1, end_line=index + 1, original=lines[index]))
            index += 1
            continue
        start = index
        parts: list[str] = []
        while _continues(lines[index]):
            parts.append(lines[index].rstrip()[:-1])
            dangling = index
            index += 1
            while index < len(lines) and _is_skippable(lines[index]) and lines[index].strip():
                index += 1  # comments inside a continuation are dropped, as docker does
            if index >= len(lines) or not lines[index].strip():
                raise KubefileError(
                    "line continuation '\\' at the end of the instruction has nothing to continue",
                    file=path,
                    line=dangling + 1,
                    hint="remove the trailing backslash or write the rest of the instruction",
                )
        parts.append(lines[index])
        result.append(
            LogicalLine(
                text="".join(parts).strip(),
                line=start + 1,
                end_line=index + 1,
                original="\n".join(lines[start : index + 1]),
            )
        )
        index += 1
    return result
