"""notebooks/06-exercises.ipynb runs as committed (every check says "not yet", no cell fails) and,
with the solutions below put into its answer cells (tagged ``answer``), every check says "right"."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from tests.support.jupyter import outputs_text, run_notebook

pytestmark = [pytest.mark.jupyter, pytest.mark.timeout(600)]

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "06-exercises.ipynb"
EXERCISES = range(1, 6)

#: The solution of each answer cell, in the order the cells appear.
SOLUTIONS = [
    "%%kubefile --context {{EX1}} --registry-mirror docker.io={{HOST}} --out answer1\n"
    "FROM scratch\nCOPY web.yaml cache.yaml manifests\n",
    'KUBEFILE2 = """FROM scratch\nCOPY imageList manifests\nCOPY app.yaml manifests\n"""\n',
    'ANSWER3 = ["manifests/frontend.yaml", "manifests/cleanup.yaml"]\n',
    'review4.checkboxes["docker.io/library/busybox:1.36"].value = False\nreview4.save()\n',
    "%%kubefile --context {{EX5}} --set shop:cache.enabled=true --out answer5\nFROM scratch\nCOPY shop charts\n",
]


def answer_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if "answer" in cell.metadata.get("tags", [])]


def copy_of_notebook(tmp_path: Path, solved: bool) -> Path:
    path = tmp_path / NOTEBOOK.name
    if not solved:
        shutil.copy(NOTEBOOK, path)
        return path
    notebook = nbformat.read(str(NOTEBOOK), as_version=4)
    cells = answer_cells(notebook)
    assert len(cells) == len(SOLUTIONS), "one solution per answer cell"
    for cell, solution in zip(cells, SOLUTIONS, strict=True):
        cell.source = solution
    nbformat.write(notebook, str(path))
    return path


def solved_after_a_first_run(tmp_path: Path) -> Path:
    """The notebook as a student follows it: run top to bottom once as committed (as its first
    cell asks), then, in the same kernel, each answer cell written and run with its check cell,
    and the bonus build at the end run again."""
    committed = nbformat.read(str(NOTEBOOK), as_version=4)
    solved = nbformat.read(str(copy_of_notebook(tmp_path, solved=True)), as_version=4)
    code = [cell for cell in solved.cells if cell.cell_type == "code"]
    chosen = [cell for index, cell in enumerate(code)
              if "answer" in cell.metadata.get("tags", [])
              or (index and "answer" in code[index - 1].metadata.get("tags", []))
              or "RESULTS.get(1)" in cell.source]
    again = [nbformat.from_dict({**cell, "id": f"{cell.get('id', index)}-again"}) for index, cell in enumerate(chosen)]
    assert len(again) == 2 * len(SOLUTIONS) + 1
    first = len(committed.cells)
    committed.cells = [*committed.cells, *again]
    committed.metadata["first_run_cells"] = first
    path = tmp_path / "followed.ipynb"
    nbformat.write(committed, str(path))
    return path


def verdicts(text: str) -> dict[int, str]:
    found = dict(re.findall(r"Exercise (\d): (✔ right|✘ not yet)", text))
    return {int(number): verdict for number, verdict in found.items()}


def test_the_committed_notebook_is_clean_and_tagged() -> None:
    notebook = nbformat.read(str(NOTEBOOK), as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert all(not cell.get("outputs") and cell.get("execution_count") is None
               for cell in notebook.cells if cell.cell_type == "code"), "outputs must be cleared"
    cells = answer_cells(notebook)
    assert len(cells) == len(SOLUTIONS)
    assert all("ANSWER" in cell.source for cell in cells), "each answer cell is marked for the student"


def test_as_committed_every_check_says_not_yet(tmp_path: Path) -> None:
    notebook = run_notebook(copy_of_notebook(tmp_path, solved=False), timeout=300)
    text = outputs_text(notebook)
    assert verdicts(text) == dict.fromkeys(EXERCISES, "✘ not yet"), text
    assert "Traceback" not in text
    assert "Exercise 1 is not right yet" in text
    assert not list(tmp_path.glob("ex*")), "the notebook writes only under its temporary folder"


def test_with_the_solutions_every_check_says_right(tmp_path: Path) -> None:
    notebook = run_notebook(copy_of_notebook(tmp_path, solved=True), timeout=300)
    text = outputs_text(notebook)
    assert verdicts(text) == dict.fromkeys(EXERCISES, "✔ right"), text
    assert "saved docker.io/library/nginx:1.25" in text  # the bonus build ran


def test_answers_written_after_a_first_run_all_are_right(tmp_path: Path) -> None:
    """Issue 15: the notebook says to run it top to bottom first; its end no longer stops the
    registry or deletes the work folder, so the answers then written (and their checks, and the
    bonus build, run again in the same kernel) are right."""
    notebook = run_notebook(solved_after_a_first_run(tmp_path), timeout=300)
    half = notebook.metadata["first_run_cells"]
    first, second = notebook.cells[:half], notebook.cells[half:]
    assert verdicts(outputs_text(nbformat.from_dict({"cells": first}))) == dict.fromkeys(EXERCISES, "✘ not yet")
    text = outputs_text(nbformat.from_dict({"cells": second}))
    assert verdicts(text) == dict.fromkeys(EXERCISES, "✔ right"), text
    assert "saved docker.io/library/nginx:1.25" in text and "Traceback" not in text
