"""Does a chart's ``kubeVersion`` constraint admit a Kubernetes version? As ``helm install`` asks.

Helm refuses to install a chart whose ``Chart.yaml`` ``kubeVersion`` (``>= 1.19.0-0 < 1.31.0``,
``^1.28``, ``1.2 - 1.4 || >= 2``) excludes the cluster's version; a lite build renders for the
``--kube-version`` the user names, so it must refuse the same charts, or it would carry the
images of a chart that never installs. The rules are those of Helm's semver library: ``||``
between alternatives, commas or spaces between conditions that must all hold, ``~``, ``^``,
wildcards (``1.2.x``) and hyphen ranges, and a version with a pre-release (``1.29.0-gke.1``)
matches only a condition that names a pre-release itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ConstraintError", "admits"]

_VERSION = re.compile(
    r"v?(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*]))?(?:\.(?P<patch>\d+|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?"
)
_CONDITION = re.compile(r"\s*(?P<op>!=|>=|=>|<=|=<|~>|[=><~^])?\s*(?P<version>\S+)\s*")
_HYPHEN = re.compile(r"\s*(\S+)\s+-\s+(\S+)\s*")
_WILD = frozenset({"x", "X", "*"})
#: Pre-release identifiers as sortable triples; no pre-release sorts after any, ``-0`` first.
_NO_PRE = ((2, 0, ""),)
_FIRST_PRE = ((0, 0, ""),)
_SYNONYMS = {"=>": ">=", "=<": "<=", "~>": "~"}


class ConstraintError(ValueError):
    """The constraint is not one Helm's semver library reads."""


@dataclass(frozen=True, order=True)
class _Version:
    major: int
    minor: int
    patch: int
    pre: tuple[tuple[int, int, str], ...] = _NO_PRE

    @property
    def has_pre(self) -> bool:
        return self.pre != _NO_PRE


def admits(constraint: str, version: str) -> bool:
    """Whether ``version`` (``1.29.0``, ``v1.29.0``) satisfies ``constraint``; a constraint
    that cannot be read raises ``ConstraintError``."""
    wanted = _parse_version(version)
    alternatives = [part.strip() for part in constraint.split("||")]
    if not all(alternatives):
        raise ConstraintError(f"empty alternative in {constraint!r}")
    return any(all(_holds(op, text, wanted) for op, text in _conditions(part)) for part in alternatives)


def _conditions(text: str) -> list[tuple[str, str]]:
    """``(operator, version)`` pairs of one alternative, hyphen ranges made two conditions."""
    found: list[tuple[str, str]] = []
    for piece in text.split(","):
        if hyphen := _HYPHEN.fullmatch(piece):
            found += [(">=", hyphen[1]), ("<=", hyphen[2])]
            continue
        rest = piece.strip()
        while rest:
            match = _CONDITION.match(rest)
            if not match or not match["version"]:
                raise ConstraintError(f"cannot read {piece!r}")
            found.append((match["op"] or "=", match["version"]))
            rest = rest[match.end():]
    if not found:
        raise ConstraintError(f"empty condition in {text!r}")
    return found


def _holds(op: str, text: str, version: _Version) -> bool:
    """One condition; a partial version (``1.28``, ``1.x``) stands for every version it starts."""
    match = _VERSION.fullmatch(text)
    if not match:
        raise ConstraintError(f"{text!r} is not a version")
    parts = [match["major"], match["minor"], match["patch"]]
    numbers = [int(p) for p in parts[: next((i for i, p in enumerate(parts) if p is None or p in _WILD), 3)]]
    low = _at(numbers, _pre(match["pre"]))
    if version.has_pre and not low.has_pre:
        return False
    exact = len(numbers) == 3
    after = _bump(numbers)  # the first version past every version ``numbers`` starts
    significant = next((i for i, n in enumerate(numbers) if n), len(numbers) - 1)
    rules: dict[str, Callable[[], bool]] = {
        "=": lambda: version == low if exact else low <= version < after,
        "!=": lambda: not rules["="](),
        ">": lambda: version > low if exact else version >= after,
        ">=": lambda: version >= low,
        "<": lambda: version < low,
        "<=": lambda: version <= low if exact else version < after,
        "~": lambda: low <= version < _bump(numbers[:2] if len(numbers) > 1 else numbers),
        "^": lambda: low <= version < _bump(numbers[: significant + 1]),  # ^0.2.3: < 0.3.0
    }
    return rules[_SYNONYMS.get(op, op)]()


def _at(numbers: list[int], pre: tuple[tuple[int, int, str], ...] = _NO_PRE) -> _Version:
    padded = [*numbers, 0, 0, 0]
    return _Version(padded[0], padded[1], padded[2], pre)


def _bump(numbers: list[int]) -> _Version:
    """The first version after every version that starts with ``numbers`` (``[1, 2]`` -> 1.3.0-0)."""
    if not numbers:
        return _Version(1 << 62, 0, 0)
    return _at([*numbers[:-1], numbers[-1] + 1], _FIRST_PRE)


def _parse_version(text: str) -> _Version:
    match = _VERSION.fullmatch(text.strip())
    if not match or not all(p and p.isdigit() for p in (match["major"], match["minor"] or "0", match["patch"] or "0")):
        raise ConstraintError(f"{text!r} is not a version")
    return _at([int(match["major"]), int(match["minor"] or 0), int(match["patch"] or 0)], _pre(match["pre"]))


def _pre(text: str | None) -> tuple[tuple[int, int, str], ...]:
    """Semver pre-release precedence: numeric identifiers before text ones, each in order."""
    if not text:
        return _NO_PRE
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in text.split("."))
