"""Raw findings and how they become an ``ImageList``: normalise once, dedupe, sort.

Every discoverer (imageList file, manifests, charts) only reports ``Hit`` records: what was
written, where, and how it counts. Normalising and grouping happen here, in one place, so the
rules are the same whatever the source.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kubenb.errors import InvalidReferenceError
from kubenb.model import FoundImage, ImageList, ImageRef, InvalidImage, Location
from kubenb.reference import parse_reference

__all__ = ["Hit", "Kind", "Steps", "collect"]

Kind = Literal["image", "potential", "test"]
#: Keys and list indexes from a document's root to a value (``("spec", "containers", 0, "image")``).
Steps = tuple[object, ...]


@dataclass(frozen=True)
class Hit:
    """One reference as written at one location.

    ``strict`` hits were written where an image must be (a pod spec, an imageList line): an
    invalid value there is reported as invalid. Other hits (custom resources, potential
    strings) were only image-looking, so an invalid value is simply not an image.
    """

    kind: Kind
    written: str
    location: Location
    strict: bool = True
    problem: str | None = None  # known to be invalid already (e.g. a number where text belongs)
    steps: Steps = ()  # where the value sits in its YAML document, for the parser to give its line
    #: For a piece of a multi-line value (a ConfigMap entry, an env list): the line within the
    #: value that holds it, as the parser of that value (or its line split) counted it.
    value_line: int | None = None


def collect(hits: Iterable[Hit], warnings: Iterable[str] = ()) -> ImageList:
    """Group hits by normalised image; an image found as needed is not also potential or test."""
    groups: dict[Kind, dict[ImageRef, list[Location]]] = {k: defaultdict(list) for k in ("image", "potential", "test")}
    invalid: list[InvalidImage] = []
    for hit in hits:
        if hit.problem is not None:
            invalid.append(InvalidImage(hit.written, hit.location, hit.problem))
            continue
        try:
            ref = parse_reference(hit.written)
        except InvalidReferenceError as error:
            if hit.strict:
                invalid.append(InvalidImage(hit.written, hit.location, error.reason))
            continue
        groups[hit.kind][ref].append(hit.location)
    needed = set(groups["image"])
    test = {ref: locs for ref, locs in groups["test"].items() if ref not in needed}
    potential = {ref: locs for ref, locs in groups["potential"].items() if ref not in needed and ref not in test}
    return ImageList(
        images=_found(groups["image"]),
        potential=_found(potential),
        test=_found(test),
        invalid=tuple(sorted(invalid, key=lambda i: (i.location.file, i.location.line or 0, i.written))),
        warnings=tuple(warnings),
    )


def _found(group: dict[ImageRef, list[Location]]) -> tuple[FoundImage, ...]:
    return tuple(
        FoundImage(image=ref, locations=tuple(dict.fromkeys(locations)))
        for ref, locations in sorted(group.items(), key=lambda item: str(item[0]))
    )
