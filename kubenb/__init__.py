"""kubenb: build offline Kubernetes cluster images from a Kubefile, from Jupyter or the shell.

The public Python API is what ``__all__`` names; everything else may change between releases.
``Engine`` does what every command does (``Engine(root).build(...)``, ``.push(...)``...).
"""

from __future__ import annotations

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
