"""The build panel, the preview, the review and the login form in a real JupyterLab (Chromium).

What a person sees: ``%%kubefile --build`` shows a live panel (not ``<kubenb.widgets...>``
text), once, with its numbers; the log keeps its last line in view; each front end is
photographed in JupyterLab's light and dark themes into ``test-artifacts/`` (the path is
printed) for a person to look at.
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubenb.demo import DemoRegistry
from tests.support.faulty import Fault, FaultyProxy, Trickle
from tests.support.jupyter import ARTIFACTS, JupyterLab, JupyterLabPage, write_notebook

pytestmark = [pytest.mark.jupyter, pytest.mark.browser, pytest.mark.registry, pytest.mark.timeout(600)]

BUILD_TIMEOUT_MS = 120_000
WIDGET_TIMEOUT_MS = 30_000
IMAGES = ["busybox:1.36", "alpine:3.20"]
LINES = 60
KUBEFILE = ("FROM scratch\nCOPY imageList manifests\n"
            f"RUN i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); echo log-line-$i; done\n")
LABEXTENSION = Path(__file__).resolve().parents[1] / "kubenb" / "labextension"
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    root = tmp_path_factory.mktemp("kubenb-root")
    lab = JupyterLab(tmp_path_factory.mktemp("notebooks"), tmp_path_factory.mktemp("jupyter-home"),
                     env={"KUBENB_ROOT": str(root)})
    # where pip puts it (share/jupyter/labextensions/kubenb), here on the lab's own JUPYTER_PATH
    shutil.copytree(LABEXTENSION, Path(lab.env["JUPYTER_PATH"]) / "labextensions" / "kubenb")
    with lab as running:
        yield running


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoRegistry]:
    with DemoRegistry(IMAGES, padding=1_500_000) as running:  # a few MB, so the byte bars move
        yield running


def make_context(lab: JupyterLab, name: str) -> Path:
    context = lab.root_dir / name
    context.mkdir()
    (context / "imageList").write_text("".join(f"{image}\n" for image in IMAGES))
    return context


def magic_line(context: Path, demo: DemoRegistry, tag: str, flags: str = "") -> str:
    mirrors = " ".join(f"--registry-mirror {domain}={demo.host}" for domain in ("docker.io",))
    return f"%%kubefile --context {context} -t {tag} {mirrors} {flags}".rstrip()


def output_of(page: Any, cell: int) -> Any:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").nth(cell).locator(".jp-Cell-outputArea")


def last_line_in_view(page: Any, log: Any) -> bool:
    """Whether the log box overflows and its last line lies inside the box's visible area."""
    return bool(log.evaluate("""(box, last) => {
      const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
      let node = null;
      while (walker.nextNode()) { if (walker.currentNode.textContent.includes(last)) node = walker.currentNode; }
      if (!node || box.scrollHeight <= box.clientHeight) return false;
      const range = document.createRange();
      const at = node.textContent.indexOf(last);
      range.setStart(node, at); range.setEnd(node, at + last.length);
      const line = range.getBoundingClientRect(), view = box.getBoundingClientRect();
      return line.top >= view.top - 1 && line.bottom <= view.bottom + 1;
    }""", f"log-line-{LINES}"))


def test_kubefile_build_shows_one_live_panel_whose_log_follows_its_end(
        lab: JupyterLab, page: Any, demo: DemoRegistry) -> None:
    context = make_context(lab, "build-context")
    cells = ["%load_ext kubenb", f"{magic_line(context, demo, 'panel:1', '--build')}\n{KUBEFILE}",
             f"{magic_line(context, demo, 'panel:2', '--background')}\n{KUBEFILE}"]
    write_notebook(lab.root_dir / "panel.ipynb", cells)
    notebook = JupyterLabPage(page, lab).open("panel.ipynb")
    notebook.run_all(timeout=BUILD_TIMEOUT_MS / 1000)
    assert not notebook.errors(), notebook.errors()
    assert "<kubenb.widgets" not in notebook.output_text() and " at 0x" not in notebook.output_text()

    for cell, tag in ((1, "panel:1"), (2, "panel:2")):  # --build, then --background (the build cache answers)
        panels = output_of(page, cell).locator(".kubenb-build-panel")
        panels.first.wait_for(timeout=WIDGET_TIMEOUT_MS)
        assert panels.count() == 1, f"cell {cell} shows {panels.count()} panels"
        panels.locator(".kubenb-summary", has_text=f"Built {tag}").wait_for(timeout=BUILD_TIMEOUT_MS)
    shown = output_of(page, 1).locator(".kubenb-build-panel")
    bytes_text = shown.locator(".kubenb-bytes").inner_text()
    received, _, total = bytes_text.partition(" of ")
    assert received == total and total.endswith("MB"), bytes_text
    log = shown.locator(".kubenb-log")
    log.locator(f"text=log-line-{LINES}").first.wait_for(state="attached", timeout=WIDGET_TIMEOUT_MS)
    assert last_line_in_view(page, log), "the log box does not show its last line"
    shoot(page, shown, "panel-built.png")


