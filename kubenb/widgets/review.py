"""The image-list review: a person ticks which images a build carries, and the choice is saved.

Discovery guesses from what the files say; the person reviewing knows better. The choice lives
in Python (the ``Checkbox`` values are read back, never mirrored elsewhere) and is saved as the
context's review files (``Engine.save_choice``), so the CLI, the magic and every later
build honour it. Filters only hide rows: a hidden image keeps its tick, so narrowing the view
can never silently change what a build carries.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from kubenb.engine import Engine
from kubenb.model import FoundImage, ImageList, Location
from kubenb.widgets.base import Composite

if TYPE_CHECKING:
    import pandas

__all__ = ["ImageListReview"]

#: Every kind of row in the order shown; only ``image`` rows start ticked (they are what discovery found).
KINDS: tuple[str, ...] = ("image", "potential", "test", "excluded")
ALL = "all"
_NOTES = {
    "image": "",
    "potential": "potential (an image-looking string, not in a pod spec)",
    "test": "test (used only by Helm test hooks)",
    "excluded": "excluded (left out by an earlier review)",
}


@dataclass(frozen=True)
class _Row:
    """One image as the review shows it: what it is, why it is listed, and its widgets."""

    found: FoundImage
    kind: str
    checkbox: Any
    box: Any

    @property
    def image(self) -> str:
        return str(self.found.image)

    def matches(self, source: str, registry: str) -> bool:
        """Whether the filters let the row show: any of its locations has the source."""
        sources = {location.source for location in self.found.locations}
        return (source == ALL or source in sources) and registry in (ALL, self.found.image.domain)


class ImageListReview(Composite):
    """A row per image with an include tick and where it was found, filters, and a Save button.

    ``found`` is the list as ``list_images(context)`` shows it (any earlier review applied), so
    saving compares the ticks with what discovery itself found.
    """

    def __init__(self, found: ImageList, context: Path, *, engine: Engine | None = None) -> None:
        self.found = found
        self.context = Path(context)
        self.engine = engine or Engine()
        self.rows = _rows(found)
        self.checkboxes: dict[str, Any] = {row.image: row.checkbox for row in self.rows}
        self.source_filter = widgets.Dropdown(description="Source", options=[ALL, *_sources(self.rows)], value=ALL)
        self.registry_filter = widgets.Dropdown(description="Registry", options=[ALL, *_registries(self.rows)],
                                                value=ALL)
        self.save_button = widgets.Button(description="Save choice", icon="save",
                                          tooltip="write .kubenb/include and .kubenb/exclude in the context")
        self.save_button.add_class("kubenb-save")
        self.status = widgets.HTML(value=self._counts())
        self.status.add_class("kubenb-review-status")
        for control in (self.source_filter, self.registry_filter):
            control.observe(self._filter, names="value")
        for checkbox in self.checkboxes.values():
            checkbox.observe(self._ticked, names="value")
        self.save_button.on_click(lambda _button: self.save())
        super().__init__([
            widgets.HBox([self.source_filter, self.registry_filter]),
            *(row.box for row in self.rows),
            widgets.HBox([self.save_button, self.status]),
        ])
        self.add_class("kubenb-review")

    def chosen(self) -> list[str]:
        """The images ticked, normalised and sorted: what a build will carry once saved."""
        return sorted(image for image, checkbox in self.checkboxes.items() if checkbox.value)

    def dataframe(self) -> pandas.DataFrame:
        """Every row of every kind (one per image and place found) with a bool ``include`` column."""
        frame = self.found.to_dataframe(include=KINDS)
        chosen = set(self.chosen())
        frame["include"] = [image in chosen for image in frame["image"]]
        return frame

    def save(self) -> list[Path]:
        """Write the review files; the status names them so the person knows what changed."""
        written = self.engine.save_choice(self.context, self.found, self.chosen())
        names = ", ".join(str(path.relative_to(self.context)) for path in written)
        text = f"Saved {names}" if written else "Saved: every discovered image is carried (no review files)"
        self.status.value = f"{html.escape(text)} &mdash; {self._counts()}"
        return written

    def _counts(self) -> str:
        return f"{len(self.chosen())} of {len(self.rows)} images included"

    def _ticked(self, _change: dict[str, Any]) -> None:
        self.status.value = f"{self._counts()} (not saved)"

    def _filter(self, _change: dict[str, Any]) -> None:
        source, registry = self.source_filter.value, self.registry_filter.value
        for row in self.rows:
            row.box.layout.display = None if row.matches(source, registry) else "none"

    def text(self) -> str:
        return f"ImageListReview({self.context}): {self._counts()}"

    def _repr_html_(self) -> str:
        """A static table for places where widgets do not render (nbconvert, GitHub)."""
        chosen = set(self.chosen())
        body = "".join(
            "<tr>"
            f"<td>{'&#10003;' if row.image in chosen else ''}</td><td><code>{html.escape(row.image)}</code></td>"
            f"<td>{html.escape(row.kind)}</td><td>{_provenance(row.found.locations)}</td>"
            "</tr>"
            for row in self.rows
        )
        return ("<table class='kubenb-review'><thead><tr><th>include</th><th>image</th><th>kind</th>"
                f"<th>found in</th></tr></thead><tbody>{body}</tbody></table>")


def _rows(found: ImageList) -> list[_Row]:
    """One row per image; an image listed under two kinds shows once, under the first."""
    rows: dict[str, _Row] = {}
    for kind in KINDS:
        for item in getattr(found, kind if kind != "image" else "images"):
            if str(item.image) not in rows:
                rows[str(item.image)] = _row(item, kind)
    return list(rows.values())


def _row(found: FoundImage, kind: str) -> _Row:
    checkbox = widgets.Checkbox(value=kind == "image", description=str(found.image), indent=False,
                                layout=widgets.Layout(width="auto", min_width="22em"))
    checkbox.add_class("kubenb-include")
    label = widgets.HTML(value=f"<i>{html.escape(_NOTES[kind])}</i>" if _NOTES[kind] else "")
    where = widgets.HTML(value=_provenance(found.locations))
    box = widgets.HBox([checkbox, label, where])
    box.add_class(f"kubenb-row-{kind}")
    return _Row(found, kind, checkbox, box)


def _provenance(locations: tuple[Location, ...]) -> str:
    """Each place the image was written: source, file:line and the object or chart."""
    return "<br>".join(html.escape(f"{location.source}: {location}") for location in locations)


def _sources(rows: list[_Row]) -> list[str]:
    return sorted({location.source for row in rows for location in row.found.locations})


def _registries(rows: list[_Row]) -> list[str]:
    return sorted({row.found.image.domain for row in rows})
