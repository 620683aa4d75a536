"""Variable substitution: ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:+alt}``, ``${VAR:?msg}``.

Kept apart from the parser because its result depends on build arguments: the same parsed
Kubefile expands differently for different ``--build-arg`` values. As in docker, FROM, COPY,
ARG, ENV and LABEL are expanded here, while RUN and CMD are left to the shell that runs them
(which sees the ARG and ENV values in its environment). Unlike docker, an ARG is visible from
where it is declared to the end of the file, before and after FROM alike: a Kubefile has one
stage, so docker's per-stage scoping would only surprise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from kubenb.errors import KubefileError
from kubenb.kubefile.parser import check_arguments, pairs
from kubenb.model import Instruction, Kubefile

__all__ = ["declared_arguments", "expand", "substitute"]

_EXPANDED = frozenset({"FROM", "COPY", "ARG", "ENV", "LABEL"})
_REFERENCE = re.compile(
    r"""\\\$                                              # an escaped dollar
      | \$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+?])(?P<word>[^}]*))?\}
      | \$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<broken>\$\{[^}]*\}?)                          # anything else after ${ is an error
    """,
    re.VERBOSE,
)


def substitute(text: str, variables: Mapping[str, str], *, path: str = "Kubefile", line: int = 0) -> str:
    """``text`` with variables replaced; an unset ``${VAR:?}`` or a malformed ``${`` raises."""

    def replacement(match: re.Match[str]) -> str:
        if match.group(0) == "\\$":
            return "$"
        if match.group("broken") is not None:
            raise KubefileError(
                f"bad variable substitution {match.group('broken')!r}",
                file=path, line=line,
                hint="write ${NAME}, ${NAME:-default}, ${NAME:+alternative} or ${NAME:?message}",
            )
        name = match.group("braced") or match.group("plain")
        value = variables.get(name)
        operator, word = match.group("op"), match.group("word") or ""
        if operator == "-":
            return value if value else word
        if operator == "+":
            return word if value else ""
        if operator == "?" and not value:
            raise KubefileError(
                f"variable {name} is not set" + (f": {word}" if word else ""),
                file=path, line=line,
                hint=f"pass --build-arg {name}=VALUE or declare ARG {name}=DEFAULT",
            )
        return value or ""

    return _REFERENCE.sub(replacement, text)


def expand(kubefile: Kubefile, build_args: Mapping[str, str] | None = None) -> Kubefile:
    """The Kubefile with its variables substituted (``original`` keeps what was written)."""
    build_args = build_args or {}
    variables: dict[str, str] = {}
    expanded: list[Instruction] = []
    for written in kubefile.instructions:
        instruction = written
        if written.keyword in _EXPANDED:
            instruction = _expand_instruction(written, variables, kubefile.path)
            check_arguments(instruction, kubefile.path)
        if instruction.keyword in ("ARG", "ENV"):
            variables.update(_assignments(instruction, build_args, kubefile.path))
        expanded.append(instruction)
    return replace(kubefile, instructions=tuple(expanded))


def declared_arguments(kubefile: Kubefile) -> frozenset[str]:
    """Names declared by ARG: a ``--build-arg`` for any other name is probably a typo."""
    return frozenset(
        name for arg in kubefile.of_kind("ARG") for name, _ in pairs(arg, path=kubefile.path)
    )


def _expand_instruction(instruction: Instruction, variables: Mapping[str, str], path: str) -> Instruction:
    def one(text: str) -> str:
        return substitute(text, variables, path=path, line=instruction.line)

    if isinstance(instruction.args, tuple):
        return replace(instruction, args=tuple(one(a) for a in instruction.args))
    return replace(instruction, args=one(instruction.args))


def _assignments(instruction: Instruction, build_args: Mapping[str, str], path: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, default in pairs(instruction, path=path):
        value = build_args.get(name, default) if instruction.keyword == "ARG" else default
        if value is not None:
            result[name] = value
    return result
