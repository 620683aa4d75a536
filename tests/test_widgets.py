"""The notebook widgets, headless: built in plain Python, clicked and ticked as a user would.

Assertions are on what a person sees (status and summary text, ticks, hidden rows) and on what
lands on disk (review files, the store, the credentials file); builds use a real registry.
"""

from __future__ import annotations

import html
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets
import pytest

from kubenb import list_images
from kubenb.demo import DemoRegistry
from kubenb.display import EventPrinter
from kubenb.engine import BuildOptions, Engine
from kubenb.errors import DiscoveryError
from kubenb.events import BlobProgress, BlobStarted, ImageDone, ImageSkipped, ImageStarted, Message, Retrying
from kubenb.store import Store
from kubenb.widgets import BuildPanel, ImageListReview, LoginForm
from kubenb.widgets.review import natural_key
from tests.support.registry import Registry

BUSYBOX = "docker.io/library/busybox:1.36"
ALPINE = "docker.io/library/alpine:3.20"
APP = "quay.io/example/app:1.0"
SIDECAR = "ghcr.io/example/sidecar:2.0"
MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  template:
    spec:
      containers:
      - name: app
        image: quay.io/example/app:1.0
        env:
        - {name: SIDECAR_IMAGE, value: "ghcr.io/example/sidecar:2.0"}
