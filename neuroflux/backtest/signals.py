"""Backtest of entry/exit signals: long-only, fill at the close, vectorbt's arithmetic.

:func:`from_signals` reproduces ``vectorbt.Portfolio.from_signals`` (vectorbt 1.2.0)
for its default long-only case: one asset per column, no cash sharing, no stops,
``accumulate=False``, ``upon_long_conflict="ignore"``, ``price=close``.

Conventions (one series, time axis first):

* Orders fill at the same bar's close: a buy at ``close[t] * (1 + slippage)``, a sell at
  ``close[t] * (1 - slippage)``.
* At bar ``t`` a flat column buys when ``entries[t]``; a column in a position sells all
  of it when ``exits[t]``. An entry while in a position is ignored (no pyramiding), as
  is an exit while flat. An entry and an exit on the same bar cancel each other (both
  ignored, whatever the position): vectorbt's ``ConflictMode.Ignore``. A bar whose
  close is NaN places no order.
* ``size`` is in units of the asset. The default ``inf`` spends all cash: the bought
  size is ``(cash - fixed_fees) / (1 + fees) / price`` and the fees are what is left,
  ``cash - (cash - fixed_fees) / (1 + fees)``, so cash ends at exactly 0. A finite size
  is bought whole when its cost ``size * price * (1 + fees) + fixed_fees`` fits the
  cash (within vectorbt's 1e-9 relative tolerance), else reduced to all-in. An order
  whose fees cannot be covered, or of fewer than 1e-8 units (vectorbt's default
  ``min_size``), is rejected and changes nothing. Fractional sizes.
* A sell receives ``size * price - (size * price * fees + fixed_fees)``; if that is
  negative the sell is rejected and the position kept.
* ``cash`` [T] and ``position`` [T] are the holdings after the bar's order, ``value``
  [T] = ``cash + position * close``, ``returns`` [T] the bar-on-bar change of value,
  the first bar measured against ``init_cash``. A NaN close places no order and is
  valued at the last valid close (the first valid one before any), as vectorbt's
  ``fillna_close``; a flat bar is worth its cash whatever the close.
* Trades (vectorbt's exit trades): one per buy, closed by the next sell; a position
  still held at the end is an open trade valued at the last close with no exit fee.
  ``pnl = size * (exit_price - entry_price) - entry_fees - exit_fees`` and ``returns =
  pnl / (size * entry_price)``. Trade arrays have a fixed length ``(T + 1) // 2`` (the
  most trades T bars can hold) and are padded with -1 (indices) and NaN (numbers)
  beyond ``count``.

Arithmetic: money is float64 and every operation is the one vectorbt performs, in its
order, with its tolerances (``vectorbt.utils.math_``: two numbers are "close" within
1e-9 relative or 1e-12 absolute; a sum of two close opposite numbers is exactly 0;
cash and positions within 1e-12 of 0 count as 0). XLA is kept from fusing ``a * b + c``
into a multiply-add and from rewriting ``(a / b) / c`` (see :func:`_as_computed`), so
on CPU the equity curve, cash, sizes, fees and trade P&L equal vectorbt's bit for bit in
the tests. Cash is the simulation's cash; vectorbt's ``Portfolio.cash()`` re-adds order
cash flows and could differ from it only by amounts below 1e-12, or when a sale's
proceeds equal its fees to 1e-9. ``Portfolio.final_value()`` (init cash plus total
profit) differs from the last bar of ``value`` by rounding (about 1e-15).

Inputs: ``close`` positive, NaN where missing, ``entries`` and ``exits``
boolean, ``init_cash`` finite and positive, ``fees``/``fixed_fees``/``slippage``
scalars (or one value per column for a panel); ``slippage >= 0``. These are not checked
under ``jit``.

References:
    vectorbt 1.2.0, ``vectorbt/portfolio/nb.py``: ``simulate_from_signals_nb``,
    ``resolve_signal_conflict_nb``, ``signals_to_size_nb``, ``execute_order_nb``,
    ``buy_nb``, ``sell_nb``, ``get_exit_trades_nb``, ``get_trade_stats_nb``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct
from jax.typing import ArrayLike

__all__ = [
    "SignalsResult",
    "SignalsState",
    "Trades",
    "from_signals",
    "simulate_signals",
]

_RELATIVE_TOLERANCE = 1e-9  # vectorbt.utils.math_.rel_tol
_ABSOLUTE_TOLERANCE = 1e-12  # vectorbt.utils.math_.abs_tol
_MIN_SIZE = 1e-8  # vectorbt.settings.portfolio["min_size"]


@struct.dataclass
class SignalsState:
    """State carried from bar to bar: the cash and the units held."""

    cash: jnp.ndarray
    position: jnp.ndarray


@struct.dataclass
class Trades:
    """Trade records, padded to a fixed length K = (T + 1) // 2 ([K], or [K, N]).

    Attributes:
        entry_index: bar of the buy, -1 beyond ``count``.
        exit_index: bar of the sell (the last bar for an open trade), -1 as padding.
        size: units bought and sold.
        entry_price: fill price of the buy (slippage included).
        exit_price: fill price of the sell; the last close for an open trade.
        entry_fees: fees paid on the buy.
        exit_fees: fees paid on the sell; 0 for an open trade.
        pnl: profit and loss net of both fees.
        returns: ``pnl`` over the entry value ``size * entry_price``.
        is_open: whether the trade is still open at the last bar.
        count: number of trades (scalar, or [N]).
    """

    entry_index: jnp.ndarray
    exit_index: jnp.ndarray
    size: jnp.ndarray
    entry_price: jnp.ndarray
    exit_price: jnp.ndarray
    entry_fees: jnp.ndarray
    exit_fees: jnp.ndarray
    pnl: jnp.ndarray
    returns: jnp.ndarray
    is_open: jnp.ndarray
    count: jnp.ndarray


@struct.dataclass
class SignalsResult:
    """Per-bar holdings ([T], or [T, N]) and the trades of a signal backtest.

    Attributes:
        cash: cash after the bar's order.
        position: units held after the bar's order.
        value: equity ``cash + position * close`` (NaN closes filled, see above).
        returns: ``value[t] / value[t - 1] - 1``, with ``value[-1] = init_cash``.
        order_size: units traded at the bar: > 0 bought, < 0 sold, 0 no order.
        order_fees: fees paid at the bar.
        trades: the trade records.
    """

    cash: jnp.ndarray
    position: jnp.ndarray
    value: jnp.ndarray
    returns: jnp.ndarray
    order_size: jnp.ndarray
    order_fees: jnp.ndarray
    trades: Trades


def _is_close(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``vectorbt.utils.math_.is_close_nb``."""
    finite = jnp.isfinite(a) & jnp.isfinite(b)
    bound = jnp.maximum(
        _RELATIVE_TOLERANCE * jnp.maximum(jnp.abs(a), jnp.abs(b)), _ABSOLUTE_TOLERANCE
    )
    return finite & ((a == b) | (jnp.abs(a - b) <= bound))


