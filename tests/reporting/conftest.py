"""Small notebooks written on the fly for the report tests."""

from __future__ import annotations

import nbformat
import pytest


def _write_notebook(path, *sources, parameters=None):
    """A python3 notebook of code cells, the first tagged ``parameters`` if given."""
    cells = []
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        cells.append(cell)
    cells += [nbformat.v4.new_code_cell(source) for source in sources]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)


@pytest.fixture(scope="session")
def write_notebook():
    return _write_notebook
