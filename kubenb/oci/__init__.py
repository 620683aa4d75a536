"""OCI images read from elsewhere: paths resolved inside a rootfs, the one layer applier, and
what any manifest offers (bytes, media type, digest).

Everything that takes a layer or a rootfs from an image (export, a build's FROM and its cache
hits, COPY into the rootfs, discovery, the registry layer) goes through here, so the rules that
keep kubenb inside its own folders are written once.
"""

from __future__ import annotations

from kubenb.oci.layers import OPAQUE, WHITEOUT, apply_layer
from kubenb.oci.paths import resolve_in_root

__all__ = ["OPAQUE", "WHITEOUT", "apply_layer", "resolve_in_root"]
