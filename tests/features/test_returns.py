"""Simple and log returns against NumPy and pandas."""

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

simple_returns = jax.jit(features.simple_returns)
log_returns = jax.jit(features.log_returns)


def test_simple_returns_match_numpy_and_pandas(bars):
    close = bars["close"]
    actual = np.asarray(simple_returns(close))
    expected = np.concatenate([[np.nan], np.diff(close) / close[:-1]])
    np.testing.assert_array_equal(actual, expected)
    # pandas computes c_t / c_{t-1} - 1: the same value up to an absolute ulp of 1.
    np.testing.assert_allclose(
        actual, pd.Series(close).pct_change(), rtol=0, atol=3e-16
    )


def test_log_returns_match_numpy_and_pandas(bars):
    close = bars["close"]
    actual = np.asarray(log_returns(close))
    change = np.diff(close) / close[:-1]
    ratio = close[1:] / close[:-1]
    expected = np.where(abs(change) < 0.5, np.log1p(change), np.log(ratio))
    np.testing.assert_allclose(actual[1:], expected, rtol=1e-15)
    idiom = np.log(pd.Series(close)).diff()
    np.testing.assert_allclose(actual, idiom, rtol=0, atol=1e-14)
    assert np.isnan(actual[0]) and np.isfinite(actual[1:]).all()


def test_log_returns_keep_digits_on_crashes():
    close = np.array([8776.41694, 1.9, 8776.41694])
    returns = np.asarray(log_returns(close))
    assert returns[1] == pytest.approx(np.log(1.9 / 8776.41694), rel=1e-15)
    assert returns[1] + returns[2] == pytest.approx(0, abs=4e-15)


def test_log_returns_keep_digits_on_tiny_moves():
    # A one-ulp move: log(c1 / c0) rounds the ratio to 1 + 2**-52 and is 1.95x off.
    close = np.array([1000.0, np.nextafter(1000.0, 2000.0)])
    exact = (close[1] - close[0]) / close[0]  # log1p(r) = r to 1e-16 relative here
    assert log_returns(close)[1] == pytest.approx(exact, rel=1e-15)
    assert np.log(close[1] / close[0]) == pytest.approx(1.95 * exact, rel=0.01)


@pytest.mark.parametrize("function", [features.simple_returns, features.log_returns])
def test_jit_vmap_and_float32(panel, function):
    batched = jax.jit(jax.vmap(function, in_axes=1, out_axes=1))(panel)
    for column in range(panel.shape[1]):
        expected = function(panel[:, column])
        np.testing.assert_allclose(batched[:, column], expected, rtol=1e-15)
    single = np.asarray(jax.jit(function)(panel[:, 0]))
    np.testing.assert_allclose(single, function(panel[:, 0]), rtol=1e-15)
    assert np.isfinite(single[1:]).all()
    low_precision = function(jnp.asarray(panel[:, 0], jnp.float32))
    assert low_precision.dtype == jnp.float32
    np.testing.assert_allclose(low_precision, single, rtol=1e-3, atol=1e-6)


def test_bad_shape_is_rejected():
    with pytest.raises(ValueError, match=r"close must be a series of shape \[T\]"):
        features.simple_returns(np.ones((4, 2)))


prices = arrays(np.float64, 30, elements=st.floats(1, 1e4))


@settings(max_examples=40, deadline=None)
@given(prices)
def test_log_returns_add_up_to_the_total_log_return(close):
    total = np.sum(np.asarray(log_returns(close))[1:])
    # Terms reach +-9.2 (prices span 1 .. 1e4): a few ulps each.
    np.testing.assert_allclose(total, np.log(close[-1] / close[0]), rtol=0, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(prices, st.integers(-10, 10))
def test_returns_do_not_depend_on_the_unit_of_price(close, exponent):
    scaled = close * 2.0**exponent
    np.testing.assert_array_equal(simple_returns(scaled), simple_returns(close))
    np.testing.assert_array_equal(log_returns(scaled), log_returns(close))
