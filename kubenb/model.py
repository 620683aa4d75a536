"""Frozen records that flow one way through kubenb (see DESIGN.md, "Data flows one way").

Nothing here does I/O or imports from other kubenb modules but ``errors``: these are the
values the layers hand to each other, so they must be cheap to build, compare and hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["KEYWORDS", "Flag", "ImageRef", "Instruction", "Kubefile"]

#: The instructions a Kubefile may hold, in the order users meet them in the docs.
KEYWORDS: tuple[str, ...] = ("FROM", "COPY", "RUN", "CMD", "ARG", "ENV", "LABEL")


@dataclass(frozen=True)
class Flag:
    """A ``--name=value`` option written before an instruction's arguments."""

    name: str
    value: str

    def __str__(self) -> str:
        return f"--{self.name}={self.value}"


@dataclass(frozen=True)
class Instruction:
    """One instruction of a Kubefile, as written and (after expansion) as meant.

    ``args`` is the shell-form text (continuations joined) or, for the JSON (exec) form, the
    tuple of strings. ``original`` keeps the exact source lines so errors and reprs can quote
    the user's own text, and ``line``/``end_line`` say where it stands (1-based, inclusive).
    """

    keyword: str
    args: str | tuple[str, ...]
    line: int
    end_line: int
    original: str
    flags: tuple[Flag, ...] = ()

    @property
    def exec_form(self) -> bool:
        return isinstance(self.args, tuple)

    def flag(self, name: str) -> str | None:
        """The value of flag ``name``, or None when it was not given."""
        return next((f.value for f in self.flags if f.name == name), None)

    def to_text(self) -> str:
        """One canonical line that parses back to an equal instruction."""
        parts = [self.keyword, *(str(f) for f in self.flags)]
        if isinstance(self.args, tuple):
            parts.append(json.dumps(list(self.args)))
        elif self.args:
            parts.append(self.args)
        return " ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of ``kubenb parse -o json`` (a stable contract)."""
        return {
            "instruction": self.keyword,
            "args": list(self.args) if isinstance(self.args, tuple) else self.args,
            "flags": {f.name: f.value for f in self.flags},
            "line": self.line,
            "end_line": self.end_line,
            "original": self.original,
        }


@dataclass(frozen=True)
class Kubefile:
    """A parsed Kubefile: its instructions in order and the path they were read from."""

    instructions: tuple[Instruction, ...]
    path: str = "Kubefile"

    def to_text(self) -> str:
        return "".join(instruction.to_text() + "\n" for instruction in self.instructions)

    def of_kind(self, keyword: str) -> tuple[Instruction, ...]:
        return tuple(i for i in self.instructions if i.keyword == keyword)

    @property
    def base(self) -> str:
        """The FROM image as written (after expansion when the Kubefile was expanded)."""
        (from_,) = self.of_kind("FROM")
        assert isinstance(from_.args, str)
        return from_.args


@dataclass(frozen=True, order=True)
class ImageRef:
    """A normalised container image reference (docker's rules).

    ``domain`` is the registry host (with port), ``path`` the repository without the domain
    (``library/nginx``), which is also the repository name in a registry folder (mirror
    semantics). ``tag`` is None only when a digest pins the image.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None
    written: str = field(default="", compare=False, hash=False)

    @property
    def name(self) -> str:
        """``domain/path``: the repository as a registry client names it."""
        return f"{self.domain}/{self.path}"

    @property
    def repository(self) -> str:
        """The repository inside a registry folder: the path without the source domain."""
        return self.path

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text
