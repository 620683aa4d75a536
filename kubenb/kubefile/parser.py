"""Turn logical lines into ``Instruction`` records and check what a Kubefile must satisfy.

Syntax first (keyword, flags, shell or JSON form), then meaning (FROM first and once, COPY
with a source and a destination, well-formed key=value pairs). No variable is expanded here:
that depends on build arguments and lives in ``expand``; so a parsed Kubefile prints back to
the text its author wrote, in canonical form.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import replace

from kubenb.errors import KubefileError
from kubenb.kubefile.lexer import LogicalLine, lex
from kubenb.model import KEYWORDS, Flag, Instruction, Kubefile

__all__ = ["check_arguments", "pairs", "parse", "split_words", "words"]

#: Flags each instruction accepts; any other ``--flag`` is an error, not silently ignored.
_FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "COPY": frozenset({"chown", "chmod"}),
}
_EXEC_FORM_KEYWORDS = frozenset({"RUN", "CMD", "COPY"})
#: Dockerfile instructions a Kubefile does not have, with what to write instead.
_DOCKERFILE_ONLY = {
    "ADD": "use COPY (remote URLs: RUN wget ...)",
    "ENTRYPOINT": "use CMD",
    "WORKDIR": "paths are relative to the cluster rootfs",
    "USER": "commands run as the building user",
    "EXPOSE": "ports belong in your manifests",
    "VOLUME": "volumes belong in your manifests",
    "ONBUILD": "not supported",
    "STOPSIGNAL": "not supported",
    "HEALTHCHECK": "probes belong in your manifests",
    "SHELL": "RUN uses /bin/sh",
    "MAINTAINER": 'use LABEL maintainer="..."',
}
_FLAG_SYNTAX = re.compile(r"--([a-z][a-z0-9-]*)=(\S*)$")
_HEAD = re.compile(r"(\S+)\s*(.*)", re.DOTALL)
_VARIABLE_SPAN = re.compile(r"\$\{[^}]*\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
#: One piece of a shell word, or the blanks between words (shlex's POSIX rules, whitespace_split).
_WORD_PIECES = r"""'(?P<single>[^']*)'
      | "(?P<double>(?:[^"\\]+|\\.)*)"
      | \\(?P<escaped>.)
      | (?P<space>[ \t\r\n]+)
      | (?P<broken>.)
