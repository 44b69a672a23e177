"""Each strategy against a NumPy/pandas version of its rule on S&P 500 closes.

Indicators come from pandas (rolling and ewm means), a two-pass NumPy standard
deviation per window and a TA-Lib-convention RSI loop; path-dependent rules are plain
Python loops. Positions must be equal, bar for bar.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

from neuroflux import strategies
from neuroflux.strategies import Direction

DIRECTIONS = [Direction.LONG_SHORT, Direction.LONG_ONLY]


def reference_rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI, TA-Lib seeding (50 when both averages are 0)."""
    change = np.diff(close)
    gains, losses = np.maximum(change, 0), np.maximum(-change, 0)
    out = np.full(len(close), np.nan)
    gain, loss = gains[:period].mean(), losses[:period].mean()
    for t in range(period, len(close)):
        if t > period:
            gain = (gain * (period - 1) + gains[t - 1]) / period
            loss = (loss * (period - 1) + losses[t - 1]) / period
        out[t] = 50.0 if gain + loss == 0 else 100 * gain / (gain + loss)
    return out


def ewm(x: pd.Series, span: int) -> pd.Series:
    return x.ewm(span=span, adjust=False, min_periods=span).mean()


def cross(fast: np.ndarray, slow: np.ndarray, direction: Direction) -> np.ndarray:
    out = np.zeros(len(fast))
    out[fast > slow] = 1
    if direction is Direction.LONG_SHORT:
        out[fast < slow] = -1
    return out


def run(signal, close, params, **inputs) -> np.ndarray:
    return np.asarray(jax.jit(signal)(close, params, **inputs))


@pytest.mark.parametrize("start", [0, 1, 200])
def test_buy_and_hold(close, start):
    params = strategies.BuyAndHoldParams(start=start)
    expected = (np.arange(len(close)) >= start).astype(float)
    np.testing.assert_array_equal(run(strategies.buy_and_hold, close, params), expected)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(("fast", "slow"), [(10, 50), (50, 200), (3, 4)])
def test_sma_cross(close, fast, slow, direction):
    prices = pd.Series(close)
    expected = cross(
        prices.rolling(fast).mean().to_numpy(),
        prices.rolling(slow).mean().to_numpy(),
        direction,
    )
    params = strategies.SmaCrossParams(fast=fast, slow=slow, direction=direction)
    np.testing.assert_array_equal(run(strategies.sma_cross, close, params), expected)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(("fast", "slow"), [(12, 26), (5, 100)])
def test_ema_cross(close, fast, slow, direction):
    prices = pd.Series(close)
    expected = cross(
        ewm(prices, fast).to_numpy(), ewm(prices, slow).to_numpy(), direction
    )
    params = strategies.EmaCrossParams(fast=fast, slow=slow, direction=direction)
    np.testing.assert_array_equal(run(strategies.ema_cross, close, params), expected)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5)])
def test_macd_cross(close, fast, slow, signal, direction):
    prices = pd.Series(close)
    line = ewm(prices, fast) - ewm(prices, slow)
    expected = cross(line.to_numpy(), ewm(line, signal).to_numpy(), direction)
    params = strategies.MacdCrossParams(
        fast=fast, slow=slow, signal=signal, direction=direction
    )
    np.testing.assert_array_equal(run(strategies.macd_cross, close, params), expected)


def hysteresis_loop(enter_long, exit_long, enter_short, exit_short, ready, direction):
    out, position = np.zeros(len(ready)), 0
    for t in range(len(ready)):
        if not ready[t]:
            position = 0
        elif enter_long[t]:
            position = 1
        elif enter_short[t] and direction is Direction.LONG_SHORT:
            position = -1
        elif (position == 1 and exit_long[t]) or (position == -1 and exit_short[t]):
            position = 0
        out[t] = position
    return out


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(("window", "num_std"), [(20, 2.0), (50, 1.5), (5, 1.0)])
def test_bollinger_breakout(close, window, num_std, direction):
    windows = np.lib.stride_tricks.sliding_window_view(close, window)
    middle = np.full(len(close), np.nan)
    std = np.full(len(close), np.nan)
    middle[window - 1 :] = (
        pd.Series(close).rolling(window).mean().to_numpy()[window - 1 :]
    )
    std[window - 1 :] = windows.std(axis=1)
    upper, lower = middle + num_std * std, middle - num_std * std
    expected = hysteresis_loop(
        close > upper,
        close < middle,
        close < lower,
        close > middle,
        np.isfinite(middle),
        direction,
    )
    params = strategies.BollingerBreakoutParams(
        window=window, num_std=num_std, direction=direction
    )
    actual = run(strategies.bollinger_breakout, close, params)
    np.testing.assert_array_equal(actual, expected)
    assert (actual != 0).any() and (actual == 0).any()


