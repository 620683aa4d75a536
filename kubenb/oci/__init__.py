"""OCI plumbing, written once: media types, manifest kinds and references, the nested-index
walk, platforms, digests and verified atomic writes, rootfs paths and the one layer applier.

The registry client, the registry folder and the store all read and keep OCI content; they
import these pieces instead of each spelling a media type, hashing a blob or walking an index
its own way (``media_types``, ``manifests``, ``selection``, ``platforms``, ``digests``). Everything
that takes a layer or a rootfs from an image (export, a build's FROM and its cache hits, COPY
into the rootfs) goes through ``layers`` and ``paths``, so the rules that keep kubenb inside
its own folders are written once too. Layer 2: imports only ``errors`` (and ``lazy``).
"""

from __future__ import annotations

import typing as _typing

from kubenb.lazy import lazy_attributes as _lazy_attributes

if _typing.TYPE_CHECKING:
    from kubenb.oci.layers import OPAQUE, WHITEOUT, apply_layer
    from kubenb.oci.paths import resolve_in_root

__all__ = ["OPAQUE", "WHITEOUT", "apply_layer", "resolve_in_root"]

#: Imported on first use (PEP 562): the store's digests and media types need no tarfile.
_LAZY = {"OPAQUE": "kubenb.oci.layers", "WHITEOUT": "kubenb.oci.layers", "apply_layer": "kubenb.oci.layers",
         "resolve_in_root": "kubenb.oci.paths"}


__getattr__ = _lazy_attributes(__name__, _LAZY)
