"""Differential tests against empyrical-reloaded, computed here by empyrical itself."""

from __future__ import annotations

import empyrical
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuroflux import metrics

RTOL, ATOL = 1e-10, 1e-13

# (name, neuroflux function, empyrical function); both take the returns alone.
UNARY = [
    ("total_return", metrics.total_return, empyrical.cum_returns_final),
    ("annual_return", metrics.annual_return, empyrical.annual_return),
    ("annual_volatility", metrics.annual_volatility, empyrical.annual_volatility),
    ("sharpe_ratio", metrics.sharpe_ratio, empyrical.sharpe_ratio),
    ("sortino_ratio", metrics.sortino_ratio, empyrical.sortino_ratio),
    ("downside_risk", metrics.downside_risk, empyrical.downside_risk),
    ("calmar_ratio", metrics.calmar_ratio, empyrical.calmar_ratio),
    ("omega_ratio", metrics.omega_ratio, empyrical.omega_ratio),
    ("max_drawdown", metrics.max_drawdown, empyrical.max_drawdown),
    ("tail_ratio", metrics.tail_ratio, empyrical.tail_ratio),
    ("stability", metrics.stability, empyrical.stability_of_timeseries),
    ("value_at_risk", metrics.value_at_risk, empyrical.value_at_risk),
    (
        "conditional_value_at_risk",
        metrics.conditional_value_at_risk,
        empyrical.conditional_value_at_risk,
    ),
]
JITTED = {name: jax.jit(function) for name, function, _ in UNARY}


def _check_unary(returns: np.ndarray) -> None:
    present = returns[~np.isnan(returns)]
    for name, _, peer in UNARY:
        actual = np.asarray(JITTED[name](returns))
        if name == "stability" and np.all(present[1:] == 0):
            # A flat cumulative curve: scipy's answer (NaN, 0 or noise) depends on
            # the last bit of a mean; neuroflux defines it as NaN.
            assert np.isnan(actual)
            continue
        expected = peer(returns)
        np.testing.assert_allclose(actual, expected, RTOL, ATOL, err_msg=name)


@pytest.mark.parametrize("fixture", ["panel", "panel_with_nans"])
def test_unary_metrics_match_empyrical(request, fixture):
    for returns in request.getfixturevalue(fixture):
        _check_unary(returns)


def test_cumulative_returns_and_drawdowns_match_empyrical(panel_with_nans):
    for returns in panel_with_nans:
        np.testing.assert_allclose(
            metrics.cumulative_returns(returns),
            empyrical.cum_returns(returns),
            RTOL,
            ATOL,
        )
        np.testing.assert_allclose(
            metrics.drawdown_series(returns),
            empyrical.stats.drawdown_series(returns),
            RTOL,
            ATOL,
        )


@pytest.mark.parametrize(
    ("risk_free", "required_return", "periods_per_year"),
    [(0.0, 0.0, 252), (0.0001, 0.05, 252), (-0.0002, 0.3, 52), (0.001, 0.002, 1)],
)
def test_metrics_with_arguments_match_empyrical(
    panel_with_nans, risk_free, required_return, periods_per_year
):
    for returns in panel_with_nans[::3]:
        cases = [
            (
                metrics.sharpe_ratio(returns, risk_free, periods_per_year),
                empyrical.sharpe_ratio(
                    returns, risk_free, annualization=periods_per_year
                ),
            ),
            (
                metrics.sortino_ratio(returns, required_return, periods_per_year),
                empyrical.sortino_ratio(
                    returns, required_return, annualization=periods_per_year
                ),
            ),
            (
                metrics.omega_ratio(
                    returns, risk_free, required_return, periods_per_year
                ),
                empyrical.omega_ratio(
                    returns, risk_free, required_return, periods_per_year
                ),
            ),
            (
                metrics.annual_return(returns, periods_per_year),
                empyrical.annual_return(returns, annualization=periods_per_year),
            ),
            (
                metrics.annual_volatility(returns, periods_per_year),
                empyrical.annual_volatility(returns, annualization=periods_per_year),
            ),
            (
                metrics.calmar_ratio(returns, periods_per_year),
                empyrical.calmar_ratio(returns, annualization=periods_per_year),
            ),
        ]
        for actual, expected in cases:
            np.testing.assert_allclose(actual, expected, RTOL, ATOL)


