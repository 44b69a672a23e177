"""Forecast metrics against SciPy/NumPy/statsmodels references, under jit, with
properties (QLIKE >= 0, DM antisymmetry) and the DM test's size under the null."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats import sandwich_covariance
from statsmodels.tsa.stattools import acovf

import neuroflux  # noqa: F401  (turns on 64-bit mode before any array is made)
from neuroflux.forecasting import metrics


@pytest.fixture(scope="module")
def panel() -> tuple[np.ndarray, np.ndarray]:
    """Forecasts and outcomes [60, 25] with NaNs, ties and an all-NaN period."""
    rng = np.random.default_rng(7)
    pred = rng.normal(size=(60, 25))
    actual = 0.2 * pred + rng.normal(size=(60, 25))
    pred[rng.random(pred.shape) < 0.1] = np.nan
    actual[rng.random(actual.shape) < 0.1] = np.nan
    pred[::3] = np.round(pred[::3], 1)  # ties in every third period
    actual[5] = np.nan
    return pred, actual


def _per_period(function, pred, actual):
    values = []
    for p, a in zip(pred, actual, strict=True):
        valid = np.isfinite(p) & np.isfinite(a)
        values.append(function(p[valid], a[valid])[0] if valid.sum() >= 2 else np.nan)
    return np.array(values)


def test_information_coefficient_matches_scipy(panel):
    pred, actual = panel
    ic = jax.jit(metrics.information_coefficient)(pred, actual)
    expected = _per_period(stats.pearsonr, pred, actual)
    np.testing.assert_allclose(ic, expected, rtol=1e-12, atol=1e-14)
    assert np.isnan(ic[5])


def test_rank_information_coefficient_matches_scipy(panel):
    pred, actual = panel
    rank_ic = jax.jit(metrics.rank_information_coefficient)(pred, actual)
    expected = _per_period(stats.spearmanr, pred, actual)
    np.testing.assert_allclose(rank_ic, expected, rtol=1e-12, atol=1e-14)


def test_ic_is_nan_for_a_constant_or_tiny_cross_section():
    pred = np.array([[1.0, 1.0, 1.0], [1.0, np.nan, np.nan], [1.0, 2.0, 3.0]])
    actual = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    for function in (
        metrics.information_coefficient,
        metrics.rank_information_coefficient,
    ):
        result = np.asarray(function(pred, actual))
        assert np.isnan(result[0]) and np.isnan(result[1])
        np.testing.assert_allclose(result[2], -1)


def test_icir_matches_numpy(panel):
    ic = np.asarray(metrics.information_coefficient(*panel))
    finite = ic[np.isfinite(ic)]
    np.testing.assert_allclose(
        metrics.icir(ic), finite.mean() / finite.std(ddof=1), rtol=1e-12
    )


def test_point_errors_match_numpy():
    rng = np.random.default_rng(1)
    pred, actual = rng.normal(size=200), rng.normal(size=200)
    actual[:10] = 0.0
    pred[5:15] = 0.0
    np.testing.assert_allclose(metrics.mse(pred, actual), np.mean((pred - actual) ** 2))
    np.testing.assert_allclose(
        jax.jit(metrics.directional_accuracy)(pred, actual),
        np.mean(np.sign(pred) == np.sign(actual)),
    )
    with pytest.raises(ValueError, match="pred and actual"):
        metrics.mse(pred, actual[:-1])


def test_cross_sectional_metrics_need_a_panel():
    with pytest.raises(ValueError, match=r"\[T, A\]"):
        metrics.information_coefficient(np.ones(5), np.ones(5))


positive = st.floats(1e-6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(positive, positive), min_size=1, max_size=20))
def test_qlike_is_nonnegative_and_zero_only_when_exact(pairs):
    forecast, realized = np.array(pairs).T
    loss = float(metrics.qlike(forecast, realized))
    ratio = realized / forecast
    np.testing.assert_allclose(
        loss, np.mean(ratio - np.log(ratio) - 1), rtol=1e-9, atol=1e-15
    )
    assert loss >= 0
    if np.allclose(forecast, realized, rtol=1e-3):
        assert loss < 1e-6
    else:
        assert loss > 0
    assert float(metrics.qlike(realized, realized)) == 0


def test_qlike_requires_positive_inputs():
    with pytest.raises(ValueError, match="variance_forecast"):
        metrics.qlike(np.array([1.0, 0.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="realized_variance"):
        metrics.qlike(np.array([1.0, 1.0]), np.array([1.0, -1.0]))


def _dm_reference(loss_a, loss_b, horizon):
    """Diebold-Mariano with the HLN correction, variance from statsmodels."""
    d = loss_a - loss_b
    length = d.size
    gammas = acovf(d, adjusted=False, demean=True, nlag=horizon - 1, fft=False)
    variance = gammas[0] + 2 * gammas[1:].sum()
    hac = sandwich_covariance.S_hac_simple(
        d - d.mean(),
        nlags=horizon - 1,
        weights_func=sandwich_covariance.weights_uniform,
    )
    np.testing.assert_allclose(hac[0, 0] / length, variance, rtol=1e-12)
    statistic = d.mean() / np.sqrt(variance / length)
    statistic *= np.sqrt(
        (length + 1 - 2 * horizon + horizon * (horizon - 1) / length) / length
    )
    return statistic, 2 * stats.t.sf(abs(statistic), df=length - 1)


@pytest.mark.parametrize("horizon", [1, 2, 5])
def test_diebold_mariano_matches_reference(horizon):
    rng = np.random.default_rng(horizon)
    shocks = rng.normal(size=(2, 260))
    # MA(h - 1) errors, as h-step forecasts make; a slightly worse than b.
    kernel = np.ones(horizon)
    errors_a = np.convolve(shocks[0], kernel, "valid") * 1.1
    errors_b = np.convolve(shocks[1], kernel, "valid")
    loss_a, loss_b = errors_a**2, errors_b**2
    statistic, p_value = jax.jit(metrics.diebold_mariano, static_argnums=2)(
        loss_a, loss_b, horizon
    )
    expected = _dm_reference(loss_a, loss_b, horizon)
    np.testing.assert_allclose([statistic, p_value], expected, rtol=1e-9)
    swapped = metrics.diebold_mariano(loss_b, loss_a, horizon)
    np.testing.assert_allclose(swapped, (-statistic, p_value), rtol=1e-12)


def test_diebold_mariano_rejects_at_its_level_under_the_null():
    """Equal-accuracy iid losses: 5% tests reject in about 5% of 4000 trials."""
    keys = jax.random.split(jax.random.key(0), 4000)
    losses = jax.vmap(lambda key: jax.random.normal(key, (2, 100)) ** 2)(keys)
    _, p_values = jax.vmap(metrics.diebold_mariano)(losses[:, 0], losses[:, 1])
    rate = float(np.mean(np.asarray(p_values) < 0.05))
    assert abs(rate - 0.05) < 0.015  # 4.3 binomial standard errors


def test_diebold_mariano_detects_a_better_forecast():
    rng = np.random.default_rng(2)
    statistic, p_value = metrics.diebold_mariano(
        rng.normal(size=500) ** 2 * 1.5, rng.normal(size=500) ** 2
    )
    assert statistic > 0 and p_value < 1e-3


def test_diebold_mariano_arguments():
    loss = np.ones(10)
    statistic, p_value = metrics.diebold_mariano(loss, loss)
    assert np.isnan(statistic) and np.isnan(p_value)
    for horizon in (0, 10, 2.0):
        with pytest.raises(ValueError, match="horizon"):
            metrics.diebold_mariano(loss, loss, horizon)
    with pytest.raises(ValueError, match=r"\[T\]"):
        metrics.diebold_mariano(np.ones((3, 3)), np.ones((3, 3)))