def shoot(page: Any, target: Any, name: str) -> Path:
    """A screenshot of one front end; the folder is printed so a person can look at them."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    target.scroll_into_view_if_needed()
    target.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def table_looks(code: Any) -> dict[str, str]:
    """How a cell's code of a kubenb table is drawn, and the theme's text colour to compare with."""
    looks: dict[str, str] = code.evaluate("""(code) => {
      const probe = document.createElement('span');
      probe.style.color = 'var(--jp-content-font-color1)';
      code.parentElement.appendChild(probe);
      const theme = getComputedStyle(probe).color;
      probe.remove();
      return {align: getComputedStyle(code.parentElement).textAlign, colour: getComputedStyle(code).color,
              background: getComputedStyle(code).backgroundColor, theme};
    }""")
    return looks


def set_theme(page: Any, theme: str) -> None:
    page.evaluate("(name) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: name})",
                  THEMES[theme])
    page.wait_for_function("(light) => document.body.dataset.jpThemeLight === light",
                           arg="true" if theme == "light" else "false", timeout=WIDGET_TIMEOUT_MS)
    page.wait_for_timeout(500)  # the theme's stylesheet applied


def test_screenshots_of_each_front_end_in_light_and_dark(lab: JupyterLab, page: Any, demo: DemoRegistry) -> None:
    context = make_context(lab, "looks-context")
    password = secrets.token_urlsafe(12)
    with DemoRegistry(username="student", password=password) as private:
        looks = KUBEFILE.replace("log-line", "looks-line")  # not the first test's steps: no build cache
        cells = ["%load_ext kubenb",
                 f"{magic_line(context, demo, 'looks:1')}\n{looks}",
                 f"%kubenb login {private.host} --insecure-registry",
                 f"{magic_line(context, demo, 'looks:1', '--progress none')}\n{looks}"]  # static tables
        write_notebook(lab.root_dir / "looks.ipynb", cells)
        notebook = JupyterLabPage(page, lab).open("looks.ipynb")
        notebook.run_all()
        assert not notebook.errors(), notebook.errors()
        preview, form = output_of(page, 1), output_of(page, 2).locator(".kubenb-login-form")
        preview.locator(".kubenb-review").wait_for(timeout=WIDGET_TIMEOUT_MS)
        preview.locator(".kubenb-build").click()
        preview.locator(".kubenb-summary", has_text="Built looks:1").wait_for(timeout=BUILD_TIMEOUT_MS)
        form.locator("input[type=text]").fill("student")
        form.locator("input[type=password]").fill("not-the-password")
        form.locator(".kubenb-login").click()
        status = form.locator(".kubenb-login-status", has_text="refused")
        status.wait_for(timeout=WIDGET_TIMEOUT_MS)
        assert "kubenb login" not in status.inner_text() and "Log in again" in status.inner_text()
        colours = {}
        for theme in THEMES:
            set_theme(page, theme)
            colours[theme] = table_looks(output_of(page, 3).locator("table.kubenb-table td code").first)
            shoot(page, preview, f"preview-{theme}.png")
            shoot(page, preview.locator(".kubenb-kubefile").first, f"instructions-{theme}.png")
            shoot(page, preview.locator(".kubenb-review"), f"review-{theme}.png")
            shoot(page, preview.locator(".kubenb-build-panel"), f"panel-{theme}.png")
            shoot(page, form, f"login-{theme}.png")
            shoot(page, output_of(page, 3), f"tables-{theme}.png")
        set_theme(page, "light")
    print(f"screenshots in {ARTIFACTS}")
    for theme, looks in colours.items():  # JupyterLab's rules for rendered HTML do not win over ours
        assert looks["align"] == "left" and looks["background"] == "rgba(0, 0, 0, 0)", (theme, looks)
        assert looks["colour"] == looks["theme"], (theme, looks)
    assert colours["light"]["colour"] != colours["dark"]["colour"]


CELL_LANGUAGE = """(index) => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
  return cell.model.mimeType;
}"""


def test_a_kubefile_cell_is_highlighted_as_a_kubefile_not_as_python(lab: JupyterLab, page: Any) -> None:
    """kubenb's JupyterLab extension gives %%kubefile cells the Dockerfile syntax JupyterLab knows."""
    cells = ["x = 1  # python", "%%kubefile --help\nFROM scratch\nRUN while true; do echo; done\n"]
    write_notebook(lab.root_dir / "highlight.ipynb", cells)
    JupyterLabPage(page, lab).open("highlight.ipynb")
    page.wait_for_function(f"() => ({CELL_LANGUAGE})(1) === 'text/x-dockerfile'", timeout=WIDGET_TIMEOUT_MS)
    assert page.evaluate(CELL_LANGUAGE, 0) == "text/x-ipython"
    editors = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .cm-content")
    kubefile, python = editors.nth(1), editors.nth(0)
    python.locator("span", has_text=re.compile("^#")).first.wait_for(timeout=WIDGET_TIMEOUT_MS)
    kubefile.locator("span", has_text=re.compile("^RUN$")).first.wait_for(timeout=WIDGET_TIMEOUT_MS)
    assert kubefile.locator("span", has_text=re.compile("^while$")).count() == 0  # a Python keyword, not here
    for theme in THEMES:
        set_theme(page, theme)
        shoot(page, page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"), f"kubefile-cell-{theme}.png")
    set_theme(page, "light")
    # the magic line removed: the cell is Python again
    page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets[1].model.sharedModel
                        .setSource('while True: break')""")
    page.wait_for_function(f"() => ({CELL_LANGUAGE})(1) === 'text/x-ipython'", timeout=WIDGET_TIMEOUT_MS)


def test_cancel_in_the_panel_shows_cancelled_once_not_a_failure(lab: JupyterLab, page: Any) -> None:
    """The RUN prints forever: only the Cancel button ends this build."""
    context = lab.root_dir / "cancel-context"
    context.mkdir()
    forever = "FROM scratch\nRUN i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.1; done\n"
    cell = f"%%kubefile --context {context} -t cancel:1 --background\n{forever}"
    write_notebook(lab.root_dir / "cancel.ipynb", ["%load_ext kubenb", cell])
    notebook = JupyterLabPage(page, lab).open("cancel.ipynb")
    notebook.run_all()
    shown = output_of(page, 1).locator(".kubenb-build-panel")
    shown.locator(".kubenb-log", has_text="tick-3").wait_for(timeout=WIDGET_TIMEOUT_MS)
    shown.locator(".kubenb-cancel").click()
    summary = shown.locator(".kubenb-summary", has_text="Cancelled")
    summary.wait_for(timeout=WIDGET_TIMEOUT_MS)
    assert summary.inner_text().strip() == "Cancelled"
    text = output_of(page, 1).inner_text()
    assert text.lower().count("cancel") == 2, text  # the Cancel button's label and the summary, nothing else
    assert shown.locator(".progress-bar-danger").count() == 0  # not drawn as a failure
    assert not notebook.errors(), notebook.errors()
    shoot(page, shown, "panel-cancelled.png")


def image_lines(shown: Any) -> dict[str, tuple[str, str]]:
    """The panel's per-image lines: image -> (received, expected) as printed."""
    lines = shown.locator(".kubenb-current").inner_text().strip().splitlines()
    parsed = {}
    for line in lines:
        image, _, numbers = line.partition(": ")
        received, _, expected = numbers.partition(" of ")
        parsed[image] = (received, expected)
    return parsed


def test_parallel_pulls_show_each_image_its_own_bytes(lab: JupyterLab, page: Any, demo: DemoRegistry) -> None:
    """A slow link (each blob trickles in) keeps both images in flight at once; before the fix
    the image started last showed every byte: "3.0 MB of 1.5 MB"."""
    context = make_context(lab, "parallel-context")
    with FaultyProxy(demo.url) as slow:
        slow.add(Fault(path="/blobs/", action=Trickle(pieces=60, pause=0.05), times=20))
        kubefile = "FROM scratch\nLABEL test=parallel\nCOPY imageList manifests\n"
        cell = f"%%kubefile --context {context} -t parallel:1 --registry-mirror docker.io={slow.host} --background"
        write_notebook(lab.root_dir / "parallel.ipynb", ["%load_ext kubenb", f"{cell}\n{kubefile}"])
        JupyterLabPage(page, lab).open("parallel.ipynb").run_all()
        shown = output_of(page, 1).locator(".kubenb-build-panel")
        page.wait_for_function("""() => {
          const line = document.querySelector('.kubenb-current');
          return line && line.innerText.split('\\n').filter(l => / of /.test(l)).length === 2;
        }""", timeout=BUILD_TIMEOUT_MS)
        during = image_lines(shown)
        shoot(page, shown, "panel-parallel.png")
        shown.locator(".kubenb-summary", has_text="Built parallel:1").wait_for(timeout=BUILD_TIMEOUT_MS)
    assert set(during) == {"docker.io/library/alpine:3.20", "docker.io/library/busybox:1.36"}, during
    for image, (received, expected) in during.items():
        assert expected == "1.5 MB", (image, received, expected)  # its own layer, not both
        assert float(received.split()[0]) * (1000 if received.endswith("MB") else 1) <= 1500, (image, received)
    assert shown.locator(".kubenb-bytes").inner_text() == "3.0 MB of 3.0 MB"
