"""Dashboard latency in headless Chromium: page load to first chart, change to update.

Run with ``python bench/bench_dashboards.py`` (about 4 minutes on a 2-core CPU). It
starts ``neuroflux dashboard``, ``neuroflux voila strategy_tear_sheet`` and the peer,
``panel serve bench/dashboard_peer_app.py`` (the explorer's equity chart written the
usual Panel way: an hvplot line re-rendered through ``pn.bind``), all on sp500, 20
years of daily bars (5,031), and drives Debian's chromium with every off-machine
request blocked.

- First chart: from navigation start to the first chart drawn (a bokeh canvas with
  pixels other than its background, or plotly's first trace), read as
  ``performance.now()`` in the page; a new browser context (empty cache) per load, and
  again with the scripts cached by an earlier visit (a returning user).
- Update: from just before the key press that changes a parameter (the explorer's and
  the peer's ``fast``, the market's volatility window, the tear sheet's ``slow``) to
  the animation frame in which the chart's data has changed.
Medians of the repeats, min and max beside them. Ratio = peer / neuroflux.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import bokeh
import panel
from _machine import describe_machine
from playwright.sync_api import sync_playwright

BENCH = Path(__file__).resolve().parent
NEUROFLUX = Path(sys.executable).with_name("neuroflux")
LOADS = 5
UPDATES = 10
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
# performance.now() once the first bokeh figure has drawn pixels, else false.
BOKEH_DRAWN = """() => {
    const canvases = [];
    const visit = root => root.querySelectorAll("*").forEach(node => {
        if (node.shadowRoot) visit(node.shadowRoot);
        if (node.tagName === "CANVAS") canvases.push(node);
    });
    visit(document);
    for (const canvas of canvases) {
        if (!canvas.width || !canvas.height) continue;
        const data = canvas.getContext("2d")
            .getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 4; i < data.length; i += 64)
            if (data[i] !== data[0] || data[i + 1] !== data[1])
                return performance.now();
    }
    return false;
}"""
PLOTLY_DRAWN = """() => document.querySelector(".js-plotly-plot .scatterlayer .trace")
    ? performance.now() : false"""
# The last value of a bokeh data source found by name, or of a column of any source.
LAST_VALUE = """([name, column]) => {
    const sources = Array.from(Bokeh.documents[0].all_models)
        .filter(model => model.data && column in model.data
                && (name === null || model.name === name));
    const values = sources.at(-1).data[column];
    const last = values.at(-1);
    return JSON.stringify(Array.isArray(last) || ArrayBuffer.isView(last)
        ? Array.from(last).slice(-5) : last);
}"""
PLOTLY_LAST = """() => JSON.stringify(Array.from(
    document.querySelector(".js-plotly-plot").data[0].y).slice(-5))"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(argv: list[str], ready: str) -> subprocess.Popen:
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(ready, timeout=300) as response:
                response.read()
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{ready} did not answer")


def first_chart_ms(browser, url: str, drawn: str, context=None) -> float:
    """Milliseconds to the first chart; a new context (empty cache) unless given."""
    own = context is None
    if own:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else route.abort()
        ),
    )
    page.goto(url, wait_until="commit")
    elapsed = page.wait_for_function(drawn, polling="raf", timeout=120_000)
    milliseconds = float(elapsed.json_value())
    page.close()
    if own:
        context.close()
    return milliseconds


def update_ms(page, change, last: str, arg=None) -> float:
    """Milliseconds from ``change(page)`` to the frame where ``last`` differs."""
    before = page.evaluate(last, arg)
    started = page.evaluate("performance.now()")
    change(page)
    finished = page.wait_for_function(
        f"arg => (({last})(arg) !== {before!r}) && performance.now()",
        arg=arg,
        polling="raf",
        timeout=60_000,
    )
    return float(finished.json_value()) - started


