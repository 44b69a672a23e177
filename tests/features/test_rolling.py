"""Rolling statistics against pandas and NumPy two-pass references."""

from __future__ import annotations

from fractions import Fraction

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

WINDOWS = [1, 2, 5, 20, 63, 252, 1000]

sma = jax.jit(features.sma)
rolling_std = jax.jit(features.rolling_std)
rolling_max = jax.jit(features.rolling_max)
rolling_min = jax.jit(features.rolling_min)
zscore = jax.jit(features.zscore)
bollinger_bands = jax.jit(features.bollinger_bands)


def _pad(values: np.ndarray, length: int) -> np.ndarray:
    return np.concatenate([np.full(length - len(values), np.nan), values])


def reference_std(x: np.ndarray, window: int, ddof: int) -> np.ndarray:
    """Two-pass standard deviation of every window (no running update)."""
    if window <= ddof:
        return np.full(len(x), np.nan)
    view = sliding_window_view(x, window)
    deviations = view - view.mean(axis=1, keepdims=True)
    return _pad(np.sqrt((deviations**2).sum(axis=1) / (window - ddof)), len(x))


def reference_zscore(x: np.ndarray, window: int) -> np.ndarray:
    """Two-pass z-score in extended precision: x - mean cancels when z is near 0."""
    x = x.astype(np.longdouble)
    view = sliding_window_view(x, window)
    mean = view.mean(axis=1)
    std = np.sqrt(((view - mean[:, None]) ** 2).sum(axis=1) / (window - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return _pad(((x[window - 1 :] - mean) / std).astype(np.float64), len(x))


def _atol(x: np.ndarray) -> float:
    """Absolute slack for values near 0: a few ulps of the series' magnitude."""
    return 1e-14 * float(np.max(np.abs(x)))


@pytest.mark.parametrize("window", WINDOWS)
def test_sma_matches_pandas(series, window):
    expected = pd.Series(series).rolling(window).mean().to_numpy()
    actual = np.asarray(sma(series, window))
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=_atol(series))
    assert (
        np.isnan(actual[: window - 1]).all()
        and not np.isnan(actual[window - 1 :]).any()
    )


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("ddof", [0, 1])
def test_rolling_std_matches_two_pass_reference(series, window, ddof):
    actual = np.asarray(rolling_std(series, window, ddof))
    expected = reference_std(series, window, ddof)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("window", [2, 20, 252])
def test_rolling_std_follows_pandas_convention(series, window):
    # pandas updates its variance in place as the window slides, so it drifts (1e-8
    # relative on S&P 500 closes, 8e-6 instead of 0 for two equal closes); only the
    # convention (ddof, warm-up NaNs) must agree.
    expected = pd.Series(series).rolling(window).std().to_numpy()
    actual = rolling_std(series, window)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-4)


def test_rolling_std_is_correctly_rounded(sp500):
    close, window = sp500["close"][3900:4100], 5
    actual = np.asarray(rolling_std(close, window))
    for end in range(window - 1, len(close)):
        values = [Fraction(v) for v in close[end - window + 1 : end + 1]]
        mean = sum(values) / window
        variance = sum((v - mean) ** 2 for v in values) / (window - 1)
        assert actual[end] == pytest.approx(np.sqrt(float(variance)), rel=3e-16)


@pytest.mark.parametrize("window", WINDOWS)
def test_rolling_max_and_min_match_pandas_exactly(series, window):
    rolling = pd.Series(series).rolling(window)
    np.testing.assert_array_equal(rolling_max(series, window), rolling.max())
    np.testing.assert_array_equal(rolling_min(series, window), rolling.min())


