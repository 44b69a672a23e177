"""True range, ATR and rolling volatility against explicit references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.lib.stride_tricks import sliding_window_view

from neuroflux import features

true_range = jax.jit(features.true_range)
atr = jax.jit(features.atr)
rolling_volatility = jax.jit(features.rolling_volatility)


def reference_true_range(high, low, close) -> np.ndarray:
    previous = np.concatenate([[np.nan], close[:-1]])
    ranges = np.maximum(
        high - low, np.maximum(abs(high - previous), abs(low - previous))
    )
    ranges[0] = high[0] - low[0]
    return ranges


def reference_atr(high, low, close, period: int) -> np.ndarray:
    """TA-Lib's ATR: the mean of TR_1 .. TR_n at index n, then Wilder's recursion."""
    ranges = reference_true_range(high, low, close)
    out = np.full(len(close), np.nan)
    average = ranges[1 : period + 1].sum() / period
    out[period] = average
    for t in range(period + 1, len(close)):
        average = (average * (period - 1) + ranges[t]) / period
        out[t] = average
    return out


def reference_volatility(close, window: int, periods_per_year: float) -> np.ndarray:
    returns = np.log1p(np.diff(close) / close[:-1])
    view = sliding_window_view(returns, window)
    deviations = view - view.mean(axis=1, keepdims=True)
    std = np.sqrt((deviations**2).sum(axis=1) / (window - 1))
    return np.concatenate([np.full(window, np.nan), std * np.sqrt(periods_per_year)])


def test_true_range_matches_reference(bars):
    high, low, close = bars["high"], bars["low"], bars["close"]
    expected = reference_true_range(high, low, close)
    np.testing.assert_array_equal(true_range(high, low, close), expected)


@pytest.mark.parametrize("period", [1, 5, 14, 50])
def test_atr_matches_reference(bars, period):
    high, low, close = bars["high"], bars["low"], bars["close"]
    actual = np.asarray(atr(high, low, close, period))
    np.testing.assert_allclose(
        actual, reference_atr(high, low, close, period), rtol=1e-12
    )
    assert np.isnan(actual[:period]).all() and np.isfinite(actual[period:]).all()


@pytest.mark.parametrize(
    ("window", "periods_per_year"), [(2, 252), (20, 252), (60, 52)]
)
def test_rolling_volatility_matches_reference(bars, window, periods_per_year):
    close = bars["close"]
    actual = rolling_volatility(close, window, periods_per_year)
    expected = reference_volatility(close, window, periods_per_year)
    np.testing.assert_allclose(actual, expected, rtol=1e-12)
    # Same convention as the pandas idiom, whose running update is less exact.
    log_returns = np.log(pd.Series(close)).diff()
    idiom = log_returns.rolling(window).std() * np.sqrt(periods_per_year)
    np.testing.assert_allclose(actual, idiom, rtol=1e-6)


def _atr_14(high, low, close):
    return features.atr(high, low, close, 14)


def _volatility_20(high, low, close):
    return features.rolling_volatility(close, 20)


FUNCTIONS = {
    "true_range": features.true_range,
    "atr": _atr_14,
    "volatility": _volatility_20,
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_jit_matches_eager(sp500, name):
    bars = [sp500[key][:600] for key in ("high", "low", "close")]
    expected = np.asarray(FUNCTIONS[name](*bars))
    np.testing.assert_allclose(jax.jit(FUNCTIONS[name])(*bars), expected, rtol=1e-15)
    assert np.isfinite(expected[20:]).all()


def test_vmap_over_periods_matches_single_calls(sp500):
    bars = [sp500[key][:600] for key in ("high", "low", "close")]
    periods = np.array([1, 3, 14, 100, 599, 600])
    batched = jax.jit(jax.vmap(features.atr, in_axes=(None, None, None, 0)))(
        *bars, periods
    )
    for row, period in zip(np.asarray(batched), periods, strict=True):
        np.testing.assert_allclose(row, atr(*bars, period), rtol=1e-15)
    volatility = jax.jit(jax.vmap(features.rolling_volatility, in_axes=(None, 0)))(
        bars[2], periods[1:]
    )
    for row, window in zip(np.asarray(volatility), periods[1:], strict=True):
        np.testing.assert_allclose(row, rolling_volatility(bars[2], window), rtol=1e-15)
    assert np.isfinite(np.asarray(batched)[2, 14:]).all()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_vmap_over_assets_matches_single_calls(sp500, aapl, name):
    length = 1000
    panels = [
        np.stack([sp500[key][-length:], aapl[key][-length:]], axis=1)
        for key in ("high", "low", "close")
    ]
    batched = jax.jit(jax.vmap(FUNCTIONS[name], in_axes=1, out_axes=1))(*panels)
    single = jax.jit(FUNCTIONS[name])
    for column in range(2):
        expected = single(*(p[:, column] for p in panels))
        np.testing.assert_allclose(batched[:, column], expected, rtol=1e-15)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_float32_in_float32_out(sp500, name):
    bars = [sp500[key][:600] for key in ("high", "low", "close")]
    function = jax.jit(FUNCTIONS[name])
    actual = function(*(jnp.asarray(x, jnp.float32) for x in bars))
    assert actual.dtype == jnp.float32
    np.testing.assert_allclose(actual, function(*bars), rtol=1e-3)


def test_mismatched_bars_are_rejected():
    with pytest.raises(ValueError, match="high, low and close must have one shape"):
        features.true_range(np.ones(5), np.ones(4), np.ones(5))


LENGTH = 40


@st.composite
def ohlc(draw):
    close = draw(arrays(np.float64, LENGTH, elements=st.floats(1, 1e4)))
    above = draw(arrays(np.float64, LENGTH, elements=st.floats(0, 100)))
    below = draw(arrays(np.float64, LENGTH, elements=st.floats(0, 100)))
    return close + above, close - below, close


@settings(max_examples=40, deadline=None)
@given(ohlc(), st.integers(1, LENGTH - 1))
def test_atr_is_non_negative_and_true_range_covers_the_bar(bars, period):
    high, low, _ = bars
    ranges = np.asarray(true_range(*bars))
    assert np.all(ranges >= high - low)
    average = np.asarray(atr(*bars, period))[period:]
    assert np.all(average >= 0)
    assert np.all(average <= ranges[1:].max() * (1 + 1e-14))


@settings(max_examples=30, deadline=None)
@given(st.floats(1, 1e4), st.floats(0, 100), st.integers(1, LENGTH - 1))
def test_atr_of_bars_with_one_range_is_that_range(level, width, period):
    close = np.full(LENGTH, level)
    average = np.asarray(atr(close + width / 2, close - width / 2, close, period))
    np.testing.assert_allclose(average[period:], width, rtol=1e-12, atol=1e-12)
