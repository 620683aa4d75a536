"""The local cluster-image store (layer 3): OCI images under one root, with a build cache.

``Store`` is the whole API; ``ClusterImage`` and ``Layer`` are the records it hands out.
"""

from __future__ import annotations

import typing as _typing

from kubenb.store.image import IMAGES_ANNOTATION, ClusterImage, Layer, normalize_name
from kubenb.store.store import Store, default_root

if _typing.TYPE_CHECKING:
    from kubenb.store.pull import RegistrySource
    from kubenb.store.push import RegistryTarget

__all__ = ["IMAGES_ANNOTATION", "ClusterImage", "Layer", "RegistrySource", "RegistryTarget", "Store", "default_root",
           "normalize_name"]


def __getattr__(name: str) -> object:
    """PEP 562: the registry protocols load the pull and push modules only when asked for."""
    if name == "RegistrySource":
        from kubenb.store.pull import RegistrySource  # noqa: PLC0415

        return RegistrySource
    if name == "RegistryTarget":
        from kubenb.store.push import RegistryTarget  # noqa: PLC0415

        return RegistryTarget
    raise AttributeError(f"module 'kubenb.store' has no attribute {name!r}")
