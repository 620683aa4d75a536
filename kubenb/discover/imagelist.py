"""The ``manifests/imageList`` file: one image per line, the simplest way to name an image."""

from __future__ import annotations

from collections.abc import Iterator

from kubenb.discover.hits import Hit
from kubenb.model import Location

__all__ = ["IMAGE_LIST", "read_image_list"]

#: Where a Kubefile's ``COPY imageList manifests`` puts it.
IMAGE_LIST = "manifests/imageList"


def read_image_list(text: str, file: str = IMAGE_LIST) -> Iterator[Hit]:
    """A hit per image line; blank lines, ``#`` comments (whole or trailing), spaces and CRLF ignored."""
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        written = raw.split("#", 1)[0].strip()
        if written:
            yield Hit("image", written, Location("imageList", file, line=number, written=written))
