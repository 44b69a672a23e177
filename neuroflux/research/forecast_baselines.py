"""The baselines a forecaster must beat, fitted on a training window only.

Every function fits on training data and forecasts the test samples; none sees a test
target. Windows ``X`` are ``[N, lookback, F]`` arrays (flattened to ``[N, lookback·F]``
for the regressions); targets are the forward returns or forward realized variances of
:mod:`neuroflux.forecasting`.

- :func:`zero_forecast`: 0 for every sample (the random-walk forecast of a return).
- :func:`ridge_forecast`: ridge regression on the same windows (scikit-learn, fixed
  ``alpha``; the intercept is not penalised).
- :func:`boosting_forecast`: scikit-learn's ``HistGradientBoostingRegressor`` with fixed
  settings and seed.
- :func:`garch_variance_forecast`: GARCH(1,1) (``arch``) fitted on the training returns;
  the variance of the next ``horizon`` returns forecast at every later bar from the
  returns up to that bar, with the fitted parameters.
"""

from __future__ import annotations

import numpy as np
from arch import arch_model
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge

__all__ = [
    "boosting_forecast",
    "garch_variance_forecast",
    "ridge_forecast",
    "zero_forecast",
]

# arch fits returns in percent best; variances come back in percent squared.
_PERCENT = 100.0


def zero_forecast(X_test: np.ndarray) -> np.ndarray:
    """Zeros, one per test sample [N]."""
    return np.zeros(len(X_test))


def _flat(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=np.float64).reshape(len(X), -1)


def ridge_forecast(
    X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, alpha: float = 1.0
) -> np.ndarray:
    """Ridge regression of ``y`` on the flattened windows; predictions [N_test]."""
    model = Ridge(alpha=alpha).fit(_flat(X_train), y_train)
    return model.predict(_flat(X_test))


def boosting_forecast(
    X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Gradient-boosted trees on the flattened windows; predictions [N_test].

    ``HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05,
    max_leaf_nodes=15, l2_regularization=1.0)``, no early stopping,
    ``random_state=seed``.
    """
    model = HistGradientBoostingRegressor(
        max_iter=200,
        learning_rate=0.05,
        max_leaf_nodes=15,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    return model.fit(_flat(X_train), y_train).predict(_flat(X_test))


def garch_variance_forecast(
    returns: np.ndarray, train_end: int, horizon: int = 1
) -> np.ndarray:
    """GARCH(1,1) forecasts of the variance of the next ``horizon`` returns.

    Fits a zero-mean GARCH(1,1) with normal errors on ``returns[:train_end]``, then
    filters the whole series with those parameters: the forecast at bar ``t`` uses
    ``returns[:t + 1]`` and is ``sum_{k=1..h} E_t[r_{t+k}^2]`` — the forecast of the
    forward realized variance target at ``t``.

    Args:
        returns: Log returns [T] (finite).
        train_end: Bars used to fit the parameters (>= 100).
        horizon: Returns ahead summed (>= 1).

    Returns:
        [T - train_end + 1] forecasts made at bars ``train_end - 1 .. T - 1``.

    Raises:
        ValueError: Non-finite returns, or ``train_end``/``horizon`` out of range.
    """
    returns = np.asarray(returns, dtype=np.float64)
    if not np.isfinite(returns).all():
        bad = int(np.flatnonzero(~np.isfinite(returns))[0])
        raise ValueError(
            f"returns: expected finite values, got {returns[bad]} at {bad}"
        )
    if not 100 <= train_end <= len(returns):
        raise ValueError(
            f"train_end: expected 100 to {len(returns)} bars, got {train_end}"
        )
    if horizon < 1:
        raise ValueError(f"horizon: expected >= 1, got {horizon}")
    model = arch_model(_PERCENT * returns, mean="Zero", vol="GARCH", p=1, q=1)
    fitted = model.fit(last_obs=train_end, disp="off")
    forecast = fitted.forecast(horizon=horizon, start=train_end - 1, reindex=False)
    return forecast.variance.to_numpy().sum(axis=1) / _PERCENT**2
