"""RSI against an explicit TA-Lib-convention loop; MACD against pandas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neuroflux import features

rsi = jax.jit(features.rsi)
macd = jax.jit(features.macd)


def reference_rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI as TA-Lib defines it, step by step."""

    def index(gain: float, loss: float) -> float:
        if loss == 0:
            return 50.0 if gain == 0 else 100.0
        return 100 - 100 / (1 + gain / loss)

    change = np.diff(close)
    gains, losses = np.maximum(change, 0), np.maximum(-change, 0)
    out = np.full(len(close), np.nan)
    if period >= len(close):
        return out
    gain, loss = gains[:period].sum() / period, losses[:period].sum() / period
    out[period] = index(gain, loss)
    for t in range(period + 1, len(close)):
        gain = (gain * (period - 1) + gains[t - 1]) / period
        loss = (loss * (period - 1) + losses[t - 1]) / period
        out[t] = index(gain, loss)
    return out


def reference_macd(close: np.ndarray, fast: int, slow: int, signal: int):
    prices = pd.Series(close)

    def average(x: pd.Series, span: int) -> pd.Series:
        return x.ewm(span=span, adjust=False, min_periods=span).mean()

    line = average(prices, fast) - average(prices, slow)
    signal_line = average(line, signal)
    return line.to_numpy(), signal_line.to_numpy(), (line - signal_line).to_numpy()


@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi_matches_reference(bars, period):
    close = bars["close"]
    actual = np.asarray(rsi(close, period))
    # 100 gain / (gain + loss) and 100 - 100 / (1 + gain / loss) differ by rounding
    # only; near 0 that rounding is absolute, hence the small atol.
    np.testing.assert_allclose(
        actual, reference_rsi(close, period), rtol=1e-12, atol=1e-11
    )
    assert np.isnan(actual[:period]).all() and np.isfinite(actual[period:]).all()


def test_rsi_of_flat_rising_and_falling_markets():
    flat, rising = np.full(30, 7.0), np.arange(30.0) + 1
    np.testing.assert_array_equal(np.asarray(rsi(flat, 14))[14:], 50.0)
    np.testing.assert_array_equal(np.asarray(rsi(rising, 14))[14:], 100.0)
    np.testing.assert_array_equal(np.asarray(rsi(rising[::-1], 14))[14:], 0.0)


@pytest.mark.parametrize(
    ("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (3, 4, 1)]
)
def test_macd_matches_pandas(bars, fast, slow, signal):
    close = bars["close"]
    actual = macd(close, fast, slow, signal)
    scale = 1e-13 * float(np.max(close))
    for got, expected in zip(
        actual, reference_macd(close, fast, slow, signal), strict=True
    ):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=scale)
    first = slow - 1 + signal - 1
    assert np.isnan(np.asarray(actual.signal)[:first]).all()
    assert np.isfinite(np.asarray(actual.histogram)[first:]).all()


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="slow must be an integer >= 1"):
        features.macd(np.ones(50), 12, 0, 9)
    with pytest.raises(ValueError, match="period must be an integer >= 1"):
        features.rsi(np.ones(50), 0)


def test_macd_fields_are_named(sp500):
    result = macd(sp500["close"][:200])
    np.testing.assert_array_equal(result.histogram, result.line - result.signal)
    assert result._fields == ("line", "signal", "histogram")


def _rsi_14(close):
    return features.rsi(close, 14)


def _macd_histogram(close):
    return features.macd(close, 12, 26, 9).histogram


FUNCTIONS = {"rsi": _rsi_14, "macd": _macd_histogram}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_jit_matches_eager(sp500, name):
    close = sp500["close"][:600]
    expected = np.asarray(FUNCTIONS[name](close))
    np.testing.assert_allclose(jax.jit(FUNCTIONS[name])(close), expected, rtol=1e-15)
    assert np.isfinite(expected[40:]).all()


def test_rsi_vmap_over_periods_matches_single_calls(sp500):
    close, periods = sp500["close"][:600], np.array([1, 2, 14, 50, 599, 600])
    batched = jax.jit(jax.vmap(features.rsi, in_axes=(None, 0)))(close, periods)
    for row, period in zip(np.asarray(batched), periods, strict=True):
        np.testing.assert_allclose(row, rsi(close, period), rtol=1e-15)
    assert np.isfinite(np.asarray(batched)[2, 14:]).all()


def test_macd_vmap_over_parameters_matches_single_calls(sp500):
    close = sp500["close"][:600]
    fast, slow, signal = (
        np.array([12, 5, 8]),
        np.array([26, 35, 17]),
        np.array([9, 5, 9]),
    )
    batched = jax.jit(jax.vmap(features.macd, in_axes=(None, 0, 0, 0)))(
        close, fast, slow, signal
    )
    for i in range(3):
        expected = macd(close, fast[i], slow[i], signal[i])
        for got, want in zip(batched, expected, strict=True):
            np.testing.assert_allclose(got[i], want, rtol=1e-15)
    assert np.isfinite(np.asarray(batched.signal)[1, 38:]).all()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_vmap_over_assets_matches_single_calls(panel, name):
    function = jax.jit(FUNCTIONS[name])
    batched = jax.jit(jax.vmap(FUNCTIONS[name], in_axes=1, out_axes=1))(panel)
    assert batched.shape == panel.shape
    for column in range(panel.shape[1]):
        np.testing.assert_allclose(
            batched[:, column], function(panel[:, column]), rtol=1e-15
        )


@pytest.mark.parametrize("name", FUNCTIONS)
def test_float32_in_float32_out(sp500, name):
    close = sp500["close"][:600]
    function = jax.jit(FUNCTIONS[name])
    actual = function(jnp.asarray(close, jnp.float32))
    assert actual.dtype == jnp.float32
    np.testing.assert_allclose(actual, function(close), rtol=1e-3, atol=2e-3)


LENGTH = 40
prices = arrays(np.float64, LENGTH, elements=st.floats(1, 1e4))


@settings(max_examples=40, deadline=None)
@given(prices, st.integers(1, LENGTH - 1))
def test_rsi_lies_between_0_and_100(close, period):
    index = np.asarray(rsi(close, period))[period:]
    assert np.all((index >= 0) & (index <= 100))


# Prices in cents: a shift keeps equal prices equal and different ones different (a
# change far below the shift's rounding would vanish and turn a fall into flat).
cents = arrays(np.float64, LENGTH, elements=st.integers(100, 1_000_000)).map(
    lambda x: x / 100
)


@settings(max_examples=40, deadline=None)
@given(
    cents,
    st.integers(1, LENGTH - 1),
    st.floats(0.1, 10),
    st.integers(-100_000, 100_000).map(lambda x: x / 100),
)
def test_rsi_is_invariant_to_shift_and_scale(close, period, scale, shift):
    expected = np.asarray(rsi(close, period))
    actual = np.asarray(rsi(scale * close + shift, period))
    np.testing.assert_allclose(actual, expected, rtol=1e-8, atol=1e-8)
