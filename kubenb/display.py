"""Renderings of results (text for the CLI, HTML for notebooks), shared by every front end."""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from kubenb.events import (
    BlobProgress,
    BlobStarted,
    Event,
    ImageDone,
    ImageSkipped,
    ImageStarted,
    Message,
    Retrying,
)
from kubenb.model import ClusterImage, FoundImage, ImageList, Kubefile, Location, Place

if TYPE_CHECKING:
    import pandas
    from tqdm import tqdm

__all__ = ["TABLE_STYLE", "EventPrinter", "JsonView", "cluster_image_html", "cluster_image_text",
           "cluster_images_dataframe", "event_line", "html_table", "human_size", "image_list_csv", "image_list_html",
           "image_list_plain", "image_list_table", "kubefile_html", "kubefile_text", "locations_text"]


#: The heading of the images a review left out (``.kubenb/exclude``) in the text outputs.
EXCLUDED_HEADING = "Left out by the review (.kubenb/exclude; not carried)"


def image_list_plain(images: ImageList) -> str:
    """One normalised image per line: the imageList format, ready for ``save-images -f``. The
    images the review excluded follow as comments under their own heading, so the list still
    reads as what a build carries while saying what it leaves out."""
    text = "".join(f"{found.image}\n" for found in images.images)
    if images.excluded:
        text += f"# {EXCLUDED_HEADING}\n" + "".join(f"# {found.image}\n" for found in images.excluded)
    return text


def image_list_csv(images: ImageList) -> str:
    rows = images.rows()
    out = io.StringIO()
    import csv  # noqa: PLC0415  (only --output csv)

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
    if images.excluded:
        sections.append(f"{EXCLUDED_HEADING}:\n" + _table(images.excluded))
    if images.invalid:
        sections.append("Invalid references (a build stops on them unless --skip-invalid):\n" + "".join(
            f"  {invalid.written!r} at {invalid.location}: {invalid.reason}\n" for invalid in images.invalid
        ))
    return "\n".join(sections)


def locations_text(locations: Sequence[Location]) -> str:
    """One line per place: its kind when known (``ImageList.why`` gives it), its source, where."""
    return "".join(
        f"{location.kind} ({location.source}): {location}\n" if isinstance(location, Place)
        else f"{location.source}: {location}\n"
        for location in locations
    )


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


class EventPrinter:
    """Renders engine events for a terminal: a tqdm byte bar on a TTY, plain lines otherwise.

    Events arrive from worker threads, so rendering holds a lock. Used as a context manager
    so the bar is closed even when the engine fails.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.bar: tqdm[Any] | None = None
        if stream.isatty():
            from tqdm import tqdm  # noqa: PLC0415  (25 ms to import: only a terminal's bar needs it)

            self.bar = tqdm(total=0, unit="B", unit_scale=True, file=stream, desc="fetching", leave=False)

    def __enter__(self) -> EventPrinter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, event: Event) -> None:
        with self.lock:
            line = event_line(event)
            if self.bar is not None:
                self._update_bar(event)
                if line:
                    self.bar.write(line, file=self.stream)
            elif line:
                print(line, file=self.stream, flush=True)

    def _update_bar(self, event: Event) -> None:
        assert self.bar is not None
        if isinstance(event, BlobStarted):
            self.bar.total = (self.bar.total or 0) + event.size
            self.bar.refresh()
        elif isinstance(event, BlobProgress):
            self.bar.update(event.received)


def event_line(event: Event) -> str | None:
    """The line an event shows as, in a terminal and in a build panel's log alike; None for
    byte-level events, which only move a bar or a counter."""
    if isinstance(event, ImageStarted):
        return f"[{event.index}/{event.total}] {event.image}"
    if isinstance(event, ImageDone):
        return f"  saved {event.image} ({human_size(event.fetched_bytes)} fetched)"
    if isinstance(event, ImageSkipped):
        return f"  {event.image} is complete already"
    if isinstance(event, Retrying):
        return f"  retrying in {event.delay:.1f}s: {event.reason}"
    if isinstance(event, Message):
        return event.text
    return None


def human_size(size: int) -> str:
    """Bytes as people read them: ``512 B``, ``3.4 kB``, ``12.0 MB``, ``1.2 GB``."""
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


# -- HTML: what a notebook keeps, and what GitHub and nbviewer show ----------------------------

#: Tables drawn as JupyterLab draws its own, in whatever theme is on: every colour is one of
#: JupyterLab's CSS variables, and where none is defined (nbviewer, GitHub) the page's own
#: colours show through, never a colour of ours. Left-aligned: instructions and references are
#: read left to right (JupyterLab right-aligns numbers in DataFrames, which these are not).
#: Every rule starts at the ``kubenb-html`` wrapper: JupyterLab's own rules for rendered HTML
#: (``:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td``) must lose to ours.
TABLE_STYLE = """<style>
.kubenb-html table.kubenb-table {border-collapse: collapse; border: none; margin: 0.25em 0 0.75em;
  table-layout: auto; color: var(--jp-ui-font-color1, inherit); font-size: var(--jp-ui-font-size1, inherit)}
