"""Package facades that import a name only when it is first used (PEP 562).

Every package of kubenb re-exports its public names, and most commands need few of them:
importing them all up front cost ``kubenb --version`` half a second (bench/startup.py). A
facade lists each name with the module that defines it and sets ``__getattr__`` to what
``lazy_attributes`` returns; the name is imported on first use, then kept in the package.
Layer 0: it knows nothing of kubenb, so every layer (front ends included) may use it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
    """The module ``__getattr__`` of ``package``: ``exports`` maps a name to its module."""

    def attribute(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return attribute