"""
_WORD_PART = re.compile(r"""(?P<plain>[^ \t\r\n'"\\]+) |""" + _WORD_PIECES, re.VERBOSE | re.DOTALL)
#: The same, with runs of shell punctuation (``&&``, ``|``, ``;``, ``>``...) as words of their own.
_SHELL_PART = re.compile(
    r"""(?P<punctuation>[();<>|&]+) | (?P<plain>[^ \t\r\n'"\\();<>|&]+) |""" + _WORD_PIECES, re.VERBOSE | re.DOTALL
)
_QUOTING = re.compile(r"""['"\\]""")
_WORD = re.compile(r"[^ \t\r\n]+")
_SHELL_WORD = re.compile(r"[();<>|&]+|[^ \t\r\n();<>|&]+")
#: Inside double quotes a backslash escapes only ``"`` and itself; before anything else it stays.
_DOUBLE_QUOTED_ESCAPE = re.compile(r'\\(["\\])')


def parse(text: str, *, path: str = "Kubefile") -> Kubefile:
    """Parse and check Kubefile ``text``; every problem is a ``KubefileError`` with its line."""
    instructions = tuple(_instruction(logical, path) for logical in lex(text, path=path))
    _check_structure(instructions, path)
    for instruction in instructions:
        check_arguments(instruction, path, masked=True)
    return Kubefile(instructions=instructions, path=path)


def words(instruction: Instruction, *, path: str = "Kubefile") -> tuple[str, ...]:
    """The instruction's arguments as words: the JSON list, or the shell form split like sh."""
    if isinstance(instruction.args, tuple):
        return instruction.args
    try:
        return split_words(instruction.args)
    except ValueError as error:
        raise _error(instruction, path, f"{instruction.keyword}: {error}") from None


def split_words(text: str, *, punctuation: bool = False) -> tuple[str, ...]:
    """``text`` split into words like ``shlex.split`` (POSIX quotes and backslashes), in linear time.

    shlex grows each word one character at a time (quadratic: a 1 MB word took tens of
    seconds); here a regular expression takes whole runs, and each word is joined once.
    ``punctuation`` also splits off runs of ``();<>|&`` outside quotes, as shlex's
    ``punctuation_chars`` does (to find the commands of a shell line).
    """
    if _QUOTING.search(text) is None:  # no quotes, no backslashes: words are runs (the common case)
        return tuple((_SHELL_WORD if punctuation else _WORD).findall(text))
    result: list[str] = []
    parts: list[str] = []
    started = False
    for match in (_SHELL_PART if punctuation else _WORD_PART).finditer(text):
        kind = match.lastgroup
        if kind == "punctuation":
            if started:
                result.append("".join(parts))
            result.append(match.group())
            parts, started = [], False
            continue
        if kind == "space":
            if started:
                result.append("".join(parts))
            parts, started = [], False
            continue
        if kind == "broken":
            raise ValueError(_broken(text, match.group()))
        started = True
        value = match.group(kind or "plain")
        parts.append(_DOUBLE_QUOTED_ESCAPE.sub(r"\1", value) if kind == "double" else value)
    if started:
        result.append("".join(parts))
    return tuple(result)


def _broken(text: str, found: str) -> str:
    """shlex's complaint: a backslash at the very end (even inside open quotes) escapes nothing."""
    trailing = len(text) - len(text.rstrip("\\"))
    return "no escaped character" if found == "\\" or (found == '"' and trailing % 2) else "no closing quotation"


def pairs(instruction: Instruction, *, path: str = "Kubefile") -> tuple[tuple[str, str | None], ...]:
    """``key=value`` pairs of ARG, ENV and LABEL (ARG's value is None when it has no default).

    ENV also has docker's legacy form ``ENV KEY value with spaces``.
    """
    return _pairs_of(instruction, words(instruction, path=path), path)


def _pairs_of(instruction: Instruction, items: Sequence[str], path: str) -> tuple[tuple[str, str | None], ...]:
    """``pairs`` of words already split (the check splits them once for both uses)."""
    if instruction.keyword == "ENV" and items and "=" not in items[0]:
        key, _, value = str(instruction.args).partition(" ")
        return ((key, value.strip()),)
    result: list[tuple[str, str | None]] = []
    for item in items:
        key, equals, value = item.partition("=")
        if not equals and instruction.keyword != "ARG":
            raise _error(
                instruction, path, f"{instruction.keyword} expects KEY=VALUE, got {item!r}"
            )
        result.append((key, value if equals else None))
    return tuple(result)


def _error(instruction: Instruction, path: str, message: str, hint: str | None = None) -> KubefileError:
    return KubefileError(message, file=path, line=instruction.line, hint=hint)


def _unknown_keyword(word: str, logical: LogicalLine, path: str) -> KubefileError:
    upper = word.upper()
    if upper in _DOCKERFILE_ONLY:
        return KubefileError(
            f"{upper} is a Dockerfile instruction that a Kubefile does not have",
            file=path,
            line=logical.line,
            hint=_DOCKERFILE_ONLY[upper],
        )
    close = difflib.get_close_matches(upper, KEYWORDS, n=1, cutoff=0.5)
    message = f"unknown instruction {word}" + (f", did you mean {close[0]}?" if close else "")
    return KubefileError(
        message, file=path, line=logical.line, hint=None if close else f"use one of {', '.join(KEYWORDS)}"
    )


def _split_flags(keyword: str, rest: str, logical: LogicalLine, path: str) -> tuple[tuple[Flag, ...], str]:
    flags: list[Flag] = []
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        match = _FLAG_SYNTAX.match(token)
        allowed = _FLAGS.get(keyword, frozenset())
        if match is None or match.group(1) not in allowed:
            known = ", ".join(f"--{name}=..." for name in sorted(allowed)) or "none"
            raise KubefileError(
                f"{keyword} does not accept the flag {token!r}",
                file=path,
                line=logical.line,
                hint=f"flags of {keyword}: {known}",
            )
        flags.append(Flag(match.group(1), match.group(2)))
    return tuple(flags), rest


def _exec_form(keyword: str, rest: str, logical: LogicalLine, path: str) -> tuple[str, ...]:
    try:
        value = json.loads(rest)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise KubefileError(
            f"{keyword} has a broken JSON form: {_shorten(rest)}",
            file=path,
            line=logical.line,
            hint='write a JSON list of strings like ["a", "b"], or drop the "[" for shell form',
        )
    return tuple(value)


def _instruction(logical: LogicalLine, path: str) -> Instruction:
    word, rest = _HEAD.match(logical.text).groups()  # type: ignore[union-attr]
    keyword = word.upper()
    if keyword not in KEYWORDS:
        raise _unknown_keyword(word, logical, path)
    flags, rest = _split_flags(keyword, rest, logical, path)
    args: str | tuple[str, ...] = rest
    if keyword in _EXEC_FORM_KEYWORDS and rest.startswith("["):
        args = _exec_form(keyword, rest, logical, path)
    return Instruction(
        keyword=keyword,
        args=args,
        flags=flags,
        line=logical.line,
        end_line=logical.end_line,
        original=logical.original,
    )


def _check_structure(instructions: Sequence[Instruction], path: str) -> None:
    first = next((i for i in instructions if i.keyword != "ARG"), None)
    if first is None:
        line = instructions[-1].end_line + 1 if instructions else 1
        raise KubefileError(
            "the Kubefile has no FROM instruction", file=path, line=line,
            hint="start with FROM scratch or FROM <cluster-image>",
        )
    if first.keyword != "FROM":
        raise _error(
            first, path, f"the first instruction must be FROM, not {first.keyword}",
            hint="only ARG may come before FROM",
        )
    extra = [i for i in instructions if i.keyword == "FROM"][1:]
    if extra:
        raise _error(
            extra[0], path, f"a Kubefile has one FROM; the first is at line {first.line}",
            hint="combine the bases into one cluster image first",
        )


def check_arguments(instruction: Instruction, path: str, *, masked: bool = False) -> None:
    """Check the arguments' count and shape; ``masked`` counts each ``${...}`` as one word.

    Before expansion a ``${VAR:?some message}`` must not be split at its spaces; after it,
    the expanded words are checked again, since a variable may hold several.
    """
    keyword = instruction.keyword
    # RUN and CMD are shell text: only the shell may judge their quoting.
    if keyword in ("RUN", "CMD"):
        items: tuple[object, ...] = (instruction.args,)
    else:
        if masked and isinstance(instruction.args, str) and "${" in instruction.args:
            instruction = replace(instruction, args=_VARIABLE_SPAN.sub("${}", instruction.args))
        items = words(instruction, path=path)
    if not any(items):
        raise _error(instruction, path, f"{keyword} needs arguments", hint=_USAGE[keyword])
    if keyword == "FROM" and len(items) != 1:
        raise _error(instruction, path, "FROM takes exactly one image", hint=_USAGE[keyword])
    if keyword == "COPY" and len(items) < 2:
        raise _error(
            instruction, path, "COPY needs at least one source and a destination", hint=_USAGE[keyword]
        )
    if keyword in ("ARG", "ENV", "LABEL"):
        for key, _ in _pairs_of(instruction, [str(item) for item in items], path):
            if keyword != "LABEL" and not _NAME.match(key):
                raise _error(instruction, path, f"{keyword}: {key!r} is not a valid variable name")
            if not key:
                raise _error(instruction, path, f"{keyword}: a key is empty", hint=_USAGE[keyword])


_USAGE = {
    "FROM": "FROM scratch, or FROM <cluster-image>[:tag]",
    "COPY": "COPY <source>... <destination>",
    "RUN": "RUN <command>",
    "CMD": "CMD <command>",
    "ARG": "ARG NAME[=default]",
    "ENV": "ENV KEY=VALUE ...",
    "LABEL": "LABEL key=value ...",
}


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
