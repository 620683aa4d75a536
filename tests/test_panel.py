"""The build panel's numbers, the widgets' display protocol, and the notebook's looks, headless.

Numbers are checked by feeding the panel the events a parallel save sends (two images whose
blobs interleave), as a person reads them: each image's line, the overall bar, the summary.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path
from typing import Any

import ipywidgets
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from IPython.utils.capture import capture_output

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from kubenb.demo import DemoRegistry
from kubenb.display import human_size, kubefile_html
from kubenb.engine import BuildOptions, Engine
from kubenb.errors import Cancelled
from kubenb.events import BlobDone, BlobProgress, BlobsPlanned, BlobStarted, Event, ImageDone, ImageStarted
from kubenb.kubefile import parse
from kubenb.widgets import BuildPanel, ImageListReview, LoginForm
from kubenb.widgets.login import RETRY
from tests.support.registry import Registry

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
A, B = "docker.io/library/busybox:1.36", "docker.io/library/alpine:3.20"
MB = 1_000_000


def panel(tmp_path: Path) -> BuildPanel:
    return BuildPanel(BuildOptions(tag="x:1"), engine=Engine(tmp_path / "store"))


def parallel_save(target: BuildPanel) -> None:
    """Two images saved at once, B started last: A's bytes keep arriving after B's start."""
    for event in [
        BlobsPlanned(("sha256:a1", "sha256:a2", "sha256:b1"), (3 * MB, 1 * MB, 2 * MB)),
        ImageStarted(A, 1, 2), BlobStarted(A, "sha256:a1", 3 * MB), BlobProgress(A, "sha256:a1", 1 * MB),
        ImageStarted(B, 2, 2), BlobStarted(B, "sha256:b1", 2 * MB),
        BlobProgress(A, "sha256:a1", 2 * MB), BlobProgress(B, "sha256:b1", 500_000),
        BlobStarted(A, "sha256:a2", 1 * MB), BlobProgress(A, "sha256:a2", 1 * MB),
    ]:
        target._on_event(event)
    target._draw_bytes()


def test_parallel_pulls_credit_each_image_its_own_bytes(tmp_path: Path) -> None:
    """Before the fix every byte went to the image started last: B showed A's 4 MB of its 2 MB."""
    shown = panel(tmp_path)
    parallel_save(shown)
    assert shown.bytes.of(A) == (4 * MB, 4 * MB)
    assert shown.bytes.of(B) == (500_000, 2 * MB)
    lines = html.unescape(re.sub("<[^>]+>", "", shown.current.value.replace("<br>", "\n"))).splitlines()
    assert lines == [f"{A}: 4.0 MB of 4.0 MB", f"{B}: 500.0 kB of 2.0 MB"]


def test_the_overall_bar_is_the_sum_of_the_images_and_ends_full(tmp_path: Path) -> None:
    shown = panel(tmp_path)
    parallel_save(shown)
    assert shown.bytes_bar.max == shown.bytes.total == 6 * MB  # known from the plan, before the bytes
    assert shown.bytes_bar.value == shown.bytes.of(A)[0] + shown.bytes.of(B)[0] == 4_500_000
    assert shown.bytes_label.value == f"{human_size(4_500_000)} of {human_size(6 * MB)}"
    shown._on_event(BlobProgress(B, "sha256:b1", 2 * MB))  # a download started over: counted once
    shown._on_event(BlobDone(B, "sha256:b1", 2 * MB, fetched=True))
    for image in (A, B):
        shown._on_event(ImageDone(image, "sha256:m", 0))
    assert shown.bytes_bar.value == shown.bytes_bar.max == 6 * MB
    assert shown.bytes.of(B) == (2 * MB, 2 * MB)
    assert shown.current.value == "" and shown.progress.value == shown.progress.max == 2
    assert shown.images_label.value == "2 of 2 images"


