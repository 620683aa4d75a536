"""A person's review of an image list, kept in the build context so every build honours it.

Discovery is a guess from what the files say; a person reviewing the list knows better: an
image-looking string in a ConfigMap that is really needed, a sidecar the cluster already has.
The review is two files in the imageList format, in the context's ``.kubenb`` folder, so it is
plain text a person can read, diff and commit, and the CLI, the magic and the widgets all see
the same choice:

- ``.kubenb/include``: images to carry although discovery did not list them (source ``review``);
- ``.kubenb/exclude``: images discovery listed that the build must leave out.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from kubenb.discover.hits import collect
from kubenb.discover.imagelist import read_image_list
from kubenb.errors import DiscoveryError
from kubenb.model import FoundImage, ImageList, ImageRef
from kubenb.reference import parse_reference

__all__ = ["EXCLUDE", "INCLUDE", "apply_review", "save_choice", "write_review"]

INCLUDE = ".kubenb/include"
EXCLUDE = ".kubenb/exclude"
_HEADER = "# written by the kubenb image-list review; one image per line, edit freely\n"


def apply_review(found: ImageList, context: Path) -> ImageList:
    """``found`` with the review of ``context`` applied (unchanged when there is none)."""
    included = _read(context, INCLUDE)
    excluded = {found.image for found in _read(context, EXCLUDE).images}
    if not included.images and not excluded:
        return found
    merged: dict[ImageRef, FoundImage] = {f.image: f for f in found.images}
    for extra in included.images:
        known = merged.get(extra.image)
        merged[extra.image] = extra if known is None else replace(known, locations=known.locations + extra.locations)
    kept = tuple(merged[ref] for ref in sorted(merged, key=str) if ref not in excluded)
    return replace(
        found,
        images=kept,
        potential=tuple(f for f in found.potential if f.image not in merged),
        test=tuple(f for f in found.test if f.image not in merged),
        invalid=found.invalid + included.invalid,
        excluded=tuple(merged[ref] for ref in sorted(merged, key=str) if ref in excluded),
    )


def write_review(context: Path, include: Iterable[str], exclude: Iterable[str]) -> list[Path]:
    """Write both files (each atomically; an empty choice removes its file); return the paths."""
    written = []
    for relative, images in ((INCLUDE, include), (EXCLUDE, exclude)):
        path = context / relative
        lines = sorted({str(parse_reference(image)) for image in images})
        if not lines:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(_HEADER + "".join(f"{line}\n" for line in lines))
        os.replace(temp, path)
        written.append(path)
    return written


def save_choice(context: Path, found: ImageList, chosen: Iterable[str]) -> list[Path]:
    """Make ``chosen`` the images a build of ``context`` carries, as a review.

    ``found`` is the list as shown (a review already applied): what discovery itself found and
    was not chosen is excluded, what was chosen but not found (a potential or test image, say)
    is included. Saving the same choice twice writes the same files.
    """
    wanted = {parse_reference(image) for image in chosen}
    discovered = {f.image for f in (*found.images, *found.excluded)
                  if any(location.source != "review" for location in f.locations)}
    return write_review(context, include=[str(r) for r in wanted - discovered],
                        exclude=[str(r) for r in discovered - wanted])


def _read(context: Path, relative: str) -> ImageList:
    path = context / relative
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ImageList()
    except (OSError, UnicodeDecodeError) as error:
        raise DiscoveryError(f"cannot read the review file: {error}", file=str(path),
                             hint="fix or delete it; it is plain text, one image per line") from None
    hits = read_image_list(text, relative)
    return collect(replace(hit, location=replace(hit.location, source="review")) for hit in hits)
