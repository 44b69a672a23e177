"""Risk-adjusted return ratios of a series of simple returns [T].

Every ratio follows empyrical-reloaded 0.7 to rounding, NaN handling included: means
and standard deviations ignore NaNs (``np.nanmean``/``np.nanstd``), the omega sums
skip them, ``tail_ratio`` and ``stability`` drop them first, and compounding
(``calmar_ratio``) treats them as 0. A series shorter than two periods gives NaN.
Sharpe and Sortino are annualised by ``sqrt(periods_per_year)``; a zero denominator
gives ``+-inf`` (or NaN for 0 / 0) as in empyrical.

References:
    W. F. Sharpe, "The Sharpe Ratio", J. Portfolio Management 21(1), 1994.
    F. A. Sortino and R. van der Meer, "Downside risk", J. Portfolio Management 17(4),
    1991.
    T. W. Young, "Calmar Ratio: A Smoother Tool", Futures 20(1), 1991.
    C. Keating and W. F. Shadwick, "A Universal Performance Measure", J. Performance
    Measurement 6(3), 2002 (omega).
    empyrical-reloaded 0.7 ``empyrical.stats``
    (https://github.com/stefan-jansen/empyrical-reloaded).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from neuroflux.metrics import drawdowns
from neuroflux.metrics import returns as returns_module
from neuroflux.metrics._series import (
    as_returns,
    centred_sum_of_squares,
    percentile_fraction,
    reduce_together,
    sort_ascending,
    sorted_quantile,
    sums,
)

__all__ = [
    "alpha_beta",
    "calmar_ratio",
    "downside_risk",
    "omega_ratio",
    "sharpe_ratio",
    "sortino_ratio",
    "stability",
    "tail_ratio",
]


def _nan(like: jnp.ndarray) -> jnp.ndarray:
    return jnp.array(jnp.nan, like.dtype)


def sharpe_ratio(
    returns: ArrayLike, risk_free: ArrayLike = 0.0, periods_per_year: ArrayLike = 252
) -> jnp.ndarray:
    """Annualised Sharpe ratio, ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(P)``.

    Matches ``empyrical.sharpe_ratio(returns, risk_free, annualization=P)``, including
    its rule that a series whose present values are all equal has a standard deviation
    of exactly 0 (so the ratio is ``+-inf``, or NaN when the mean is 0 too).

    Args:
        returns: Simple returns [T]; NaNs are ignored.
        risk_free: Risk-free return per period (not annualised).
        periods_per_year: Periods in a year ``P``.

    Returns:
        Scalar; NaN for fewer than two returns.
    """
    returns = as_returns(returns)
    if returns.shape[0] < 2:
        return _nan(returns)
    excess = returns - risk_free
    present = ~jnp.isnan(excess)
    count, total, largest, smallest = reduce_together(
        (present.astype(excess.dtype), lax.add),
        (jnp.where(present, excess, 0.0), lax.add),
        (jnp.where(present, excess, -jnp.inf), lax.max),
        (jnp.where(present, excess, jnp.inf), lax.min),
    )
    mean = total / count
    squares = centred_sum_of_squares(excess, present, count, mean)
    std = jnp.where(count > 1, jnp.sqrt(squares / (count - 1)), jnp.nan)
    constant = (largest == smallest) & jnp.isfinite(std)
    std = jnp.where(constant, 0.0, std)
    periods = jnp.asarray(periods_per_year, returns.dtype)
    return mean / std * jnp.sqrt(periods)


def downside_risk(
    returns: ArrayLike,
    required_return: ArrayLike = 0.0,
    periods_per_year: ArrayLike = 252,
) -> jnp.ndarray:
    """Annualised downside deviation below ``required_return``.

    ``sqrt(mean(min(r - required_return, 0) ** 2)) * sqrt(P)``, the mean over all
    non-NaN periods (not only the losing ones). Matches ``empyrical.downside_risk``.

    Args:
        returns: Simple returns [T]; NaNs are ignored.
        required_return: Minimum acceptable return per period.
        periods_per_year: Periods in a year ``P``.

    Returns:
        Scalar ``>= 0``; NaN for an empty series.
    """
    returns = as_returns(returns)
    if returns.shape[0] < 1:
        return _nan(returns)
    present = ~jnp.isnan(returns)
    shortfall = jnp.where(present, jnp.minimum(returns - required_return, 0.0), 0.0)
    count, squares = sums(present.astype(returns.dtype), shortfall * shortfall)
    periods = jnp.asarray(periods_per_year, returns.dtype)
    return jnp.sqrt(squares / count) * jnp.sqrt(periods)


def sortino_ratio(
    returns: ArrayLike,
    required_return: ArrayLike = 0.0,
    periods_per_year: ArrayLike = 252,
) -> jnp.ndarray:
    """Annualised Sortino ratio, ``mean(r - required_return) * P / downside_risk``.

    Matches ``empyrical.sortino_ratio(returns, required_return, annualization=P)``.
    The threshold is called ``required_return`` (the minimum acceptable return per
    period), as in empyrical; pass the risk-free rate there for a risk-free Sortino.

    Args:
        returns: Simple returns [T]; NaNs are ignored.
        required_return: Minimum acceptable return per period.
        periods_per_year: Periods in a year ``P``.

    Returns:
        Scalar; ``inf`` without losses below the threshold; NaN for fewer than two
        returns.
    """
    returns = as_returns(returns)
    if returns.shape[0] < 2:
        return _nan(returns)
    present = ~jnp.isnan(returns)
    excess = jnp.where(present, returns - required_return, 0.0)
    shortfall = jnp.minimum(excess, 0.0)
    count, total, squares = sums(
        present.astype(returns.dtype), excess, shortfall * shortfall
    )
    periods = jnp.asarray(periods_per_year, returns.dtype)
    downside = jnp.sqrt(squares / count) * jnp.sqrt(periods)
    return total / count * periods / downside


def calmar_ratio(returns: ArrayLike, periods_per_year: ArrayLike = 252) -> jnp.ndarray:
    """Calmar ratio, annual return (CAGR) over the magnitude of the maximum drawdown.

    Matches ``empyrical.calmar_ratio(returns, annualization=P)``: NaN when there is
    no drawdown or the ratio is infinite.

    Args:
        returns: Simple returns [T]; NaN counts as 0.
        periods_per_year: Periods in a year.

    Returns:
        Scalar; NaN without a drawdown.
    """
    returns = as_returns(returns)
    if returns.shape[0] < 1:
        return _nan(returns)
    worst = drawdowns.max_drawdown(returns)
    annual = returns_module.annual_return(returns, periods_per_year)
    ratio = annual / jnp.abs(worst)
    return jnp.where((worst < 0) & ~jnp.isinf(ratio), ratio, jnp.nan)


def omega_ratio(
    returns: ArrayLike,
    risk_free: ArrayLike = 0.0,
    required_return: ArrayLike = 0.0,
    periods_per_year: ArrayLike = 252,
) -> jnp.ndarray:
    """Omega ratio: gains above a threshold over losses below it.

    With ``tau = (1 + required_return) ** (1 / P) - 1`` (``required_return`` is
    annual and de-annualised; with ``P == 1`` it is used as it is) and
    ``x = r - risk_free - tau``: ``sum(x[x > 0]) / -sum(x[x < 0])``. Matches
    ``empyrical.omega_ratio(returns, risk_free, required_return, annualization=P)``.

    Args:
        returns: Simple returns [T]; NaNs are skipped.
        risk_free: Risk-free return per period.
        required_return: Annual minimum acceptable return, above -1.
        periods_per_year: Periods in a year ``P``.

    Returns:
        Scalar; NaN without losses below the threshold, for ``required_return <=
        -1`` or for fewer than two returns.
    """
    returns = as_returns(returns)
    if returns.shape[0] < 2:
        return _nan(returns)
    required_return = jnp.asarray(required_return, returns.dtype)
    periods = jnp.asarray(periods_per_year, returns.dtype)
    threshold = jnp.where(
        periods == 1, required_return, (1 + required_return) ** (1.0 / periods) - 1
    )
    excess = returns - risk_free - threshold
    gains, losses = sums(
        jnp.where(excess > 0.0, excess, 0.0), jnp.where(excess < 0.0, -excess, 0.0)
    )
    valid = (losses > 0.0) & ((periods == 1) | (required_return > -1))
    return jnp.where(valid, gains / losses, jnp.nan)


def tail_ratio(returns: ArrayLike) -> jnp.ndarray:
    """Right tail over left tail, ``|q95(r)| / |q5(r)|``.

    Percentiles interpolate linearly between order statistics, as ``np.percentile``.
    Matches ``empyrical.tail_ratio``. A ratio of 0.25 means the 5 % worst returns are
    four times as large as the 5 % best.

    Args:
        returns: Simple returns [T]; NaNs are dropped first.

    Returns:
        Scalar; NaN if no return is present.
    """
    returns = as_returns(returns)
    if returns.shape[0] < 1:
        return _nan(returns)
    ordered, count = sort_ascending(returns)  # NaNs sort last
    right = sorted_quantile(ordered, count, percentile_fraction(95))
    left = sorted_quantile(ordered, count, percentile_fraction(5))
    return jnp.abs(right) / jnp.abs(left)


def stability(returns: ArrayLike) -> jnp.ndarray:
    """R² of a least-squares line through the cumulative log returns.

    ``y_k = sum_{j<=k} log(1 + r_j)`` over the present returns, regressed on
    ``k = 0, 1, ...``; the R² is the squared Pearson correlation. Matches
    ``empyrical.stability_of_timeseries`` (``scipy.stats.linregress``), including
    NaN for a flat curve (all present returns after the first are 0), where
    scipy returns NaN, 0 or noise depending on the rounding of a mean.

    Args:
        returns: Simple returns [T], above -1; NaNs are dropped first (later
            returns move up to close the gap).

    Returns:
        Scalar in [0, 1]; NaN for fewer than two returns.
    """
    returns = as_returns(returns)
    if returns.shape[0] < 2:
        return _nan(returns)
    present = ~jnp.isnan(returns)
    y = jnp.cumsum(jnp.where(present, jnp.log1p(jnp.where(present, returns, 0.0)), 0))
    x = (jnp.cumsum(present) - 1).astype(returns.dtype)
    count, y_total, y_max, y_min = reduce_together(
        (present.astype(returns.dtype), lax.add),
        (jnp.where(present, y, 0.0), lax.add),
        (jnp.where(present, y, -jnp.inf), lax.max),
        (jnp.where(present, y, jnp.inf), lax.min),
    )
    # x takes the values 0, ..., count - 1, so its mean is exactly (count - 1) / 2.
    x_centred = jnp.where(present, x - (count - 1) / 2, 0.0)
    # A flat curve has no variance, but its floating-point mean may differ from its
    # value in the last bit; scipy's mean happens to be exact there and reports NaN.
    flat = y_max == y_min
    y_centred = jnp.where(present & ~flat, y - y_total / count, 0.0)
    ssxm, ssym, ssxym = sums(
        x_centred * x_centred, y_centred * y_centred, x_centred * y_centred
    )
    # The 1 / count of the (co)variances cancels in r.
    r = jnp.clip(ssxym / jnp.sqrt(ssxm * ssym), -1.0, 1.0)
    degenerate = (ssxm == 0) | (ssym == 0)
    r = jnp.where(degenerate, jnp.where(ssxym == 0, jnp.nan, 0.0), r)
    return r**2


def alpha_beta(
    returns: ArrayLike,
    factor_returns: ArrayLike,
    risk_free: ArrayLike = 0.0,
    periods_per_year: ArrayLike = 252,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Annualised alpha and beta against a factor (benchmark) series.

    ``beta = cov(r, f) / var(f)`` (population moments over the periods where both are
    present) and ``alpha = (1 + mean((r - rf) - beta (f - rf))) ** P - 1``. Matches
    ``empyrical.alpha_beta_aligned(returns, factor_returns, risk_free,
    annualization=P)``, including a NaN beta when ``var(f) < 1e-30``.

    Args:
        returns: Simple returns [T]; NaNs are ignored.
        factor_returns: Factor simple returns [T], aligned with ``returns``; NaNs are
            ignored.
        risk_free: Risk-free return per period.
        periods_per_year: Periods in a year ``P``.

    Returns:
        ``(alpha, beta)`` scalars; NaN for fewer than two periods.
    """
    returns = as_returns(returns)
    factor_returns = as_returns(factor_returns, "factor_returns")
    if factor_returns.shape != returns.shape:
        raise ValueError(
            "returns and factor_returns must have the same shape [T]; got "
            f"{returns.shape} and {factor_returns.shape}"
        )
    if returns.shape[0] < 2:
        return _nan(returns), _nan(returns)
    present = ~jnp.isnan(returns) & ~jnp.isnan(factor_returns)
    count, factor_total, returns_total = sums(
        present.astype(returns.dtype),
        jnp.where(present, factor_returns, 0.0),
        jnp.where(present, returns, 0.0),
    )
    residual = jnp.where(present, factor_returns - factor_total / count, 0.0)
    covariance, variance = sums(
        residual * jnp.where(present, returns, 0.0), residual * residual
    )
    variance = jnp.where(variance / count < 1.0e-30, jnp.nan, variance)
    beta = covariance / variance
    # The mean of (r - rf) - beta (f - rf) over the periods where both are present.
    excess = returns_total / count - risk_free
    alpha_mean = excess - beta * (factor_total / count - risk_free)
    periods = jnp.asarray(periods_per_year, returns.dtype)
    alpha = (alpha_mean + 1) ** periods - 1
    return alpha, beta