@pytest.mark.parametrize("window", [2, 5, 20, 252])
def test_zscore_matches_reference(series, window):
    expected = reference_zscore(series, window)
    np.testing.assert_allclose(zscore(series, window), expected, rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("window", [5, 20, 50])
def test_bollinger_bands_use_population_std(sp500, window):
    close = sp500["close"]
    bands = bollinger_bands(close, window, 2.5)
    middle = pd.Series(close).rolling(window).mean().to_numpy()
    width = 2.5 * reference_std(close, window, ddof=0)
    np.testing.assert_allclose(bands.middle, middle, rtol=1e-12)
    np.testing.assert_allclose(bands.upper, middle + width, rtol=1e-12)
    np.testing.assert_allclose(bands.lower, middle - width, rtol=1e-12)
    pandas_width = 2.5 * pd.Series(close).rolling(window).std(ddof=0).to_numpy()
    np.testing.assert_allclose(bands.upper - bands.middle, pandas_width, rtol=1e-6)


def test_nan_spoils_only_the_windows_that_hold_it(sp500):
    close = sp500["close"][:300].copy()
    close[[0, 100, 101]] = np.nan
    frame = pd.Series(close).rolling(20)
    np.testing.assert_allclose(sma(close, 20), frame.mean(), rtol=1e-12)
    np.testing.assert_allclose(rolling_std(close, 20), frame.std(), rtol=1e-6)
    np.testing.assert_array_equal(rolling_max(close, 20), frame.max())
    assert np.isnan(np.asarray(sma(close, 20))[100:121]).all()


def test_constant_windows_have_zero_std():
    x = np.repeat([5.1, 5.1, 7.3, 1e6 / 3, -2.2], [10, 3, 8, 12, 6]).astype(float)
    expected = pd.Series(x).rolling(4).std().to_numpy()
    actual = np.asarray(rolling_std(x, 4))
    np.testing.assert_array_equal(actual == 0, expected == 0)
    assert (actual == 0).sum() == 10 + 5 + 9 + 3
    assert np.isnan(np.asarray(zscore(x, 4))[actual == 0]).all()


FUNCTIONS = {
    "sma": features.sma,
    "rolling_std": features.rolling_std,
    "rolling_max": features.rolling_max,
    "rolling_min": features.rolling_min,
    "zscore": features.zscore,
    "bollinger_upper": lambda x, w: features.bollinger_bands(x, w).upper,
}
JITTED = {name: jax.jit(function) for name, function in FUNCTIONS.items()}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_jit_matches_eager(sp500, name):
    function, close = FUNCTIONS[name], sp500["close"][:600]
    expected = np.asarray(function(close, 20))
    np.testing.assert_allclose(JITTED[name](close, 20), expected, rtol=1e-15)
    assert np.isfinite(expected[19:]).all()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_vmap_over_windows_matches_single_calls(sp500, name):
    function, close = FUNCTIONS[name], sp500["close"][:600]
    windows = np.array([2, 3, 7, 16, 17, 100, 513, 600, 601])
    batched = jax.jit(jax.vmap(function, in_axes=(None, 0)))(close, windows)
    assert batched.shape == (len(windows), len(close))
    for row, window in zip(np.asarray(batched), windows, strict=True):
        np.testing.assert_allclose(row, JITTED[name](close, window), rtol=1e-15)
    assert np.isfinite(np.asarray(batched)[3, 15:]).all()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_vmap_over_assets_matches_single_calls(panel, name):
    function = FUNCTIONS[name]
    batched = jax.jit(jax.vmap(function, in_axes=(1, None), out_axes=1))(panel, 30)
    assert batched.shape == panel.shape
    for column in range(panel.shape[1]):
        expected = JITTED[name](panel[:, column], 30)
        np.testing.assert_allclose(batched[:, column], expected, rtol=1e-15)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_float32_in_float32_out(sp500, name):
    close = sp500["close"][:600]
    actual = JITTED[name](jnp.asarray(close, jnp.float32), 20)
    assert actual.dtype == jnp.float32
    # The sums run in float64 inside, so float32 results are the float64 results of
    # the same (float32-rounded) inputs, rounded once: within half a float32 ulp.
    inputs = np.asarray(np.asarray(close, np.float32), np.float64)
    expected = np.float32(np.asarray(JITTED[name](inputs, 20)))
    np.testing.assert_allclose(actual, expected, rtol=2**-24, atol=0)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        features.sma(np.ones(10), 0)
    with pytest.raises(ValueError, match=r"shape \[T\].*vmap"):
        features.rolling_std(np.ones((10, 2)), 3)


def test_integer_input_is_promoted_to_default_float():
    mean = features.sma(np.arange(10), 3)
    assert mean.dtype == jnp.float64
    np.testing.assert_array_equal(mean, [np.nan, np.nan, *range(1, 9)])


LENGTH = 48
prices = arrays(np.float64, LENGTH, elements=st.floats(1, 1e4))
small_integers = arrays(np.float64, LENGTH, elements=st.integers(-50, 50).map(float))
windows = st.integers(1, LENGTH)


@settings(max_examples=40, deadline=None)
@given(prices, windows)
def test_sma_lies_between_rolling_min_and_max(x, window):
    mean = np.asarray(sma(x, window))
    low, high = np.asarray(rolling_min(x, window)), np.asarray(rolling_max(x, window))
    valid = slice(window - 1, None)
    assert np.all(low[valid] <= mean[valid] * (1 + 1e-15))
    assert np.all(mean[valid] <= high[valid] * (1 + 1e-15))
    assert np.all(low[valid] <= high[valid])


@settings(max_examples=40, deadline=None)
@given(prices, windows, st.floats(0.1, 5))
def test_bollinger_bands_are_ordered(x, window, num_std):
    bands = bollinger_bands(x, window, num_std)
    valid = slice(window - 1, None)
    assert np.all(np.asarray(bands.upper)[valid] >= np.asarray(bands.middle)[valid])
    assert np.all(np.asarray(bands.middle)[valid] >= np.asarray(bands.lower)[valid])


@settings(max_examples=40, deadline=None)
@given(small_integers, st.integers(2, LENGTH), st.floats(0.5, 8), st.floats(-1e3, 1e3))
def test_zscore_is_invariant_to_shift_and_scale(x, window, scale, shift):
    expected = np.asarray(zscore(x, window))
    actual = np.asarray(zscore(scale * x + shift, window))
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(prices, windows)
def test_rolling_std_is_non_negative_and_zero_on_constants(x, window):
    deviation = np.asarray(rolling_std(x, window, 0))[window - 1 :]
    assert np.all(deviation >= 0)
    constant = np.asarray(rolling_std(np.full(LENGTH, x[0]), window, 0))
    np.testing.assert_array_equal(constant[window - 1 :], 0.0)