def test_a_cancelled_build_says_cancelled_once_and_is_not_a_failure(tmp_path: Path) -> None:
    shown = panel(tmp_path)
    parallel_save(shown)
    shown._finish(None, Cancelled("the work was cancelled", hint="nothing half-written was kept"))
    assert shown.summary.value == "Cancelled"
    assert {shown.progress.bar_style, shown.bytes_bar.bar_style} == {"warning"}
    log = "".join(output.get("text", "") for output in shown.log_box.outputs)
    assert "cancelled" not in log.lower()
    assert "Cancelled" in repr(shown) and repr(shown).count("ancel") == 1


def test_the_log_box_follows_its_end(tmp_path: Path) -> None:
    """A reversed flex column: the browser keeps its end in view (the browser test sees it)."""
    shown = panel(tmp_path)
    layout = shown.log_view.layout
    assert (layout.display, layout.flex_flow, layout.overflow) == ("flex", "column-reverse", "auto")
    assert shown.log_view.children == (shown.log_box,) and shown.log_box.layout.flex == "0 0 auto"


# --- the display protocol ----------------------------------------------------------------------


def every_widget(tmp_path: Path, registry: str = "registry.example:5000") -> list[Any]:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    (context / "imageList").write_text("busybox:1.36\n")
    review = ImageListReview(Engine(tmp_path / "store").list_images(context), context)
    return [panel(tmp_path), review, LoginForm(registry)]


def test_each_widget_displays_itself_and_fits_in_a_users_vbox(tmp_path: Path) -> None:
    """Before the fix BuildPanel had no display form: JupyterLab showed <...BuildPanel at 0x...>."""
    for shown in every_widget(tmp_path):
        bundle = shown._repr_mimebundle_()
        assert bundle[WIDGET_VIEW]["model_id"] == shown.model_id
        assert " at 0x" not in bundle["text/plain"] and len(bundle["text/plain"]) < 200
        box = ipywidgets.VBox([ipywidgets.HTML("mine"), shown])
        assert box.children[1] is shown and shown.widget is shown


def test_display_of_the_widgets_sends_their_views(shell: InteractiveShell, tmp_path: Path) -> None:
    widgets = every_widget(tmp_path)
    with capture_output() as captured:
        for shown in widgets:
            display(shown)  # type: ignore[no-untyped-call]
    views = [output.data[WIDGET_VIEW]["model_id"] for output in captured.outputs]
    assert views == [shown.model_id for shown in widgets]


@pytest.fixture
def shell() -> InteractiveShell:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "kubenb")
    ip.run_line_magic("config", "KubenbMagics.full_traceback = False")
    ip.run_line_magic("config", "KubenbMagics.root = ''")
    ip.run_line_magic("config", "KubenbMagics.progress = 'auto'")
    return ip


def panels_shown(shell: InteractiveShell, cell: str) -> tuple[int, Any]:
    """How many build panels a cell shows: those it displays, plus its result if it is one."""
    with capture_output() as captured:
        outcome = shell.run_cell(cell)
    assert outcome.error_in_exec is None and outcome.error_before_exec is None, outcome
    views = [o for o in captured.outputs if "BuildPanel" in o.data.get("text/plain", "")]
    return len(views) + isinstance(outcome.result, BuildPanel), outcome.result


@pytest.mark.parametrize("flags", ["--build --progress widget", "--background"])
def test_the_magic_shows_the_build_panel_once(shell: InteractiveShell, tmp_path: Path, flags: str) -> None:
    """Before the fix ``--background`` displayed the panel and returned it: two panels."""
    context = tmp_path / "context"
    context.mkdir()
    count, result = panels_shown(shell, f"%%kubefile --context {context} --root {tmp_path / 'store'} "
                                        f"-t once:1 {flags}\nFROM scratch\n")
    if isinstance(result, BuildPanel):
        assert result.wait(timeout=120) is not None
    assert count == 1


