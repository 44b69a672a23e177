"""Significance of a Sharpe ratio: probabilistic and deflated Sharpe ratios.

Sharpe ratios here are per period (not annualised): ``mean / std(ddof=1)`` of the
excess returns. Skewness and kurtosis are the sample moments used by Bailey and
López de Prado: ``m3 / m2**1.5`` and ``m4 / m2**2`` with population (``1/T``)
central moments ``m_k``, as ``scipy.stats.skew`` and
``scipy.stats.kurtosis(fisher=False)``. Kurtosis is the plain (non-excess) one: 3 for
a normal distribution. NaN returns are dropped; ``T`` counts the present returns.

References:
    D. H. Bailey and M. López de Prado, "The Sharpe Ratio Efficient Frontier",
    Journal of Risk 15(2), 2012 (PSR, eq. 5 there).
    D. H. Bailey and M. López de Prado, "The Deflated Sharpe Ratio: Correcting for
    Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio
    Management 40(5), 2014 (DSR and the expected maximum Sharpe ratio).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import ndtr, ndtri
from jax.typing import ArrayLike

from neuroflux.metrics._series import as_returns

__all__ = [
    "deflated_sharpe_ratio",
    "expected_maximum_sharpe_ratio",
    "probabilistic_sharpe_ratio",
    "probabilistic_sharpe_ratio_from_moments",
    "sharpe_moments",
]

_EULER_MASCHERONI = 0.5772156649015329


def sharpe_moments(
    returns: ArrayLike, risk_free: ArrayLike = 0.0
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Per-period Sharpe ratio, number of returns, skewness and kurtosis.

    Args:
        returns: Simple returns [T]; NaNs are dropped.
        risk_free: Risk-free return per period.

    Returns:
        ``(sharpe, observations, skewness, kurtosis)`` scalars (``observations`` as a
        float); the Sharpe ratio is NaN for fewer than two returns.
    """
    returns = as_returns(returns)
    excess = returns - risk_free
    present = ~jnp.isnan(excess)
    count = jnp.sum(present).astype(returns.dtype)
    mean = jnp.sum(jnp.where(present, excess, 0.0)) / count
    deviation = jnp.where(present, excess - mean, 0.0)
    m2 = jnp.sum(deviation**2) / count
    m3 = jnp.sum(deviation**3) / count
    m4 = jnp.sum(deviation**4) / count
    std = jnp.sqrt(m2 * count / (count - 1))
    sharpe = jnp.where(count >= 2, mean / std, jnp.nan)
    return sharpe, count, m3 / m2**1.5, m4 / m2**2


def probabilistic_sharpe_ratio_from_moments(
    sharpe: ArrayLike,
    observations: ArrayLike,
    skewness: ArrayLike,
    kurtosis: ArrayLike,
    benchmark_sharpe: ArrayLike = 0.0,
) -> jnp.ndarray:
    """Probability that the true Sharpe ratio exceeds ``benchmark_sharpe``.

    ``PSR = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))``
    (Bailey and López de Prado 2012, eq. 5), ``Phi`` the standard normal CDF.

    Args:
        sharpe: Observed per-period Sharpe ratio ``SR``.
        observations: Number of returns ``T``.
        skewness: Skewness ``g3`` of the returns.
        kurtosis: Kurtosis ``g4`` of the returns (non-excess: 3 for a normal).
        benchmark_sharpe: Per-period Sharpe ratio ``SR*`` to beat.

    Returns:
        Scalar in [0, 1]; 0.5 when ``SR == SR*``.
    """
    sharpe = jnp.asarray(sharpe, float)
    variance_factor = 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe**2
    z = (sharpe - benchmark_sharpe) * jnp.sqrt(observations - 1.0)
    return ndtr(z / jnp.sqrt(variance_factor))


def probabilistic_sharpe_ratio(
    returns: ArrayLike, benchmark_sharpe: ArrayLike = 0.0, risk_free: ArrayLike = 0.0
) -> jnp.ndarray:
    """Probabilistic Sharpe ratio (PSR) of a returns series.

    :func:`probabilistic_sharpe_ratio_from_moments` with the moments of ``returns``
    (:func:`sharpe_moments`).

    Args:
        returns: Simple returns [T]; NaNs are dropped.
        benchmark_sharpe: Per-period (not annualised) Sharpe ratio to beat;
            divide an annual one by ``sqrt(periods_per_year)``.
        risk_free: Risk-free return per period.

    Returns:
        Scalar in [0, 1].
    """
    sharpe, count, skewness, kurtosis = sharpe_moments(returns, risk_free)
    return probabilistic_sharpe_ratio_from_moments(
        sharpe, count, skewness, kurtosis, benchmark_sharpe
    )


def expected_maximum_sharpe_ratio(
    number_of_trials: ArrayLike, trial_sharpe_variance: ArrayLike
) -> jnp.ndarray:
    """Expected maximum of ``N`` independent Sharpe ratios with true value 0.

    ``SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))``
    with ``gamma`` the Euler-Mascheroni constant (Bailey and López de Prado 2014,
    after the false strategy theorem). Defined as 0 for a single trial.

    Args:
        number_of_trials: Number of independent trials ``N >= 1``.
        trial_sharpe_variance: Variance ``V`` across trials of their per-period
            Sharpe ratios.

    Returns:
        Scalar per-period Sharpe ratio.
    """
    trials = jnp.asarray(number_of_trials, float)
    spread = (1 - _EULER_MASCHERONI) * ndtri(1 - 1 / trials)
    spread = spread + _EULER_MASCHERONI * ndtri(1 - 1 / (trials * jnp.e))
    expected = jnp.sqrt(jnp.asarray(trial_sharpe_variance, float)) * spread
    return jnp.where(trials > 1, expected, 0.0)


def deflated_sharpe_ratio(
    returns: ArrayLike,
    number_of_trials: ArrayLike,
    trial_sharpe_variance: ArrayLike,
    risk_free: ArrayLike = 0.0,
) -> jnp.ndarray:
    """Deflated Sharpe ratio (DSR): the PSR against the best of ``N`` unskilled trials.

    ``DSR = PSR(SR0)`` with ``SR0`` from :func:`expected_maximum_sharpe_ratio`: the
    probability that the strategy's true Sharpe ratio is positive after correcting
    for selecting it as the best of ``number_of_trials`` backtests.

    Args:
        returns: Simple returns [T] of the selected strategy; NaNs are dropped.
        number_of_trials: Number of independent trials ``N >= 1``.
        trial_sharpe_variance: Variance across trials of their per-period Sharpe
            ratios.
        risk_free: Risk-free return per period.

    Returns:
        Scalar in [0, 1]; equal to the PSR at 0 for a single trial.
    """
    benchmark = expected_maximum_sharpe_ratio(number_of_trials, trial_sharpe_variance)
    return probabilistic_sharpe_ratio(returns, benchmark, risk_free)
