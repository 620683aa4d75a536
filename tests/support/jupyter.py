"""Real Jupyter parts for the notebook and browser tests: JupyterLab, headless Chromium, nbclient.

- ``JupyterLab``: ``sys.executable -m jupyter lab`` on 127.0.0.1 and a free port, with a token,
  in its own process group, with every Jupyter folder (config, data, runtime, IPython) inside a
  temporary folder so the user's setup never leaks in. Its ``python3`` kernel is pinned to this
  interpreter (the venv's) by a kernelspec written into that folder and put first on
  ``JUPYTER_PATH``. ``stop()`` asks the server to shut down (which stops its kernels), then kills
  the process group and any kernel left behind.
- ``chromium()``: Debian's chromium driven by Playwright (never ``playwright install``).
- ``run_notebook()``: runs a notebook file with nbclient on the same pinned kernel; a failing
  cell raises ``nbclient.exceptions.CellExecutionError``.
- ``JupyterLabPage``: drives one open notebook through the app JupyterLab exposes in the page
  (``--LabApp.expose_app_in_browser``), which is steadier than clicking menus.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import nbformat
import psutil
import requests
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from playwright.sync_api import sync_playwright

from tests.support.registry import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
KERNEL_NAME = "python3"
START_TIMEOUT = 90.0
LOG_TAIL_LINES = 40
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# JupyterLab plugins that would talk to the internet or pop up toasts over the notebook.
DISABLED_LAB_PLUGINS = (
    "@jupyterlab/apputils-extension:announcements",
    "@jupyterlab/extensionmanager-extension",
)


class JupyterStartError(RuntimeError):
    """JupyterLab did not come up; the message carries the tail of its log."""


def write_kernelspec(data_dir: Path, python: str = sys.executable) -> Path:
    """Write a ``python3`` kernelspec running ``python`` into ``data_dir/kernels``; returns its folder."""
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (kubenb tests)",
        "language": "python",
        "metadata": {"debugger": False},
    }, indent=1))
    return spec_dir


def jupyter_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with every Jupyter/IPython folder under ``home`` (created)."""
    folders = {name: home / name for name in ("path", "config", "data", "runtime", "ipython")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    write_kernelspec(folders["path"])
    labconfig = folders["config"] / "labconfig"
    labconfig.mkdir(exist_ok=True)
    (labconfig / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": dict.fromkeys(DISABLED_LAB_PLUGINS, True)}))
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("JUPYTER_", "JPY_")) and k not in {"IPYTHONDIR", "PYTHONSTARTUP"}}
    environment.update({
        "JUPYTER_PATH": str(folders["path"]),
        "JUPYTER_CONFIG_DIR": str(folders["config"]),
        "JUPYTER_DATA_DIR": str(folders["data"]),
        "JUPYTER_RUNTIME_DIR": str(folders["runtime"]),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(folders["ipython"]),
        "PYTHONUNBUFFERED": "1",
    })
    environment.update(extra or {})
    return environment


