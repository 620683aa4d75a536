"""kubenb: build offline Kubernetes cluster images from a Kubefile, from Jupyter or the shell.

The public Python API is what ``__all__`` names; everything else may change between releases.
"""

from __future__ import annotations

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
from kubenb.model import ImageRef, Instruction, Kubefile
from kubenb.reference import normalize, parse_reference

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BuildError",
    "DiscoveryError",
    "ImageRef",
    "Instruction",
    "InvalidReferenceError",
    "Kubefile",
    "KubefileError",
    "KubenbError",
    "RegistryError",
    "StoreError",
    "UnsupportedError",
    "__version__",
    "expand",
    "load",
    "normalize",
    "parse",
    "parse_reference",
]
