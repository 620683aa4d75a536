"""The teaching notebooks run top to bottom with nbclient, offline, and are kept clean in the repo.

A notebook is part of the product: one whose cell fails fails the suite. Each runs from its
own folder (as JupyterLab runs it) with a private home, so nothing of the developer's setup
(credentials, kernels, the store) leaks in or is written to.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.support.jupyter import outputs_text, run_notebook

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
pytestmark = [pytest.mark.jupyter, pytest.mark.timeout(600)]


def test_there_are_the_six_teaching_notebooks() -> None:
    assert [path.name[:2] for path in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_is_saved_clean_with_a_sentence_before_each_code_cell(path: Path) -> None:
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    for before, cell in zip(notebook.cells, notebook.cells[1:], strict=False):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs are not cleared"
            assert before.cell_type == "markdown", f"{path.name}: no narrative before {cell.source[:60]!r}"


@pytest.mark.registry
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    """nbclient raises CellExecutionError at the first failing cell, failing this test."""
    executed = run_notebook(path, timeout=300, home=tmp_path / "home",
                            env={"HOME": str(tmp_path / "home"), "KUBENB_ROOT": str(tmp_path / "store")})
    text = outputs_text(executed)
    assert "Traceback" not in text
    ran = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in ran)
