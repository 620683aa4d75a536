"""The local cluster-image store (layer 3): OCI images under one root, with a build cache.

``Store`` is the whole API; ``ClusterImage`` and ``Layer`` are the records it hands out. The
names are imported on first use (PEP 562): an unchanged rebuild answered from the command
line reads the store's files with ``kubenb/store/root.py`` alone.
"""

from __future__ import annotations

import typing as _typing

from kubenb.lazy import lazy_attributes as _lazy_attributes

if _typing.TYPE_CHECKING:
    from kubenb.store.image import IMAGES_ANNOTATION, ClusterImage, Layer, normalize_name
    from kubenb.store.placed import PlacedFile
    from kubenb.store.pull import RegistrySource
    from kubenb.store.push import RegistryTarget
    from kubenb.store.root import default_root
    from kubenb.store.store import Store

__all__ = ["IMAGES_ANNOTATION", "ClusterImage", "Layer", "PlacedFile", "RegistrySource", "RegistryTarget", "Store",
           "default_root", "normalize_name"]

_LAZY = {
    **dict.fromkeys(("IMAGES_ANNOTATION", "ClusterImage", "Layer", "normalize_name"), "kubenb.store.image"),
    "PlacedFile": "kubenb.store.placed",
    "RegistrySource": "kubenb.store.pull",
    "RegistryTarget": "kubenb.store.push",
    "default_root": "kubenb.store.root",
    "Store": "kubenb.store.store",
}


__getattr__ = _lazy_attributes(__name__, _LAZY)
