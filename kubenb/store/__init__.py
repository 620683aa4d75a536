"""The local cluster-image store (layer 3): OCI images under one root, with a build cache.

``Store`` is the whole API; ``ClusterImage`` and ``Layer`` are the records it hands out.
"""

from __future__ import annotations

from kubenb.store.image import IMAGES_ANNOTATION, ClusterImage, Layer, normalize_name
from kubenb.store.placed import PlacedFile
from kubenb.store.pull import RegistrySource
from kubenb.store.push import RegistryTarget
from kubenb.store.store import Store, default_root

__all__ = ["IMAGES_ANNOTATION", "ClusterImage", "Layer", "PlacedFile", "RegistrySource", "RegistryTarget", "Store",
           "default_root", "normalize_name"]
