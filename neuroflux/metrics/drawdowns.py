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


def _step(carry, period_return):
    """One period of the wealth curve: ``(wealth, peak)`` -> new carry, drawdown.

    The metrics scan the series with this step (sequential products, in the order of
    ``np.cumprod``): on XLA:CPU ``jnp.cumprod`` and ``lax.cummax`` are each several
    passes of windowed reductions over the series, slower in all than one scan.
    """
    wealth, peak = carry
    wealth = wealth * (1 + jnp.where(jnp.isnan(period_return), 0.0, period_return))
    peak = jnp.maximum(peak, wealth)
    # ``wealth / peak - 1`` rather than ``(wealth - peak) / peak``: LLVM may contract
    # a product into a subtraction as a fused multiply-add, which would make the
    # rounding depend on how the step is compiled. The guard keeps 0 at a peak,
    # infinite ones included.
    drawdown = jnp.where(wealth < peak, wealth / peak - 1, 0.0)
    return (wealth, peak), drawdown


def _start(returns: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Wealth and peak before the first period: both 1."""
    one = jnp.ones((), returns.dtype)
    return one, one


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
    return lax.scan(_step, _start(returns), returns)[1]


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

    def step(carry, period_return):
        state, worst = carry
        state, drawdown = _step(state, period_return)
        return (state, jnp.minimum(worst, drawdown)), None

    zero = jnp.zeros((), returns.dtype)
    (_, worst), _ = lax.scan(step, (_start(returns), zero), returns)
    return worst


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
