"""Left-tail risk of a series of simple returns [T]: value at risk and expected
shortfall, both historical (empirical quantiles, no distribution fitted).

Both follow empyrical-reloaded 0.7, whose NaN handling differs between the two:
``value_at_risk`` is ``np.percentile`` (not ``nanpercentile``), so one NaN makes it
NaN; ``conditional_value_at_risk`` drops NaNs first.

References:
    P. Jorion, "Value at Risk", 3rd ed., McGraw-Hill, 2007 (historical simulation).
    C. Acerbi and D. Tasche, "Expected shortfall: a natural coherent alternative to
    value at risk", Economic Notes 31(2), 2002.
    empyrical-reloaded 0.7 ``empyrical.stats.value_at_risk`` and
    ``conditional_value_at_risk``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from neuroflux.metrics._series import (
    as_returns,
    percentile_fraction,
    sort_ascending,
    sorted_quantile,
)

__all__ = ["conditional_value_at_risk", "value_at_risk"]


def value_at_risk(returns: ArrayLike, cutoff: ArrayLike = 0.05) -> jnp.ndarray:
    """Historical value at risk: the ``cutoff`` quantile of the returns.

    Linear interpolation between order statistics, as
    ``np.percentile(returns, 100 * cutoff)``; matches ``empyrical.value_at_risk``.
    The result is a return (negative for a loss), not a positive loss amount.

    Args:
        returns: Simple returns [T].
        cutoff: Tail probability in [0, 1], e.g. 0.05 for the 95 % VaR; may be traced.

    Returns:
        Scalar; NaN if the series is empty or holds a NaN.
    """
    returns = as_returns(returns)
    if returns.shape[0] < 1:
        return jnp.array(jnp.nan, returns.dtype)
    ordered, count = sort_ascending(returns)
    quantile = percentile_fraction(100 * jnp.asarray(cutoff, returns.dtype))
    value = sorted_quantile(ordered, count, quantile)
    return jnp.where(count == returns.shape[0], value, jnp.nan)


def conditional_value_at_risk(
    returns: ArrayLike, cutoff: ArrayLike = 0.05
) -> jnp.ndarray:
    """Historical expected shortfall: the mean of the worst returns.

    With ``n`` present returns, the mean of the ``floor((n - 1) * cutoff) + 1``
    smallest, as ``empyrical.conditional_value_at_risk`` (which partitions rather
    than interpolates, so the tail always holds at least one return).

    Args:
        returns: Simple returns [T]; NaNs are dropped first.
        cutoff: Tail probability in [0, 1]; may be traced.

    Returns:
        Scalar (a return, negative for a loss); NaN if no return is present.
    """
    returns = as_returns(returns)
    if returns.shape[0] < 1:
        return jnp.array(jnp.nan, returns.dtype)
    ordered, count = sort_ascending(returns)  # NaNs sort last, outside the tail
    last_in_tail = jnp.floor((count - 1) * jnp.asarray(cutoff, returns.dtype))
    in_tail = jnp.arange(returns.shape[0]) <= last_in_tail
    tail_sum = jnp.sum(jnp.where(in_tail, ordered, 0.0))
    return jnp.where(count > 0, tail_sum / (last_in_tail + 1), jnp.nan)
