"""load_batch and run_batch: YAML batch files, parallel runs in spawned workers."""

import json

import nbformat
import pytest
import structlog
from typer.testing import CliRunner

from neuroflux.cli import app
from neuroflux.reporting import (
    METRICS_MIMETYPE,
    RunSpec,
    default_runs,
    load_batch,
    run_batch,
)


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory, write_notebook):
    folder = tmp_path_factory.mktemp("notebooks")
    write_notebook(
        folder / "doubler.ipynb",
        "from IPython.display import display\n"
        f"display({{{METRICS_MIMETYPE!r}: {{'x2': x * 2}}}}, raw=True)",
        parameters="x: int = 1  # a number\nlabel: str = 'a'  # a label",
    )
    write_notebook(
        folder / "broken.ipynb",
        "before = 'this cell ran'\nprint(before)",
        "raise RuntimeError('boom on purpose')",
    )
    return folder


def _batch(tmp_path, text):
    path = tmp_path / "runs.yaml"
    path.write_text(text)
    return path


def test_load_batch_expands_grids_in_order(notebooks, tmp_path):
    path = _batch(
        tmp_path,
        "runs:\n"
        "  - notebook: doubler\n"
        "    parameters: {label: b}\n"
        "    grid: {x: [1, 2, 3]}\n"
        "  - notebook: broken\n"
        "  - notebook: doubler\n"
        "    grid: {x: [5, 6], label: [p, q]}\n"
        "    hide_code: true\n",
    )
    specs = load_batch(path, notebooks_dir=notebooks)
    assert specs == [
        RunSpec(notebook="doubler", parameters={"label": "b", "x": 1}),
        RunSpec(notebook="doubler", parameters={"label": "b", "x": 2}),
        RunSpec(notebook="doubler", parameters={"label": "b", "x": 3}),
        RunSpec(notebook="broken"),
        *(
            RunSpec(
                notebook="doubler", parameters={"x": x, "label": lb}, hide_code=True
            )
            for x in (5, 6)
            for lb in ("p", "q")
        ),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runs: [1, 2]", r"runs\[0\]: expected a mapping"),
        ("jobs: []", r"expected a mapping with a list under 'runs:'"),
        ("runs: []", r"'runs:' is empty"),
        ("runs: [{notebook: doubler}, {notebok: doubler}]", r"runs\[1\]: unknown key"),
        ("runs: [{parameters: {x: 1}}]", r"runs\[0\]: key 'notebook'"),
        (
            "runs: [{notebook: dobler}]",
            r"runs\[0\] \(dobler\): key 'notebook': unknown notebook 'dobler'; "
            r"did you mean 'doubler'",
        ),
        (
            "runs: [{notebook: broken}, {notebook: doubler, parameters: {xx: 1}}]",
            r"runs\[1\] \(doubler\): key 'parameters': unknown parameter 'xx'; "
            r"did you mean 'x'",
        ),
        (
            "runs: [{notebook: doubler, grid: {lable: [a]}}]",
            r"runs\[0\] \(doubler\): key 'parameters': unknown parameter 'lable'",
        ),
        (
            "runs: [{notebook: doubler, grid: {x: 3}}]",
            r"runs\[0\] \(doubler\): key 'grid': 'x' needs a non-empty list",
        ),
        (
            "runs: [{notebook: doubler, parameters: {x: 1}, grid: {x: [2]}}]",
            r"key 'grid': x also set under 'parameters'",
        ),
        ("runs: [{notebook: doubler, parameters: [1]}]", r"key 'parameters'"),
        ("runs: [{notebook: doubler", r"not valid YAML"),
    ],
)
def test_load_batch_names_the_file_and_entry(notebooks, tmp_path, text, message):
    path = _batch(tmp_path, text)
    with pytest.raises(ValueError, match=message) as caught:
        load_batch(path, notebooks_dir=notebooks)
    assert str(path) in str(caught.value)


def test_default_runs_are_every_notebook_with_defaults(notebooks):
    assert default_runs(notebooks) == [
        RunSpec(notebook="broken"),
        RunSpec(notebook="doubler"),
    ]


def test_run_batch_rejects_unknown_names_before_running(notebooks, tmp_path):
    with pytest.raises(ValueError, match="did you mean 'doubler'"):
        run_batch(
            [RunSpec(notebook="doubler"), RunSpec(notebook="doubl")],
            notebooks_dir=notebooks,
            reports_dir=tmp_path,
            progress=False,
        )
    assert not any(tmp_path.iterdir())


def test_a_failing_run_does_not_stop_the_batch(notebooks, tmp_path):
    reports = tmp_path / "reports"
    specs = [
        RunSpec(notebook="doubler", parameters={"x": 2}),
        RunSpec(notebook="broken"),
        RunSpec(notebook="doubler", parameters={"x": 5}),
    ]
    records = run_batch(
        specs, workers=2, notebooks_dir=notebooks, reports_dir=reports, progress=False
    )
    assert [(r.notebook, r.status) for r in records] == [
        ("doubler", "ok"),
        ("broken", "failed"),
        ("doubler", "ok"),
    ]
    assert [r.metrics for r in records] == [{"x2": 4}, {}, {"x2": 10}]
    assert "boom on purpose" in records[1].error
    partial = nbformat.read(records[1].folder / "notebook.ipynb", as_version=4)
    outputs = [cell.get("outputs", []) for cell in partial.cells]
    assert "this cell ran" in json.dumps(outputs)
    assert records[1].report.exists()
    page = (reports / "index.html").read_text()
    assert "3 runs" in page
    assert all(record.run_id in page for record in records)


@pytest.fixture
def restore_structlog():
    # The CLI points structlog at CliRunner's stderr, closed after invoke: put it back
    # so that later tests do not log into a closed file.
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("restore_structlog")
def test_cli_report_batch_exits_1_and_names_the_failed_run(notebooks, tmp_path):
    path = _batch(
        tmp_path,
        "runs:\n  - notebook: doubler\n    parameters: {x: 4}\n  - notebook: broken\n",
    )
    reports = tmp_path / "reports"
    result = CliRunner().invoke(
        app,
        [
            "report",
            "batch",
            str(path),
            "--workers",
            "2",
            "--notebooks-dir",
            str(notebooks),
            "--reports-dir",
            str(reports),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "1 of 2 runs failed" in result.output
    assert "broken" in result.output and "boom on purpose" in result.output
    assert str((reports / "index.html").resolve()) in result.output
    assert (reports / "index.html").exists()
