"""Forecast baselines against closed forms, their own recursions and a known GARCH."""

from __future__ import annotations

import numpy as np
import pytest
from arch import arch_model
from arch.univariate import GARCH, Normal, ZeroMean

from neuroflux.research.forecast_baselines import (
    boosting_forecast,
    garch_variance_forecast,
    ridge_forecast,
    zero_forecast,
)

TRUE_GARCH = {"omega": 0.05, "alpha": 0.10, "beta": 0.85}  # percent returns


def qlike(forecast, realized):
    ratio = realized / forecast
    return float(np.mean(ratio - np.log(ratio) - 1.0))


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((600, 5, 3))
    y = 0.8 * X[:, -1, 0] - 0.3 * X[:, -2, 1] + 0.1 * rng.standard_normal(600)
    return X[:400], y[:400], X[400:], y[400:]


@pytest.fixture(scope="module")
def simulated_garch():
    """Percent returns of a GARCH(1,1) with known parameters, and its variances."""
    errors = Normal(seed=np.random.default_rng(11))
    model = ZeroMean(None, volatility=GARCH(), distribution=errors)
    simulated = model.simulate(list(TRUE_GARCH.values()), 4000)
    return simulated["data"].to_numpy(), simulated["volatility"].to_numpy() ** 2


def test_zero_forecast_is_zero_per_sample(windows):
    assert np.array_equal(zero_forecast(windows[2]), np.zeros(200))


def test_ridge_equals_the_closed_form_with_an_unpenalised_intercept(windows):
    X_train, y_train, X_test, _ = windows
    alpha = 2.5
    A = X_train.reshape(400, -1)
    mean_x, mean_y = A.mean(axis=0), y_train.mean()
    centred = A - mean_x
    beta = np.linalg.solve(
        centred.T @ centred + alpha * np.eye(A.shape[1]), centred.T @ (y_train - mean_y)
    )
    expected = (X_test.reshape(200, -1) - mean_x) @ beta + mean_y
    np.testing.assert_allclose(
        ridge_forecast(X_train, y_train, X_test, alpha=alpha), expected, rtol=1e-9
    )


def test_boosting_is_seeded_and_learns_a_nonlinear_rule(windows):
    X_train, _, X_test, _ = windows
    rule = lambda X: np.sign(X[:, -1, 0]) * np.abs(X[:, -1, 1])  # noqa: E731
    first = boosting_forecast(X_train, rule(X_train), X_test, seed=3)
    again = boosting_forecast(X_train, rule(X_train), X_test, seed=3)
    assert np.array_equal(first, again)
    target = rule(X_test)
    assert np.mean((first - target) ** 2) < 0.25 * np.mean(target**2)


def test_garch_forecasts_follow_the_fitted_recursion(simulated_garch):
    returns = simulated_garch[0] / 100.0
    one = garch_variance_forecast(returns, train_end=3000, horizon=1)
    two = garch_variance_forecast(returns, train_end=3000, horizon=2)
    fitted = arch_model(100 * returns, mean="Zero", vol="GARCH").fit(
        last_obs=3000, disp="off"
    )
    omega, alpha, beta = fitted.params.to_numpy()
    # E_t[r_{t+2}^2] = omega + (alpha + beta) E_t[r_{t+1}^2], in percent squared.
    second = (omega + (alpha + beta) * one * 1e4) / 1e4
    np.testing.assert_allclose(two, one + second, rtol=1e-10)
    # One step: sigma2_{t+1} = omega + alpha r_t^2 + beta sigma2_t.
    previous, current = one[:-1] * 1e4, one[1:] * 1e4
    np.testing.assert_allclose(
        current,
        omega + alpha * (100 * returns[3000:]) ** 2 + beta * previous,
        rtol=1e-10,
    )
    assert len(one) == 4000 - 3000 + 1


def test_garch_forecasts_use_no_later_return(simulated_garch):
    returns = simulated_garch[0] / 100.0
    changed = returns.copy()
    changed[3500:] *= 3.0
    before = garch_variance_forecast(returns, train_end=3000)
    after = garch_variance_forecast(changed, train_end=3000)
    np.testing.assert_array_equal(before[:500], after[:500])  # made at bars <= 3499
    assert not np.array_equal(before[501:], after[501:])


def test_garch_is_close_to_the_true_model_out_of_sample(simulated_garch):
    returns, variances = simulated_garch
    forecast = 1e4 * garch_variance_forecast(returns / 100.0, train_end=3000)[:-1]
    realized = returns[3000:] ** 2
    oracle = variances[3000:]  # the true conditional variance of each return
    constant = np.full_like(oracle, np.var(returns[:3000]))
    assert qlike(forecast, realized) < qlike(oracle, realized) + 0.01
    assert qlike(forecast, realized) < qlike(constant, realized) - 0.02


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_end": 50}, "train_end"),
        ({"train_end": 150, "horizon": 0}, "horizon"),
    ],
)
def test_garch_rejects_bad_arguments(kwargs, message):
    returns = np.random.default_rng(0).standard_normal(200) / 100
    with pytest.raises(ValueError, match=message):
        garch_variance_forecast(returns, **kwargs)


def test_garch_names_a_non_finite_return():
    returns = np.random.default_rng(0).standard_normal(300) / 100
    returns[123] = np.nan
    with pytest.raises(ValueError, match="at 123"):
        garch_variance_forecast(returns, train_end=200)
