"""kubenb: build offline Kubernetes cluster images from a Kubefile, from Jupyter or the shell.

The public Python API is what ``__all__`` names; everything else may change between releases.
``Engine`` does what every command does (``Engine(root).build(...)``, ``.push(...)``...).
"""

from __future__ import annotations

import typing as _typing

from kubenb.lazy import lazy_attributes as _lazy_attributes

if _typing.TYPE_CHECKING:  # the names for type checkers; at run time __getattr__ imports each on first use
    from kubenb.engine import Engine, list_images
    from kubenb.errors import (
        AuthenticationError,
        BuildError,
        DiscoveryError,
        InvalidReferenceError,
        KubefileError,
        KubenbError,
        RegistryError,
        StoreError,
        UnsupportedError,
    )
    from kubenb.kubefile import expand, load, parse
    from kubenb.model import FoundImage, ImageList, ImageRef, Instruction, InvalidImage, Kubefile, Location
    from kubenb.reference import normalize, parse_reference

#: Public name -> the module that defines it. ``import kubenb`` (which ``python -m kubenb`` and every
#: ``kubenb.x`` submodule import run first) loads none of them: the engine pulls in the registry
#: client, yaml and the builders, which a ``kubenb --version`` must not pay for (bench/startup.py).
_LAZY = {
    "Engine": "kubenb.engine", "list_images": "kubenb.engine",
    **dict.fromkeys(("AuthenticationError", "BuildError", "DiscoveryError", "InvalidReferenceError",
                     "KubefileError", "KubenbError", "RegistryError", "StoreError", "UnsupportedError"),
                    "kubenb.errors"),
    "expand": "kubenb.kubefile", "load": "kubenb.kubefile", "parse": "kubenb.kubefile",
    **dict.fromkeys(("FoundImage", "ImageList", "ImageRef", "Instruction", "InvalidImage", "Kubefile", "Location"),
                    "kubenb.model"),
    "normalize": "kubenb.reference", "parse_reference": "kubenb.reference",
}


__getattr__ = _lazy_attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext kubenb``: the ``%%kubefile`` and ``%kubenb`` magics (IPython loads them only then)."""
    from kubenb.magic import load_ipython_extension as load  # noqa: PLC0415

    load(ipython)


__all__ = [
    "AuthenticationError",
    "BuildError",
    "DiscoveryError",
    "Engine",
    "FoundImage",
    "ImageList",
    "ImageRef",
    "Instruction",
    "InvalidImage",
    "InvalidReferenceError",
    "Kubefile",
    "KubefileError",
    "KubenbError",
    "Location",
    "RegistryError",
    "StoreError",
    "UnsupportedError",
    "__version__",
    "expand",
    "list_images",
    "load",
    "load_ipython_extension",
    "normalize",
    "parse",
    "parse_reference",
]
