"""Momentum oscillators of a price series [T]: RSI and MACD.

References:
    J. Welles Wilder, "New Concepts in Technical Trading Systems", 1978 (RSI), with
    TA-Lib's ``RSI`` seeding (simple means of the first ``n`` changes).
    Gerald Appel, "Technical Analysis: Power Tools for Active Investors", 2005 (MACD).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from neuroflux._arrays import as_length, as_series
from neuroflux.features import averages

__all__ = ["MACD", "macd", "rsi"]


def rsi(close: ArrayLike, period: ArrayLike = 14) -> jnp.ndarray:
    """Relative strength index (Wilder), TA-Lib convention.

    With changes ``d_t = c_t - c_{t-1}`` from ``t = 1``, gains ``max(d, 0)`` and losses
    ``max(-d, 0)`` are smoothed by :func:`~neuroflux.features.wilder_average`: the first
    averages are the simple means of ``d_1 .. d_n`` at index ``n``, then
    ``avg_t = (avg_{t-1} (n - 1) + g_t) / n``. ``RSI = 100 - 100 / (1 + gain / loss)``,
    computed as the equal ``100 gain / (gain + loss)``: 100 when the average loss is 0,
    and 50 when both averages are 0 (a flat market; TA-Lib gives 0 there).

    Args:
        close: Prices [T].
        period: Smoothing period ``n >= 1`` (Python int or traced integer).

    Returns:
        [T] RSI in [0, 100]; NaN for indices ``0 .. n - 1``.
    """
    close = as_series(close, "close")
    change = close - jnp.concatenate([jnp.full(1, jnp.nan, close.dtype), close[:-1]])
    moves = jnp.stack([jnp.maximum(change, 0), jnp.maximum(-change, 0)], axis=1)
    # One scan over [T, 2] rather than two: half the sequential steps.
    smooth = jax.vmap(averages.wilder_average, in_axes=(1, None), out_axes=1)
    averaged = smooth(moves, period)
    gain, loss = averaged[:, 0], averaged[:, 1]
    total = gain + loss
    flat = total == 0
    # gain / total <= 1 exactly, so the index never leaves [0, 100] by rounding.
    return jnp.where(flat, 50, 100 * (gain / jnp.where(flat, 1, total)))


class MACD(NamedTuple):
    """Moving average convergence/divergence, [T] each."""

    line: jnp.ndarray
    signal: jnp.ndarray
    histogram: jnp.ndarray


def macd(
    close: ArrayLike, fast: ArrayLike = 12, slow: ArrayLike = 26, signal: ArrayLike = 9
) -> MACD:
    """MACD line, signal line and histogram, pandas ``ewm(adjust=False)`` convention.

    ``line = ema(close, fast) - ema(close, slow)``; ``signal = ema(line, signal)``
    started at the line's first value, as ``line.ewm(span=signal, adjust=False,
    min_periods=signal).mean()`` does in pandas; ``histogram = line - signal``. (TA-Lib
    seeds its averages with simple means instead, so its early values differ.)

    Args:
        close: Prices [T].
        fast: Span of the fast average (Python int or traced integer).
        slow: Span of the slow average (Python int or traced integer).
        signal: Span of the signal average (Python int or traced integer).

    Returns:
        ``MACD(line, signal, histogram)``, [T] each. The line is NaN before index
        ``max(fast, slow) - 1``; signal and histogram ``signal - 1`` bars longer.
    """
    close = as_series(close, "close")
    fast, slow = as_length(fast, "fast"), as_length(slow, "slow")
    signal = as_length(signal, "signal")
    # Both averages of the close in one scan over [2, T].
    spans = jnp.stack([fast, slow])
    fast_average, slow_average = jax.vmap(averages.ema, in_axes=(None, 0))(close, spans)
    line = fast_average - slow_average
    signal_line = averages.ema(line, signal)
    return MACD(line, signal_line, line - signal_line)
