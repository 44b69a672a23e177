"""Multi-asset backtest of target weights with shared cash, filled at the close.

:func:`simulate_portfolio` reproduces ``vectorbt.Portfolio.from_orders`` (vectorbt
1.2.0) with ``size_type="targetpercent"``, ``group_by=True``, ``cash_sharing=True``,
``call_seq="auto"`` and ``direction="both"``, the weights given on the rebalance bars
and NaN elsewhere. The rebalance bars are chosen by the kernel itself: a schedule
and/or a drift rule.

Conventions (time axis first, T bars, A assets):

* ``weights[t, a]`` is the target fraction of the portfolio value held in asset ``a``;
  negative is short. At a rebalance bar every asset is traded to ``weights[t] * value /
  close[t]`` units, ``value`` being cash plus holdings at the bar's close before any
  order (vectorbt's ``update_value=False``).
* Rebalance bars: ``schedule[t]`` (default every bar; see :func:`periodic_schedule`),
  or a drift: ``max_a |held_a - weights[t, a]| > drift_threshold`` where ``held`` are
  the weights before the bar's orders. ``rebalanced[t]`` records the decision; a bar
  whose value is <= 0 places no order (vectorbt rejects it).
* Orders fill at the close: a buy at ``close * (1 + slippage)``, a sell at ``close *
  (1 - slippage)``; each pays ``fees * traded cash + fixed_fees``. Within a rebalance
  the orders run from the smallest ``weights * value - held value`` to the largest
  (sells first, a stable sort), so sales fund the buys; every order moves the one
  shared cash. Fractional units; an order below ``min_size`` units is rejected.
* Leverage: short sales are not limited (their proceeds are credited to cash, no margin
  model), buys are limited by cash: cash never goes below 0, and a buy that does not
  fit is cut to the cash left (so the largest buys are the ones cut). Long weights
  summing to more than 1 are reachable only by the cash that shorts raise. A sale whose
  fees exceed its proceeds is rejected.
* Outputs are holdings after the bar's orders: ``value = cash + sum(units * close)``,
  ``returns[t] = value[t] / value[t - 1] - 1`` with ``value[-1] = init_cash``.
  ``turnover[t] = sum_a |order_size[t, a]| * close[t, a] / value`` (the value before
  the orders; 0 where that is <= 0).

Arithmetic follows vectorbt's ``execute_order_nb`` (tolerances of
``vectorbt.utils.math_``: cash and units within 1e-12 of 0 count as 0 before every
order). Inputs: ``close`` finite and positive, ``weights`` finite, ``slippage >= 0``;
not checked under ``jit``. Every argument but ``close``'s shape may be traced, so a
grid of weights, schedules or costs is a ``jax.vmap``.

References:
    vectorbt 1.2.0, ``vectorbt/portfolio/nb.py``: ``simulate_from_orders_nb``,
    ``approx_order_value_nb``, ``execute_order_nb``, ``buy_nb``, ``sell_nb``;
    ``vectorbt/utils/array_.py``: ``insert_argsort_nb``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct
from jax.typing import ArrayLike

from neuroflux.backtest import signals

__all__ = [
    "PortfolioResult",
    "PortfolioState",
    "periodic_schedule",
    "simulate_portfolio",
]

_is_close = signals._is_close
_add = signals._add
_as_computed = signals._as_computed
_snap_to_zero = signals._snap_to_zero


@struct.dataclass
class PortfolioState:
    """State carried from bar to bar: the shared cash (scalar) and units held [A]."""

    cash: jnp.ndarray
    units: jnp.ndarray


@struct.dataclass
class PortfolioResult:
    """Per-bar outcome of a portfolio backtest ([T] or [T, A]).

    Attributes:
        cash: shared cash after the bar's orders [T].
        units: units held after the bar's orders [T, A]; < 0 short.
        asset_value: ``units * close`` [T, A].
        value: ``cash + asset_value.sum(-1)`` [T].
        returns: ``value[t] / value[t - 1] - 1``, with ``value[-1] = init_cash`` [T].
        order_size: units traded [T, A]: > 0 bought, < 0 sold, 0 no order.
        order_fees: fees paid [T, A].
        rebalanced: whether the bar was a rebalance bar [T] (bool).
        turnover: traded value at the close over the value before the orders [T].
    """

    cash: jnp.ndarray
    units: jnp.ndarray
    asset_value: jnp.ndarray
    value: jnp.ndarray
    returns: jnp.ndarray
    order_size: jnp.ndarray
    order_fees: jnp.ndarray
    rebalanced: jnp.ndarray
    turnover: jnp.ndarray


def periodic_schedule(bars: int, every: ArrayLike, offset: ArrayLike = 0) -> jax.Array:
    """Rebalance mask of every ``every``-th bar from ``offset`` on.

    Args:
        bars: number of bars T (static).
        every: period in bars (> 0; may be traced, so periods can be vmapped).
        offset: first rebalance bar.

    Returns:
        A boolean mask [T]: ``t >= offset and (t - offset) % every == 0``.
    """
    index = jnp.arange(bars)
    return (index >= offset) & ((index - offset) % every == 0)


def _order(
    cash: jnp.ndarray,
    units: jnp.ndarray,
    active: jnp.ndarray,
    target_value: jnp.ndarray,
    close: jnp.ndarray,
    fees: jnp.ndarray,
    fixed_fees: jnp.ndarray,
    slippage: jnp.ndarray,
    min_size: jnp.ndarray,
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """One target-value order: (cash, units, order size, fees) after it.

    ``execute_order_nb`` with ``buy_nb``/``sell_nb`` for ``direction="both"`` and
    no cash locking; an inactive or unfilled order leaves the snapped holdings.
    """
    cash = _snap_to_zero(cash)
    units = _snap_to_zero(units)
    size = target_value / close - units
    quantity = jnp.abs(size)

    # buy_nb
    buy_price = close * (1 + slippage)
    request_cash = _as_computed(quantity * buy_price)
    request_fees = _as_computed(request_cash * fees) + fixed_fees
    request_total = request_cash + request_fees
    fits = _is_close(request_total, cash) | (request_total < cash)
    max_cash = _as_computed(_add(cash, -fixed_fees) / (1 + fees))
    bought = jnp.where(fits, quantity, max_cash / buy_price)
    buy_fees = jnp.where(fits, request_fees, cash - max_cash)
    buy_spent = jnp.where(fits, request_total, cash)
    buy_filled = (cash != 0) & (fits | (max_cash > 0))
    buy_filled &= _is_close(bought, min_size) | (bought > min_size)

    # sell_nb
    proceeds = _as_computed(quantity * (close * (1 - slippage)))
    sell_fees = _as_computed(proceeds * fees) + fixed_fees
    net_proceeds = _add(proceeds, -sell_fees)
    sell_filled = (net_proceeds >= 0) & (
        _is_close(quantity, min_size) | (quantity > min_size)
    )

    is_buy = size > 0
    filled = (
        active & ~_is_close(quantity, 0.0) & jnp.where(is_buy, buy_filled, sell_filled)
    )
    new_cash = jnp.where(is_buy, _add(cash, -buy_spent), cash + net_proceeds)
    traded = jnp.where(is_buy, bought, -quantity)
    return (
        jnp.where(filled, new_cash, cash),
        jnp.where(filled, _add(units, traded), units),
        jnp.where(filled, traded, 0.0),
        jnp.where(filled, jnp.where(is_buy, buy_fees, sell_fees), 0.0),
    )


def _fitted(name: str, value: ArrayLike, shape: tuple, dtype) -> jax.Array:
    """``value`` broadcast to ``shape``, or an error that names it."""
    value = jnp.asarray(value)
    try:
        return jnp.broadcast_to(value, shape).astype(dtype)
    except ValueError:
        raise ValueError(
            f"{name} of shape {value.shape} does not broadcast to {shape}"
        ) from None


def simulate_portfolio(
    close: ArrayLike,
    weights: ArrayLike,
    *,
    schedule: ArrayLike | None = None,
    drift_threshold: ArrayLike = math.inf,
    fees: ArrayLike = 0.0,
    fixed_fees: ArrayLike = 0.0,
    slippage: ArrayLike = 0.0,
    min_size: ArrayLike = 1e-8,
    init_cash: ArrayLike = 100.0,
) -> PortfolioResult:
    """Backtest target weights on a panel with shared cash; see the module docstring.

    Works under ``jax.jit`` and ``jax.vmap`` (every argument may be traced).

    Args:
        close: closing prices [T, A], the fill and valuation price.
        weights: target fraction of portfolio value per asset [T, A] (or [A]).
        schedule: rebalance bars [T] (bool); ``None`` rebalances every bar.
        drift_threshold: also rebalance when a held weight is further than this from
            its target; ``inf`` (default) never.
        fees: proportional fee per order, a fraction of its value (scalar or [A]).
        fixed_fees: fixed fee per order, in cash (scalar or [A]).
        slippage: fraction added to the buy and taken from the sell price (scalar or
            [A]).
        min_size: smallest order, in units (scalar or [A]); the default is
            vectorbt's.
        init_cash: starting cash (scalar).

    Returns:
        A :class:`PortfolioResult`.

    Raises:
        ValueError: if ``close`` is not [T, A] or another input does not fit it.
    """
    close = jnp.asarray(close)
    close = close.astype(jnp.result_type(close, float))
    if close.ndim != 2:
        raise ValueError(f"close must have shape [T, A]; got {close.shape}")
    bars, assets = close.shape
    weights = _fitted("weights", weights, close.shape, close.dtype)
    schedule = _fitted(
        "schedule", True if schedule is None else schedule, (bars,), bool
    )
    costs = tuple(
        _fitted(name, value, (assets,), close.dtype)
        for name, value in (
            ("fees", fees),
            ("fixed_fees", fixed_fees),
            ("slippage", slippage),
            ("min_size", min_size),
        )
    )
    drift_threshold = jnp.asarray(drift_threshold, close.dtype)
    init_cash = jnp.asarray(init_cash, close.dtype)

    def step(state: PortfolioState, bar):
        price, target, scheduled = bar
        held = jnp.where(state.units != 0, state.units * price, 0.0)
        value = state.cash + jnp.sum(held)
        drift = jnp.max(jnp.abs(held / value - target))
        rebalance = scheduled | ((value > 0) & (drift > drift_threshold))
        active = jnp.broadcast_to(rebalance & (_snap_to_zero(value) > 0), (assets,))
        target_value = _as_computed(target * _snap_to_zero(value))
        # call_seq="auto": orders sorted by approx_order_value_nb (insert_argsort_nb
        # is a stable sort), so sales come first.
        sequence = jnp.argsort(target * value - state.units * price, stable=True)
        columns = (state.units, active, target_value, price, *costs)

        def order(cash, column):
            cash, *outcome = _order(cash, *column)
            return cash, tuple(outcome)

        cash, outcome = jax.lax.scan(
            order, state.cash, tuple(x[sequence] for x in columns)
        )
        units, size, fees_paid = (
            jnp.zeros_like(price).at[sequence].set(x) for x in outcome
        )
        safe_value = jnp.where(value > 0, value, 1.0)
        turnover = jnp.where(
            value > 0, jnp.sum(jnp.abs(size) * price) / safe_value, 0.0
        )
        outputs = (cash, units, size, fees_paid, rebalance, turnover)
        return PortfolioState(cash, units), outputs

    initial = PortfolioState(cash=init_cash, units=jnp.zeros(assets, close.dtype))
    _, (cash, units, size, fees_paid, rebalanced, turnover) = jax.lax.scan(
        step, initial, (close, weights, schedule)
    )
    asset_value = units * close
    value = cash + jnp.sum(asset_value, axis=-1)
    previous = jnp.concatenate([init_cash[None], value[:-1]])
    return PortfolioResult(
        cash=cash,
        units=units,
        asset_value=asset_value,
        value=value,
        returns=signals._returns(previous, value),
        order_size=size,
        order_fees=fees_paid,
        rebalanced=rebalanced,
        turnover=turnover,
    )
