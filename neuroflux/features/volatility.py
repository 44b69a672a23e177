"""Volatility of a price series [T]: true range, ATR and annualised volatility.

Bollinger bands live with the rolling statistics they share a pass with
(:mod:`neuroflux.features.rolling`).

References:
    J. Welles Wilder, "New Concepts in Technical Trading Systems", 1978 (true range and
    average true range), with TA-Lib's ``ATR`` seeding.
    John C. Hull, "Options, Futures, and Other Derivatives", ch. 15 (estimating
    volatility from historical data).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from neuroflux._arrays import as_series
from neuroflux.features import averages, returns, rolling

__all__ = ["atr", "rolling_volatility", "true_range"]


def _bars(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> tuple[jnp.ndarray, ...]:
    bars = tuple(
        as_series(x, name)
        for x, name in ((high, "high"), (low, "low"), (close, "close"))
    )
    if len({x.shape for x in bars}) != 1:
        shapes = ", ".join(f"{n}={x.shape}" for n, x in zip("hlc", bars, strict=True))
        raise ValueError(f"high, low and close must have one shape [T]; got {shapes}")
    dtype = jnp.result_type(*bars)
    return tuple(x.astype(dtype) for x in bars)


def true_range(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> jnp.ndarray:
    """True range ``max(h_t - l_t, |h_t - c_{t-1}|, |l_t - c_{t-1}|)``.

    Args:
        high: Highs [T].
        low: Lows [T].
        close: Closes [T].

    Returns:
        [T] true range; ``TR_0 = h_0 - l_0`` (there is no previous close).
    """
    high, low, close = _bars(high, low, close)
    previous = jnp.concatenate([close[:1], close[:-1]])
    gap = jnp.maximum(jnp.abs(high - previous), jnp.abs(low - previous))
    first = jnp.arange(high.shape[0]) == 0
    return jnp.maximum(high - low, jnp.where(first, 0, gap))


def atr(
    high: ArrayLike, low: ArrayLike, close: ArrayLike, period: ArrayLike = 14
) -> jnp.ndarray:
    """Average true range (Wilder), TA-Lib convention.

    ``ATR_n = mean(TR_1 .. TR_n)`` at index ``n`` (``TR_0`` is skipped: it has no
    previous close), then ``ATR_t = (ATR_{t-1} (n - 1) + TR_t) / n``.

    Args:
        high: Highs [T].
        low: Lows [T].
        close: Closes [T].
        period: Smoothing period ``n >= 1`` (Python int or traced integer).

    Returns:
        [T] ATR; NaN for indices ``0 .. n - 1``.
    """
    ranges = true_range(high, low, close)
    ranges = jnp.where(jnp.arange(ranges.shape[0]) == 0, jnp.nan, ranges)
    return averages.wilder_average(ranges, period)


def rolling_volatility(
    close: ArrayLike, window: ArrayLike = 20, periods_per_year: ArrayLike = 252
) -> jnp.ndarray:
    """Annualised rolling volatility: rolling std of log returns times sqrt(periods).

    ``rolling_std(log_returns(close), window, ddof=1) * sqrt(periods_per_year)``.

    Args:
        close: Prices [T], positive.
        window: Number of returns per window, >= 2 (Python int or traced integer).
        periods_per_year: Bars per year: 252 for daily bars, 52 weekly, 12 monthly.

    Returns:
        [T] volatility; NaN for indices ``0 .. window - 1`` (the first return is at
        index 1, so the first full window of returns ends at index ``window``).
    """
    close = as_series(close, "close")
    deviation = rolling.rolling_std(returns.log_returns(close), window, ddof=1)
    return deviation * jnp.sqrt(jnp.asarray(periods_per_year, close.dtype))