class JupyterLab:
    """A JupyterLab server for the tests; use as a context manager (stops even on failure)."""

    def __init__(self, root_dir: Path, home: Path, env: Mapping[str, str] | None = None) -> None:
        self.root_dir = root_dir
        self.home = home
        self.port = free_port()
        self.token = os.urandom(16).hex()
        self.env = jupyter_environment(home, env)
        self.log_path = home / "jupyterlab.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        """The page opening ``name`` (relative to ``root_dir``), with a fresh workspace."""
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(method, f"{self.url}/api/{path}", headers=headers, timeout=10, **kwargs)

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def start(self) -> JupyterLab:
        self.root_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "jupyter", "lab",
            "--allow-root", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.terminals_enabled=False",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.news_url=None",
        ]
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(command, cwd=self.root_dir, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise JupyterStartError(f"jupyter lab exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                if self.api("GET", "status").ok and requests.get(f"{self.url}/lab?token={self.token}",
                                                                 timeout=10).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise JupyterStartError(f"jupyter lab did not answer within {START_TIMEOUT:.0f}s:\n{self.log_tail()}")

    def kernel_specs(self) -> dict[str, Any]:
        """The server's kernelspecs (``GET /api/kernelspecs``)."""
        response = self.api("GET", "kernelspecs")
        response.raise_for_status()
        specs: dict[str, Any] = response.json()
        return specs

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            try:
                family = psutil.Process(process.pid).children(recursive=True)
            except psutil.Error:
                family = []
            if process.poll() is None:
                try:
                    self.api("POST", "shutdown")  # stops the kernels too
                    process.wait(timeout=15)
                except (requests.RequestException, subprocess.TimeoutExpired):
                    pass
            _kill_group(process)
            for child in family:  # kernels run in sessions of their own
                with suppress(psutil.Error):
                    child.kill()
            psutil.wait_procs(family, timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    with suppress(ProcessLookupError, PermissionError):  # anything else left in the group
        os.killpg(process.pid, signal.SIGKILL)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's) driven by Playwright; yields the Playwright ``Browser``."""
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium is not installed: `make system-packages` (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot to ``test-artifacts/NAME`` at the repo root."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def write_notebook(path: Path, cells: Sequence[str]) -> Path:
    """Write a notebook of code cells, with the ``python3`` kernelspec (no kernel picker)."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, str(path))
    return path


def run_notebook(path: Path, timeout: float = 120, env: Mapping[str, str] | None = None,
                 home: Path | None = None, cwd: Path | None = None) -> Any:
    """Execute the notebook at ``path`` with nbclient on the venv's python; returns the notebook.

    A failing cell raises ``CellExecutionError``. ``env`` is added to the kernel's environment;
    ``home`` (default: beside the notebook) holds the pinned kernelspec and Jupyter folders;
    ``cwd`` (default: the notebook's folder) is where the kernel runs, as JupyterLab runs it.
    """
    home = home or path.parent / ".jupyter-home"
    environment = jupyter_environment(home, env)
    specs = KernelSpecManager(kernel_dirs=[str(Path(environment["JUPYTER_PATH"]) / "kernels")],
                              ensure_native_kernel=False)
    notebook = nbformat.read(str(path), as_version=4)
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    folder = cwd or path.parent
    client = NotebookClient(notebook, km=manager, timeout=int(timeout), kernel_name=KERNEL_NAME,
                            resources={"metadata": {"path": str(folder)}})
    try:
        client.execute(env=environment, cwd=str(folder))
    finally:  # nbclient leaves a kernel manager it was given running
        if manager.has_kernel:
            manager.shutdown_kernel(now=False)
    return notebook


def outputs_text(notebook: Any) -> str:
    """All stream, result and error text of an executed notebook, for assertions."""
    parts: list[str] = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif output.get("output_type") == "error":
                parts.append("\n".join(output.get("traceback", [])))
            else:
                parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


# JavaScript run in the page against the app exposed as window.jupyterapp.
_CURRENT_PANEL = """() => {
  const app = window.jupyterapp;
  const widget = app && app.shell.currentWidget;
  return widget && widget.sessionContext && widget.content && widget.content.widgets ? widget : null;
}"""
_KERNEL_STATE = """() => {
  const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = widget && widget.sessionContext && widget.sessionContext.session
      && widget.sessionContext.session.kernel;
  return kernel ? kernel.status + '/' + kernel.connectionStatus : null;
}"""
_PROMPTS = """() => Array.from(document.querySelectorAll(
  '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')).map(e => e.textContent.trim())"""
_RUN_CELL = """(index) => {
  const widget = window.jupyterapp.shell.currentWidget;
  widget.content.activeCellIndex = index;
  window.jupyterapp.commands.execute('notebook:run-cell');  // not awaited: the cell may run for long
  return true;
}"""
_INTERRUPT = """() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.interrupt()"""
_ERRORS = """() => Array.from(document.querySelectorAll(
  '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
  .map(e => e.textContent)"""


class JupyterLabPage:
    """One notebook opened in JupyterLab in a Playwright page."""

    def __init__(self, page: Any, lab: JupyterLab) -> None:
        self.page = page
        self.lab = lab

    def open(self, name: str, timeout: float = 90) -> JupyterLabPage:
        self.page.goto(self.lab.notebook_url(name), wait_until="domcontentloaded", timeout=timeout * 1000)
        self.page.wait_for_function("() => !!window.jupyterapp", timeout=timeout * 1000)
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=timeout * 1000)
        self.page.wait_for_function(f"() => !!({_CURRENT_PANEL})()", timeout=timeout * 1000)
        self.wait_idle(timeout)
        return self

    def kernel_state(self) -> str | None:
        state: str | None = self.page.evaluate(_KERNEL_STATE)
        return state

    def wait_idle(self, timeout: float = 90) -> None:
        """Wait until the notebook's kernel is connected and idle (steadily, not between two messages)."""
        deadline = time.monotonic() + timeout
        steady = 0
        while time.monotonic() < deadline:
            steady = steady + 1 if self.kernel_state() == "idle/connected" else 0
            if steady >= 3:
                return
            self.page.wait_for_timeout(200)
        raise AssertionError(f"kernel not idle after {timeout:.0f}s (state {self.kernel_state()})\n"
                             f"server log:\n{self.lab.log_tail()}")

    def run_all(self, timeout: float = 120) -> None:
        """Run every cell (the Run All Cells command), then wait for all prompts and an idle kernel."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            prompts = self.prompts()
            if prompts and all(p not in {"[ ]:", "[*]:", ""} for p in prompts):
                break
            self.page.wait_for_timeout(250)
        else:
            raise AssertionError(f"cells did not finish within {timeout:.0f}s: prompts {self.prompts()}\n"
                                 f"{self.errors()}")
        self.wait_idle(timeout)

    def run_cell(self, index: int, *, wait: bool = True, timeout: float = 120) -> None:
        """Run the cell at ``index`` alone (made active, then the Run Selected Cell command); with
        ``wait``, wait until its prompt shows a number and the kernel is idle."""
        self.page.evaluate(_RUN_CELL, index)
        if wait:
            self.wait_cell(index, timeout)

    def wait_cell(self, index: int, timeout: float = 120) -> None:
        """Wait until the cell at ``index`` has run (its prompt shows a number) and the kernel is idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            prompts = self.prompts()
            if len(prompts) > index and prompts[index] not in {"[ ]:", "[*]:", ""}:
                break
            self.page.wait_for_timeout(250)
        else:
            raise AssertionError(f"cell {index} did not finish within {timeout:.0f}s: prompts {self.prompts()}")
        self.wait_idle(timeout)

    def interrupt(self) -> None:
        """Interrupt the kernel as the toolbar's stop button does (the server signals the kernel)."""
        self.page.evaluate(_INTERRUPT)

    def prompts(self) -> list[str]:
        prompts: list[str] = self.page.evaluate(_PROMPTS)
        return prompts

    def errors(self) -> list[str]:
        """Text of the error/stderr outputs shown in the notebook."""
        errors: list[str] = self.page.evaluate(_ERRORS)
        return errors

    def output_text(self) -> str:
        texts: list[str] = self.page.locator(
            ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea").all_inner_texts()
        return "\n".join(texts)
