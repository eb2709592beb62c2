"""The tutorial notebooks in docs/tutorials still run from top to bottom.

The notebooks are committed with their outputs (the docs render them without executing
them); this test re-executes each one, in a copy in a temporary folder, and fails on the
first cell that raises. Each takes a few minutes on one CPU thread.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_tutorial_runs_without_error(notebook: Path, tmp_path: Path) -> None:
    nbclient = pytest.importorskip(
        "nbclient", reason="executing the tutorials needs nbclient: pip install 'scdcca[test]'"
    )
    import nbformat

    copy = tmp_path / notebook.name
    shutil.copyfile(notebook, copy)
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=1800,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, f"{notebook.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