@pytest.mark.parametrize("cutoff", [0.0, 0.01, 0.05, 0.1, 0.5, 1.0])
def test_tail_risk_cutoffs_match_empyrical(panel, panel_with_nans, cutoff):
    for returns in panel[::4]:
        np.testing.assert_allclose(
            metrics.value_at_risk(returns, cutoff),
            empyrical.value_at_risk(returns, cutoff),
            RTOL,
            ATOL,
        )
    for returns in panel_with_nans[::4]:
        np.testing.assert_allclose(
            metrics.conditional_value_at_risk(returns, cutoff),
            empyrical.conditional_value_at_risk(returns, cutoff),
            RTOL,
            ATOL,
        )


def test_value_at_risk_is_nan_with_a_nan_as_empyrical(panel_with_nans):
    returns = panel_with_nans[0]
    assert np.isnan(empyrical.value_at_risk(returns))
    assert np.isnan(metrics.value_at_risk(returns))


@pytest.mark.parametrize("fixture", ["panel", "panel_with_nans"])
@pytest.mark.parametrize("risk_free", [0.0, 0.0003])
def test_alpha_beta_matches_empyrical(request, fixture, factor_panel, risk_free):
    panel = request.getfixturevalue(fixture)
    for index in range(0, 12, 2):
        # A strategy with a known exposure to the factor plus its own noise.
        returns = 0.7 * factor_panel[index] + panel[index]
        factor = factor_panel[index].copy()
        factor[5 + index] = np.nan  # a NaN in the factor alone
        alpha, beta = metrics.alpha_beta(returns, factor, risk_free)
        expected = empyrical.alpha_beta(returns, factor, risk_free)
        np.testing.assert_allclose([alpha, beta], expected, RTOL, ATOL)


# Fixtures and expected values of empyrical's own test suite (quantopian/empyrical,
# empyrical/tests/test_stats.py, class TestStats: test_sharpe_ratio, test_annual_ret,
# test_annual_volatility, test_calmar, test_stability_of_timeseries, test_max_drawdown,
# test_omega), checked there to 8 decimals as here.
MIXED = np.array([np.nan, 1.0, 10.0, -4.0, 2.0, 3.0, 2.0, 1.0, -10.0]) / 100
POSITIVE = np.array([1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]) / 100
NEGATIVE = np.array([0.0, -6.0, -7.0, -1.0, -9.0, -2.0, -6.0, -8.0, -5.0]) / 100


@pytest.mark.parametrize(
    ("function", "returns", "expected"),
    [
        (metrics.sharpe_ratio, MIXED, 1.7238613961706866),
        (metrics.sharpe_ratio, POSITIVE, 52.915026221291804),
        (metrics.sharpe_ratio, NEGATIVE, -24.406808633910085),
        (metrics.annual_return, MIXED, 1.9135925373194231),
        (metrics.annual_volatility, MIXED, 0.9136465399704637),
        (metrics.calmar_ratio, MIXED, 19.135925373194233),
        (metrics.stability, MIXED, 0.1529973665111273),
        (metrics.max_drawdown, MIXED, -0.1),
        (metrics.max_drawdown, POSITIVE, 0.0),
        (metrics.max_drawdown, NEGATIVE, np.prod(1 + NEGATIVE) - 1),
        (lambda r: metrics.omega_ratio(r, 0.0, 10.0), MIXED, 0.83354263497557934),
    ],
)
def test_empyrical_published_expectations(function, returns, expected):
    np.testing.assert_almost_equal(float(function(returns)), expected, decimal=8)


def _returns_strategy(allow_nan: bool):
    # Whole basis points keep values away from denormals; ties are common, which
    # exercises the quantile interpolation.
    basis_points = st.integers(-5000, 5000).map(lambda b: b / 10_000)
    elements = st.one_of(basis_points, st.just(np.nan)) if allow_nan else basis_points
    return hnp.arrays(np.float64, 64, elements=elements)


@settings(max_examples=60, deadline=None)
@given(returns=_returns_strategy(allow_nan=False))
def test_hypothesis_finite_series_match_empyrical(returns):
    _check_unary(returns)


@settings(max_examples=60, deadline=None)
@given(returns=_returns_strategy(allow_nan=True))
def test_hypothesis_series_with_nans_match_empyrical(returns):
    if np.isnan(returns).sum() > 60:  # empyrical's linregress fails on < 2 points
        return
    _check_unary(returns)
