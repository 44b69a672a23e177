"""Recursive moving averages over a series [T]: exponential and Wilder smoothing.

Both are the first-order recurrence ``y_t = decay * y_{t-1} + weight * x_t`` started
from a seed, so the span or period may be a traced integer
(``jax.vmap(ema, in_axes=(None, 0))(x, spans)``). Leading NaNs (the warm-up of another
indicator) are skipped as pandas skips them: the average starts at the first finite
value. Other NaNs are not expected (inputs are finite); one would propagate to every
later value.

References:
    pandas ``Series.ewm(adjust=False)``:
    https://pandas.pydata.org/docs/user_guide/window.html#exponentially-weighted-window
    J. Welles Wilder, "New Concepts in Technical Trading Systems", 1978 (the smoothed
    average behind RSI and ATR), with TA-Lib's seeding by a simple mean.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from neuroflux._arrays import as_length, as_series

__all__ = ["ema", "wilder_average"]


def _seeded_recurrence(
    x: jnp.ndarray,
    seed_length: jnp.ndarray,
    decay: jnp.ndarray,
    weight: jnp.ndarray,
    min_count: jnp.ndarray,
) -> jnp.ndarray:
    """Mean of the first ``seed_length`` values, then ``decay y_{t-1} + weight x_t``.

    Counting starts at the first finite value; outputs before the ``min_count``-th
    counted value are NaN.
    """

    def step(carry, value):
        previous, count = carry
        finite = jnp.isfinite(value)
        count = count + ((count > 0) | finite).astype(count.dtype)
        # The where keeps leading NaNs out of the arithmetic (NaN * 0 is NaN).
        value = jnp.where(count > 0, value, 0)
        total = previous + value  # the seed's sum, in order, as TA-Lib sums it
        current = jnp.where(
            count > seed_length,
            decay * previous + weight * value,
            jnp.where(count == seed_length, total / seed_length.astype(x.dtype), total),
        )
        return (current, count), jnp.where(count >= min_count, current, jnp.nan)

    # A sequential scan does one multiply-add per step in the order pandas and TA-Lib
    # use, and on CPU it is several times faster than lax.associative_scan. Everything,
    # the seed included, is formed inside the loop: on a panel [T, A] every [T, A]
    # intermediate or column reduction would cost more than the arithmetic.
    start = (jnp.zeros((), x.dtype), jnp.zeros((), jnp.int32))
    return lax.scan(step, start, x)[1]


def ema(x: ArrayLike, span: ArrayLike) -> jnp.ndarray:
    """Exponential moving average with ``alpha = 2 / (span + 1)``.

    ``y_s = x_s`` at the first finite value ``s``, then ``y_t = (1 - alpha) y_{t-1} +
    alpha x_t``. Matches ``pandas.Series.ewm(span=span, adjust=False,
    min_periods=span).mean()``, also on a series with leading NaNs.

    Args:
        x: Series [T], finite after any leading NaNs.
        span: Span >= 1 (Python int or traced integer).

    Returns:
        [T] average; NaN before index ``s + span - 1``.
    """
    x = as_series(x)
    span = as_length(span, "span")
    alpha = 2 / (span + 1)
    decay, weight = (1 - alpha).astype(x.dtype), alpha.astype(x.dtype)
    # An invalid traced span (< 1) gives all NaN.
    min_count = jnp.where(span >= 1, span, x.shape[0] + 1)
    return _seeded_recurrence(x, jnp.ones((), span.dtype), decay, weight, min_count)


def wilder_average(x: ArrayLike, period: ArrayLike) -> jnp.ndarray:
    """Wilder's smoothed moving average (RMA, SMMA), seeded as in TA-Lib.

    With ``s`` the first finite value and ``n = period``: ``y_{s+n-1} = mean(x_s ..
    x_{s+n-1})``, then ``y_t = (y_{t-1} (n - 1) + x_t) / n``: an exponential average
    with ``alpha = 1 / n`` seeded by a simple mean. RSI and ATR smooth with it.

    Args:
        x: Series [T], finite after any leading NaNs.
        period: Period ``n >= 1`` (Python int or traced integer).

    Returns:
        [T] average; NaN before index ``s + n - 1``.
    """
    x = as_series(x)
    period = as_length(period, "period")
    size = period.astype(x.dtype)
    decay, weight = (size - 1) / size, 1 / size
    min_count = jnp.where(period >= 1, period, x.shape[0] + 1)
    return _seeded_recurrence(x, period, decay, weight, min_count)
