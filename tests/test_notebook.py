"""The quickstart notebook runs top to bottom on the embedded model."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.embedded
def test_quickstart_notebook_executes():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parents[1])}}
    )
    client.execute()
    printed = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "== initializer" in printed and "usage:" in printed
    # a 135M model may give up on a turn (the sample then ends with `error`); structure, not meaning
    finished = "== refiner: removed" in printed and "final chain of thought:" in printed
    assert finished or ("gave up" in printed and "ended early:" in printed)
