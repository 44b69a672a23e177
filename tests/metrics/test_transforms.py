"""Every metric under jax.jit and jax.vmap over [N, T] against per-series calls."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neuroflux import metrics

# Functions of one returns series [T] with their default arguments.
SERIES_FUNCTIONS = {
    "total_return": metrics.total_return,
    "annual_return": metrics.annual_return,
    "annual_volatility": metrics.annual_volatility,
    "cumulative_returns": metrics.cumulative_returns,
    "sharpe_ratio": metrics.sharpe_ratio,
    "sortino_ratio": metrics.sortino_ratio,
    "downside_risk": metrics.downside_risk,
    "calmar_ratio": metrics.calmar_ratio,
    "omega_ratio": metrics.omega_ratio,
    "tail_ratio": metrics.tail_ratio,
    "stability": metrics.stability,
    "drawdown_series": metrics.drawdown_series,
    "max_drawdown": metrics.max_drawdown,
    "max_drawdown_duration": metrics.max_drawdown_duration,
    "value_at_risk": metrics.value_at_risk,
    "conditional_value_at_risk": metrics.conditional_value_at_risk,
    "probabilistic_sharpe_ratio": metrics.probabilistic_sharpe_ratio,
    "deflated_sharpe_ratio": lambda r: metrics.deflated_sharpe_ratio(r, 50, 1e-3),
    "sharpe_moments": metrics.sharpe_moments,
}


@pytest.mark.parametrize("name", sorted(SERIES_FUNCTIONS))
def test_jit_vmap_matches_per_series_calls(name, panel_with_nans):
    function = SERIES_FUNCTIONS[name]
    batched = jax.jit(jax.vmap(function))(panel_with_nans)
    single = [function(returns) for returns in panel_with_nans]
    expected = jax.tree.map(lambda *leaves: np.stack(leaves), *single)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15),
        batched,
        expected,
    )


def test_alpha_beta_vmaps_over_series_and_factors(panel, factor_panel):
    alpha, beta = jax.jit(jax.vmap(metrics.alpha_beta))(panel, factor_panel)
    for index in range(panel.shape[0]):
        a, b = metrics.alpha_beta(panel[index], factor_panel[index])
        np.testing.assert_allclose([alpha[index], beta[index]], [a, b], rtol=1e-12)


def test_arguments_may_be_traced_and_vmapped(panel):
    returns = panel[0]
    rates = jnp.array([0.0, 0.0001, 0.0005])
    periods = jnp.array([252.0, 52.0, 12.0])
    cutoffs = jnp.array([0.01, 0.05, 0.2])
    sharpe = jax.jit(jax.vmap(metrics.sharpe_ratio, in_axes=(None, 0, 0)))
    var = jax.jit(jax.vmap(metrics.value_at_risk, in_axes=(None, 0)))
    cvar = jax.jit(jax.vmap(metrics.conditional_value_at_risk, in_axes=(None, 0)))
    omega = jax.jit(jax.vmap(metrics.omega_ratio, in_axes=(None, 0, 0, 0)))
    for i in range(3):
        rate, period, cutoff = float(rates[i]), float(periods[i]), float(cutoffs[i])
        np.testing.assert_allclose(
            sharpe(returns, rates, periods)[i],
            metrics.sharpe_ratio(returns, rate, period),
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            var(returns, cutoffs)[i], metrics.value_at_risk(returns, cutoff)
        )
        np.testing.assert_allclose(
            cvar(returns, cutoffs)[i],
            metrics.conditional_value_at_risk(returns, cutoff),
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            omega(returns, rates, rates * 100, periods)[i],
            metrics.omega_ratio(returns, rate, rate * 100, period),
            rtol=1e-12,
        )


def test_trade_statistics_vmap_over_padded_strategies():
    rng = np.random.default_rng(7)
    pnl = rng.normal(0.1, 1.0, (6, 40))
    mask = np.arange(40)[None, :] < np.array([40, 30, 20, 10, 5, 2])[:, None]
    for function in (
        metrics.win_rate,
        metrics.profit_factor,
        metrics.expectancy,
        metrics.sqn,
        metrics.kelly_fraction,
    ):
        batched = jax.jit(jax.vmap(function))(pnl, mask)
        for row in range(6):
            np.testing.assert_allclose(
                batched[row], function(pnl[row][mask[row]]), rtol=1e-12
            )


def test_series_of_wrong_rank_is_refused(panel):
    with pytest.raises(ValueError, match=r"shape \[T\]"):
        metrics.sharpe_ratio(panel)
    with pytest.raises(ValueError, match="mask"):
        metrics.win_rate(panel[0], np.ones(3, bool))
    with pytest.raises(ValueError, match="same shape"):
        metrics.alpha_beta(panel[0], panel[1][:-1])
