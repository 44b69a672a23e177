"""Statistics of closed trades: an array of per-trade returns or P&L [N].

Every function takes an optional boolean ``mask`` [N] that marks the real trades, so
that strategies with different numbers of trades can be padded to one length and
``jax.vmap``-ed: ``jax.vmap(win_rate)(pnl, mask)`` over [S, N]. Padded entries may
hold any finite value. A trade with exactly zero P&L is neither a win nor a loss but
counts in the number of trades. NaN P&L is not expected and propagates.

References:
    Van K. Tharp, "The Definitive Guide to Position Sizing", IITM, 2008 (system
    quality number).
    J. L. Kelly, "A New Interpretation of Information Rate", Bell System Technical
    Journal 35(4), 1956; R. Vince, "The Mathematics of Money Management", Wiley,
    1992 (the win-rate/payoff form of the Kelly fraction used by traders).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from neuroflux.metrics._series import as_mask, as_returns

__all__ = ["expectancy", "kelly_fraction", "profit_factor", "sqn", "win_rate"]


def _trades(pnl: ArrayLike, mask: ArrayLike | None) -> tuple[jnp.ndarray, jnp.ndarray]:
    pnl = as_returns(pnl, "pnl")
    return pnl, as_mask(mask, pnl)


def _count(mask: jnp.ndarray, dtype) -> jnp.ndarray:
    return jnp.sum(mask).astype(dtype)


def win_rate(pnl: ArrayLike, mask: ArrayLike | None = None) -> jnp.ndarray:
    """Fraction of trades with positive P&L.

    Args:
        pnl: Per-trade returns or P&L [N].
        mask: Boolean [N], True for real trades; ``None`` means all.

    Returns:
        Scalar in [0, 1]; NaN without trades.
    """
    pnl, mask = _trades(pnl, mask)
    return _count(mask & (pnl > 0), pnl.dtype) / _count(mask, pnl.dtype)


def profit_factor(pnl: ArrayLike, mask: ArrayLike | None = None) -> jnp.ndarray:
    """Gross profit over gross loss, ``sum(pnl[pnl > 0]) / -sum(pnl[pnl < 0])``.

    Args:
        pnl: Per-trade returns or P&L [N].
        mask: Boolean [N], True for real trades; ``None`` means all.

    Returns:
        Scalar ``>= 0``; ``inf`` with profits and no losses, NaN with neither.
    """
    pnl, mask = _trades(pnl, mask)
    profit = jnp.sum(jnp.where(mask & (pnl > 0), pnl, 0.0))
    loss = jnp.sum(jnp.where(mask & (pnl < 0), -pnl, 0.0))  # +0.0 without losses
    return profit / loss


def expectancy(pnl: ArrayLike, mask: ArrayLike | None = None) -> jnp.ndarray:
    """Mean P&L per trade (the expectation of one more trade like these).

    Equal to ``win_rate * average_win - (1 - win_rate) * average_loss``.

    Args:
        pnl: Per-trade returns or P&L [N].
        mask: Boolean [N], True for real trades; ``None`` means all.

    Returns:
        Scalar; NaN without trades.
    """
    pnl, mask = _trades(pnl, mask)
    return jnp.sum(jnp.where(mask, pnl, 0.0)) / _count(mask, pnl.dtype)


def sqn(pnl: ArrayLike, mask: ArrayLike | None = None) -> jnp.ndarray:
    """Van Tharp's system quality number, ``sqrt(n) * mean(pnl) / std(pnl, ddof=1)``.

    Uncapped ``n`` (Tharp suggests capping it at 100 when comparing systems; pass at
    most 100 trades for that). Same as backtesting.py's ``SQN``.

    Args:
        pnl: Per-trade returns or P&L [N] (Tharp uses R-multiples).
        mask: Boolean [N], True for real trades; ``None`` means all.

    Returns:
        Scalar; NaN for fewer than two trades, ``+-inf`` if all trades are equal.
    """
    pnl, mask = _trades(pnl, mask)
    count = _count(mask, pnl.dtype)
    mean = jnp.sum(jnp.where(mask, pnl, 0.0)) / count
    squares = jnp.sum(jnp.where(mask, (pnl - mean) ** 2, 0.0))
    std = jnp.sqrt(squares / (count - 1))
    return jnp.where(count >= 2, jnp.sqrt(count) * mean / std, jnp.nan)


def kelly_fraction(pnl: ArrayLike, mask: ArrayLike | None = None) -> jnp.ndarray:
    """Kelly fraction from win rate and payoff ratio, ``W - (1 - W) / R``.

    ``W`` is the win rate and ``R = mean(wins) / mean(|losses|)`` the payoff ratio.
    This is the growth-optimal fraction of capital to risk per trade for a two-outcome
    bet; a negative value means the system has no edge.

    Args:
        pnl: Per-trade returns or P&L [N].
        mask: Boolean [N], True for real trades; ``None`` means all.

    Returns:
        Scalar ``<= 1``; NaN without at least one win and one loss (the payoff ratio
        is undefined).
    """
    pnl, mask = _trades(pnl, mask)
    wins, losses = mask & (pnl > 0), mask & (pnl < 0)
    win_count, loss_count = _count(wins, pnl.dtype), _count(losses, pnl.dtype)
    average_win = jnp.sum(jnp.where(wins, pnl, 0.0)) / win_count
    average_loss = -jnp.sum(jnp.where(losses, pnl, 0.0)) / loss_count
    rate = win_count / _count(mask, pnl.dtype)
    payoff = average_win / average_loss
    return jnp.where(
        (win_count > 0) & (loss_count > 0), rate - (1 - rate) / payoff, jnp.nan
    )
