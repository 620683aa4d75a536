"""The Kubefile language: lexer, parser, variable expansion and the build plan.

Parsing and expansion are pure; the disk is read only by ``read.py`` (the Kubefile itself)
and ``plan.py`` (the COPY sources in the build context, resolved once per plan).
"""

from __future__ import annotations

from kubenb.kubefile.expand import declared_arguments, expand, substitute
from kubenb.kubefile.lexer import LogicalLine, lex
from kubenb.kubefile.parser import pairs, parse, words
from kubenb.kubefile.plan import STANDARD_FOLDERS, BuildPlan, CopySource, CopyStep, plan_build, refuse_special
from kubenb.kubefile.read import MAX_BYTES, file_kind, load, read_kubefile

__all__ = [
    "MAX_BYTES",
    "STANDARD_FOLDERS",
    "BuildPlan",
    "CopySource",
    "CopyStep",
    "LogicalLine",
    "declared_arguments",
    "expand",
    "file_kind",
    "lex",
    "load",
    "pairs",
    "parse",
    "plan_build",
    "read_kubefile",
    "refuse_special",
    "substitute",
    "words",
]