def test_the_magic_shows_a_background_panel_kept_in_a_variable(shell: InteractiveShell, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    count, result = panels_shown(shell, f"%%kubefile --context {context} --root {tmp_path / 'store'} "
                                        "-t kept:1 --background --out running\nFROM scratch\n")
    assert result is None and count == 1
    assert shell.user_ns.pop("running").wait(timeout=120) is not None


# --- looks -------------------------------------------------------------------------------------


def test_kubefile_help_works_with_an_empty_body(shell: InteractiveShell, tmp_path: Path) -> None:
    """IPython refuses a cell magic with an empty body before calling it ("the cell body is empty")."""
    with capture_output() as captured:
        outcome = shell.run_cell("%%kubefile --help")
    assert outcome.success, outcome
    assert "usage: %%kubefile" in captured.stdout and "--build" in captured.stdout
    with capture_output() as captured:
        outcome = shell.run_cell(f"%%kubefile --context {tmp_path}\n\n")
    assert not outcome.success
    assert "the cell has no Kubefile" in str(outcome.error_in_exec)
    assert not (tmp_path / "Kubefile").exists()


def test_tables_use_jupyterlab_colours_only(tmp_path: Path) -> None:
    rendered = kubefile_html(parse("FROM scratch\nCOPY imageList manifests\n"))
    assert "class='kubenb-table'" in rendered and "var(--jp-ui-font-color1" in rendered
    assert "var(--jp-border-color1" in rendered and "var(--jp-rendermime-table-row-background" in rendered
    assert not re.search(r"#[0-9a-fA-F]{3,6}\b|rgba?\(", rendered)  # no colour of our own: themes decide
    assert "<td class='kubenb-number'>2</td><td><code>COPY imageList manifests</code></td>" in rendered


def test_a_refused_login_in_the_form_speaks_of_the_form(auth_registry: Registry, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    form = LoginForm(auth_registry.host, username=auth_registry.username or "")
    form.password.value = "not-the-password"
    form.button.click()
    status = html.unescape(form.status.value)
    assert "refused the credentials of user" in status and status.endswith(RETRY)
    assert "kubenb login" not in status and status.count(";") == 1


def test_the_jupyterlab_extension_is_installed_with_the_package() -> None:
    """pip puts data-files under the environment's share/jupyter/labextensions, where JupyterLab looks."""
    repo = Path(__file__).resolve().parents[1]
    extension = repo / "kubenb" / "labextension"
    metadata = json.loads((extension / "package.json").read_text())
    assert (extension / metadata["jupyterlab"]["_build"]["load"]).is_file()
    data_files = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    installed = {f"{target}/{Path(source).name}": source
                 for target, sources in data_files.items() for source in sources}
    target = "share/jupyter/labextensions/kubenb"
    shipped = {f"{target}/{path.relative_to(extension).as_posix()}": path.relative_to(repo).as_posix()
               for path in extension.rglob("*") if path.is_file()}
    assert installed == shipped


def test_a_real_save_announces_every_blob_with_its_size_before_fetching(tmp_path: Path) -> None:
    """The overall bar's end comes from BlobsPlanned: its sizes are those of the blobs fetched."""
    events: list[Event] = []
    shown = panel(tmp_path)
    with DemoRegistry(["busybox:1.36", "alpine:3.20"], padding=50_000) as demo:
        engine = Engine(tmp_path / "store", mirrors=demo.mirrors()).with_events(
            lambda event: (events.append(event), shown._on_event(event)))
        engine.save_images(tmp_path / "folder", [A, B])
    (planned,) = [event for event in events if isinstance(event, BlobsPlanned)]
    after = events[events.index(planned):]
    fetched = {event.digest: event.size for event in after if isinstance(event, BlobStarted)}
    assert dict(zip(planned.digests, planned.sizes, strict=True)) == fetched  # sizes known before the bytes
    assert shown.bytes.received == shown.bytes.total >= sum(planned.sizes)  # every byte, none twice
    for image in (A, B):
        received, expected = shown.bytes.of(image)
        assert received == expected > 50_000
