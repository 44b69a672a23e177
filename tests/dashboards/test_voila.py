"""``neuroflux voila``: the launcher's command line and the strategy tear sheet page.

The page tests start the real ``neuroflux voila strategy_tear_sheet`` on a free
loopback port and drive it in headless Chromium with every off-machine request blocked.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from neuroflux.dashboards.voila import (
    TOKEN_VARIABLE,
    resolve_dashboard_notebook,
    voila_command,
)
from neuroflux.data import load_sample
from neuroflux.research import run_backtest

NEUROFLUX = Path(sys.executable).with_name("neuroflux")
NOTEBOOK = (
    Path(__file__).resolve().parents[2]
    / "notebooks"
    / "dashboards"
    / "strategy_tear_sheet.ipynb"
)
CHART = ".js-plotly-plot"
SERVER_START_SECONDS = 120
FIRST_CHART_MS = 120_000  # a cold kernel imports jax and compiles the backtest
UPDATE_MS = 30_000
# The first trace's y values as plotly holds them (typed arrays included).
LAST_Y = "el => Array.from(el.data[0].y).at(-1)"


def test_voila_command_serves_the_notebook_without_code():
    command = voila_command("strategy_tear_sheet", port=8899)
    assert command[:4] == [sys.executable, "-m", "voila", str(NOTEBOOK)]
    assert "--no-browser" in command
    assert "--port=8899" in command
    assert "--Voila.ip=127.0.0.1" in command
    assert "--strip_sources=True" in command
    assert not any(arg.startswith("--Voila.token") for arg in command)


def test_voila_command_passes_a_token():
    command = voila_command(NOTEBOOK, port=1, address="0.0.0.0", token="s3cret")
    assert "--Voila.ip=0.0.0.0" in command
    assert "--Voila.token=s3cret" in command


def test_resolve_dashboard_notebook_by_name_or_path():
    assert resolve_dashboard_notebook("strategy_tear_sheet") == NOTEBOOK
    assert resolve_dashboard_notebook("strategy_tear_sheet.ipynb") == NOTEBOOK
    assert resolve_dashboard_notebook(NOTEBOOK) == NOTEBOOK


def test_resolve_dashboard_notebook_lists_the_available_ones():
    with pytest.raises(FileNotFoundError, match=r"available: .*strategy_tear_sheet"):
        resolve_dashboard_notebook("no_such_dashboard")


def test_cli_refuses_a_non_loopback_address_without_a_token(monkeypatch):
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    done = subprocess.run(
        [str(NEUROFLUX), "voila", "strategy_tear_sheet", "--address", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "DashboardAuthError" in done.stderr
    assert TOKEN_VARIABLE in done.stderr
    assert "voila:" not in done.stdout  # no URL announced for a refused bind


@pytest.fixture(scope="module")
def voila_url(neuroflux_server, wait_until_serving):
    """URL of a running ``neuroflux voila strategy_tear_sheet`` (loopback)."""
    process, port = neuroflux_server("voila", "strategy_tear_sheet")
    url = f"http://127.0.0.1:{port}/"
    # A static file: fetching the page itself would take the preheated kernel.
    wait_until_serving(f"{url}voila/static/voila.js", process)
    # One full render uses up the cold preheated kernel; the pool refills meanwhile,
    # so the browser's visit finds a kernel (nearly) done with the notebook.
    with urllib.request.urlopen(url, timeout=SERVER_START_SECONDS) as response:
        response.read()  # the page is complete once the notebook has run
    return url


@pytest.fixture(scope="module")
def tear_sheet(voila_url, open_page):
    """The tear sheet page, loaded until its chart has drawn."""
    opened = open_page(voila_url)
    opened.page.locator(f"{CHART} .scatterlayer .trace").first.wait_for(
        timeout=FIRST_CHART_MS
    )
    return opened


def _statistic(page, row: str, column: int = 1) -> str:
    cell = page.locator(f'.nf-table tr:has(th:text-is("{row}")) td').nth(column - 1)
    return cell.inner_text()


def test_page_loads_offline_without_errors_or_code(tear_sheet):
    page = tear_sheet.page
    assert tear_sheet.errors == []
    assert tear_sheet.blocked == []
    assert page.locator(".jp-CodeCell .jp-InputArea").count() == 0
    assert "TearSheet(" not in page.content()
    assert page.locator(f"{CHART} .scatterlayer .trace").count() == 6
    for title in ("Equity", "Drawdown", "Rolling Sharpe"):
        assert title in page.locator(CHART).inner_text()
    assert _statistic(page, "trades") == str(
        run_backtest(load_sample("sp500"), "sma_cross", commission=0.001).stats()[
            "trades"
        ]
    )
    tear_sheet.screenshot("voila-tear-sheet")


def test_changing_a_parameter_updates_the_charts_and_tables(tear_sheet):
    page = tear_sheet.page
    expected = run_backtest(
        load_sample("sp500"),
        "sma_cross",
        {"slow": 50, "fast": 10, "direction": "long_only"},
        commission=0.001,
    ).stats()
    before = _statistic(page, "sharpe_ratio")
    page.locator(
        '.widget-dropdown:has(label:text-is("direction")) select'
    ).select_option("long_only")
    wanted = f"{expected['sharpe_ratio']:,.4g}"
    page.wait_for_function(
        """([row, wanted]) => [...document.querySelectorAll('.nf-table tr')].some(
            tr => tr.querySelector('th')?.innerText === row
                && tr.querySelector('td')?.innerText === wanted)""",
        arg=["sharpe_ratio", wanted],
        timeout=UPDATE_MS,
    )
    assert wanted != before
    assert _statistic(page, "trades") == str(expected["trades"])
    final_equity = page.locator(CHART).evaluate(LAST_Y)
    assert final_equity == pytest.approx(expected["equity_final"], rel=1e-9)
    assert tear_sheet.errors == []


def test_phone_viewport_has_no_horizontal_scroll(voila_url, open_page):
    phone = open_page(voila_url, width=390, height=844)
    phone.page.locator(f"{CHART} .scatterlayer .trace").first.wait_for(
        timeout=FIRST_CHART_MS
    )
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    phone.screenshot("voila-tear-sheet-phone")
    assert width <= 390
    assert phone.errors == []
    assert phone.blocked == []