.kubenb-html table.kubenb-table th, .kubenb-html table.kubenb-table td {text-align: left; vertical-align: top;
  padding: 0.3em 0.8em; border: none; white-space: pre-line; max-width: none; line-height: normal}
.kubenb-html table.kubenb-table thead th {font-weight: bold; vertical-align: bottom;
  color: var(--jp-ui-font-color0, inherit);
  border-bottom: var(--jp-border-width, 1px) solid var(--jp-border-color1, currentColor)}
.kubenb-html table.kubenb-table tbody tr:nth-child(odd) {background: var(--jp-layout-color0, transparent)}
.kubenb-html table.kubenb-table tbody tr:nth-child(even) {
  background: var(--jp-rendermime-table-row-background, transparent)}
.kubenb-html table.kubenb-table tbody tr:hover {
  background: var(--jp-rendermime-table-row-hover-background, transparent)}
.kubenb-html table.kubenb-table td.kubenb-number {text-align: right; color: var(--jp-ui-font-color2, inherit);
  font-variant-numeric: tabular-nums}
.kubenb-html table.kubenb-table td code {background: none; padding: 0;
  color: var(--jp-content-font-color1, inherit);
  font-family: var(--jp-code-font-family, monospace); font-size: var(--jp-code-font-size, inherit)}
