"""The market overview: its state in Python, then the page in a real browser."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from neuroflux.dashboards import market
from neuroflux.dashboards.market import MarketOverview
from neuroflux.data import load_sample

# Data of the bokeh model named ``name`` in the page's document.
MODEL = """name => {
    const model = Array.from(Bokeh.documents[0].all_models)
        .find(model => model.name === name);
    return model.data ?? {location: model.location};
}"""
MODEL_ID = """name => Array.from(Bokeh.documents[0].all_models)
    .find(model => model.name === name).id"""
# The first pixel of a canvas, [r, g, b, a]: the figure's border fill, if any.
FIRST_PIXEL = """canvas => Array.from(
    canvas.getContext("2d").getImageData(0, 0, 1, 1).data)"""
PHONE = 390


def test_regime_mask_is_the_average_volatility_above_its_quantile():
    rng = np.random.default_rng(0)
    volatility = rng.uniform(0.1, 0.5, size=(300, 3))
    volatility[:20] = np.nan
    quantile = 0.8

    mask = market.regime_mask(volatility, quantile)

    average = volatility[20:].mean(axis=1)
    threshold = np.percentile(average, 100 * quantile)
    expected = np.concatenate([np.zeros(20, bool), average > threshold])
    np.testing.assert_array_equal(mask, expected)
    assert mask.sum() == pytest.approx(0.2 * 280, abs=1)
    assert market.regime_threshold(volatility, quantile) == pytest.approx(threshold)


def test_regime_mask_is_empty_before_any_volatility():
    assert not market.regime_mask(np.full((5, 2), np.nan), 0.5).any()


def test_regime_spans_are_the_runs_of_true_days():
    mask = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    starts, ends = market.regime_spans(mask)
    np.testing.assert_array_equal(starts, [0, 4, 6])
    np.testing.assert_array_equal(ends, [1, 4, 8])


def test_panel_volatility_matches_pandas():
    close = load_sample("us_stocks")["close"]
    expected = np.log(close).diff().rolling(30).std() * np.sqrt(252)
    np.testing.assert_allclose(
        market.panel_volatility(close.to_numpy(), 30), expected.to_numpy(), rtol=1e-9
    )


def test_rebased_prices_start_at_100():
    close = np.array([[2.0, 50.0], [3.0, 25.0]])
    np.testing.assert_allclose(market.rebased_prices(close), [[100, 100], [150, 50]])


@pytest.fixture(scope="module")
def overview():
    return MarketOverview()


def test_overview_draws_every_asset_of_the_sample(overview):
    overview.param.update(sample="us_stocks", window=63, quantile=0.8)
    charts = overview._charts
    assert list(charts.prices_source.data["symbol"]) == ["aapl", "ibm", "msft", "goog"]
    assert len(charts.correlation_source.data["value"]) == 16
    first = np.array([ys[0] for ys in charts.prices_source.data["ys"]])
    np.testing.assert_allclose(first, 100.0)

    overview.sample = "us_indices"
    assert list(charts.prices_source.data["symbol"]) == ["sp500", "nasdaq"]
    assert overview.period[0] == datetime.datetime(1999, 1, 4)


def test_overview_shades_fewer_days_at_a_higher_quantile(overview):
    overview.param.update(sample="us_stocks", quantile=0.6)
    regime = overview._charts.regime_source
    days_at = {}
    for quantile in (0.6, 0.9):
        overview.quantile = quantile
        days_at[quantile] = sum(
            end - start for start, end in zip(*regime.data.values(), strict=True)
        )
    assert days_at[0.9] < days_at[0.6]


def test_overview_window_and_period_change_the_charts(overview):
    overview.param.update(sample="us_stocks", window=63)
    charts = overview._charts
    before = charts.volatility_source.data["ys"][0]
    overview.window = 21
    after = charts.volatility_source.data["ys"][0]
    assert np.isnan(before[:63]).all() and not np.isnan(after[22:63]).any()

    overview.period = (datetime.datetime(2006, 1, 1), datetime.datetime(2006, 12, 31))
    times = pd.DatetimeIndex(charts.prices_source.data["xs"][0])
    assert times[0].year == 2006 and times[-1].year == 2006


# Browser -----------------------------------------------------------------------------


def model_data(page, name: str) -> dict:
    return page.evaluate(MODEL, name)


def test_market_page_loads_offline_and_draws(dashboard_url, open_page):
    opened = open_page(f"{dashboard_url}/market")
    opened.wait_for_figures(4)
    assert model_data(opened.page, "nf-prices")["symbol"] == [
        "aapl",
        "ibm",
        "msft",
        "goog",
    ]
    opened.screenshot("market-overview")
    assert opened.errors == []
    assert opened.blocked == []


def test_market_sample_change_updates_the_charts_in_place(dashboard_url, open_page):
    opened = open_page(f"{dashboard_url}/market")
    opened.wait_for_figures(4)
    page = opened.page
    source = page.evaluate(MODEL_ID, "nf-prices")
    page.locator("select").first.select_option("us_indices")
    page.wait_for_function(
        f"({MODEL})('nf-correlation').x.length === 4", timeout=10_000
    )
    assert model_data(page, "nf-prices")["symbol"] == ["sp500", "nasdaq"]
    correlation = model_data(page, "nf-correlation")
    assert correlation["x"] == ["sp500", "nasdaq", "sp500", "nasdaq"]
    assert correlation["text"][0] == "1.00"
    assert page.evaluate(MODEL_ID, "nf-prices") == source
    assert opened.errors == []


def test_market_quantile_slider_moves_the_threshold(dashboard_url, open_page):
    opened = open_page(f"{dashboard_url}/market")
    opened.wait_for_figures(4)
    page = opened.page
    before = model_data(page, "nf-threshold")["location"]
    handle = page.locator(".noUi-handle").last
    handle.focus()
    handle.press("ArrowRight")
    page.wait_for_function(
        f"({MODEL})('nf-threshold').location > {before}", timeout=10_000
    )
    assert opened.errors == []


@pytest.mark.parametrize("theme", ["default", "dark"])
def test_market_page_follows_the_theme(dashboard_url, open_page, theme):
    opened = open_page(f"{dashboard_url}/market?theme={theme}")
    opened.wait_for_figures(4)
    background = opened.page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(v) for v in background[4:-1].split(",")[:3])
    brightness = (red + green + blue) / 3
    assert brightness < 80 if theme == "dark" else brightness > 180, background
    canvas = opened.figures.first.locator("canvas").first
    *figure_rgb, alpha = canvas.evaluate(FIRST_PIXEL)
    if alpha:  # a transparent border shows the page's background, checked above
        figure_brightness = sum(figure_rgb) / 3
        assert figure_brightness < 80 if theme == "dark" else figure_brightness > 180
    opened.screenshot(f"market-overview-{theme}")


def test_market_page_fits_a_phone(dashboard_url, open_page):
    opened = open_page(f"{dashboard_url}/market", width=PHONE, height=844)
    opened.wait_for_figures(4)
    width = opened.page.evaluate("document.documentElement.scrollWidth")
    opened.screenshot("market-overview-phone")
    assert width <= PHONE
    assert opened.errors == []
