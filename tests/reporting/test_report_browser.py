"""A real notebook's report.html, opened offline in headless Chromium.

Runs ``notebooks/01_market_data.ipynb`` once, opens its report as a ``file://`` URL
with every other request blocked, and checks that the bokeh plots render, nothing
reaches for the network and the key metrics are shown. Needs Debian's ``chromium``
(``scripts/test.sh`` installs it); without it the tests fail, they do not skip.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import sync_playwright

from neuroflux.reporting import run_notebook

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NO_CHROMIUM = (
    f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
    "(apt-get install -y chromium; scripts/test.sh installs it)"
)
# Price lines, return histogram, autocorrelation, correlation heatmap.
PLOTS = 4
# bokeh 3 draws each figure inside open shadow roots, which playwright's CSS
# selectors pierce: one div.bk-Figure per plot, its first canvas the drawn layer.
FIGURE = "div.bk-Figure"
# True once a canvas has pixels other than its background (the first pixel).
DRAWN = """canvases => canvases.every(canvas => {
    const data = canvas.getContext("2d")
        .getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 4; i < data.length; i += 4)
        for (let c = 0; c < 4; c++)
            if (data[i + c] !== data[c]) return true;
    return false;
})"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_notebook(
        "01_market_data",
        notebooks_dir=NOTEBOOKS,
        reports_dir=tmp_path_factory.mktemp("reports"),
    )


@pytest.fixture(scope="module")
def report(run):
    """The loaded report, with what it logged and what it tried to fetch."""
    if not CHROMIUM.exists():
        pytest.fail(NO_CHROMIUM)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page()
        errors, blocked = [], []

        def route(route):
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        page.route("**/*", route)
        page.on(
            "console",
            lambda message: (
                message.type == "error" and errors.append(f"console: {message.text}")
            ),
        )
        page.on("pageerror", lambda error: errors.append(f"page: {error}"))
        page.goto(run.report.as_uri(), wait_until="load")
        figures = page.locator(FIGURE)
        figures.nth(PLOTS - 1).wait_for(timeout=20_000)
        canvases = [
            figures.nth(i).locator("canvas").first.element_handle()
            for i in range(figures.count())
        ]
        page.wait_for_function(DRAWN, arg=canvases, timeout=20_000)
        yield SimpleNamespace(page=page, errors=errors, blocked=blocked)
        browser.close()


def test_chromium_is_installed():
    assert CHROMIUM.exists(), NO_CHROMIUM


def test_the_notebook_runs(run):
    assert run.status == "ok", run.error


def test_every_plot_renders_with_a_size(report):
    figures = report.page.locator(FIGURE)
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