"""


def make_context(root: Path, kubefile: str, *, images: str = "busybox:1.36\nalpine:3.20\n",
                 manifest: str | None = None) -> Path:
    context = root / "context"
    context.mkdir()
    (context / "Kubefile").write_text(kubefile)
    (context / "imageList").write_text(images)
    if manifest is not None:
        (context / "app.yaml").write_text(manifest)
    return context


@pytest.fixture
def reviewed(tmp_path: Path) -> tuple[Path, ImageListReview]:
    context = make_context(tmp_path, "FROM scratch\nCOPY imageList manifests\nCOPY app.yaml manifests\n",
                           manifest=MANIFEST)
    return context, ImageListReview(list_images(context), context)


def drawn(review: ImageListReview) -> dict[str, Any]:
    """The rows drawn on screen, top to bottom: image name -> its slot (checkbox, kind, where cells)."""
    return {slot.checkbox.description: slot for slot in review.slots if slot.layout.display != "none"}


def many_images(root: Path, count: int, *, excluded: tuple[int, ...] = ()) -> tuple[Path, ImageListReview]:
    """A context whose imageList names ``service-0`` .. ``service-<count-1>``, last first, some left out."""
    names = [service(i) for i in range(count)]
    context = make_context(root, "FROM scratch\nCOPY imageList manifests\n",
                           images="".join(f"{name}\n" for name in reversed(names)))
    if excluded:
        Engine().save_choice(context, list_images(context), [n for i, n in enumerate(names) if i not in excluded])
    return context, ImageListReview(list_images(context), context)


def service(number: int) -> str:
    return f"registry.example.com/team/service-{number}:1.0"


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def log_text(panel: BuildPanel) -> str:
    return "".join(output.get("text", "") for output in panel.log_box.outputs)


def descendants(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from descendants(child)


# --- ImageListReview ---------------------------------------------------------------------------


def test_review_shows_a_ticked_row_per_image_and_unticked_opt_in_rows(reviewed: tuple[Path, ImageListReview]) -> None:
    _, review = reviewed
    assert {image: box.value for image, box in review.checkboxes.items()} == {
        ALPINE: True, BUSYBOX: True, APP: True, SIDECAR: False,
    }
    rows = drawn(review)
    assert list(rows) == [ALPINE, BUSYBOX, SIDECAR, APP]  # sorted by image name
    assert {image: slot.checkbox.value for image, slot in rows.items()} == {
        ALPINE: True, BUSYBOX: True, APP: True, SIDECAR: False,
    }
    assert all("kubenb-include" in slot.checkbox._dom_classes for slot in rows.values())
    assert review.chosen() == sorted([ALPINE, BUSYBOX, APP])
    (sidecar,) = [row for row in review.rows if row.image == SIDECAR]
    assert sidecar.kind == "potential"
    assert ">potential</span>" in rows[SIDECAR].kind.value
    assert "kubenb-kind-potential" in rows[SIDECAR].checkbox._dom_classes
    provenance = rows[APP].where.value
    assert "manifest" in provenance and "manifests/app.yaml:9" in provenance and "Deployment/app" in provenance
    assert [header.description for header in review.headers.values()] == ["image ▲", "kind", "where found"]
    assert review.pager.value == "4 shown" and review.status.value == "3 of 4 images included"
    assert review.save_button.description == "Save choice" and "kubenb-save" in review.save_button._dom_classes
    table = review._repr_html_()
    assert "<table" in table and SIDECAR in table and "potential" in table
    assert "application/vnd.jupyter.widget-view+json" in review._repr_mimebundle_()


def test_review_choice_is_saved_and_every_later_listing_honours_it(reviewed: tuple[Path, ImageListReview]) -> None:
    context, review = reviewed
    review.checkboxes[ALPINE].value = False
    drawn(review)[SIDECAR].checkbox.value = True  # a click on the drawn row
    assert not drawn(review)[ALPINE].checkbox.value  # the code's untick is drawn
    assert "(not saved)" in review.status.value
    frame = review.dataframe()
    assert frame["include"].dtype == bool
    include = dict(zip(frame["image"], frame["include"], strict=True))
    assert include == {ALPINE: False, BUSYBOX: True, APP: True, SIDECAR: True}
    assert set(frame["kind"]) == {"image", "potential"}

    written = review.save()
    assert sorted(written) == [context / ".kubenb" / "exclude", context / ".kubenb" / "include"]
    assert ".kubenb/include" in review.status.value and ".kubenb/exclude" in review.status.value
    assert ALPINE in (context / ".kubenb" / "exclude").read_text()
    assert SIDECAR in (context / ".kubenb" / "include").read_text()
    listed = list_images(context)
    assert [str(f.image) for f in listed.images] == sorted([BUSYBOX, APP, SIDECAR])
    assert [str(f.image) for f in listed.excluded] == [ALPINE]

    again = ImageListReview(listed, context)  # the review reopened shows the saved choice
    assert again.chosen() == sorted([BUSYBOX, APP, SIDECAR])
    assert [row.kind for row in again.rows if row.image == ALPINE] == ["excluded"]
    again.checkboxes[ALPINE].value = True
    again.save_button.click()
    assert not (context / ".kubenb" / "exclude").exists()
    assert [str(f.image) for f in list_images(context).images] == sorted([ALPINE, BUSYBOX, APP, SIDECAR])


def test_excluded_images_show_unticked_and_marked_excluded(tmp_path: Path) -> None:
    _, review = many_images(tmp_path, 5, excluded=(1, 3))
    rows = drawn(review)
    assert {image: slot.checkbox.value for image, slot in rows.items()} == {
        service(0): True, service(1): False, service(2): True, service(3): False, service(4): True}
    for number in (1, 3):
        slot = rows[service(number)]
        assert "kubenb-kind-excluded" in slot.checkbox._dom_classes
        assert ">excluded</span>" in slot.kind.value and "left out by an earlier review" in slot.kind.value
    review.sort_by("kind")
    assert list(drawn(review)) == [service(0), service(2), service(4), service(1), service(3)]


@pytest.mark.parametrize(("names", "ordered"), [
    (["service-105", "service-14", "service-2"], ["service-2", "service-14", "service-105"]),
    (["app:1.10", "app:1.9", "app:1.9.1"], ["app:1.9", "app:1.9.1", "app:1.10"]),
    (["B-2", "a-10", "a-9"], ["a-9", "a-10", "B-2"]),
    (["x10y", "x9z", "x9y"], ["x9y", "x9z", "x10y"]),
    (["v²", "v2", "v1"], ["v1", "v2", "v²"]),  # a superscript is not a number to compare
])
def test_natural_key_compares_numbers_inside_names_as_numbers(names: list[str], ordered: list[str]) -> None:
    assert sorted(names, key=natural_key) == ordered


def test_clicking_a_header_sorts_by_that_column_naturally_and_again_reverses(tmp_path: Path) -> None:
    _, review = many_images(tmp_path, 120)
    assert review.visible()[:4] == [service(0), service(1), service(2), service(3)]
    review.headers["image"].click()
    assert review.visible()[:3] == [service(119), service(118), service(117)]
    assert review.headers["image"].description == "image ▼"
    review.headers["where found"].click()  # imageList:1 is the last name written, service-119
    assert review.visible()[:3] == [service(119), service(118), service(117)]
    assert review.headers["where found"].description == "where found ▲"
    assert review.headers["image"].description == "image"
    review.headers["where found"].click()
    assert review.visible()[:2] == [service(0), service(1)]
    with pytest.raises(ValueError, match="no column 'size'"):
        review.sort_by("size")


def test_only_a_page_of_rows_is_drawn_and_paging_reaches_the_rest(tmp_path: Path) -> None:
    _, review = many_images(tmp_path, 120)
    assert len(review.slots) == 50 and len(review.visible()) == 50
    assert review.pager.value == "rows 1 to 50 of 120 shown" and review.prev_button.disabled
    review.next_button.click()
    review.next_button.click()
    assert review.visible() == [service(i) for i in range(100, 120)]
    assert review.pager.value == "rows 101 to 120 of 120 shown" and review.next_button.disabled
    assert [slot.layout.display for slot in review.slots[20:]] == ["none"] * 30
    drawn(review)[service(110)].checkbox.value = False
    assert service(110) not in review.chosen() and len(review.chosen()) == 119


def test_search_filters_rows_and_select_none_unticks_only_what_it_shows(tmp_path: Path) -> None:
    _, review = many_images(tmp_path, 300)
    review.next_button.click()
    review.search.value = "SERVICE-12"  # any case; back to the first page
    assert review.visible() == [service(12), *(service(i) for i in range(120, 130))]
    assert review.pager.value == "11 shown (300 in all)"
    review.select_none_button.click()
    assert not any(slot.checkbox.value for slot in drawn(review).values())
    assert review.status.value == "289 of 300 images included (not saved)"
    assert set(review.chosen()) == {service(i) for i in range(300)} - set(review.visible())

    review.search.value = "service-12 imagelist:288"  # every word must match
    assert review.visible() == [service(12)]
    review.search.value = "nothing-like-this"
    assert review.visible() == [] and review.pager.value == "no image matches the filter (300 in all)"
    review.search.value = ""
    assert review.pager.value == "rows 1 to 50 of 300 shown" and len(review.chosen()) == 289
    review.search.value = "service-12"
    review.select_all_button.click()
    assert len(review.chosen()) == 300


def test_filters_hide_rows_and_never_change_the_choice(reviewed: tuple[Path, ImageListReview]) -> None:
    _, review = reviewed
    assert list(review.source_filter.options) == ["all", "imageList", "manifest"]
    assert list(review.registry_filter.options) == ["all", "docker.io", "ghcr.io", "quay.io"]
    review.checkboxes[BUSYBOX].value = False
    before = review.chosen()
    review.source_filter.value = "imageList"
    assert review.visible() == [ALPINE, BUSYBOX]
    review.registry_filter.value = "quay.io"
    assert review.visible() == []
    review.source_filter.value = "all"
    assert review.visible() == [APP]
    assert review.chosen() == before
    review.registry_filter.value = "all"
    assert sorted(review.visible()) == sorted(review.checkboxes)
    assert review.chosen() == before


# --- BuildPanel ----------------------------------------------------------------------------------


def test_build_panel_builds_what_the_review_chose(tmp_path: Path) -> None:
    context = make_context(tmp_path, "FROM scratch\nCOPY imageList manifests\n")
    root = tmp_path / "store"
    review = ImageListReview(list_images(context), context)
    review.checkboxes[ALPINE].value = False
    with DemoRegistry(["busybox:1.36", "alpine:3.20"]) as source:
        options = BuildOptions(tag="widgets:v1", context=context, kubefile=context / "Kubefile",
                               mirrors=source.mirrors())
        panel = BuildPanel(options, engine=Engine(root), before_build=review.save)
        assert panel.build_button.description == "Build" and "kubenb-build" in panel.build_button._dom_classes
        assert panel.cancel_button.disabled
        panel.build_button.click()
        image = panel.wait(timeout=120)
    assert not panel.running and panel.error is None
    assert image is not None and panel.result == image
    assert panel.summary.value.startswith("Built widgets:v1")
    assert image.short_id in panel.summary.value and "1 image)" in panel.summary.value
    assert "kubenb-summary" in panel.summary._dom_classes
    assert panel.progress.max == 1 and panel.progress.value == 1
    assert panel.bytes.total > 0 and panel.bytes_bar.value == panel.bytes_bar.max == panel.bytes.total
    assert panel.bytes.of(BUSYBOX)[0] == panel.bytes.total and panel.bytes_bar.bar_style == "success"
    assert panel.current.value == ""  # no image is being saved any more
    assert "Step 2/2: COPY imageList manifests" in log_text(panel)
    assert set(json.loads(image.annotations["io.kubenb.images"])) == {BUSYBOX}
    assert not panel.build_button.disabled and panel.cancel_button.disabled
    assert (context / ".kubenb" / "exclude").read_text().endswith(f"{ALPINE}\n")


def test_cancel_stops_the_build_and_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    """The RUN prints forever: only the Cancel can end this build, so its ending at all proves
    the Cancel worked, with no guess at how fast the machine is."""
    kubefile = "FROM scratch\nRUN i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.1; done\n"
    context = make_context(tmp_path, kubefile)
    root = tmp_path / "store"
    panel = BuildPanel(BuildOptions(tag="slow:v1", context=context, kubefile=context / "Kubefile"),
                       engine=Engine(root))
    panel.build_button.click()
    assert panel.running and not panel.cancel_button.disabled and panel.build_button.disabled
    wait_for(lambda: "line-1" in log_text(panel))
    panel.cancel_button.click()
    assert panel.wait(timeout=120) is None and not panel.running
    assert panel.summary.value == "Cancelled"
    assert Store(root).images() == []
    assert Store(root).check() == []
    assert not panel.build_button.disabled and panel.cancel_button.disabled
    (context / "Kubefile").write_text("FROM scratch\nRUN echo second-build\n")  # Build again: a fresh token
    panel.build_button.click()
    assert panel.wait(timeout=120) is not None and panel.summary.value.startswith("Built slow:v1")
    assert "second-build" in log_text(panel) and "line-1" not in log_text(panel)


def test_the_panel_logs_each_event_as_the_terminal_prints_it(tmp_path: Path) -> None:
    """One renderer of events (display.event_line) for the CLI and the panel: the two cannot drift."""
    events = [Message("Step 1/2: FROM scratch"), ImageStarted(BUSYBOX, 1, 2), BlobStarted(BUSYBOX, "sha256:a", 2048),
              BlobProgress(BUSYBOX, "sha256:a", 2048), ImageDone(BUSYBOX, "sha256:b", 2048),
              ImageSkipped(ALPINE, "sha256:c"), Retrying("http://x/v2/", "503 Service Unavailable", 1, 0.5)]
    panel = BuildPanel(BuildOptions(tag="x:1"), engine=Engine(tmp_path / "store"))
    terminal = io.StringIO()
    with EventPrinter(terminal) as printer:
        for event in events:
            panel._on_event(event)
            printer(event)
    assert log_text(panel) == terminal.getvalue()
    assert terminal.getvalue().count("\n") == 5  # the two byte-level events only move counters


def test_a_failing_build_shows_its_one_line_error(tmp_path: Path) -> None:
    context = make_context(tmp_path, "FROM scratch\nRUN echo about to fail; exit 3\n")
    panel = BuildPanel(BuildOptions(tag="bad:v1", context=context, kubefile=context / "Kubefile"),
                       engine=Engine(tmp_path / "store"))
    panel.start()
    assert panel.wait(timeout=60) is None
    assert panel.error is not None
    summary = panel.summary.value
    assert summary == html.escape(str(panel.error))
    assert "RUN failed with exit status 3" in summary and "\n" not in summary
    assert "about to fail" in log_text(panel)


def test_an_error_before_the_build_is_shown_and_nothing_runs(tmp_path: Path) -> None:
    def broken() -> None:
        raise DiscoveryError("cannot write the review")

    context = make_context(tmp_path, "FROM scratch\n")
    panel = BuildPanel(BuildOptions(tag="x:1", context=context, kubefile=context / "Kubefile"),
                       engine=Engine(tmp_path / "store"), before_build=broken)
    panel.build_button.click()
    assert panel.wait(timeout=60) is None and not panel.running
    assert panel.summary.value == "cannot write the review"
    assert Store(tmp_path / "store").images() == []


# --- LoginForm -----------------------------------------------------------------------------------


def test_login_form_with_a_wrong_then_the_right_password(
    auth_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_file = tmp_path / "auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    assert auth_registry.username is not None and auth_registry.password is not None
    form = LoginForm(auth_registry.host, username=auth_registry.username)
    assert form.button.description == "Log in"

    form.password.value = "not-the-password"
    form.button.click()
    assert form.password.value == ""
    assert "not-the-password" not in form.status.value
    assert not form.status.value.startswith("Logged in")
    assert "refused the credentials of user" in form.status.value
    assert not auth_file.exists()

    form.password.value = auth_registry.password
    assert form.login() == auth_file
    assert form.status.value == f"Logged in to {auth_registry.host} as {auth_registry.username}"
    assert form.password.value == ""
    assert auth_registry.host in json.loads(auth_file.read_text())["auths"]
    for widget in descendants(form.widget):
        assert auth_registry.password not in json.dumps(widget.get_state(), default=str)
    assert isinstance(form.widget, ipywidgets.VBox)
