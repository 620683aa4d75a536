"""Where a store is and how its files are named: what reading it needs without the ``Store``.

The fast path of an unchanged rebuild (``kubenb/builders/record.py``) answers from the
command line before the store's records and the dataclasses are imported; it finds the
store, the named manifests of ``index.json`` and the blob files through these few functions,
which the ``Store`` itself uses too, so the layout is written once.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

__all__ = ["REF_NAME", "blob_folder", "blob_path", "default_root", "named_manifests"]

#: The annotation of ``index.json`` that names a manifest (OCI image layout).
REF_NAME = "org.opencontainers.image.ref.name"
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


def default_root() -> Path:
    """``$KUBENB_ROOT``, else ``$XDG_DATA_HOME/kubenb``, else ``~/.local/share/kubenb``."""
    if os.environ.get("KUBENB_ROOT"):
        return Path(os.environ["KUBENB_ROOT"])
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "kubenb"


def blob_folder(root: Path) -> Path:
    return root / "blobs" / "sha256"


def blob_path(root: Path, digest: str) -> Path | None:
    """The file of blob ``digest``; None for anything that is no sha256 digest."""
    return blob_folder(root) / digest.removeprefix("sha256:") if _SHA256.fullmatch(digest) else None


def named_manifests(root: Path) -> dict[str, str]:
    """Name -> manifest digest of every named manifest of ``index.json`` (none when there is no
    index); a malformed index raises ValueError, KeyError or TypeError: the ``Store`` reports it."""
    try:
        data = json.loads((root / "index.json").read_bytes())
    except FileNotFoundError:
        return {}
    return {str(m["annotations"][REF_NAME]): str(m["digest"]) for m in data.get("manifests", [])}