.kubenb-html .kubenb-caption {margin: 0.5em 0 0.1em; text-align: left; color: var(--jp-ui-font-color1, inherit)}
</style>"""


def html_table(head: Sequence[str], rows: Sequence[Sequence[str]], *, numbers: Sequence[int] = ()) -> str:
    """A table styled as JupyterLab's; ``rows`` hold HTML already escaped, ``numbers`` the
    columns aligned right."""
    header = "".join(f"<th>{_e(title)}</th>" for title in head)
    body = "".join("<tr>" + "".join(
        f"<td class='kubenb-number'>{cell}</td>" if column in numbers else f"<td>{cell}</td>"
        for column, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table class='kubenb-table'><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _caption(text: str) -> str:
    return f"<p class='kubenb-caption'>{text}</p>"


_KIND_TITLES = (("images", "Images the build carries"), ("potential", "Potential images (not carried unless opted in)"),
                ("test", "Test images (Helm test hooks; not carried)"), ("excluded", "Left out by the review"))


def image_list_html(images: ImageList) -> str:
    """Static tables of an image list with provenance; readable with no kernel and no widgets."""
    parts = [f"<div class='kubenb-html kubenb-image-list'>{TABLE_STYLE}"]
    for kind, title in _KIND_TITLES:
        group: Sequence[FoundImage] = getattr(images, kind)
        if kind != "images" and not group:
            continue
        rows = [(f"<code>{_e(str(found.image))}</code>", _e(_sources(found)),
                 _e(locations_text(found.locations).strip())) for found in group]
        parts.append(_caption(f"<b>{_e(title)}</b>: {len(group)}") + html_table(("image", "source", "found in"), rows))
    if images.invalid:
        rows = [(f"<code>{_e(i.written)}</code>", _e(str(i.location)), _e(i.reason)) for i in images.invalid]
        parts.append(_caption(f"<b>Invalid references</b>: {len(images.invalid)}")
                     + html_table(("written", "where", "why"), rows))
    parts.extend(_caption(f"warning: {_e(warning)}") for warning in images.warnings)
    return "".join(parts) + "</div>"


def kubefile_html(kubefile: Kubefile) -> str:
    """The instructions with their line numbers, as the preview shows them."""
    rows = [(str(i.line), f"<code>{_e(i.to_text())}</code>") for i in kubefile.instructions]
    name = _e(str(kubefile.path)) if kubefile.path else "Kubefile"
    return (f"<div class='kubenb-html kubenb-kubefile'>{TABLE_STYLE}"
            + _caption(f"<b>{name}</b>: {len(kubefile.instructions)} instruction(s)")
            + html_table(("line", "instruction"), rows, numbers=(0,)) + "</div>")


def kubefile_text(kubefile: Kubefile) -> str:
    return "\n".join(f"{i.line:>4}  {i.to_text()}" for i in kubefile.instructions)


def cluster_image_text(image: ClusterImage) -> str:
    carried = len(image.carried_images)
    return f"{image.name} ({image.short_id}, {human_size(image.size)}, {carried} image(s), {image.platform or '?'})"


def cluster_image_html(image: ClusterImage) -> str:
    rows = [(f"<code>{_e(ref)}</code>", f"<code>{_e(digest[:19])}</code>")
            for ref, digest in image.carried_images.items()]
    return (f"<div class='kubenb-html kubenb-cluster-image'>{TABLE_STYLE}"
            + _caption(f"<b>{_e(image.name)}</b> <code>{image.short_id}</code> {human_size(image.size)}, "
                       f"{_e(image.platform)}, created {_e(image.created)}")
            + html_table(("image", "digest"), rows) + "</div>")


def _sources(found: FoundImage) -> str:
    return ", ".join(dict.fromkeys(location.source for location in found.locations))


def _e(text: str) -> str:
    import html  # noqa: PLC0415  (only the notebook's rendering)

    return html.escape(text, quote=True)


# -- values a notebook keeps: data first, each with a short text for the terminal -------------

#: The columns of :func:`cluster_images_dataframe`: what ``kubenb images`` shows, and more.
CLUSTER_IMAGE_COLUMNS = ("name", "id", "created", "size", "platform", "images", "manifest_digest")


def cluster_images_dataframe(images: Sequence[ClusterImage]) -> pandas.DataFrame:
    """The store's images as a DataFrame (``x = %kubenb images``): one row per name, the size in
    bytes so it sorts and sums, ``images`` the number of images each carries."""
    import pandas  # noqa: PLC0415  (slow to import; only tables need it)

    rows = [{"name": i.name, "id": i.id, "created": i.created, "size": i.size, "platform": i.platform,
             "images": len(i.carried_images), "manifest_digest": i.manifest_digest} for i in images]
    return pandas.DataFrame(rows, columns=list(CLUSTER_IMAGE_COLUMNS))


class JsonView(dict[str, Any]):
    """A dict (``%kubenb inspect NAME``) that a notebook shows as a collapsible JSON tree.

    It stays a plain dict for code (``info["labels"]``); displayed, it offers
    ``application/json``, which JupyterLab draws folded, and one short line of text instead of
    the whole document, so a cell's output stays a few lines high.
    """

    def __init__(self, value: dict[str, Any], title: str = "") -> None:
        super().__init__(value)
        self.title = title

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"application/json": dict(self), "text/plain": self.summary()}

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's text for a dict subclass goes through its pretty-printer: the summary too."""
        printer.text(self.summary())

    def summary(self) -> str:
        """One line: the title and the keys, each with the size of what it holds."""
        parts = [f"{key} ({len(value)})" if isinstance(value, (dict, list)) else key for key, value in self.items()]
        return f"{self.title or 'JSON'}: {', '.join(parts)}"
