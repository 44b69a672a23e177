"""Structural rules of the research notebooks (DESIGN.md section 4).

Every ``notebooks/*.ipynb`` has a first code cell tagged ``parameters`` whose every
assignment is type-annotated with a trailing comment (``papermill --help-notebook``
documents it), no functions, classes, lambdas, loops or comprehensions, and no stored
outputs.
"""

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
FORBIDDEN = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def code_cells(path: Path) -> list:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def python_source(source: str) -> str:
    """The cell's source without IPython magics and shell escapes."""
    lines = source.splitlines()
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in lines
    )


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_uses_python3_kernel(path):
    notebook = nbformat.read(path, as_version=4)
    assert notebook.nbformat == 4
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_parameters_cell_comes_first(path):
    cells = code_cells(path)
    tagged = [
        i
        for i, cell in enumerate(cells)
        if "parameters" in cell.metadata.get("tags", [])
    ]
    assert tagged == [0], f"{path.name}: one parameters cell, first among code cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_parameters_are_annotated_and_commented(path):
    source = code_cells(path)[0].source
    lines = source.splitlines()
    tree = ast.parse(python_source(source))
    assert tree.body, f"{path.name}: empty parameters cell"
    for statement in tree.body:
        assert isinstance(statement, ast.AnnAssign), (
            f"{path.name} line {statement.lineno}: not an annotated assignment"
        )
        assert isinstance(statement.target, ast.Name)
        assert statement.value is not None, (
            f"{path.name}: {statement.target.id} has no value"
        )
        last_line = lines[statement.end_lineno - 1]
        comment = last_line[statement.end_col_offset :].strip()
        assert comment.startswith("#") and comment.lstrip("# "), (
            f"{path.name}: {statement.target.id} has no trailing comment"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_no_definitions_loops_or_comprehensions(path):
    for number, cell in enumerate(code_cells(path)):
        tree = ast.parse(python_source(cell.source))
        found = [
            f"{type(node).__name__} at line {node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, FORBIDDEN)
        ]
        assert not found, f"{path.name} code cell {number}: {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_outputs_are_cleared(path):
    for number, cell in enumerate(code_cells(path)):
        assert cell.outputs == [], f"{path.name} code cell {number} has outputs"
        assert cell.execution_count is None, f"{path.name} code cell {number}"