def rsi_rule_loop(strength, lower, upper, direction) -> np.ndarray:
    """The RSI rule written out: long below lower, exit/short above upper."""
    out, position = np.zeros(len(strength)), 0
    for t, value in enumerate(strength):
        if np.isnan(value):
            position = 0
        elif value < lower:
            position = 1
        elif value > upper:
            position = -1 if direction is Direction.LONG_SHORT else 0
        out[t] = position
    return out


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(
    ("period", "lower", "upper"), [(14, 30.0, 70.0), (2, 10.0, 90.0), (30, 45.0, 55.0)]
)
def test_rsi_reversion(close, period, lower, upper, direction):
    expected = rsi_rule_loop(reference_rsi(close, period), lower, upper, direction)
    params = strategies.RsiReversionParams(
        period=period, lower=lower, upper=upper, direction=direction
    )
    actual = run(strategies.rsi_reversion, close, params)
    np.testing.assert_array_equal(actual, expected)
    # The rule holds between the levels: positions persist where RSI is in between.
    assert (actual[1:] == actual[:-1]).mean() > 0.9


def reference_score(close, flux, params) -> np.ndarray:
    prices = pd.Series(close)
    trend = prices.rolling(params.trend_window).mean().to_numpy()
    line = ewm(prices, params.macd_fast) - ewm(prices, params.macd_slow)
    histogram = (line - ewm(line, params.macd_signal)).to_numpy()
    if params.normalize_macd:
        histogram = histogram / close
    score = (
        params.rsi_weight * (reference_rsi(close, params.rsi_period) - 50) / 50
        + params.trend_weight * (close - trend) / trend
        + params.macd_weight * histogram
    )
    return score * (1 - params.flux_weight * flux)


COMPOSITES = [
    strategies.NeuroCompositeParams(),
    strategies.NeuroCompositeParams(entry=0.05, exit=0.01, normalize_macd=True),
    strategies.NeuroCompositeParams(
        rsi_period=7, trend_window=50, macd_fast=5, macd_slow=35, macd_signal=5,
        entry=0.2, exit=-0.05, flux_weight=0.5,
    ),
]  # fmt: skip


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("params", COMPOSITES)
def test_neuro_composite(close, params, direction):
    params = params.replace(direction=direction)
    flux = np.random.default_rng(7).uniform(0, 1, len(close))
    score = reference_score(close, flux, params)
    np.testing.assert_allclose(
        np.asarray(jax.jit(strategies.neuro_score)(close, params, flux)),
        score,
        rtol=1e-9,
        atol=1e-12,
    )
    expected = hysteresis_loop(
        score > params.entry,
        score < params.exit,
        score < -params.entry,
        score > -params.exit,
        np.isfinite(score),
        direction,
    )
    actual = run(strategies.neuro_composite, close, params, flux=flux)
    np.testing.assert_array_equal(actual, expected)


def test_neuro_flux_defaults_to_zero_and_damps(close):
    params = strategies.NeuroCompositeParams()
    score = jax.jit(strategies.neuro_score)
    undamped = np.asarray(score(close, params))
    np.testing.assert_array_equal(
        undamped, np.asarray(score(close, params, np.zeros_like(close)))
    )
    damped = np.asarray(score(close, params, np.ones_like(close)))
    np.testing.assert_allclose(damped, 0.8 * undamped, rtol=1e-14)
    with pytest.raises(ValueError, match="flux must have the shape"):
        strategies.neuro_score(close, params, np.zeros(10))


def test_macd_term_is_in_price_units_unless_normalized(close):
    base = strategies.NeuroCompositeParams(rsi_weight=0.0, trend_weight=0.0)
    score = jax.jit(strategies.neuro_score)
    raw = np.asarray(score(close, base))
    scaled = np.asarray(score(close, base.replace(normalize_macd=True)))
    valid = np.isfinite(raw)
    np.testing.assert_allclose(scaled[valid], raw[valid] / close[valid], rtol=1e-12)


def test_waiting_for_the_first_cross_stays_flat_until_the_lines_cross():
    close = np.asarray([5.0, 6.0, 7.0, 8.0, 7.0, 4.0, 3.0, 5.0, 9.0, 10.0])
    params = strategies.make_params("sma_cross", fast=1, slow=3, wait_for_cross=True)
    waited = np.asarray(strategies.sma_cross(close, params))
    at_once = np.asarray(
        strategies.sma_cross(close, strategies.make_params("sma_cross", fast=1, slow=3))
    )
    # sma(1) is the close; sma(3) from bar 2: 6, 7, 7.33, 6.33, 4.67, 4, 5.67, 8:
    # the close is above it on bars 2-3 (long at once), below on 4-6 (the first
    # cross, at bar 4) and above again from bar 7.
    np.testing.assert_array_equal(at_once, [0, 0, 1, 1, -1, -1, -1, 1, 1, 1])
    np.testing.assert_array_equal(waited, [0, 0, 0, 0, -1, -1, -1, 1, 1, 1])
