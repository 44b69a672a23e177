"""run_notebook, list_notebooks and build_index with real papermill kernels."""

import json
import re
import shutil

import nbformat
import pytest
from typer.testing import CliRunner

import neuroflux
from neuroflux.cli import app
from neuroflux.reporting import (
    METRICS_MIMETYPE,
    NotebookParameter,
    build_index,
    list_notebooks,
    run_notebook,
)

INPUT = re.compile(r'class="[^"]*jp-InputArea-editor')  # a code cell shown
EXTERNAL = re.compile(
    r"<(?:script[^>]*\ssrc|link[^>]*\shref)\s*=\s*[\"']?(?:https?:)?//", re.I
)


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory, write_notebook):
    folder = tmp_path_factory.mktemp("notebooks")
    write_notebook(
        folder / "doubler.ipynb",
        "from IPython.display import display\n"
        f"display({{{METRICS_MIMETYPE!r}: {{'x2': x * 2}}}}, raw=True)",
        "print('doubled', x * 2)",
        parameters="x: int = 1  # a number",
    )
    write_notebook(
        folder / "broken.ipynb",
        "before = 'this cell ran'\nprint(before)",
        "raise RuntimeError('boom on purpose')",
        "after = 'never runs'",
    )
    return folder


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    return tmp_path_factory.mktemp("reports")


@pytest.fixture(scope="module")
def ok_run(notebooks, reports):
    return run_notebook(
        "doubler", {"x": 3}, notebooks_dir=notebooks, reports_dir=reports
    )


@pytest.fixture(scope="module")
def failed_run(notebooks, reports, ok_run):
    return run_notebook("broken", notebooks_dir=notebooks, reports_dir=reports)


def test_list_notebooks_reads_the_parameters_cell(notebooks):
    found = list_notebooks(notebooks)
    assert list(found) == ["broken", "doubler"]
    assert found["broken"] == ()
    assert found["doubler"] == (
        NotebookParameter(name="x", type="int", default="1", help="a number"),
    )


def test_a_run_writes_its_folder(ok_run, reports):
    folder = ok_run.folder
    assert folder.parent == reports / "doubler"
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", ok_run.run_id)
    assert folder.name == ok_run.run_id
    for name in ["notebook.ipynb", "report.html", "parameters.json", "metrics.json"]:
        assert (folder / name).is_file(), name
    assert json.loads((folder / "metrics.json").read_text()) == {"x2": 6}
    assert json.loads((folder / "parameters.json").read_text()) == {"x": 3}
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "ok" and run["error"] is None
    assert run["notebook"] == "doubler" and run["run_id"] == ok_run.run_id
    assert run["parameters"] == {"x": 3}
    assert run["neuroflux_version"] == neuroflux.__version__
    assert run["started"] <= run["finished"] and run["seconds"] > 0
    assert run["started"].endswith("+00:00")
    assert ok_run.metrics == {"x2": 6}


def test_the_report_is_self_contained_and_shows_outputs(ok_run):
    html = ok_run.report.read_text()
    assert "doubled 6" in html
    assert INPUT.search(html)  # code is shown unless hide_code
    assert EXTERNAL.search(html) is None
    assert "cdn.bokeh.org" not in html


def test_a_failing_notebook_is_recorded_not_raised(failed_run):
    assert failed_run.status == "failed"
    assert "RuntimeError" in failed_run.error and "boom on purpose" in failed_run.error
    run = json.loads((failed_run.folder / "run.json").read_text())
    assert run["status"] == "failed" and run["error"] == failed_run.error
    partial = nbformat.read(failed_run.folder / "notebook.ipynb", as_version=4)
    printed = [
        output.get("text", "")
        for cell in partial.cells
        for output in cell.get("outputs", [])
    ]
    assert "this cell ran\n" in printed
    assert failed_run.report.is_file()
    assert "boom on purpose" in failed_run.report.read_text()
    assert failed_run.metrics == {}


def test_the_index_lists_runs_newest_first(ok_run, failed_run, reports):
    page = (reports / "index.html").read_text()
    assert page.index(failed_run.run_id) < page.index(ok_run.run_id)
    assert f'href="doubler/{ok_run.run_id}/report.html"' in page
    assert "x2 = 6" in page and "x = 3" in page
    assert "boom on purpose" in page
    assert "http" not in page  # inline CSS, no external URLs


def test_a_deleted_run_leaves_the_index(ok_run, failed_run, reports, tmp_path):
    copy = tmp_path / "reports"
    shutil.copytree(reports, copy)
    shutil.rmtree(copy / "broken" / failed_run.run_id)
    page = build_index(copy).read_text()
    assert failed_run.run_id not in page
    assert ok_run.run_id in page


def test_unknown_notebook_suggests_close_names(notebooks, reports):
    with pytest.raises(ValueError, match=r"'doubler'.*broken, doubler"):
        run_notebook("dubler", notebooks_dir=notebooks, reports_dir=reports)


def test_unknown_parameter_suggests_close_names(notebooks, reports):
    with pytest.raises(ValueError, match=r"unknown parameter 'xx'.*'x'.*doubler: x"):
        run_notebook("doubler", {"xx": 2}, notebooks_dir=notebooks, reports_dir=reports)


def test_cli_report_run_and_list(notebooks, tmp_path):
    runner = CliRunner()
    options = ["--notebooks-dir", str(notebooks), "--reports-dir", str(tmp_path)]
    listed = runner.invoke(app, ["report", "list", "--notebooks-dir", str(notebooks)])
    assert listed.exit_code == 0, listed.output
    assert "doubler" in listed.output and "a number" in listed.output

    ran = runner.invoke(
        app, ["report", "run", "doubler", "-p", "x", "4", "--hide-code", *options]
    )
    assert ran.exit_code == 0, ran.output
    (folder,) = (tmp_path / "doubler").iterdir()
    assert str(folder / "report.html") in ran.output.replace("\n", "")
    assert json.loads((folder / "parameters.json").read_text()) == {"x": 4}
    assert json.loads((folder / "metrics.json").read_text()) == {"x2": 8}
    assert not INPUT.search((folder / "report.html").read_text())

    failed = runner.invoke(app, ["report", "run", "broken", *options])
    assert failed.exit_code == 1
    assert "boom on purpose" in failed.output


def test_cli_parameters_keep_dates_as_text():
    from neuroflux.cli import _notebook_parameters

    parsed = _notebook_parameters(
        ["-p", "since", "1999-01-01", "-p", "x", "4", "-p", "models", "[mlp, linear]"]
    )
    assert parsed == {"since": "1999-01-01", "x": 4, "models": ["mlp", "linear"]}