def _is_zero(x: jnp.ndarray) -> jnp.ndarray:
    """``_is_close(x, 0.0)``; the relative bound ``1e-9 * |x|`` is below ``|x|``."""
    return jnp.abs(x) <= _ABSOLUTE_TOLERANCE


def _is_less(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``vectorbt.utils.math_.is_less_nb``."""
    return (a < b) & ~_is_close(a, b)


def _add(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``vectorbt.utils.math_.add_nb``: a sum that cancels to within tolerance is 0."""
    opposite = jnp.sign(a) != jnp.sign(b)
    cancels = jnp.where(opposite, _is_close(jnp.abs(a), jnp.abs(b)), _is_zero(a + b))
    return jnp.where(cancels, 0.0, a + b)


def _as_computed(x: jnp.ndarray) -> jnp.ndarray:
    """``x`` as computed: an identity XLA cannot see through.

    XLA rewrites some float expressions into forms that round differently from
    vectorbt (numba), which rounds every operation as written: on CPU it contracts
    ``a * b + c`` into one fused multiply-add, and it turns ``(a / b) / c`` into
    ``a / (b * c)``. A select on the intermediate (NaN stays NaN) stops both.
    """
    return jnp.where(x == x, x, jnp.nan)


def _snap_to_zero(x: jnp.ndarray) -> jnp.ndarray:
    return jnp.where(_is_zero(x), 0.0, x)


def _execute(
    held_cash: jnp.ndarray,
    held: jnp.ndarray,
    price_up: jnp.ndarray,
    price_down: jnp.ndarray,
    entry: jnp.ndarray,
    exit_: jnp.ndarray,
    fees: jnp.ndarray,
    fixed_fees: jnp.ndarray,
    size: jnp.ndarray,
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """One bar, elementwise: (cash, position, order size, order fees) after it.

    ``buy_nb``/``sell_nb`` as ``simulate_from_signals_nb`` calls them for long-only,
    unaccumulated signals, from the cash and position held before the bar.
    """
    cash = _snap_to_zero(held_cash)
    position = _snap_to_zero(held)
    tradable = ~jnp.isnan(price_up)
    # resolve_signal_conflict_nb (Ignore) and signals_to_size_nb (no accumulation)
    # decide on the unsnapped position, as vectorbt does.
    buy = (held == 0) & entry & ~exit_ & (size != 0)
    sell = (held > 0) & exit_ & ~entry

    # buy_nb
    request_cash = _as_computed(size * price_up)
    request_fees = _as_computed(request_cash * fees) + fixed_fees
    request_total = request_cash + request_fees
    fits = _is_close(request_total, cash) | (request_total < cash)
    max_cash = _as_computed(_add(cash, -fixed_fees) / (1 + fees))
    bought = jnp.where(fits, size, max_cash / price_up)
    buy_fees = jnp.where(fits, request_fees, cash - max_cash)
    buy_spent = jnp.where(fits, request_total, cash)
    buy_filled = (
        buy
        & tradable
        & (cash != 0)
        & ~jnp.isnan(size)
        & (fits | (max_cash > 0))
        & ~_is_zero(size)
        & ~_is_less(bought, _MIN_SIZE)
    )

    # sell_nb (long only: the whole position)
    proceeds = _as_computed(position * price_down)
    sell_fees = _as_computed(proceeds * fees) + fixed_fees
    net_proceeds = _add(proceeds, -sell_fees)
    sell_filled = (
        sell
        & tradable
        & ~_is_zero(position)
        & ~_is_less(position, _MIN_SIZE)
        & (net_proceeds >= 0)
    )

    # A rejected order still leaves vectorbt's snapped cash and position behind.
    attempted = (buy | sell) & tradable
    new_cash = jnp.where(
        buy_filled,
        _add(cash, -buy_spent),
        jnp.where(
            sell_filled, cash + net_proceeds, jnp.where(attempted, cash, held_cash)
        ),
    )
    new_position = jnp.where(
        buy_filled,
        _add(position, bought),
        jnp.where(sell_filled, 0.0, jnp.where(attempted, position, held)),
    )
    order_size = jnp.where(buy_filled, bought, jnp.where(sell_filled, -position, 0.0))
    order_fees = jnp.where(buy_filled, buy_fees, jnp.where(sell_filled, sell_fees, 0.0))
    return new_cash, new_position, order_size, order_fees


def simulate_signals(
    close: ArrayLike,
    entries: ArrayLike,
    exits: ArrayLike,
    *,
    fees: ArrayLike = 0.0,
    fixed_fees: ArrayLike = 0.0,
    slippage: ArrayLike = 0.0,
    init_cash: ArrayLike = 100.0,
    size: ArrayLike = math.inf,
) -> SignalsResult:
    """Backtest one series of signals ([T]); see the module docstring.

    Args:
        close: closing prices [T], the fill and valuation price.
        entries: buy signals [T] (bool).
        exits: sell signals [T] (bool).
        fees: proportional fee per order, a fraction of its value.
        fixed_fees: fixed fee per order, in cash.
        slippage: fraction added to the buy price and taken from the sell price.
        init_cash: starting cash.
        size: units per buy; ``inf`` spends all cash.

    Returns:
        A :class:`SignalsResult` with [T] series and [K] trades, K = (T + 1) // 2.
    """
    close = jnp.asarray(close, jnp.result_type(float))
    costs = (fees, fixed_fees, slippage, init_cash, size)
    return _simulate(close, jnp.asarray(entries), jnp.asarray(exits), *costs)


def _simulate(
    close: jnp.ndarray,
    entries: jnp.ndarray,
    exits: jnp.ndarray,
    fees: ArrayLike,
    fixed_fees: ArrayLike,
    slippage: ArrayLike,
    init_cash: ArrayLike,
    size: ArrayLike,
) -> SignalsResult:
    """The bar loop for a series [T] or a panel [T, N] (state [N], costs scalar or [N]).

    One ``lax.scan`` over bars steps every column at once (the arithmetic is
    elementwise). It stores only the holdings and the last valid close: on XLA CPU
    each stored output of the loop body is its own kernel that redoes the bar's
    arithmetic, so the orders are recomputed once, elementwise over all bars, from the
    holdings before each bar.
    """
    fees, fixed_fees, slippage, init_cash, size = (
        jnp.broadcast_to(jnp.asarray(x, close.dtype), close.shape[1:])
        for x in (fees, fixed_fees, slippage, init_cash, size)
    )
    buy_price = close * (1 + slippage)
    sell_price = close * (1 - slippage)
    bars = (buy_price, sell_price, entries, exits)
    costs = (fees, fixed_fees, size)

    def step(carry, bar):
        state, last_close = carry
        *inputs, close_now = bar
        cash, position, _, _ = _execute(state.cash, state.position, *inputs, *costs)
        last_close = jnp.where(jnp.isnan(close_now), last_close, close_now)
        return (SignalsState(cash, position), last_close), (cash, position, last_close)

    initial = (
        SignalsState(cash=init_cash, position=jnp.zeros_like(init_cash)),
        jnp.full_like(init_cash, jnp.nan),
    )
    _, (cash, position, last_close) = jax.lax.scan(step, initial, (*bars, close))
    cash_before = jnp.concatenate([init_cash[None], cash[:-1]])
    position_before = jnp.concatenate([initial[0].position[None], position[:-1]])
    _, _, order_size, order_fees = _execute(cash_before, position_before, *bars, *costs)
    # Valued at the last valid close: holding a position implies a filled, valid bar.
    valuation = jnp.where(position == 0, 0.0, last_close)
    value = cash + _as_computed(valuation * position)
    previous = jnp.concatenate([init_cash[None], value[:-1]])
    orders = (close, buy_price, sell_price, order_size, order_fees)
    if close.ndim == 1:  # a series is traded as a panel of one column
        trades = _trades(*(x[:, None] for x in orders))
        trades = jax.tree.map(lambda x: x[..., 0], trades)
    else:
        trades = _trades(*orders)
    return SignalsResult(
        cash=cash,
        position=position,
        value=value,
        returns=_returns(previous, value),
        order_size=order_size,
        order_fees=order_fees,
        trades=trades,
    )


def _returns(previous: jnp.ndarray, value: jnp.ndarray) -> jnp.ndarray:
    """``vectorbt.returns.nb.get_return_nb``."""
    safe = jnp.where(previous == 0, 1.0, previous)
    change = (value - safe) / safe
    change = jnp.where(previous < 0, -change, change)
    from_zero = jnp.where(value == 0, 0.0, jnp.inf * jnp.sign(value))
    return jnp.where(previous == 0, from_zero, change)


def _trades(
    close: jnp.ndarray,
    buy_price: jnp.ndarray,
    sell_price: jnp.ndarray,
    order_size: jnp.ndarray,
    order_fees: jnp.ndarray,
) -> Trades:
    """``get_exit_trades_nb`` for alternating buys and full sells, a panel [T, N]."""
    bars, columns = close.shape
    capacity = (bars + 1) // 2

    # Buys and sells alternate, so the j-th order is the buy (j even) or the sell
    # (j odd) of trade j // 2. One scatter finds the orders' bars; the rest are
    # gathers. (associative_scan: XLA CPU's cumsum is a much slower reduce_window.)
    is_order = order_size != 0
    orders = jax.lax.associative_scan(jnp.add, is_order.astype(jnp.int32), axis=0)
    slot = jnp.where(is_order, orders - 1, 2 * capacity)
    bar = jnp.broadcast_to(jnp.arange(bars)[:, None], close.shape)
    order_bar = (
        jnp.full((2 * capacity, columns), bars, bar.dtype)
        .at[slot, jnp.arange(columns)]
        .set(bar, mode="drop")
    )
    entry_bar, exit_bar = order_bar[0::2], order_bar[1::2]

    def gather(bar: jnp.ndarray, values: jnp.ndarray) -> jnp.ndarray:
        found = jnp.take_along_axis(values, jnp.minimum(bar, bars - 1), axis=0)
        return jnp.where(bar < bars, found, jnp.nan)

    size = gather(entry_bar, order_size)
    entry_order_price = gather(entry_bar, buy_price)
    entry_order_fees = gather(entry_bar, order_fees)
    exit_price = gather(exit_bar, sell_price)
    exit_fees = gather(exit_bar, order_fees)

    closed = orders[-1] // 2
    trade = jnp.arange(capacity)[:, None]
    # An unsold buy is an open trade unless its size is 0 within tolerance
    # (is_less_nb(-size, 0) in vectorbt).
    open_size = jnp.take_along_axis(size, jnp.minimum(closed, capacity - 1)[None], 0)
    has_open = (orders[-1] % 2 == 1) & ~_is_zero(open_size[0])
    is_open = (trade == closed) & has_open
    exit_index = jnp.where(is_open, bars - 1, exit_bar)
    exit_price = jnp.where(is_open, close[-1], exit_price)
    exit_fees = jnp.where(is_open, 0.0, exit_fees)
    count = closed + has_open
    valid = trade < count

    # One buy per trade: vectorbt's size-weighted averages reduce to these.
    entry_price = _as_computed(size * entry_order_price) / size
    entry_fees = (size / size) * entry_order_fees
    entry_value = _as_computed(size * entry_price)
    pnl = _add(_as_computed(size * exit_price), -entry_value) - entry_fees - exit_fees
    trade_returns = pnl / entry_value

    def pad(x: jnp.ndarray) -> jnp.ndarray:
        return jnp.where(valid, x, jnp.nan)

    return Trades(
        entry_index=jnp.where(valid, entry_bar, -1),
        exit_index=jnp.where(valid, exit_index, -1),
        size=pad(size),
        entry_price=pad(entry_price),
        exit_price=pad(exit_price),
        entry_fees=pad(entry_fees),
        exit_fees=pad(exit_fees),
        pnl=pad(pnl),
        returns=pad(trade_returns),
        is_open=is_open,
        count=count,
    )


def from_signals(
    close: ArrayLike,
    entries: ArrayLike,
    exits: ArrayLike,
    *,
    fees: ArrayLike = 0.0,
    fixed_fees: ArrayLike = 0.0,
    slippage: ArrayLike = 0.0,
    init_cash: ArrayLike = 100.0,
    size: ArrayLike = math.inf,
    direction: str = "longonly",
) -> SignalsResult:
    """Backtest entry/exit signals on one series [T] or a panel [T, N].

    A panel is simulated in one scan over bars that steps all N columns at once (the
    per-bar arithmetic is elementwise); its per-bar outputs are [T, N], its trade
    arrays [K, N] and ``trades.count`` [N]. For a panel, ``fees``, ``fixed_fees``,
    ``slippage``, ``init_cash`` and ``size`` may be scalars or [N]. Works under
    ``jax.jit`` (``direction`` static) and ``jax.vmap``. Conventions and
    vectorbt parity: see the module docstring.

    Args:
        close: closing prices [T] or [T, N].
        entries: buy signals (bool), same shape as ``close`` or broadcastable to it.
        exits: sell signals (bool), same shape as ``close`` or broadcastable to it.
        fees: proportional fee per order.
        fixed_fees: fixed fee per order, in cash.
        slippage: fraction added to the buy price and taken from the sell price.
        init_cash: starting cash per column.
        size: units per buy; ``inf`` (default) spends all cash.
        direction: only ``"longonly"`` is implemented.

    Returns:
        A :class:`SignalsResult`.

    Raises:
        ValueError: for another direction, or inputs that are not [T] or [T, N].
        TypeError: for signals that are not boolean.
    """
    if direction != "longonly":
        raise ValueError(
            "direction must be 'longonly' (the only one implemented), "
            f"got {direction!r}"
        )
    close = jnp.asarray(close)
    close = close.astype(jnp.result_type(close, float))
    if close.ndim not in (1, 2):
        raise ValueError(f"close must have shape [T] or [T, N]; got {close.shape}")
    signals = []
    for name, signal in (("entries", entries), ("exits", exits)):
        signal = jnp.asarray(signal)
        if signal.dtype != jnp.bool_:
            raise TypeError(f"{name} must be boolean, got dtype {signal.dtype}")
        try:
            signal = jnp.broadcast_to(signal, close.shape)
        except ValueError:
            raise ValueError(
                f"{name} of shape {signal.shape} does not fit close of shape "
                f"{close.shape}"
            ) from None
        signals.append(signal)
    costs = dict(
        fees=fees,
        fixed_fees=fixed_fees,
        slippage=slippage,
        init_cash=init_cash,
        size=size,
    )
    if close.ndim == 1:
        return simulate_signals(close, *signals, **costs)
    return _simulate(close, *signals, **costs)
