"""Notebooks run headless with nbclient (as CI or papermill would): a broken ``%%kubefile`` cell
fails the run with a short, located message; a plain notebook runs on this venv's python.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from nbclient.exceptions import CellExecutionError

from tests.support.jupyter import outputs_text, run_notebook, write_notebook

pytestmark = [pytest.mark.jupyter, pytest.mark.timeout(300)]



def test_plain_notebook_runs_on_this_venv(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "plain.ipynb", [
        "import os, sys\nprint('KERNEL-PYTHON', sys.executable)\nprint('ROOT', os.environ.get('KUBENB_ROOT'))",
        "6 * 7",
    ])
    notebook = run_notebook(path, timeout=120, env={"KUBENB_ROOT": str(tmp_path / "root")})
    text = outputs_text(notebook)
    assert f"KERNEL-PYTHON {sys.executable}" in text
    assert f"ROOT {tmp_path / 'root'}" in text
    assert "42" in text


def test_failing_python_cell_fails_the_run(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "failing.ipynb", ["raise ValueError('boom')"])
    with pytest.raises(CellExecutionError, match="boom"):
        run_notebook(path, timeout=120)


def test_broken_kubefile_cell_fails_the_run(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "imageList").write_text("busybox:1.36\n")
    path = write_notebook(tmp_path / "broken.ipynb", [
        "%load_ext kubenb",
        f"%%kubefile --context {context}\nFORM scratch\nCOPY imageList manifests\n",
    ])
    with pytest.raises(CellExecutionError) as caught:
        run_notebook(path, timeout=120, env={"KUBENB_ROOT": str(tmp_path / "root")})
    message = str(caught.value)
    assert re.search(r"line 1\b|:1:", message), message  # "line 1" or "Kubefile:1:"
    assert "did you mean from" in message.lower(), message
    assert "Traceback" not in message, message  # one short message, not a traceback
