"""Shared test fixtures.

Headless Chromium for the browser tests: Debian's ``chromium`` driven by playwright.

``open_page(url)`` opens a page that may only reach loopback and ``file://`` URLs: every
other request is aborted and recorded, and console errors and uncaught exceptions are
collected. Without ``/usr/bin/chromium`` the tests fail (``scripts/test.sh`` installs
it); they never skip. Screenshots go to ``test-artifacts/screenshots/`` (or
``$NEUROFLUX_TEST_ARTIFACTS/screenshots/``).

``write_notebook(path, *sources, parameters=None)`` writes a small python3 notebook.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Locator, Page, sync_playwright

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
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
LOCAL = ("file://", "http://127.0.0.1", "http://localhost", "data:", "blob:")
# bokeh 3 draws each figure inside open shadow roots, which playwright's CSS
# selectors pierce: one div.bk-Figure per plot, its first canvas the drawn layer.
FIGURE = "div.bk-Figure"
# True once every canvas has pixels other than its background (the first pixel).
DRAWN = """canvases => canvases.every(canvas => {
    const data = canvas.getContext("2d")
        .getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 4; i < data.length; i += 4)
        for (let c = 0; c < 4; c++)
            if (data[i + c] !== data[c]) return true;
    return false;
})"""


@dataclasses.dataclass
class BrowserPage:
    """A page with the errors it logged and the requests it tried to send out."""

    page: Page
    errors: list[str]
    blocked: list[str]

    @property
    def figures(self) -> Locator:
        """The page's bokeh figures."""
        return self.page.locator(FIGURE)

    def wait_for_figures(self, count: int, timeout: float = 20_000) -> None:
        """Wait until the first ``count`` figures are there and have drawn."""
        self.figures.nth(count - 1).wait_for(timeout=timeout)
        canvases = [
            self.figures.nth(i).locator("canvas").first.element_handle()
            for i in range(count)
        ]
        self.page.wait_for_function(DRAWN, arg=canvases, timeout=timeout)

    def screenshot(self, name: str) -> Path:
        """Save the viewport as a test artifact and return its path.

        (A full-page capture resizes the viewport, which re-lays out the page.)
        """
        folder = Path(os.environ.get("NEUROFLUX_TEST_ARTIFACTS", ARTIFACTS))
        path = folder / "screenshots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.fail(NO_CHROMIUM)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def open_page(chromium):
    """``open_page(url, width=1280, height=900) -> BrowserPage``, loaded."""
    contexts = []

    def open_(url: str, *, width: int = 1280, height: int = 900) -> BrowserPage:
        context = chromium.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        opened = BrowserPage(page=page, errors=[], blocked=[])

        def route(route):
            if route.request.url.startswith(LOCAL):
                route.continue_()
            else:
                opened.blocked.append(route.request.url)
                route.abort()

        page.route("**/*", route)
        page.on(
            "console",
            lambda message: (
                message.type == "error"
                and opened.errors.append(f"console: {message.text}")
            ),
        )
        page.on("pageerror", lambda error: opened.errors.append(f"page: {error}"))
        page.goto(url, wait_until="load")
        return opened

    yield open_
    for context in contexts:
        context.close()


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
