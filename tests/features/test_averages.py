"""Exponential and Wilder averages against pandas and an explicit loop."""

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

ema = jax.jit(features.ema)
wilder_average = jax.jit(features.wilder_average)


def reference_wilder(x: np.ndarray, period: int) -> np.ndarray:
    """Wilder's average by its definition, seeded with the mean of the first values."""
    start = int(np.argmax(np.isfinite(x)))
    out = np.full(len(x), np.nan)
    seed_index = start + period - 1
    if seed_index >= len(x):
        return out
    average = x[start : seed_index + 1].sum() / period
    out[seed_index] = average
    for t in range(seed_index + 1, len(x)):
        average = (average * (period - 1) + x[t]) / period
        out[t] = average
    return out


def _atol(x: np.ndarray) -> float:
    return 1e-14 * float(np.nanmax(np.abs(x)))


@pytest.mark.parametrize("span", [1, 2, 5, 12, 26, 50, 200, 1000])
def test_ema_matches_pandas(series, span):
    expected = pd.Series(series).ewm(span=span, adjust=False, min_periods=span).mean()
    actual = np.asarray(ema(series, span))
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=_atol(series))
    assert np.isnan(actual[: span - 1]).all() and np.isfinite(actual[span - 1 :]).all()


@pytest.mark.parametrize("span", [3, 9])
def test_ema_skips_leading_nans_like_pandas(sp500, span):
    x = sp500["close"][:400].copy()
    x[:25] = np.nan
    expected = pd.Series(x).ewm(span=span, adjust=False, min_periods=span).mean()
    actual = np.asarray(ema(x, span))
    np.testing.assert_allclose(actual, expected, rtol=1e-12)
    assert np.isnan(actual[: 25 + span - 1]).all()


@pytest.mark.parametrize("period", [1, 2, 14, 30, 200])
def test_wilder_average_matches_loop(series, period):
    expected = reference_wilder(series, period)
    actual = wilder_average(series, period)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=_atol(series))


def test_wilder_average_is_pandas_ewm_after_the_seed(sp500):
    close, period = sp500["close"], 14
    seeded = close.copy()
    seeded[period - 1] = close[:period].mean()
    tail = pd.Series(seeded[period - 1 :]).ewm(alpha=1 / period, adjust=False).mean()
    actual = np.asarray(wilder_average(close, period))
    np.testing.assert_allclose(actual[period - 1 :], tail, rtol=1e-12)


FUNCTIONS = {"ema": features.ema, "wilder_average": features.wilder_average}
JITTED = {"ema": ema, "wilder_average": wilder_average}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_jit_matches_eager(sp500, name):
    close = sp500["close"][:600]
    expected = np.asarray(FUNCTIONS[name](close, 10))
    np.testing.assert_allclose(JITTED[name](close, 10), expected, rtol=1e-15)
    assert np.isfinite(expected[9:]).all() and np.isnan(expected[:9]).all()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_vmap_over_parameters_matches_single_calls(sp500, name):
    close = sp500["close"][:600]
    parameters = np.array([1, 2, 9, 14, 26, 300, 600, 601])
    batched = jax.jit(jax.vmap(FUNCTIONS[name], in_axes=(None, 0)))(close, parameters)
    assert batched.shape == (len(parameters), len(close))
    for row, parameter in zip(np.asarray(batched), parameters, strict=True):
        np.testing.assert_allclose(row, JITTED[name](close, parameter), rtol=1e-15)
    assert np.isfinite(np.asarray(batched)[3, 13:]).all()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_vmap_over_assets_matches_single_calls(panel, name):
    batched = jax.jit(jax.vmap(FUNCTIONS[name], in_axes=(1, None), out_axes=1))(
        panel, 14
    )
    assert batched.shape == panel.shape
    for column in range(panel.shape[1]):
        expected = JITTED[name](panel[:, column], 14)
        np.testing.assert_allclose(batched[:, column], expected, rtol=1e-15)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_float32_in_float32_out(sp500, name):
    close = sp500["close"][:600]
    actual = JITTED[name](jnp.asarray(close, jnp.float32), 14)
    assert actual.dtype == jnp.float32
    np.testing.assert_allclose(actual, JITTED[name](close, 14), rtol=1e-5)


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="span must be an integer >= 1"):
        features.ema(np.ones(5), 0)
    with pytest.raises(ValueError, match="period must be an integer >= 1"):
        features.wilder_average(np.ones(5), -3)
    with pytest.raises(ValueError, match=r"shape \[T\]"):
        features.ema(np.ones((5, 2)), 3)


LENGTH = 40
prices = arrays(np.float64, LENGTH, elements=st.floats(1, 1e4))


@settings(max_examples=40, deadline=None)
@given(prices, st.integers(1, LENGTH), st.sampled_from(sorted(FUNCTIONS)))
def test_average_lies_within_the_range_seen_so_far(x, parameter, name):
    average = np.asarray(JITTED[name](x, parameter))
    valid = ~np.isnan(average)
    assert valid.sum() == LENGTH - parameter + 1
    low, high = np.minimum.accumulate(x), np.maximum.accumulate(x)
    assert np.all(average[valid] >= low[valid] * (1 - 1e-14))
    assert np.all(average[valid] <= high[valid] * (1 + 1e-14))


# XLA flushes subnormal results to zero, so values are kept well above that range.
levels = st.floats(-1e6, 1e6).filter(lambda value: value == 0 or abs(value) > 1e-200)


@settings(max_examples=30, deadline=None)
@given(levels, st.integers(1, LENGTH), st.sampled_from(sorted(FUNCTIONS)))
def test_average_of_a_constant_is_the_constant(value, parameter, name):
    average = np.asarray(JITTED[name](np.full(LENGTH, value), parameter))
    np.testing.assert_allclose(average[parameter - 1 :], value, rtol=1e-14)
