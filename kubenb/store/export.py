"""The merged rootfs of an image, written to a folder of the user's: all of it, or nothing.

The layers are applied, lowest first, by the one confined applier (``kubenb.oci``) into a
temporary folder beside the destination, which is renamed into place only once every layer
applied. So a hostile or damaged layer, a full disk or a kill leaves the destination as it
was (absent, or the empty folder the user made), and nothing outside it is ever touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from kubenb.errors import StoreError, is_disk_full
from kubenb.oci import apply_layer
from kubenb.store.blobs import Blobs
from kubenb.store.image import Layer

__all__ = ["export"]


def export(blobs: Blobs, layers: Sequence[Layer], destination: Path) -> None:
    """Apply ``layers`` (lowest first) into ``destination``, which must be new or empty."""
    destination = destination.resolve()
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise StoreError(f"{destination} exists and is not an empty folder", hint="export into a new folder")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".kubenb-export", dir=destination.parent))
    except OSError as error:
        if is_disk_full(error):
            raise  # said as such, with the disk and the size, by Store.export
        raise StoreError(f"{destination} could not be written: {error.strerror}",
                         hint="export into a folder you can write") from None
    try:
        for layer in layers:
            with blobs.open(layer.digest) as blob:
                apply_layer(blob, work, layer.digest)
        _move_into_place(work, destination)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _move_into_place(work: Path, destination: Path) -> None:
    """Rename ``work`` to ``destination`` (an empty folder there is replaced), with the mode
    a folder made by the user would have had rather than mkdtemp's private 0700."""
    if destination.is_dir():
        mode = destination.stat().st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o777 & ~umask
    work.chmod(mode)
    try:
        os.replace(work, destination)
    except OSError as error:
        raise StoreError(f"{destination} could not be written: {error.strerror}",
                         hint="export into a new folder") from None
