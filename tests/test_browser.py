"""Widgets in a real JupyterLab, driven by headless Chromium (Playwright): ticks and clicks go
through the DOM, the kernel does the work, and the result is checked with the CLI.

JupyterLab and Chromium start once for the module; each test opens its own notebook page.
Screenshots land in ``test-artifacts/`` at the repo root.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kubenb.demo import DemoRegistry
from tests.support.faulty import Fault, FaultyProxy, Hold
from tests.support.jupyter import JupyterLab, JupyterLabPage, screenshot, write_notebook

pytestmark = [pytest.mark.jupyter, pytest.mark.browser, pytest.mark.timeout(420)]

BUILD_TIMEOUT_MS = 90_000
WIDGET_TIMEOUT_MS = 30_000



@pytest.fixture(scope="module")
def kubenb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kubenb-root")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, kubenb_root: Path) -> Iterator[JupyterLab]:
    notebooks = tmp_path_factory.mktemp("notebooks")
    home = tmp_path_factory.mktemp("jupyter-home")
    with JupyterLab(notebooks, home, env={"KUBENB_ROOT": str(kubenb_root)}) as running:
        yield running


def test_jupyterlab_kernel_is_this_venv(lab: JupyterLab) -> None:
    specs = lab.kernel_specs()
    assert specs["default"] == "python3"
    assert specs["kernelspecs"]["python3"]["spec"]["argv"][0] == sys.executable


SMOKE_CELL = """\
import sys
import ipywidgets as widgets
print("KERNEL-PYTHON", sys.executable)
include = widgets.Checkbox(value=True, description="include docker.io/library/alpine:3.20")
include.add_class("smoke-include")
summary = widgets.HTML("waiting")
summary.add_class("smoke-summary")
go = widgets.Button(description="Go")
go.add_class("smoke-go")
go.on_click(lambda _: setattr(summary, "value", f"clicked, include={include.value}"))
widgets.VBox([include, go, summary])
"""


def test_jupyterlab_renders_and_drives_a_widget(lab: JupyterLab, page: Any) -> None:
    write_notebook(lab.root_dir / "smoke.ipynb", ["print('first cell')", SMOKE_CELL])
    notebook = JupyterLabPage(page, lab).open("smoke.ipynb")
    notebook.run_all()
    assert not notebook.errors(), notebook.errors()
    assert f"KERNEL-PYTHON {sys.executable}" in notebook.output_text()

    include = page.locator(".smoke-include").filter(has_text="alpine")
    include.wait_for(timeout=WIDGET_TIMEOUT_MS)
    checkbox = include.locator("input[type=checkbox]")
    assert checkbox.is_checked()
    checkbox.click()
    assert not checkbox.is_checked()
    page.locator(".smoke-go").click()
    page.locator(".smoke-summary", has_text="clicked").wait_for(timeout=WIDGET_TIMEOUT_MS)
    screenshot(page, "browser-smoke.png")
    assert "include=False" in page.locator(".smoke-summary").inner_text()


KUBEFILE = "FROM scratch\nCOPY imageList manifests\n"
IMAGES = ["busybox:1.36", "alpine:3.20"]


@pytest.fixture
def demo_registry() -> Iterator[DemoRegistry]:
    with DemoRegistry(IMAGES) as running:
        yield running


def inspect(root: Path, name: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "kubenb", "--root", str(root), "inspect", name],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"kubenb inspect {name} failed: {result.stderr}"
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def image_annotation(data: dict[str, Any]) -> dict[str, str]:
    images = data["annotations"]["io.kubenb.images"]
    parsed: dict[str, str] = json.loads(images) if isinstance(images, str) else images
    return parsed


@pytest.mark.registry
def test_kubefile_review_widget_builds_only_ticked_images(
        lab: JupyterLab, page: Any, kubenb_root: Path, demo_registry: DemoRegistry) -> None:
    context = lab.root_dir / "context"
    context.mkdir()
    (context / "Kubefile").write_text(KUBEFILE)
    (context / "imageList").write_text("".join(f"{image}\n" for image in IMAGES))
    cell = f"%%kubefile --context {context} -t demo:1 --registry-mirror docker.io={demo_registry.host}\n{KUBEFILE}"
    write_notebook(lab.root_dir / "build.ipynb", ["%load_ext kubenb", cell])

    notebook = JupyterLabPage(page, lab).open("build.ipynb")
    notebook.run_all()
    assert not notebook.errors(), notebook.errors()
    output = notebook.output_text()
    assert "FROM" in output and "COPY" in output, output

    includes = page.locator(".kubenb-include")
    includes.first.wait_for(timeout=WIDGET_TIMEOUT_MS)
    assert includes.count() == 2, includes.all_inner_texts()
    alpine = includes.filter(has_text="docker.io/library/alpine:3.20").locator("input[type=checkbox]")
    busybox = includes.filter(has_text="docker.io/library/busybox:1.36").locator("input[type=checkbox]")
    assert alpine.is_checked() and busybox.is_checked()
    alpine.click()
    assert not alpine.is_checked()

    page.locator(".kubenb-build").click()
    summary = page.locator(".kubenb-summary")
    try:
        summary.filter(has_text="Built").wait_for(timeout=BUILD_TIMEOUT_MS)
    finally:
        screenshot(page, "browser-build.png")
    assert "Built demo:1" in summary.inner_text()

    images = image_annotation(inspect(kubenb_root, "demo:1"))
    assert any("busybox" in image for image in images), images
    assert not any("alpine" in image for image in images), images


# -- a kernel interrupt during a foreground build ----------------------------------------------

INTERRUPT_IMAGES = ["busybox:1.36", "alpine:3.20", "registry.k8s.io/pause:3.9"]
#: After the interrupt, the held downloads are let go: a build that went on regardless would
#: name its image within seconds (the issue saw one named 25 s after an interrupt, on a slow link).
GRACE_S = 5


def kubenb_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def demo_serves(host: str) -> bool:
    try:
        return requests.get(f"http://{host}/v2/", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.mark.registry
def test_interrupting_a_foreground_build_stops_it_and_the_demo_registry_survives(
        lab: JupyterLab, page: Any, kubenb_root: Path) -> None:
    """The notebook starts its own DemoRegistry (in the kernel, as a teaching notebook does);
    the test's proxy in front of it holds every blob download, so the build cannot end by
    itself; the stop button interrupts the kernel (SIGINT to its process group)."""
    context = lab.root_dir / "interrupt-context"
    context.mkdir()
    (context / "imageList").write_text("".join(f"{image}\n" for image in INTERRUPT_IMAGES))
    host_file = lab.root_dir / "interrupt-demo-host.txt"
    held = Hold()
    with FaultyProxy("http://127.0.0.1:9") as proxy:  # its upstream is the kernel's registry, once started
        proxy.add(Fault(r"/blobs/", held, times=10_000, method="GET"))
        mirrors = " ".join(f"--registry-mirror {domain}={proxy.host}" for domain in ("docker.io", "registry.k8s.io"))
        write_notebook(lab.root_dir / "interrupt.ipynb", [
            "%load_ext kubenb\nfrom pathlib import Path\nfrom kubenb.demo import DemoRegistry\n"
            f"demo = DemoRegistry({INTERRUPT_IMAGES!r}).start()\n_ = Path({str(host_file)!r}).write_text(demo.host)",
            f"%%kubefile --context {context} -t stopped:1 --build {mirrors}\nFROM scratch\nCOPY imageList manifests\n",
            "import requests\nprint('later', requests.get(demo.url + '/v2/', timeout=10).status_code)",
            "demo.stop()",
        ])
        notebook = JupyterLabPage(page, lab).open("interrupt.ipynb")
        try:
            notebook.run_cell(0)
            demo_host = host_file.read_text()
            proxy.upstream = f"http://{demo_host}"
            notebook.run_cell(1, wait=False)
            assert held.held.wait(BUILD_TIMEOUT_MS / 1000), "the build never started a download"
            notebook.interrupt()
            notebook.wait_cell(1, timeout=60)
        finally:
            with proxy.lock:
                proxy.faults.clear()
            held.release.set()  # a build still running would now go on and finish
            screenshot(page, "browser-interrupt.png")
        errors = notebook.errors()
        assert len(errors) == 1 and "the build was interrupted; nothing was named" in errors[0], errors
        assert "Traceback" not in notebook.output_text()
        page.wait_for_timeout(GRACE_S * 1000)  # the one wait: time for a leftover build to name its image
        listed = kubenb_cli(kubenb_root, "images", "-o", "json")
        assert "stopped:1" not in [image["name"] for image in json.loads(listed.stdout)], listed.stdout
        checked = kubenb_cli(kubenb_root, "check")
        assert checked.returncode == 0, checked.stderr
        assert not list((kubenb_root / "tmp").glob("build-*"))
        assert demo_serves(demo_host), "the interrupt killed the notebook's demo registry"

        notebook.run_cell(2)
        assert "later 200" in notebook.output_text()
        assert notebook.errors() == errors, notebook.errors()  # no traceback from a leftover thread
        assert "ZMQError" not in notebook.output_text() and "Traceback" not in notebook.output_text()
        notebook.run_cell(3)
    assert not demo_serves(demo_host)


REVIEW_IMAGES = 300
VIEWPORT_HEIGHT = 1000


def in_viewport(locator: Any) -> bool:
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT_HEIGHT


def test_a_300_image_review_searches_selects_none_and_keeps_build_in_view(lab: JupyterLab, page: Any) -> None:
    context = lab.root_dir / "big-context"
    context.mkdir()
    (context / "Kubefile").write_text(KUBEFILE)
    (context / "imageList").write_text("".join(f"registry.example.com/team/service-{i}:1.0\n"
                                               for i in range(REVIEW_IMAGES)))
    (context / ".kubenb").mkdir()
    (context / ".kubenb" / "exclude").write_text("registry.example.com/team/service-5:1.0\n")  # an earlier review
    write_notebook(lab.root_dir / "review.ipynb", ["%load_ext kubenb", f"%%kubefile --context {context}\n{KUBEFILE}"])
    notebook = JupyterLabPage(page, lab).open("review.ipynb")
    notebook.run_all()
    assert not notebook.errors(), notebook.errors()

    review = page.locator(".kubenb-review")
    search = page.locator(".kubenb-review-search input")
    search.wait_for(timeout=WIDGET_TIMEOUT_MS)
    review.evaluate("element => element.scrollIntoView({block: 'start'})")
    assert page.locator(".kubenb-review-head").all_inner_texts() == ["image ▲", "kind", "where found"]
    rows = page.locator(".kubenb-include:visible")
    assert rows.first.inner_text() == "registry.example.com/team/service-0:1.0"
    assert rows.nth(2).inner_text() == "registry.example.com/team/service-2:1.0"  # 2 before 10: natural order
    assert in_viewport(search) and in_viewport(page.locator(".kubenb-build")), "Build is below the fold"
    excluded = page.locator(".kubenb-include.kubenb-kind-excluded")
    assert excluded.inner_text() == "registry.example.com/team/service-5:1.0"
    assert not excluded.locator("input").is_checked()
    assert excluded.locator(".widget-label-basic").evaluate("label => getComputedStyle(label).fontStyle") == "italic"
    assert page.locator(".kubenb-review-kind-excluded").inner_text() == "excluded"
    screenshot(page, "browser-review-300-start.png")
    page.locator(".kubenb-review-head", has_text="image").click()  # again: descending
    page.locator(".kubenb-review-head", has_text="image ▼").wait_for(timeout=WIDGET_TIMEOUT_MS)
    assert rows.first.inner_text() == "registry.example.com/team/service-299:1.0"
    page.locator(".kubenb-review-head", has_text="image").click()
    page.locator(".kubenb-review-head", has_text="image ▲").wait_for(timeout=WIDGET_TIMEOUT_MS)

    search.fill("service-12")
    count = page.locator(".kubenb-review-count")
    count.filter(has_text="11 shown").wait_for(timeout=WIDGET_TIMEOUT_MS)
    page.locator(".kubenb-select-none").click()
    status = page.locator(".kubenb-review-status")
    status.filter(has_text="288 of 300 images included").wait_for(timeout=WIDGET_TIMEOUT_MS)
    expected = ["registry.example.com/team/service-12:1.0",
                *(f"registry.example.com/team/service-{i}:1.0" for i in range(120, 130))]
    assert rows.all_inner_texts() == expected
    assert not any(box.is_checked() for box in rows.locator("input[type=checkbox]").all())
    assert count.inner_text() == "11 shown (300 in all)"
    review.evaluate("element => element.scrollIntoView({block: 'start'})")
    assert in_viewport(search) and in_viewport(page.locator(".kubenb-build")), "Build is below the fold"
    screenshot(page, "browser-review-300.png")

    search.fill("")
    count.filter(has_text="rows 1 to 50 of 300 shown").wait_for(timeout=WIDGET_TIMEOUT_MS)
    ticks = {row.inner_text(): row.locator("input").is_checked() for row in rows.all()}
    assert ticks["registry.example.com/team/service-11:1.0"] and not ticks["registry.example.com/team/service-12:1.0"]
    page.locator(".kubenb-save").click()
    status.filter(has_text="Saved").wait_for(timeout=WIDGET_TIMEOUT_MS)
    saved = [line for line in (context / ".kubenb" / "exclude").read_text().splitlines()
             if line and not line.startswith("#")]
    assert saved == sorted([*expected, "registry.example.com/team/service-5:1.0"])


def test_kubenb_inspect_is_a_folded_json_tree_and_images_a_table(lab: JupyterLab, page: Any,
                                                                 kubenb_root: Path) -> None:
    """Issue 15: ``%kubenb inspect`` shows JupyterLab's collapsible JSON (a few lines, not
    thousands of pixels of text), ``%kubenb images`` an HTML table, and both are data in code."""
    context = lab.root_dir / "inspect-context"
    context.mkdir()
    (context / "imageList").write_text("")
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\nLABEL team=platform\n")
    built = kubenb_cli(kubenb_root, "build", str(context), "-t", "shown:1")
    assert built.returncode == 0, built.stderr
    write_notebook(lab.root_dir / "values.ipynb", [
        "%load_ext kubenb",
        "%kubenb inspect shown:1",
        "%kubenb images",
        "details = %kubenb inspect shown:1\nstored = %kubenb images\n"
        "print('LABEL', details['image']['labels']['team'], 'ROWS', list(stored['name']))",
    ])
    notebook = JupyterLabPage(page, lab).open("values.ipynb")
    for index in range(4):
        notebook.run_cell(index)
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")
    tree = cells.nth(1).locator(".jp-RenderedJSON")  # JupyterLab's JSON viewer, not text
    tree.wait_for(timeout=WIDGET_TIMEOUT_MS)
    height = tree.bounding_box()["height"]
    screenshot(page, "browser-kubenb-values.png")
    assert height < 400, f"the inspect output is {height:.0f} px high"
    assert cells.nth(2).locator(".jp-OutputArea-output table").count() == 1  # the DataFrame's table
    assert "LABEL platform ROWS" in notebook.output_text() and "'shown:1'" in notebook.output_text()
    assert notebook.errors() == [] and "Traceback" not in notebook.output_text()
