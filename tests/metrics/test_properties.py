"""Invariants of the metrics on hypothesis-generated return series."""

from __future__ import annotations

import jax
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuroflux import metrics

LENGTH = 48
SETTINGS = settings(max_examples=50, deadline=None)
returns_arrays = hnp.arrays(
    np.float64, LENGTH, elements=st.floats(-0.5, 0.5, allow_subnormal=False)
)
positive_arrays = hnp.arrays(
    np.float64, LENGTH, elements=st.floats(0.0, 0.5, allow_subnormal=False)
)

max_drawdown = jax.jit(metrics.max_drawdown)
drawdown_series = jax.jit(metrics.drawdown_series)
duration = jax.jit(metrics.max_drawdown_duration)
sharpe = jax.jit(metrics.sharpe_ratio)
sortino = jax.jit(metrics.sortino_ratio)
value_at_risk = jax.jit(metrics.value_at_risk)
expected_shortfall = jax.jit(metrics.conditional_value_at_risk)
stability = jax.jit(metrics.stability)
cumulative = jax.jit(metrics.cumulative_returns)
total = jax.jit(metrics.total_return)


@SETTINGS
@given(returns=returns_arrays)
def test_drawdowns_are_between_minus_one_and_zero(returns):
    series = np.asarray(drawdown_series(returns))
    assert np.all(series <= 0) and np.all(series >= -1)
    assert float(max_drawdown(returns)) == series.min()
    assert 0 <= int(duration(returns)) <= LENGTH


@SETTINGS
@given(returns=positive_arrays)
def test_non_negative_returns_never_draw_down(returns):
    assert float(max_drawdown(returns)) == 0.0
    assert int(duration(returns)) == 0


@SETTINGS
@given(returns=returns_arrays, position=st.integers(0, LENGTH - 1))
def test_a_loss_opens_a_drawdown_that_lasts_to_the_end(returns, position):
    returns = np.abs(returns)
    returns[position] = -0.1
    # After a 10 % loss, the later gains must recover it before the peak is regained.
    recovered = np.cumprod(1 + returns[position:]) >= 1 - 1e-12
    assert float(max_drawdown(returns)) <= -0.1 + 1e-12
    if not recovered.any():
        assert int(duration(returns)) == LENGTH - position


# Returns whose squares, scaled, stay normal numbers: below about 1e-150 they underflow
# (XLA flushes subnormals to zero), and no ratio of them can be scale-free.
returns_without_underflow = hnp.arrays(
    np.float64,
    LENGTH,
    elements=st.floats(-0.5, 0.5).filter(lambda x: x == 0 or abs(x) > 1e-100),
)


@SETTINGS
@given(returns=returns_without_underflow, scale=st.floats(0.01, 100))
def test_sharpe_and_sortino_ignore_leverage_without_risk_free(returns, scale):
    for ratio in (sharpe, sortino):
        base, scaled = float(ratio(returns)), float(ratio(scale * returns))
        if np.isfinite(base) and abs(base) > 1e-6:
            np.testing.assert_allclose(scaled, base, rtol=1e-9)


@SETTINGS
@given(returns=returns_arrays, cutoff=st.floats(0.0, 1.0))
def test_expected_shortfall_is_below_value_at_risk(returns, cutoff):
    assert (
        float(expected_shortfall(returns, cutoff))
        <= float(value_at_risk(returns, cutoff)) + 1e-15
    )
    assert float(value_at_risk(returns, cutoff)) >= returns.min()


@SETTINGS
@given(returns=returns_arrays)
def test_stability_is_a_coefficient_of_determination(returns):
    value = float(stability(returns))
    assert np.isnan(value) or 0.0 <= value <= 1.0


@SETTINGS
@given(returns=returns_arrays)
def test_total_return_is_the_last_cumulative_return(returns):
    np.testing.assert_allclose(
        total(returns), cumulative(returns)[-1], rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        total(returns), np.prod(1 + returns) - 1, rtol=1e-12, atol=1e-14
    )
