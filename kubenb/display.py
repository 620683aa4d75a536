"""Renderings of results (text for the CLI, HTML for notebooks), shared by every front end."""

from __future__ import annotations

import csv
import html
import io
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

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

__all__ = ["EventPrinter", "JsonView", "cluster_image_html", "cluster_image_text", "cluster_images_dataframe",
           "event_line", "human_size", "image_list_csv", "image_list_html", "image_list_plain", "image_list_table",
           "kubefile_html", "kubefile_text", "locations_text"]


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

_KIND_TITLES = (("images", "Images the build carries"), ("potential", "Potential images (not carried unless opted in)"),
                ("test", "Test images (Helm test hooks; not carried)"), ("excluded", "Left out by the review"))


def image_list_html(images: ImageList) -> str:
    """Static tables of an image list with provenance; readable with no kernel and no widgets."""
    parts = [f"<div class='kubenb-image-list'><p><b>{len(images.images)} image(s)</b></p>"]
    for kind, title in _KIND_TITLES:
        group: Sequence[FoundImage] = getattr(images, kind)
        if kind != "images" and not group:
            continue
        rows = "".join(
            f"<tr><td><code>{_e(str(found.image))}</code></td><td>{_e(_sources(found))}</td>"
            f"<td>{_e(locations_text(found.locations))}</td></tr>" for found in group)
        parts.append(f"<p>{_e(title)}: {len(group)}</p><table><thead><tr><th>image</th><th>source</th>"
                     f"<th>found in</th></tr></thead><tbody>{rows}</tbody></table>")
    if images.invalid:
        rows = "".join(f"<tr><td><code>{_e(i.written)}</code></td><td>{_e(str(i.location))}</td><td>{_e(i.reason)}"
                       "</td></tr>" for i in images.invalid)
        parts.append(f"<p>Invalid references: {len(images.invalid)}</p><table><thead><tr><th>written</th>"
                     f"<th>where</th><th>why</th></tr></thead><tbody>{rows}</tbody></table>")
    parts.extend(f"<p>warning: {_e(warning)}</p>" for warning in images.warnings)
    return "".join(parts) + "</div>"


def kubefile_html(kubefile: Kubefile) -> str:
    """The instructions with their line numbers, as the preview shows them."""
    rows = "".join(f"<tr><td>{i.line}</td><td><code>{_e(i.to_text())}</code></td></tr>" for i in kubefile.instructions)
    name = _e(str(kubefile.path)) if kubefile.path else "Kubefile"
    return (f"<div class='kubenb-kubefile'><p><b>{name}</b>: {len(kubefile.instructions)} instruction(s)</p>"
            f"<table><thead><tr><th>line</th><th>instruction</th></tr></thead><tbody>{rows}</tbody></table></div>")


def kubefile_text(kubefile: Kubefile) -> str:
    return "\n".join(f"{i.line:>4}  {i.to_text()}" for i in kubefile.instructions)


def cluster_image_text(image: ClusterImage) -> str:
    carried = len(image.carried_images)
    return f"{image.name} ({image.short_id}, {human_size(image.size)}, {carried} image(s), {image.platform or '?'})"


def cluster_image_html(image: ClusterImage) -> str:
    rows = "".join(f"<tr><td><code>{_e(ref)}</code></td><td><code>{_e(digest[:19])}</code></td></tr>"
                   for ref, digest in image.carried_images.items())
    return (f"<div class='kubenb-cluster-image'><p><b>{_e(image.name)}</b> <code>{image.short_id}</code> "
            f"{human_size(image.size)}, {_e(image.platform)}, created {_e(image.created)}</p>"
            f"<table><thead><tr><th>image</th><th>digest</th></tr></thead><tbody>{rows}</tbody></table></div>")


def _sources(found: FoundImage) -> str:
    return ", ".join(dict.fromkeys(location.source for location in found.locations))


def _e(text: str) -> str:
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
