"""Drawdowns of the wealth curve of a series of simple returns [T].

Wealth starts at 1 before the first return (empyrical anchors it at 100; the ratios are
the same up to rounding), so a loss in the very first period is a drawdown. A NaN
return counts as 0.

References:
    empyrical-reloaded 0.7 ``empyrical.stats.drawdown_series`` and ``max_drawdown``;
    Magdon-Ismail and Atiya, "Maximum drawdown", Risk 17(10), 2004.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from neuroflux.metrics._series import as_returns

__all__ = ["drawdown_series", "max_drawdown", "max_drawdown_duration"]


def drawdown_series(returns: ArrayLike) -> jnp.ndarray:
    """Relative distance of wealth below its running peak after each period.

    ``d_t = W_t / max(W_0, ..., W_t) - 1`` with ``W_0 = 1`` before the first return
    and ``W_t = prod_{s<=t} (1 + r_s)``. Matches ``empyrical.drawdown_series`` (for
    NumPy input, without the anchor row).

    Args:
        returns: Simple returns [T]; NaN counts as 0.

    Returns:
        [T] drawdowns, each ``<= 0``; 0 at a new peak.
    """
    returns = as_returns(returns)
    wealth = jnp.cumprod(1 + jnp.nan_to_num(returns, nan=0.0))
    peak = jnp.maximum(lax.cummax(wealth), 1.0)
    # XLA fuses the cumulative product into the subtraction, and LLVM may contract
    # the two into a fused multiply-add that does not round the product: at a peak
    # the difference would then be a tiny negative number instead of 0.
    return jnp.where(wealth < peak, (wealth - peak) / peak, 0.0)


def max_drawdown(returns: ArrayLike) -> jnp.ndarray:
    """Largest peak-to-trough loss of wealth, as a negative fraction.

    Matches ``empyrical.max_drawdown(returns)``.

    Args:
        returns: Simple returns [T]; NaN counts as 0.

    Returns:
        Scalar ``<= 0`` (``-0.25`` is a 25 % loss from the peak); NaN if empty.
    """
    returns = as_returns(returns)
    if returns.shape[0] == 0:
        return jnp.array(jnp.nan, returns.dtype)
    return jnp.min(drawdown_series(returns))


def max_drawdown_duration(returns: ArrayLike) -> jnp.ndarray:
    """Longest run of consecutive periods spent below a previous peak.

    Counts periods whose drawdown is strictly negative; the run ends at the first
    period that regains the peak. A drawdown still open at the end counts up to the
    last period. Not in empyrical (pyfolio reports it as the duration of the worst
    drawdown, which is a different quantity).

    Args:
        returns: Simple returns [T]; NaN counts as 0.

    Returns:
        Integer scalar (int32) number of periods; 0 if wealth never falls below a
        peak.
    """
    underwater = drawdown_series(returns) < 0
    periods = jnp.arange(underwater.shape[0], dtype=jnp.int32)
    # The run at t is t minus the last period at a peak (-1 before any period).
    last_at_peak = lax.cummax(jnp.where(underwater, -1, periods))
    return jnp.max(periods - last_at_peak, initial=0)
