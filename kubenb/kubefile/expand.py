"""Variable substitution: ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:+alt}``, ``${VAR:?msg}``.

Kept apart from the parser because its result depends on build arguments: the same parsed
Kubefile expands differently for different ``--build-arg`` values. As in docker, FROM, COPY,
ARG, ENV and LABEL are expanded here, while RUN and CMD are left to the shell that runs them
(which sees the ARG and ENV values in its environment). As in docker, an ENV overrides an ARG
of the same name, whichever comes first; ARG values are never recorded in the image. Unlike
docker, an ARG is visible from where it is declared to the end of the file, before and after
FROM alike: a Kubefile has one stage, so docker's per-stage scoping would only surprise.

Expansion costs time linear in what it produces, and what it may produce is capped: one
instruction at most ``MAX_INSTRUCTION_BYTES`` after substitution, the whole Kubefile at most
``MAX_EXPANDED_BYTES``. Without the cap, ``ARG A1=${A0}${A0}`` repeated thirty times asks
for gigabytes from a few hundred bytes of text; with it, the chain stops with one line that
names the instruction, well before memory runs out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from kubenb.errors import KubefileError
from kubenb.kubefile.parser import check_arguments, pairs
from kubenb.model import Instruction, Kubefile

__all__ = ["MAX_EXPANDED_BYTES", "MAX_INSTRUCTION_BYTES", "declared_arguments", "expand", "substitute"]

#: What one instruction may hold once its variables are substituted (characters, counted as bytes
#: for ASCII text): more is a runaway expansion (a build argument never needs a megabyte).
MAX_INSTRUCTION_BYTES = 1024 * 1024
#: What the whole expanded Kubefile may hold: many instructions each just under the cap are a
#: runaway too (and would each keep their own copy in memory).
MAX_EXPANDED_BYTES = 16 * MAX_INSTRUCTION_BYTES

_EXPANDED = frozenset({"FROM", "COPY", "ARG", "ENV", "LABEL"})
_REFERENCE = re.compile(
    r"""\\\$                                              # an escaped dollar
      | \$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+?])(?P<word>[^}]*))?\}
      | \$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<broken>\$\{[^}]*\}?)                          # anything else after ${ is an error
    """,
    re.VERBOSE,
)


def substitute(
    text: str, variables: Mapping[str, str], *, path: str = "Kubefile", line: int = 0,
    limit: int = MAX_INSTRUCTION_BYTES,
) -> str:
    """``text`` with variables replaced; an unset ``${VAR:?}``, a malformed ``${`` or a result
    longer than ``limit`` raises (checked as each variable is replaced, before it is built)."""
    grown = 0

    def replacement(match: re.Match[str]) -> str:
        nonlocal grown
        value = _replacement(match, variables, path=path, line=line)
        grown += len(value) - (match.end() - match.start())
        if len(text) + grown > limit:
            raise _too_large(path, line)
        return value

    if len(text) > limit:
        raise _too_large(path, line)
    return _REFERENCE.sub(replacement, text)


def _too_large(path: str, line: int, whole: bool = False) -> KubefileError:
    what, cap = ("the Kubefile", MAX_EXPANDED_BYTES) if whole else ("the instruction", MAX_INSTRUCTION_BYTES)
    return KubefileError(
        f"{what} expands to more than {cap // 2**20} MiB, the limit of {'a Kubefile' if whole else 'one instruction'}",
        file=path, line=line,
        hint="check the ARG and ENV values it uses (a variable that doubles another grows exponentially)",
    )


def _replacement(match: re.Match[str], variables: Mapping[str, str], *, path: str, line: int) -> str:
    """What one ``$VAR`` / ``${...}`` (or an escaped dollar) stands for."""
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


def expand(kubefile: Kubefile, build_args: Mapping[str, str] | None = None) -> Kubefile:
    """The Kubefile with its variables substituted (``original`` keeps what was written)."""
    build_args = build_args or {}
    environment: dict[str, str] = {}
    variables: dict[str, str] = {}  # what a substitution sees: ARG values, ENV over an ARG of the same name
    expanded: list[Instruction] = []
    total = 0
    for written in kubefile.instructions:
        instruction = written
        if written.keyword in _EXPANDED:
            instruction = _expand_instruction(written, variables, kubefile.path)
        size = _size(instruction)
        if size > MAX_INSTRUCTION_BYTES:  # RUN and CMD are not expanded, but the cap holds for them too
            raise _too_large(kubefile.path, instruction.line)
        total += size
        if total > MAX_EXPANDED_BYTES:
            raise _too_large(kubefile.path, instruction.line, whole=True)
        if instruction is not written:  # parse checked it as written; a substitution may change the words
            check_arguments(instruction, kubefile.path)
        if instruction.keyword == "ENV":
            assigned = _assignments(instruction, build_args, kubefile.path)
            environment.update(assigned)
            variables.update(assigned)
        elif instruction.keyword == "ARG":  # kept up to date here, not merged per instruction (quadratic)
            variables.update((name, value) for name, value in _assignments(instruction, build_args, kubefile.path)
                             .items() if name not in environment)
        expanded.append(instruction)
    return replace(kubefile, instructions=tuple(expanded))


def declared_arguments(kubefile: Kubefile) -> frozenset[str]:
    """Names declared by ARG: a ``--build-arg`` for any other name is probably a typo."""
    return frozenset(
        name for arg in kubefile.of_kind("ARG") for name, _ in pairs(arg, path=kubefile.path)
    )


def _expand_instruction(instruction: Instruction, variables: Mapping[str, str], path: str) -> Instruction:
    """The instruction with its arguments substituted, all of them within one instruction's cap."""
    if "$" not in instruction.original:
        return instruction  # nothing to substitute (the common case: keep the record as it is)
    if isinstance(instruction.args, str):
        return replace(instruction, args=substitute(instruction.args, variables, path=path, line=instruction.line))
    done: list[str] = []
    room = MAX_INSTRUCTION_BYTES
    for argument in instruction.args:
        done.append(substitute(argument, variables, path=path, line=instruction.line, limit=room))
        room -= len(done[-1])
    return replace(instruction, args=tuple(done))


def _size(instruction: Instruction) -> int:
    args = instruction.args
    return len(args) if isinstance(args, str) else sum(len(a) for a in args)


def _assignments(instruction: Instruction, build_args: Mapping[str, str], path: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, default in pairs(instruction, path=path):
        value = build_args.get(name, default) if instruction.keyword == "ARG" else default
        if value is not None:
            result[name] = value
    return result
