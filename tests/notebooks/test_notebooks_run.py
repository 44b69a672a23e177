"""Executes every research notebook with its default parameters (papermill).

The ``python3`` kernel is jupyter's native kernel: its ``python`` command resolves to
the interpreter running the tests, so the notebooks see this environment's packages.
"""

import math
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from jupyter_client.kernelspec import KernelSpecManager

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
METRICS_MIME = "application/vnd.neuroflux.metrics+json"
PROBE = "import sys\nprint(sys.executable)"


def key_metrics(notebook) -> dict:
    found = [
        output["data"][METRICS_MIME]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if METRICS_MIME in output.get("data", {})
    ]
    assert len(found) == 1, f"expected one {METRICS_MIME} output, found {len(found)}"
    return found[0]


def test_python3_kernel_runs_this_interpreter(tmp_path):
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.language == "python"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(PROBE)]
    source = tmp_path / "probe.ipynb"
    nbformat.write(notebook, source)
    executed = papermill.execute_notebook(
        source, tmp_path / "probe_out.ipynb", kernel_name="python3", progress_bar=False
    )
    printed = executed.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_with_default_parameters(path, tmp_path):
    executed = papermill.execute_notebook(
        path,
        tmp_path / path.name,
        kernel_name="python3",
        parameters={},
        cwd=path.parent,
        progress_bar=False,
    )
    metrics = key_metrics(executed)
    assert metrics, f"{path.name}: empty key metrics"
    for name, value in metrics.items():
        assert isinstance(value, float), f"{path.name}: {name} = {value!r}"
        assert math.isfinite(value), f"{path.name}: {name} = {value!r}"