def type_into(selector: str, values: list[int]):
    """A change that types the next of ``values`` into the input and presses Enter."""
    remaining = iter(values)

    def change(page):
        field = page.locator(selector).first
        field.fill(str(next(remaining)))
        field.press("Enter")

    return change


def press(selector: str, key: str, nth: int = 0):
    """A change that presses ``key`` on the ``nth`` element matching ``selector``."""

    def change(page):
        page.locator(selector).nth(nth).press(key)

    return change


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):7.0f} ms "
        f"(min {min(values):.0f}, max {max(values):.0f}, n={len(values)})"
    )


def measure(browser, name, url, drawn, change, last, arg=None, *, loads=LOADS):
    cold = [first_chart_ms(browser, url, drawn) for _ in range(loads)]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    cached = [first_chart_ms(browser, url, drawn, context) for _ in range(loads + 1)]
    page = context.new_page()
    page.goto(url)
    page.wait_for_function(drawn, polling="raf", timeout=120_000)
    update_ms(page, change, last, arg)  # a first change may compile
    updates = [update_ms(page, change, last, arg) for _ in range(UPDATES)]
    context.close()
    print(f"{name:<26} first chart, empty cache  {summary(cold)}")
    print(f"{'':<26} first chart, cached JS   {summary(cached[1:])}")
    print(f"{'':<26} update after a change    {summary(updates)}")
    return statistics.median(cold), statistics.median(updates)


def main() -> None:
    print(describe_machine(panel=panel.__version__, bokeh=bokeh.__version__))
    ports = {name: free_port() for name in ("dashboard", "peer", "voila")}
    base = f"http://127.0.0.1:{ports['dashboard']}"
    peer = f"http://127.0.0.1:{ports['peer']}/dashboard_peer_app"
    voila = f"http://127.0.0.1:{ports['voila']}/"
    servers = [
        start(
            [str(NEUROFLUX), "dashboard", "--port", str(ports["dashboard"])],
            f"{base}/explorer",
        ),
        start(
            [
                str(NEUROFLUX.with_name("panel")),
                "serve",
                str(BENCH / "dashboard_peer_app.py"),
                "--port",
                str(ports["peer"]),
                "--address",
                "127.0.0.1",
                "--allow-websocket-origin",
                f"127.0.0.1:{ports['peer']}",
            ],
            peer,
        ),
        start(
            [
                str(NEUROFLUX),
                "voila",
                "strategy_tear_sheet",
                "--port",
                str(ports["voila"]),
            ],
            voila,
        ),
    ]
    fast = [20, 12, 30, 15, 25, 11, 40, 18, 22, 35, 14, 28]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            ours = measure(
                browser,
                "strategy explorer",
                f"{base}/explorer",
                BOKEH_DRAWN,
                type_into(".nf-fast input", fast),
                LAST_VALUE,
                ["nf-equity", "strategy"],
            )
            theirs = measure(
                browser,
                "peer: hvplot + pn.bind",
                peer,
                BOKEH_DRAWN,
                type_into(".nf-fast input", fast),
                LAST_VALUE,
                [None, "strategy"],
            )
            measure(
                browser,
                "market overview",
                f"{base}/market",
                BOKEH_DRAWN,
                press(".noUi-handle", "ArrowLeft", nth=2),  # the window
                LAST_VALUE,
                ["nf-volatility", "ys"],
            )
            measure(
                browser,
                "voila tear sheet",
                voila,
                PLOTLY_DRAWN,
                press(
                    '.widget-hslider:has(label:text-is("slow")) .noUi-handle',
                    "ArrowRight",
                ),
                PLOTLY_LAST,
                loads=3,  # each load takes a fresh kernel
            )
            browser.close()
    finally:
        for server in servers:
            server.terminate()
    print(
        f"explorer vs peer: first chart {theirs[0] / ours[0]:.2f}x, "
        f"update {theirs[1] / ours[1]:.2f}x (peer / neuroflux)"
    )


if __name__ == "__main__":
    main()
