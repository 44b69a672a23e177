"""Forecast evaluation: point errors, cross-sectional information coefficients, QLIKE
and the Diebold-Mariano test of equal accuracy.

Pure JAX; every function works under ``jax.jit`` (``horizon`` static). Cross-sectional
metrics take a panel [T, A] (time first) and ignore the pairs where either side is NaN,
so assets may enter and leave the panel.

References:
    Grinold and Kahn, "Active Portfolio Management", 2nd ed., 2000, ch. 6 (information
    coefficient) and ch. 9.
    Patton, "Volatility forecast comparison using imperfect volatility proxies",
    J. Econometrics 160, 2011 (QLIKE).
    Diebold and Mariano, "Comparing predictive accuracy", JBES 13, 1995; Harvey,
    Leybourne and Newbold, "Testing the equality of prediction mean squared errors",
    Int. J. Forecasting 13, 1997.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
from jax.scipy import special
from jax.typing import ArrayLike

__all__ = [
    "diebold_mariano",
    "directional_accuracy",
    "icir",
    "information_coefficient",
    "mse",
    "qlike",
    "rank_information_coefficient",
]


def _pair(pred: ArrayLike, actual: ArrayLike) -> tuple[jnp.ndarray, jnp.ndarray]:
    pred, actual = jnp.asarray(pred, float), jnp.asarray(actual, float)
    if pred.shape != actual.shape:
        raise ValueError(
            f"pred and actual must have one shape; got {pred.shape} and {actual.shape}"
        )
    return pred, actual


def _panel(pred: ArrayLike, actual: ArrayLike) -> tuple[jnp.ndarray, jnp.ndarray]:
    pred, actual = _pair(pred, actual)
    if pred.ndim != 2:
        raise ValueError(f"pred and actual must have shape [T, A]; got {pred.shape}")
    return pred, actual


def mse(pred: ArrayLike, actual: ArrayLike) -> jnp.ndarray:
    """Mean squared error ``mean((pred - actual)**2)`` over all elements.

    Args:
        pred: Forecasts, any shape.
        actual: Outcomes, the same shape.

    Returns:
        Scalar; NaN if any element is NaN.
    """
    pred, actual = _pair(pred, actual)
    return jnp.mean((pred - actual) ** 2)


def directional_accuracy(pred: ArrayLike, actual: ArrayLike) -> jnp.ndarray:
    """Fraction of forecasts with the sign of the outcome, ``mean(sign(p) == sign(a))``.

    Zero is a sign of its own: a zero forecast is right only for a zero outcome. A pair
    holding a NaN counts as a miss: select the finite pairs first.

    Args:
        pred: Forecasts, any shape.
        actual: Outcomes, the same shape.

    Returns:
        Scalar in [0, 1].
    """
    pred, actual = _pair(pred, actual)
    return jnp.mean(jnp.sign(pred) == jnp.sign(actual), dtype=pred.dtype)


def _masked_correlation(x: jnp.ndarray, y: jnp.ndarray, valid: jnp.ndarray):
    """Pearson correlation along the last axis over the ``valid`` pairs."""
    count = jnp.sum(valid, axis=-1, keepdims=True)

    def centred(z):
        z = jnp.where(valid, z, 0)
        return jnp.where(valid, z - jnp.sum(z, axis=-1, keepdims=True) / count, 0)

    dx, dy = centred(x), centred(y)
    scale = jnp.sqrt(jnp.sum(dx * dx, axis=-1) * jnp.sum(dy * dy, axis=-1))
    defined = (count[..., 0] >= 2) & (scale > 0)
    return jnp.where(defined, jnp.sum(dx * dy, axis=-1) / scale, jnp.nan)


def information_coefficient(pred: ArrayLike, actual: ArrayLike) -> jnp.ndarray:
    """Pearson correlation of forecasts and outcomes across assets, per period.

    ``IC_t = corr(pred[t, :], actual[t, :])`` over the assets where both are finite.

    Args:
        pred: Forecasts [T, A] (scores or expected returns made before period t's
            outcome).
        actual: Outcomes [T, A] (e.g. forward returns).

    Returns:
        [T] IC; NaN for a period with fewer than 2 finite pairs or a constant side.
    """
    pred, actual = _panel(pred, actual)
    valid = jnp.isfinite(pred) & jnp.isfinite(actual)
    return _masked_correlation(pred, actual, valid)


def _average_ranks(x: jnp.ndarray, valid: jnp.ndarray) -> jnp.ndarray:
    """1-based ranks of ``x`` [A] among its valid values; ties share their mean rank."""
    ordered = jnp.sort(jnp.where(valid, x, jnp.inf))
    below = jnp.searchsorted(ordered, x, side="left")
    through = jnp.searchsorted(ordered, x, side="right")
    # Ties occupy positions below .. through - 1, i.e. ranks below + 1 .. through.
    return (below + 1 + through).astype(x.dtype) / 2


def rank_information_coefficient(pred: ArrayLike, actual: ArrayLike) -> jnp.ndarray:
    """Spearman rank correlation of forecasts and outcomes across assets, per period.

    The Pearson correlation of average ranks (ties share the mean of their ranks, as
    in ``scipy.stats.spearmanr``), ranked among the assets where both are finite.

    Args:
        pred: Forecasts [T, A].
        actual: Outcomes [T, A].

    Returns:
        [T] rank IC; NaN for a period with fewer than 2 finite pairs or a constant
        side.
    """
    pred, actual = _panel(pred, actual)
    valid = jnp.isfinite(pred) & jnp.isfinite(actual)
    ranks = jax.vmap(_average_ranks)
    return _masked_correlation(ranks(pred, valid), ranks(actual, valid), valid)


def icir(ic_series: ArrayLike) -> jnp.ndarray:
    """Information ratio of an IC series: ``mean(IC) / std(IC)`` (ddof=1).

    Per period, not annualised (multiply by ``sqrt(periods_per_year)`` for that).
    NaN periods (see :func:`information_coefficient`) are left out.

    Args:
        ic_series: Per-period ICs [T].

    Returns:
        Scalar; NaN with fewer than 2 finite periods.
    """
    ic_series = jnp.asarray(ic_series, float)
    return jnp.nanmean(ic_series) / jnp.nanstd(ic_series, ddof=1)


def _require_positive(x: jnp.ndarray, name: str) -> None:
    if not isinstance(x, jax.core.Tracer) and not bool(jnp.all(x > 0)):
        raise ValueError(f"{name} must be positive everywhere; got min {jnp.min(x)}")


def qlike(variance_forecast: ArrayLike, realized_variance: ArrayLike) -> jnp.ndarray:
    """QLIKE loss of variance forecasts: ``mean(r / f - log(r / f) - 1)``.

    ``f`` is the forecast and ``r`` the realized variance (a proxy such as squared or
    summed squared returns). This is Patton's (2011) robust QLIKE normalised so that
    each term is ``>= 0`` and ``0`` exactly when ``f == r``; it differs from the other
    common form ``log f + r / f`` by ``log r + 1``, which does not depend on the
    forecast, so both rank forecasts alike. Under-prediction costs more than
    over-prediction.

    Args:
        variance_forecast: Forecast variances, positive, any shape.
        realized_variance: Realized variances, positive, the same shape.

    Returns:
        Scalar mean loss.

    Raises:
        ValueError: An input is not positive (checked when not traced; under ``jit``
            a non-positive value gives NaN or inf).
    """
    forecast, realized = _pair(variance_forecast, realized_variance)
    _require_positive(forecast, "variance_forecast")
    _require_positive(realized, "realized_variance")
    ratio = realized / forecast
    return jnp.mean(ratio - jnp.log(ratio) - 1)


def diebold_mariano(
    loss_a: ArrayLike, loss_b: ArrayLike, horizon: int = 1
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Diebold-Mariano test of equal expected loss, with the HLN correction.

    With the loss differential ``d_t = loss_a[t] - loss_b[t]``, its mean ``d̄`` and
    autocovariances ``g_k = (1/T) sum_{t=k}^{T-1} (d_t - d̄)(d_{t-k} - d̄)``:

    * long-run variance ``V = g_0 + 2 (g_1 + ... + g_{h-1})``: the truncated
      (uniform-weight) HAC estimator with ``h - 1`` lags of Diebold and Mariano,
      since ``h``-step forecast errors are MA(h - 1). For ``h = 1`` it is ``g_0``,
      as Newey-West's with 0 lags. (Newey-West's Bartlett weights would bias the
      variance down; the HLN factor is derived for the uniform weights.)
    * ``DM = d̄ / sqrt(V / T)``;
    * Harvey, Leybourne and Newbold: ``DM* = DM sqrt((T + 1 - 2h + h(h - 1) / T) / T)``,
      compared with Student's t with ``T - 1`` degrees of freedom; the p-value is
      two-sided, ``P(|t_{T-1}| >= |DM*|)``.

    A positive statistic means ``a`` has the larger loss (``b`` forecasts better).

    Args:
        loss_a: Per-period losses of forecast a [T] (e.g. squared errors).
        loss_b: Per-period losses of forecast b [T].
        horizon: Forecast horizon ``h``, 1 <= h < T (a Python int).

    Returns:
        ``(statistic, p_value)``, scalars; both NaN when the estimated long-run
        variance is not positive (identical losses, or a negative ``V`` for ``h > 1``).
    """
    loss_a, loss_b = _pair(loss_a, loss_b)
    if loss_a.ndim != 1:
        raise ValueError(f"loss_a and loss_b must have shape [T]; got {loss_a.shape}")
    length = loss_a.shape[0]
    if (
        isinstance(horizon, bool)
        or not isinstance(horizon, numbers.Integral)
        or not 1 <= horizon < length
    ):
        raise ValueError(
            f"horizon must be an integer in [1, T - 1] = [1, {length - 1}]; "
            f"got {horizon!r}"
        )
    differential = loss_a - loss_b
    mean = jnp.mean(differential)
    deviation = differential - mean
    autocovariances = [
        jnp.sum(deviation[lag:] * deviation[: length - lag]) / length
        for lag in range(horizon)
    ]
    variance = autocovariances[0] + 2 * sum(autocovariances[1:])
    defined = variance > 0
    statistic = mean / jnp.sqrt(jnp.where(defined, variance, 1) / length)
    statistic *= jnp.sqrt(
        (length + 1 - 2 * horizon + horizon * (horizon - 1) / length) / length
    )
    dof = length - 1
    p_value = special.betainc(dof / 2, 0.5, dof / (dof + statistic**2))
    return (
        jnp.where(defined, statistic, jnp.nan),
        jnp.where(defined, p_value, jnp.nan),
    )
