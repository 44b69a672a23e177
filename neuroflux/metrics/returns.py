"""Growth and dispersion of a series of simple returns [T].

A NaN return counts as a period with no return (0) when compounding, as in empyrical,
and is ignored by means and standard deviations (``np.nanmean``/``np.nanstd``). The
number of periods used to annualise is the full length ``T``, NaNs included, again as
empyrical does.

References:
    empyrical-reloaded 0.7 ``empyrical.stats``: ``cum_returns``,
    ``cum_returns_final``, ``annual_return`` and ``annual_volatility``
    (https://github.com/stefan-jansen/empyrical-reloaded).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from neuroflux.metrics._series import as_returns, nan_std

__all__ = [
    "annual_return",
    "annual_volatility",
    "cumulative_returns",
    "total_return",
]


def cumulative_returns(returns: ArrayLike) -> jnp.ndarray:
    """Compounded return to each period, ``prod_{s<=t} (1 + r_s) - 1``.

    Matches ``empyrical.cum_returns(returns)``.

    Args:
        returns: Simple (non-cumulative) returns [T]; NaN counts as 0.

    Returns:
        [T] cumulative returns.
    """
    returns = as_returns(returns)
    return jnp.cumprod(1 + jnp.nan_to_num(returns, nan=0.0)) - 1


def total_return(returns: ArrayLike) -> jnp.ndarray:
    """Compounded return over the whole series, ``prod_t (1 + r_t) - 1``.

    Matches ``empyrical.cum_returns_final(returns)``.

    Args:
        returns: Simple returns [T]; NaN counts as 0.

    Returns:
        Scalar; NaN for an empty series.
    """
    returns = as_returns(returns)
    if returns.shape[0] == 0:
        return jnp.array(jnp.nan, returns.dtype)
    return jnp.nanprod(1 + returns) - 1


def annual_return(returns: ArrayLike, periods_per_year: ArrayLike = 252) -> jnp.ndarray:
    """Compound annual growth rate (CAGR).

    ``(prod_t (1 + r_t)) ** (periods_per_year / T) - 1`` with ``T`` the length of the
    series (NaNs included). Matches
    ``empyrical.annual_return(returns, annualization=periods_per_year)``.

    Args:
        returns: Simple returns [T]; NaN counts as 0.
        periods_per_year: Periods in a year (252 trading days, 52 weeks, 12 months).

    Returns:
        Scalar; NaN for an empty series or a final wealth below zero.
    """
    returns = as_returns(returns)
    if returns.shape[0] == 0:
        return jnp.array(jnp.nan, returns.dtype)
    years = returns.shape[0] / jnp.asarray(periods_per_year, returns.dtype)
    ending_value = jnp.nanprod(1 + returns)
    return ending_value ** (1 / years) - 1


def annual_volatility(
    returns: ArrayLike, periods_per_year: ArrayLike = 252
) -> jnp.ndarray:
    """Annualised standard deviation, ``std(r, ddof=1) * sqrt(periods_per_year)``.

    Matches ``empyrical.annual_volatility(returns, annualization=periods_per_year)``
    (its default Lévy exponent ``alpha=2``, i.e. square-root-of-time scaling).

    Args:
        returns: Simple returns [T]; NaNs are ignored.
        periods_per_year: Periods in a year.

    Returns:
        Scalar; NaN for fewer than two (non-NaN) returns.
    """
    returns = as_returns(returns)
    if returns.shape[0] < 2:
        return jnp.array(jnp.nan, returns.dtype)
    periods = jnp.asarray(periods_per_year, returns.dtype)
    return nan_std(returns, ddof=1) * periods ** (1.0 / 2.0)
