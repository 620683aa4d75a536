"""The image-list review: a person ticks which images a build carries, and the choice is saved.

Discovery guesses from what the files say; the person reviewing knows better. The choice lives
in Python (a set of image names, never mirrored elsewhere) and is saved as the context's review
files (``Engine.save_choice``), so the CLI, the magic and every later build honour it.

It is a table that stays usable at a thousand images: a header whose columns sort naturally
(``service-14`` before ``service-105``), a search box and filters, Select all / none acting on
the rows the filter shows, and a scroll area of bounded height, so the Build panel below stays
on screen. Only one page of rows exists as widgets (:data:`PAGE_ROWS` row slots, refilled as
the person pages, sorts or searches): a widget per image per cell would take seconds to draw.
Filters only hide rows: a hidden image keeps its tick, so narrowing the view can never silently
change what a build carries.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
from ipywidgets.widgets.widget_bool import CheckboxStyle
from ipywidgets.widgets.widget_string import HTMLStyle

from kubenb.engine import Engine
from kubenb.model import FoundImage, ImageList
from kubenb.widgets.base import Composite

if TYPE_CHECKING:
    import pandas

__all__ = ["ImageListReview", "natural_key"]

#: Every kind of row in the order shown; only ``image`` rows start ticked (they are what discovery found).
KINDS: tuple[str, ...] = ("image", "potential", "test", "excluded")
ALL = "all"
#: Row slots drawn at once; the rest is reached by paging, searching or sorting.
PAGE_ROWS = 50
#: Places listed per image; more are summed up (the dataframe has them all).
PLACES_SHOWN = 3
COLUMNS: tuple[str, ...] = ("image", "kind", "where found")
_NOTES = {
    "image": "found where a pod runs it: carried",
    "potential": "an image-looking string, not in a pod spec: carried only if ticked",
    "test": "used only by Helm test hooks: carried only if ticked",
    "excluded": "left out by an earlier review: carried only if ticked",
}
_DIGITS = re.compile(r"([0-9]+)")
_STYLE = """<style>
.kubenb-review .kubenb-review-table { border: 1px solid var(--jp-border-color2, #ccc); }
.kubenb-review .kubenb-review-head { position: sticky; top: 0; z-index: 1; margin: 0; border-radius: 0;
  text-align: left; padding: 0 0.5em; font-weight: bold; background: var(--jp-layout-color2, #eee);
  color: var(--jp-ui-font-color1, #000); }
.kubenb-review .kubenb-review-table > .widget-inline-hbox, .kubenb-review .kubenb-review-table > .widget-html {
  padding: 0 0.5em; }
.kubenb-review .kubenb-review-where { font-size: var(--jp-ui-font-size0, 0.85em); line-height: 1.3; }
.kubenb-review .kubenb-kind-excluded label, .kubenb-review .kubenb-review-kind-excluded { font-style: italic;
  color: var(--jp-ui-font-color2, #666); }
</style>"""


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key comparing the numbers inside names as numbers: ``service-14`` < ``service-105``."""
    return tuple((0, int(part)) if part.isascii() and part.isdigit() else (1, part.casefold())
                 for part in _DIGITS.split(text) if part)


@dataclass(frozen=True)
class _Row:
    """One image as the review shows it: what it is and why it is listed."""

    found: FoundImage
    kind: str

    @property
    def image(self) -> str:
        return str(self.found.image)

    @property
    def places(self) -> list[str]:
        """Each place the image was written: source, file:line and the object or chart."""
        return [f"{location.source}: {location}" for location in self.found.locations]

    def sort_key(self, column: str) -> tuple[Any, ...]:
        """The column's value first, the image name next, so equal cells keep a stable order."""
        if column == "kind":
            return (KINDS.index(self.kind), natural_key(self.image))
        if column == "where found":
            return (natural_key(" ".join(self.places)), natural_key(self.image))
        return (natural_key(self.image),)

    def matches(self, source: str, registry: str, words: list[str]) -> bool:
        """Whether the filters let the row show: a location with the source, every searched word."""
        sources = {location.source for location in self.found.locations}
        if not ((source == ALL or source in sources) and registry in (ALL, self.found.image.domain)):
            return False
        text = " ".join([self.image, self.kind, *self.places]).casefold()
        return all(word in text for word in words)


class _Slot:
    """One drawn row of the table, refilled with whichever image the current page puts there.

    The three cells share one ``Layout``, so hiding a spare slot hides the whole row; every slot
    shares one style per kind of cell. A slot is made with its first image already in it, and a
    refill sends one message per cell: the browser draws 50 rows from a few hundred messages.
    """

    def __init__(self, layout: Any, styles: tuple[Any, Any], row: _Row | None, ticked: bool) -> None:
        self.layout = layout
        self.image = row.image if row else None
        checkbox, kind, where = _cells(row, ticked)
        self.checkbox = widgets.Checkbox(indent=False, layout=layout, style=styles[0], **checkbox)
        self.kind = widgets.HTML(layout=layout, style=styles[1], **kind)
        self.where = widgets.HTML(layout=layout, style=styles[1], **where)
        layout.display = None if row else "none"

    @property
    def cells(self) -> tuple[Any, Any, Any]:
        return self.checkbox, self.kind, self.where

    def show(self, row: _Row | None, ticked: bool = False) -> None:
        """Fill the slot with ``row`` (None: hide it)."""
        self.image = row.image if row else None
        for cell, values in zip(self.cells, _cells(row, ticked), strict=True):
            with cell.hold_sync():
                for name, value in values.items():
                    setattr(cell, name, value)
        self.layout.display = None if row else "none"


def _cells(row: _Row | None, ticked: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The trait values of a row's three cells: include tick with the name, kind, where found."""
    if row is None:
        return {"value": False, "description": ""}, {"value": ""}, {"value": ""}
    kind = (f"<span class='kubenb-review-kind-{row.kind}' title='{html.escape(_NOTES[row.kind])}'>"
            f"{row.kind}</span>")
    return ({"value": ticked, "description": row.image, "tooltip": row.image,
             "_dom_classes": ("kubenb-include", f"kubenb-kind-{row.kind}")},
            {"value": kind},
            {"value": _places_html(row.places), "_dom_classes": ("kubenb-review-where",)})


class _Tick:
    """An image's include tick as code sets it (``review.checkboxes[image].value = False``)."""

    def __init__(self, review: ImageListReview, image: str) -> None:
        self._review = review
        self.image = image

    @property
    def value(self) -> bool:
        return self.image in self._review._chosen

    @value.setter
    def value(self, ticked: bool) -> None:
        self._review.tick(self.image, ticked)


class ImageListReview(Composite):
    """A table of images with include ticks, kinds and where each was found, and a Save button.

    ``found`` is the list as ``list_images(context)`` shows it (any earlier review applied), so
    saving compares the ticks with what discovery itself found.
    """

    def __init__(self, found: ImageList, context: Path, *, engine: Engine | None = None) -> None:
        self.found = found
        self.context = Path(context)
        self.engine = engine or Engine()
        self.rows = _rows(found)
        self._chosen = {row.image for row in self.rows if row.kind == "image"}
        self.checkboxes: Mapping[str, _Tick] = {row.image: _Tick(self, row.image) for row in self.rows}
        self.sort_column, self.descending, self.page = "image", False, 0
        self._syncing = False
        self._build_controls()
        self._shown = self._matching()
        self._build_table()
        super().__init__([
            widgets.HTML(_STYLE),
            widgets.HBox([self.search, self.select_all_button, self.select_none_button]),
            widgets.HBox([self.source_filter, self.registry_filter]),
            self.table,
            widgets.HBox([self.prev_button, self.next_button, self.pager]),
            widgets.HBox([self.save_button, self.status]),
        ])
        self.add_class("kubenb-review")
        self._refresh()

    # --- what the person chose ----------------------------------------------------------------

    def chosen(self) -> list[str]:
        """The images ticked, normalised and sorted: what a build will carry once saved."""
        return sorted(self._chosen)

    def tick(self, image: str, ticked: bool) -> None:
        """Include (or leave out) one image, whether or not its row is on screen."""
        if image not in self.checkboxes:
            raise KeyError(image)
        (self._chosen.add if ticked else self._chosen.discard)(image)
        self._draw_page()
        self._unsaved()

    def select(self, ticked: bool) -> None:
        """Tick (or untick) every row the filters show, on every page; hidden rows keep their tick."""
        for row in self._shown:
            (self._chosen.add if ticked else self._chosen.discard)(row.image)
        self._draw_page()
        self._unsaved()

    def dataframe(self) -> pandas.DataFrame:
        """Every row of every kind (one per image and place found) with a bool ``include`` column."""
        frame = self.found.to_dataframe(include=KINDS)
        frame["include"] = [image in self._chosen for image in frame["image"]]
        return frame

    def save(self) -> list[Path]:
        """Write the review files; the status names them so the person knows what changed."""
        written = self.engine.save_choice(self.context, self.found, self.chosen())
        names = ", ".join(str(path.relative_to(self.context)) for path in written)
        text = f"Saved {names}" if written else "Saved: every discovered image is carried (no review files)"
        self.status.value = f"{html.escape(text)} &mdash; {self._counts()}"
        return written

    # --- what the table shows -----------------------------------------------------------------

    def shown(self) -> list[str]:
        """The images the filters let through, in the table's order (every page)."""
        return [row.image for row in self._shown]

    def visible(self) -> list[str]:
        """The images drawn on the current page, top to bottom."""
        return [slot.image for slot in self.slots if slot.image is not None]

    def sort_by(self, column: str, *, descending: bool | None = None) -> None:
        """Sort by a column (naturally); without ``descending``, a second call on it reverses the order."""
        if column not in COLUMNS:
            raise ValueError(f"no column {column!r}; the columns are {', '.join(COLUMNS)}")
        if descending is None:
            descending = column == self.sort_column and not self.descending
        self.sort_column, self.descending, self.page = column, descending, 0
        self._refresh()

    def turn_page(self, step: int) -> None:
        self.page = min(max(self.page + step, 0), self._last_page())
        self._draw_page()

    # --- building the widgets -----------------------------------------------------------------

    def _build_controls(self) -> None:
        self.search = widgets.Text(placeholder="search image, kind or file", continuous_update=True,
                                   layout=widgets.Layout(width="24em"))
        self.search.add_class("kubenb-review-search")
        self.select_all_button = _button("Select all", "kubenb-select-all", "tick every image the filter shows")
        self.select_none_button = _button("Select none", "kubenb-select-none", "untick every image the filter shows")
        self.source_filter = widgets.Dropdown(description="Source", options=[ALL, *_sources(self.rows)], value=ALL)
        self.registry_filter = widgets.Dropdown(description="Registry", options=[ALL, *_registries(self.rows)],
                                                value=ALL)
        self.prev_button = _button("Previous", "kubenb-review-prev", "the previous rows", icon="chevron-left")
        self.next_button = _button("Next", "kubenb-review-next", "the next rows", icon="chevron-right")
        self.pager = widgets.HTML()
        self.pager.add_class("kubenb-review-count")
        self.save_button = _button("Save choice", "kubenb-save",
                                   "write .kubenb/include and .kubenb/exclude in the context", icon="save")
        self.status = widgets.HTML()
        self.status.add_class("kubenb-review-status")
        for control in (self.search, self.source_filter, self.registry_filter):
            control.observe(self._filtered, names="value")
        self.select_all_button.on_click(lambda _button: self.select(True))
        self.select_none_button.on_click(lambda _button: self.select(False))
        self.prev_button.on_click(lambda _button: self.turn_page(-1))
        self.next_button.on_click(lambda _button: self.turn_page(1))
        self.save_button.on_click(lambda _button: self.save())

    def _build_table(self) -> None:
        self.headers = {column: _button(column, "kubenb-review-head", f"sort by {column}") for column in COLUMNS}
        for column, header in self.headers.items():
            header.on_click(lambda _button, column=column: self.sort_by(column))
        styles = (CheckboxStyle(), HTMLStyle())
        self.slots = [_Slot(widgets.Layout(width="auto", min_width="0"), styles, row, row.image in self._chosen)
                      for row in self._shown[:min(PAGE_ROWS, len(self.rows))]]
        for slot in self.slots:
            slot.checkbox.observe(lambda change, slot=slot: self._clicked(slot, change["new"]), names="value")
        self.table = widgets.GridBox(
            [*self.headers.values(), *(cell for slot in self.slots for cell in slot.cells)],
            layout=widgets.Layout(grid_template_columns="minmax(20em, 3fr) 6em minmax(14em, 2fr)",
                                  grid_gap="0", max_height="24em", overflow="auto",
                                  align_items="flex-start"))
        self.table.add_class("kubenb-review-table")

    # --- keeping the drawing in step with the state -------------------------------------------

    def _filtered(self, _change: dict[str, Any]) -> None:
        self.page = 0
        self._refresh()

    def _refresh(self) -> None:
        """Filter and sort every row, then draw the current page; the header's arrow and the counts
        change last, so a browser showing them shows the rows they describe."""
        self._shown = self._matching()
        self.page = min(self.page, self._last_page())
        self._draw_page()
        for column, header in self.headers.items():
            arrow = (" ▼" if self.descending else " ▲") if column == self.sort_column else ""
            header.description = f"{column}{arrow}"
        self.status.value = self._counts()

    def _matching(self) -> list[_Row]:
        """The rows the filters let through, sorted by the chosen column."""
        words = self.search.value.casefold().split()
        source, registry = self.source_filter.value, self.registry_filter.value
        matching = [row for row in self.rows if row.matches(source, registry, words)]
        return sorted(matching, key=lambda row: row.sort_key(self.sort_column), reverse=self.descending)

    def _draw_page(self) -> None:
        start = self.page * PAGE_ROWS
        page = self._shown[start:start + PAGE_ROWS]
        with self._quiet():
            for index, slot in enumerate(self.slots):
                row = page[index] if index < len(page) else None
                slot.show(row, row is not None and row.image in self._chosen)
        self.pager.value = html.escape(_pager_text(start, len(page), len(self._shown), len(self.rows)))
        paged = len(self._shown) > PAGE_ROWS
        for button in (self.prev_button, self.next_button):
            button.layout.display = None if paged else "none"
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self._last_page()

    def _last_page(self) -> int:
        return max(len(self._shown) - 1, 0) // PAGE_ROWS

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Refilling the slots sets their ticks; those are not the person's clicks."""
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def _clicked(self, slot: _Slot, ticked: bool) -> None:
        if self._syncing or slot.image is None:
            return
        (self._chosen.add if ticked else self._chosen.discard)(slot.image)
        self._unsaved()

    def _counts(self) -> str:
        return f"{len(self._chosen)} of {len(self.rows)} images included"

    def _unsaved(self) -> None:
        self.status.value = f"{self._counts()} (not saved)"

    # --- displays -----------------------------------------------------------------------------

    def text(self) -> str:
        return f"ImageListReview({self.context}): {self._counts()}"

    def _repr_html_(self) -> str:
        """A static table for places where widgets do not render (nbconvert, GitHub)."""
        body = "".join(
            "<tr>"
            f"<td>{'&#10003;' if row.image in self._chosen else ''}</td><td><code>{html.escape(row.image)}</code></td>"
            f"<td>{html.escape(row.kind)}</td><td>{'<br>'.join(html.escape(place) for place in row.places)}</td>"
            "</tr>"
            for row in sorted(self.rows, key=lambda row: row.sort_key("image"))
        )
        return ("<table class='kubenb-review'><thead><tr><th>include</th><th>image</th><th>kind</th>"
                f"<th>found in</th></tr></thead><tbody>{body}</tbody></table>")


def _rows(found: ImageList) -> list[_Row]:
    """One row per image; an image listed under two kinds shows once, under the first."""
    rows: dict[str, _Row] = {}
    for kind in KINDS:
        for item in getattr(found, kind if kind != "image" else "images"):
            rows.setdefault(str(item.image), _Row(item, kind))
    return list(rows.values())


def _button(description: str, css: str, tooltip: str, icon: str = "") -> Any:
    button = widgets.Button(description=description, tooltip=tooltip, icon=icon,
                            layout=widgets.Layout(width="auto"))
    button.add_class(css)
    return button


def _pager_text(start: int, drawn: int, matching: int, total: int) -> str:
    if not matching:
        return f"no image matches the filter ({total} in all)"
    rows = f"{matching} shown" if drawn == matching else f"rows {start + 1} to {start + drawn} of {matching} shown"
    return rows if matching == total else f"{rows} ({total} in all)"


def _places_html(places: list[str]) -> str:
    lines = [html.escape(place) for place in places[:PLACES_SHOWN]]
    if len(places) > PLACES_SHOWN:
        lines.append(f"<i>and {len(places) - PLACES_SHOWN} more places</i>")
    return "<br>".join(lines)


def _sources(rows: list[_Row]) -> list[str]:
    return sorted({location.source for row in rows for location in row.found.locations})


def _registries(rows: list[_Row]) -> list[str]:
    return sorted({row.found.image.domain for row in rows})
