"""The strategy explorer: its state in Python, and the served page in Chromium.

Chart values are read from the page's bokeh documents and compared with
``run_backtest`` run here on the same data, so a chart that did not update, or updated
to the wrong backtest, fails.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from neuroflux.dashboards.explorer import (
    StrategyExplorer,
    bars_per_year,
    market_choices,
    sweep_values,
)
from neuroflux.data import load_sample
from neuroflux.research import run_backtest

OPTIONS = {"commission": 0.001, "fill": "next_open"}
# The last value of the equity chart's strategy line, read from the page.
LAST_EQUITY = """() => Array.from(Bokeh.documents[0].all_models)
    .find(model => model.name === "nf-equity").data.strategy.at(-1)"""
# The number of cells in the sweep heatmap.
SWEEP_CELLS = """() => Array.from(Bokeh.documents[0].all_models)
    .find(model => model.name === "nf-sweep").data.x.length"""


def final_equity(params: dict) -> float:
    run = run_backtest(load_sample("sp500"), "sma_cross", params, **OPTIONS)
    return float(np.asarray(run.result.value)[-1])


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    return StrategyExplorer(reports_dir=tmp_path_factory.mktemp("reports"))


# State ------------------------------------------------------------------------------


def test_the_explorer_starts_on_sp500_with_the_strategy_defaults(explorer):
    assert explorer.market == "sample:sp500"
    assert explorer.parameters == {
        "fast": 10,
        "slow": 50,
        "direction": "long_short",
        "wait_for_cross": False,
    }
    assert explorer.run.stats()["equity_final"] == pytest.approx(
        final_equity(explorer.parameters), rel=1e-12
    )


def test_a_parameter_change_reruns_the_backtest_and_redraws(explorer):
    explorer.parameters = {**explorer.parameters, "fast": 20}
    drawn = explorer._charts.equity_source.data["strategy"]
    expected = final_equity({**explorer.parameters})
    assert drawn[-1] == pytest.approx(expected, rel=1e-12)
    assert explorer.run.stats()["equity_final"] == pytest.approx(expected, rel=1e-12)


def test_the_benchmark_is_buy_and_hold_under_the_same_costs(explorer):
    explorer.commission = 0.002
    benchmark = run_backtest(
        load_sample("sp500"), "buy_and_hold", commission=0.002, fill="next_open"
    )
    assert explorer._charts.equity_source.data["benchmark"] == pytest.approx(
        np.asarray(benchmark.result.value), rel=1e-12
    )
    explorer.commission = 0.001


def test_the_drawdown_and_rolling_sharpe_follow_the_equity(explorer):
    value = np.asarray(explorer.run.result.value)
    drawdown = explorer._charts.drawdown_source.data["drawdown"]
    assert drawdown == pytest.approx(100 * (value / np.maximum.accumulate(value) - 1))
    returns = pd.Series(np.asarray(explorer.run.result.returns))
    window = explorer.rolling_window
    last = returns.iloc[-window:]
    assert explorer._charts.rolling_source.data["sharpe"][-1] == pytest.approx(
        last.mean() / last.std() * np.sqrt(252)
    )


def test_a_sweep_cell_loads_its_parameters(explorer):
    sweep = explorer.run_sweep()
    assert list(sweep[["fast", "slow"]].drop_duplicates().index) == list(sweep.index)
    explorer.choose_sweep_cell(7)
    chosen = sweep.iloc[7]
    assert explorer.parameters["fast"] == int(chosen["fast"])
    assert explorer.parameters["slow"] == int(chosen["slow"])
    assert explorer.run.stats()["sharpe_ratio"] == pytest.approx(
        chosen["sharpe_ratio"], rel=1e-9
    )


def test_a_new_strategy_starts_from_its_defaults(explorer):
    explorer.strategy = "rsi_reversion"
    assert explorer.parameters == {
        "period": 14,
        "lower": 30.0,
        "upper": 70.0,
        "direction": "long_short",
    }
    assert (explorer.sweep_x, explorer.sweep_y) == ("period", "lower")
    assert explorer.sweep is None
    explorer.strategy = "sma_cross"


def test_a_bad_file_is_reported_and_the_last_market_stays(explorer, tmp_path):
    bad = tmp_path / "bars.csv"
    bad.write_text(
        "timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,abc,10\n"
    )
    before = explorer.run
    explorer.market = str(bad)
    assert str(bad) in explorer.error
    assert "close" in explorer.error
    assert explorer.run is before
    explorer.market = "sample:sp500"


def test_sweep_values_bracket_the_current_value():
    assert sweep_values(10) == sorted(set(sweep_values(10)))
    assert min(sweep_values(10)) <= 10 <= max(sweep_values(10))
    assert all(isinstance(v, int) for v in sweep_values(10))
    floats = sweep_values(2.0)
    assert len(floats) == 12 and floats[0] == 0.5 and floats[-1] == 3.5
    assert sweep_values(0.0)[0] == 0.0


def test_bars_per_year_for_daily_and_hourly_bars():
    assert bars_per_year(load_sample("sp500")) == 252.0
    hourly = pd.DataFrame(index=pd.date_range("2024", periods=10, freq="h", tz="UTC"))
    assert bars_per_year(hourly) == pytest.approx(365.25 * 24)


def test_the_markets_offered_are_the_single_asset_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROFLUX_CACHE_DIR", str(tmp_path))
    choices = market_choices()
    assert choices["sp500 (sample)"] == "sample:sp500"
    assert "sample:us_stocks" not in choices.values()


# In the browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def explorer_page(dashboard_url, open_page):
    opened = open_page(f"{dashboard_url}/explorer", height=1000)
    opened.wait_for_figures(3)
    return opened


def set_parameter(page, name: str, value) -> None:
    field = page.locator(f".nf-{name} input").first
    field.fill(str(value))
    field.press("Enter")


def test_the_page_shows_its_charts_without_errors(explorer_page):
    assert explorer_page.figures.count() >= 4  # equity, drawdown, Sharpe, sweep
    assert not explorer_page.errors, explorer_page.errors
    assert not explorer_page.blocked, explorer_page.blocked
    explorer_page.screenshot("strategy-explorer")


def test_the_charts_show_the_backtest_of_the_widgets(explorer_page):
    page = explorer_page.page
    expected = final_equity({"fast": 10, "slow": 50})
    assert page.evaluate(LAST_EQUITY) == pytest.approx(expected, rel=1e-9)
    set_parameter(page, "fast", 20)
    expected = final_equity({"fast": 20, "slow": 50})
    page.wait_for_function(
        f"() => Math.abs(({LAST_EQUITY})() - {expected}) < 1e-6 * {expected}",
        timeout=10_000,
    )
    assert not explorer_page.errors, explorer_page.errors


def test_a_click_on_the_sweep_heatmap_loads_that_cell(explorer_page):
    page = explorer_page.page
    before = page.evaluate(LAST_EQUITY)
    page.get_by_role("button", name="Sweep").click()
    page.wait_for_function(SWEEP_CELLS, timeout=120_000)
    heatmap = explorer_page.figures.nth(3)
    heatmap.scroll_into_view_if_needed()
    page.wait_for_timeout(300)  # the tab has opened and the cells are drawn
    box = heatmap.locator("canvas").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.45)
    page.wait_for_function(f"() => ({LAST_EQUITY})() !== {before}", timeout=10_000)
    fast = int(page.locator(".nf-fast input").first.input_value())
    slow = int(page.locator(".nf-slow input").first.input_value())
    assert (fast, slow) != (20, 50)
    assert fast in sweep_values(20) and slow in sweep_values(50)
    assert page.evaluate(LAST_EQUITY) == pytest.approx(
        final_equity({"fast": fast, "slow": slow}), rel=1e-9
    )
    explorer_page.screenshot("strategy-explorer-sweep")


def test_the_tear_sheet_button_runs_the_notebook_and_links_it(
    explorer_page, dashboard_reports
):
    page = explorer_page.page
    page.get_by_role("button", name="Run tear sheet").click()
    link = page.get_by_role("link", name=re.compile(r"^Report \d"))
    link.wait_for(timeout=180_000)
    (folder,) = (dashboard_reports / "02_strategy_backtest").iterdir()
    assert (folder / "report.html").is_file()
    href = link.get_attribute("href")
    assert href.endswith(f"02_strategy_backtest/{folder.name}/report.html")
    response = page.request.get(f"{page.url.rsplit('/', 1)[0]}/{href[2:]}")
    assert response.ok and "Strategy tear sheet" in response.text()


def test_a_bad_file_shows_an_error_naming_it(explorer_page):
    page = explorer_page.page
    field = page.locator("input").first  # the data spec box
    field.fill("/no/such/bars.parquet")
    field.press("Enter")
    page.get_by_text("/no/such/bars.parquet").last.wait_for(timeout=10_000)
    field.fill("sample:sp500")
    field.press("Enter")
