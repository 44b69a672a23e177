"""A real notebook's report.html, opened offline in headless Chromium.

Runs ``notebooks/01_market_data.ipynb`` once, opens its report as a ``file://`` URL
with every other request blocked, and checks that the bokeh plots render, nothing
reaches for the network and the key metrics are shown. Needs Debian's ``chromium``
(``scripts/test.sh`` installs it); without it the tests fail, they do not skip.
"""

from pathlib import Path

import pytest

from neuroflux.reporting import run_notebook

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# Price lines, return histogram, autocorrelation, correlation heatmap.
PLOTS = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_notebook(
        "01_market_data",
        notebooks_dir=NOTEBOOKS,
        reports_dir=tmp_path_factory.mktemp("reports"),
    )


@pytest.fixture(scope="module")
def report(run, open_page):
    """The loaded report, with what it logged and what it tried to fetch."""
    opened = open_page(run.report.as_uri())
    opened.wait_for_figures(PLOTS)
    return opened


def test_the_notebook_runs(run):
    assert run.status == "ok", run.error


def test_every_plot_renders_with_a_size(report):
    figures = report.figures
    assert figures.count() >= PLOTS
    for i in range(figures.count()):
        box = figures.nth(i).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, (i, box)


def test_the_page_logs_no_errors(report):
    assert not report.errors, "\n".join(sorted(set(report.errors)))


def test_the_page_requests_nothing_from_the_network(report):
    assert not report.blocked, "requests left the page:\n" + "\n".join(
        sorted(set(report.blocked))
    )


def test_the_key_metrics_are_shown(report, run):
    page = report.page
    assert page.get_by_role("heading", name="Key metrics").is_visible()
    shown = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    assert run.metrics, "the notebook reported no metrics"
    for name, value in run.metrics.items():
        assert f"'{name}': {value!r}" in shown, name
