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


#: Run between the two passes: what later cells and a re-run need is still there after Run All.
STILL_THERE = """
assert WORK.is_dir() and any(WORK.iterdir()), "Run All removed the working folder"
stopped = [name for name in ("registry", "private", "mirror") if name in globals() and not globals()[name].running]
assert not stopped, f"Run All stopped the demo registry: {stopped}"
print("STILL-THERE")
"""


def _twice(path: Path, target: Path) -> Path:
    """A copy of the notebook whose cells are its cells, a check that Run All destroyed nothing,
    then its cells again: nbclient runs it top to bottom twice in one kernel, as Run All then
    a second Run All (or re-running every cell after Run All, in order) does."""
    notebook = nbformat.read(str(path), as_version=4)
    again = [nbformat.from_dict({**cell, "id": f"{cell.get('id', index)}-again"})
             for index, cell in enumerate(notebook.cells)]
    notebook.cells = [*notebook.cells, nbformat.v4.new_code_cell(STILL_THERE), *again]
    nbformat.write(notebook, str(target))
    return target


@pytest.mark.registry
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_runs_twice_in_one_kernel_then_leaves_nothing_behind(path: Path, tmp_path: Path) -> None:
    """Issue 15: every teaching notebook is safe to Run All, then to run any cell again. Its setup
    cells keep what they made (one working folder, one registry per kind), its last cell
    destroys nothing, and what it made goes when the kernel shuts down (the temporary folder
    is emptied, the registries stopped)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    executed = run_notebook(_twice(path, tmp_path / path.name), timeout=300, home=tmp_path / "home",
                            cwd=path.parent, env={"HOME": str(tmp_path / "home"), "TMPDIR": str(temporary),
                                                  "KUBENB_ROOT": str(tmp_path / "store")})
    text = outputs_text(executed)
    assert "Traceback" not in text and "STILL-THERE" in text, text
    assert all(cell.execution_count is not None for cell in executed.cells if cell.cell_type == "code")
    assert sorted(p.name for p in temporary.iterdir() if p.name.startswith("kubenb-")) == [], \
        "the working folder and the registries' folders go with the kernel"
