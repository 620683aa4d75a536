"""Text renderings of results, shared by the CLI and the notebook's text reprs."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from kubenb.model import FoundImage, ImageList, Location

__all__ = ["image_list_csv", "image_list_plain", "image_list_table", "locations_text"]


def image_list_plain(images: ImageList) -> str:
    """One normalised image per line: the imageList format, ready for ``save-images -f``."""
    return "".join(f"{found.image}\n" for found in images.images)


def image_list_csv(images: ImageList) -> str:
    rows = images.rows()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["image"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def image_list_table(images: ImageList) -> str:
    """Aligned columns: image, where it was first found, and how many other places."""
    sections = [_table(images.images)]
    if images.potential:
        sections.append("Potential images (not included; add them to manifests/imageList to carry them):\n"
                        + _table(images.potential))
    if images.test:
        sections.append("Images used only by Helm test hooks (not included):\n" + _table(images.test))
    if images.invalid:
        sections.append("Invalid references (a build stops on them unless --skip-invalid):\n" + "".join(
            f"  {invalid.written!r} at {invalid.location}: {invalid.reason}\n" for invalid in images.invalid
        ))
    return "\n".join(sections)


def locations_text(locations: Sequence[Location]) -> str:
    return "".join(f"{location.source}: {location}\n" for location in locations)


def _table(found: Sequence[FoundImage]) -> str:
    if not found:
        return "  (no images)\n"
    rows = [("IMAGE", "SOURCE", "FOUND IN")] + [
        (str(f.image), f.locations[0].source, str(f.locations[0]) + _more(f)) for f in found
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    return "".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}\n" for r in rows)


def _more(found: FoundImage) -> str:
    extra = len(found.locations) - 1
    return f" (+{extra} more)" if extra else ""
