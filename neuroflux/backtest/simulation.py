"""Backtest of target positions: close or next-open fills, costs, stops, long/short.

:func:`simulate` takes the target position a strategy wants after each bar's close
(``1`` all-in long, ``-1`` all-in short, ``0`` flat, values between for partial
exposure; the signal functions of :mod:`neuroflux.strategies` return exactly this) and
trades toward it with ``jax.lax.scan`` over the bars.

Conventions (one series, time axis first):

* **When.** An order is placed only when the target changes (a target held for many
  bars is not rebalanced as prices drift). With ``fill="close"`` the target decided at
  bar ``t`` fills at ``close[t]``; with ``fill="next_open"`` it fills at
  ``open[t + 1]`` (a change on the last bar never fills).
* **How much** (``sizing="equity"``). The order aims at ``target * equity / price``
  units, equity valued at the fill price. An order that opens or adds exposure spends
  at most the free equity (equity less the value already exposed), fees included: an
  all-in order from flat buys ``(equity - fixed_fees) / (price * (1 + fees))`` units.
  Closing and reversing happen as two orders: the position is closed, then the new side
  is opened from the resulting equity, each paying the fixed fee. With
  ``units="whole"`` the target units are rounded toward zero.
* **backtesting.py rules** (``sizing="backtesting.py"``, whole units): every target
  change closes the whole position at the unadjusted price, then opens
  ``int(margin * f // (price_adj + commission(f, price) / f))`` units, with
  ``f = 1 - 2**-52`` for a full target (backtesting.py's default order size) and
  ``|target|`` otherwise; ``price_adj`` carries the slippage (its ``spread``) on entry
  only, commission is ``fixed_fees + |size| * price * fees`` at entry and at exit,
  exactly as ``backtesting.backtesting._Broker`` 0.6.6 with ``exclusive_orders``.
* **Prices.** A buy fills at ``price * (1 + slippage)``, a sell at
  ``price * (1 - slippage)``. Fees are ``|units| * fill_price * fees + fixed_fees`` per
  order.
* **Stops** (fractions, ``inf`` = off) apply from the first bar after the fill at the
  close, or on the fill bar itself after an open fill. A long position exits when the
  low reaches ``entry * (1 - stop_loss)`` or ``peak * (1 - trailing_stop)`` (``peak``:
  highest high since entry, the entry price included), or when the high reaches
  ``entry * (1 + take_profit)``; short positions mirror this. The fill is the stop
  level, or the open if the bar gaps through it; when both a stop and the take-profit
  are touched in one bar the stop is assumed first. After a stop exit the position
  stays flat until the target changes.
* **Holdings.** ``cash`` [T] and ``units`` [T] are held after the bar's orders;
  ``value = cash + units * close``; ``returns`` the bar-on-bar change of value, the
  first bar measured against ``init_cash``. A short sale adds its proceeds to cash.
* **Trades** are round trips of one side: opened when the position leaves 0, closed when
  it returns to 0 or reverses. Adding to or reducing a position stays in the same trade
  (size-weighted entry and exit prices). ``pnl`` is net of all its fees, ``returns`` is
  ``pnl`` over the entry value. A position still held at the end is an open trade valued
  at the last close.

Prices must be finite and positive and targets finite; these are not checked under
``jit`` (the edges validate data before it gets here).

References:
    backtesting.py 0.6.6, ``backtesting/backtesting.py``: ``_Broker._process_orders``,
    ``_Broker._close_trade``, ``_Broker._open_trade``, ``Trade.pl_pct``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import struct
from jax.typing import ArrayLike

from neuroflux._arrays import as_series
from neuroflux.backtest import statistics

__all__ = [
    "Bars",
    "Result",
    "SimulationConfig",
    "SimulationParams",
    "TradeLog",
    "rebalance_orders",
    "simulate",
]

FILLS = ("close", "next_open")
UNITS = ("fractional", "whole")
SIZINGS = ("equity", "backtesting.py")
_FULL_ORDER = (
    1.0 - 2.0**-52
)  # backtesting.py's default size, 1 - sys.float_info.epsilon


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """Static choices of :func:`simulate` (hashable; a ``jit`` static argument).

    Attributes:
        fill: ``"close"`` (same bar's close) or ``"next_open"`` (next bar's open).
        units: ``"fractional"`` or ``"whole"`` units.
        sizing: ``"equity"`` (target fraction of equity) or ``"backtesting.py"`` (its
            order sizing and commission rules; requires whole units).
        close_at_end: Flatten the position at the last possible fill (the last
            close, or the last bar's open), as backtesting.py's ``finalize_trades``,
            so that every trade is closed and counted.
    """

    fill: str = "close"
    units: str = "fractional"
    sizing: str = "equity"
    close_at_end: bool = False

    def __post_init__(self) -> None:
        for field, valid in (("fill", FILLS), ("units", UNITS), ("sizing", SIZINGS)):
            value = getattr(self, field)
            if value not in valid:
                raise ValueError(f"{field} must be one of {valid}; got {value!r}")
        if self.sizing == "backtesting.py" and self.units != "whole":
            raise ValueError("sizing='backtesting.py' trades whole units only")

    @classmethod
    def backtesting_py(cls) -> SimulationConfig:
        """backtesting.py's defaults: next-open fills, whole units, its sizing."""
        return cls(fill="next_open", units="whole", sizing="backtesting.py")


@struct.dataclass
class SimulationParams:
    """Costs, cash and stops: a pytree of numbers, so a grid of them can be vmapped.

    Attributes:
        init_cash: Starting cash.
        fees: Proportional fee per order, a fraction of its value.
        fixed_fees: Fixed fee per order, in cash.
        slippage: Fraction added to buy prices and taken from sell prices.
        stop_loss: Exit at this fractional loss from the entry price (``inf``: off).
        take_profit: Exit at this fractional gain from the entry price (``inf``: off).
        trailing_stop: Exit at this fractional retreat from the best price since entry
            (``inf``: off).
    """

    init_cash: float = 10_000.0
    fees: float = 0.0
    fixed_fees: float = 0.0
    slippage: float = 0.0
    stop_loss: float = math.inf
    take_profit: float = math.inf
    trailing_stop: float = math.inf


@struct.dataclass
class Bars:
    """Open, high, low and close prices [T] (or [T, N])."""

    open: jnp.ndarray
    high: jnp.ndarray
    low: jnp.ndarray
    close: jnp.ndarray

    @classmethod
    def from_close(cls, close: ArrayLike) -> Bars:
        """Bars whose open, high and low are the close (for close fills, no stops)."""
        close = jnp.asarray(close, jnp.result_type(float))
        return cls(open=close, high=close, low=close, close=close)


@struct.dataclass
class TradeLog:
    """Round trips, padded to a fixed length K = T ([K], or [K, N] for a panel).

    Attributes:
        entry_index: Bar of the opening fill, -1 beyond ``count``.
        exit_index: Bar of the closing fill (the last bar for an open trade), -1 as
            padding.
        direction: 1 long, -1 short (0 as padding).
        size: Units entered in total.
        entry_price: Size-weighted fill price of the entries.
        exit_price: Size-weighted fill price of the exits; the last close when open.
        fees: Fees of all its orders.
        pnl: Profit and loss net of fees.
        returns: ``pnl`` over the entry value ``size * entry_price``.
        is_open: Whether the trade is still open at the last bar.
        count: Number of trades, the open one included (scalar, or [N]).
    """

    entry_index: jnp.ndarray
    exit_index: jnp.ndarray
    direction: jnp.ndarray
    size: jnp.ndarray
    entry_price: jnp.ndarray
    exit_price: jnp.ndarray
    fees: jnp.ndarray
    pnl: jnp.ndarray
    returns: jnp.ndarray
    is_open: jnp.ndarray
    count: jnp.ndarray

    @property
    def closed(self) -> jnp.ndarray:
        """Boolean [K]: the real, closed trades (the rows trade statistics use)."""
        return (self.entry_index >= 0) & ~self.is_open


@struct.dataclass
class Result:
    """Per-bar holdings ([T], or [T, N]) and the trades of a backtest.

    Attributes:
        target: The target positions that were traded toward.
        cash: Cash after the bar's orders.
        units: Units held after the bar's orders (negative when short).
        value: Equity ``cash + units * close``.
        returns: ``value[t] / value[t - 1] - 1`` with ``value[-1] = init_cash``.
        fees: Fees paid at the bar.
        trades: The :class:`TradeLog` ([T], in bar order).
        trade_records: The same trades in their [2T + 1] slots (two closes per bar at
            most, then the open trade; empty slots have ``entry_index`` -1).
            Statistics read these, so that a sweep never pays for packing.
    """

    target: jnp.ndarray
    cash: jnp.ndarray
    units: jnp.ndarray
    value: jnp.ndarray
    returns: jnp.ndarray
    fees: jnp.ndarray
    trades: TradeLog
    trade_records: TradeLog

    def stats(self, periods_per_year: ArrayLike = 252) -> dict[str, jnp.ndarray]:
        """Performance and trade statistics, keyed as :data:`statistics.STATISTICS`."""
        return statistics.backtest_stats(self, periods_per_year)


@struct.dataclass
class _Book:
    """The account and the open trade, carried from bar to bar."""

    cash: jnp.ndarray
    units: jnp.ndarray
    traded_target: jnp.ndarray
    entry_bar: jnp.ndarray
    entry_units: jnp.ndarray
    entry_value: jnp.ndarray
    exit_units: jnp.ndarray
    exit_value: jnp.ndarray
    trade_fees: jnp.ndarray
    best_price: jnp.ndarray
    bar_fees: jnp.ndarray


@struct.dataclass
class _Closed:
    """A trade closed within one bar (``valid`` False: none was)."""

    valid: jnp.ndarray
    entry_bar: jnp.ndarray
    exit_bar: jnp.ndarray
    direction: jnp.ndarray
    size: jnp.ndarray
    entry_value: jnp.ndarray
    exit_value: jnp.ndarray
    fees: jnp.ndarray


def _nothing_closed(dtype) -> _Closed:
    zero = jnp.zeros((), dtype)
    return _Closed(jnp.asarray(False), *(zero,) * 7)


def _order_fees(units: jnp.ndarray, price: jnp.ndarray, p: SimulationParams):
    return jnp.where(units != 0, jnp.abs(units) * price * p.fees + p.fixed_fees, 0.0)


def _close(book: _Book, price: jnp.ndarray, bar, p, *, when, adjusted: bool):
    """Close the whole position at ``price`` where ``when``; the closed trade."""
    when = when & (book.units != 0)
    side = jnp.sign(book.units)
    fill = price * (1 - p.slippage * side) if adjusted else price
    fees = _order_fees(book.units, fill, p)
    closed = _Closed(
        valid=when,
        entry_bar=book.entry_bar,
        exit_bar=jnp.asarray(bar),
        direction=side,
        size=book.entry_units,
        entry_value=book.entry_value,
        exit_value=book.exit_value + jnp.abs(book.units) * fill,
        fees=book.trade_fees + fees,
    )
    after = book.replace(
        cash=book.cash + book.units * fill - fees,
        units=jnp.zeros_like(book.units),
        bar_fees=book.bar_fees + fees,
    )
    return jax.tree.map(lambda new, old: jnp.where(when, new, old), after, book), closed


def _added_units(book: _Book, target, desired, price, p, config: SimulationConfig):
    """Units (>= 0) an order that opens or adds to the ``target`` side trades."""
    if config.sizing == "backtesting.py":
        fraction = jnp.where(jnp.abs(target) >= 1, _FULL_ORDER, jnp.abs(target))
        margin = jnp.maximum(book.cash, 0.0)
        adjusted = price * (1 + p.slippage * jnp.sign(target))
        with_fee = adjusted + (p.fixed_fees + fraction * price * p.fees) / fraction
        return jnp.floor_divide(margin * fraction, with_fee)
    fill = price * (1 + p.slippage * jnp.sign(target))
    free = book.cash + book.units * price - jnp.abs(book.units) * price
    affordable = jnp.maximum((free - p.fixed_fees) / (fill * (1 + p.fees)), 0.0)
    if config.units == "whole":
        affordable = jnp.floor(affordable)
    return jnp.minimum(jnp.abs(desired) - jnp.abs(book.units), affordable)


def _fill(book: _Book, target, price, bar, p, config: SimulationConfig):
    """Trade toward ``target`` at ``price`` if it changed; the trade it closed."""
    change = target != book.traded_target
    book = book.replace(traded_target=jnp.where(change, target, book.traded_target))
    side = jnp.sign(target)
    compat = config.sizing == "backtesting.py"
    close_all = change if compat else change & (jnp.sign(book.units) != side)
    book, closed = _close(book, price, bar, p, when=close_all, adjusted=not compat)

    equity = book.cash + book.units * price
    desired = target * equity / (price * (1 + p.slippage * side))
    if config.units == "whole":
        desired = jnp.trunc(desired)
    grows = jnp.abs(desired) > jnp.abs(book.units)
    added = side * _added_units(book, target, desired, price, p, config)
    delta = jnp.where(grows, added, desired - book.units)
    delta = jnp.where(change & (target != 0), delta, 0.0)

    fill = price * (1 + p.slippage * jnp.sign(delta))
    fees = _order_fees(delta, fill, p)
    opens = (book.units == 0) & (delta != 0)
    enters = jnp.where(grows & (delta != 0), jnp.abs(delta), 0.0)
    exits = jnp.where(grows, 0.0, jnp.abs(delta))

    def restart(x):
        return jnp.where(opens, 0.0, x)

    book = book.replace(
        cash=book.cash - delta * fill - fees,
        units=book.units + delta,
        entry_bar=jnp.where(opens, bar, book.entry_bar),
        entry_units=restart(book.entry_units) + enters,
        entry_value=restart(book.entry_value) + enters * fill,
        exit_units=restart(book.exit_units) + exits,
        exit_value=restart(book.exit_value) + exits * fill,
        trade_fees=restart(book.trade_fees) + fees,
        best_price=jnp.where(opens, fill, book.best_price),
        bar_fees=book.bar_fees + fees,
    )
    return book, closed


def rebalance_orders(
    cash: ArrayLike,
    units: ArrayLike,
    traded_target: ArrayLike,
    target: ArrayLike,
    price: ArrayLike,
    params: SimulationParams | None = None,
    config: SimulationConfig | None = None,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The orders :func:`simulate` places at one fill, for a trader outside the scan.

    A live runner holding ``cash`` and ``units`` after trading toward
    ``traded_target`` sends these orders when the strategy now wants ``target`` and
    the fill price is ``price``; filled at ``price`` with the slippage and fees of
    ``params``, they leave exactly the account ``simulate`` would hold (stops are not
    part of it).

    Returns:
        ``(closing, adjusting)``: signed units of the order that closes the position
        (non-zero when the side changes or the target is flat) and of the order that
        then opens, adds or reduces; 0 where no order is placed.
    """
    params = SimulationParams() if params is None else params
    config = SimulationConfig() if config is None else config
    dtype = jnp.result_type(float)
    p = jax.tree.map(lambda x: jnp.asarray(x, dtype), params)
    cash, units, traded_target, target, price = (
        jnp.asarray(x, dtype) for x in (cash, units, traded_target, target, price)
    )
    zero = jnp.zeros((), dtype)
    book = _Book(cash, units, traded_target, *(zero,) * 8)
    after, _ = _fill(book, target, price, 0, p, config)
    change = target != traded_target
    compat = config.sizing == "backtesting.py"
    flips = change if compat else change & (jnp.sign(units) != jnp.sign(target))
    closing = jnp.where(flips, -units, 0.0)
    return closing, after.units - units - closing


def _stop(book: _Book, prices, bar, p):
    """Exit at a stop-loss, trailing stop or take-profit touched within the bar."""
    open_, high, low = prices
    side = jnp.sign(book.units)
    long = side > 0
    entry = book.entry_value / book.entry_units
    stop_long = jnp.maximum(
        entry * (1 - p.stop_loss), book.best_price * (1 - p.trailing_stop)
    )
    stop_short = jnp.minimum(
        entry * (1 + p.stop_loss), book.best_price * (1 + p.trailing_stop)
    )
    take = entry * (1 + side * p.take_profit)
    stopped = jnp.where(long, low <= stop_long, high >= stop_short)
    taken = jnp.where(long, high >= take, low <= take)
    exit_price = jnp.where(
        long,
        jnp.where(stopped, jnp.minimum(open_, stop_long), jnp.maximum(open_, take)),
        jnp.where(stopped, jnp.maximum(open_, stop_short), jnp.minimum(open_, take)),
    )
    hit = (side != 0) & (stopped | taken)
    book, closed = _close(book, exit_price, bar, p, when=hit, adjusted=True)
    best = jnp.where(
        long, jnp.maximum(book.best_price, high), jnp.minimum(book.best_price, low)
    )
    return book.replace(best_price=jnp.where(book.units != 0, best, 0.0)), closed


def _no_stops(p: SimulationParams) -> bool:
    """Whether every stop is statically off (plain floats), so the check is skipped."""
    levels = (p.stop_loss, p.take_profit, p.trailing_stop)
    return all(isinstance(x, float | int) and math.isinf(x) for x in levels)


def simulate(
    bars: Bars,
    target: ArrayLike,
    params: SimulationParams | None = None,
    config: SimulationConfig | None = None,
) -> Result:
    """Backtest target positions on one series; see the module docstring.

    Works under ``jax.jit`` (``config`` static) and ``jax.vmap`` (over bars, targets
    or params: a grid of strategy or cost parameters is one vmapped call).

    Args:
        bars: :class:`Bars` of [T] prices (``Bars.from_close(close)`` for close fills
            without stops).
        target: Target positions [T], decided at each bar's close.
        params: :class:`SimulationParams` (cash, costs, stops); defaults if ``None``.
        config: :class:`SimulationConfig` (fill, units, sizing); defaults if ``None``.

    Returns:
        A :class:`Result` of [T] series and a [T] :class:`TradeLog`.
    """
    params = SimulationParams() if params is None else params
    config = SimulationConfig() if config is None else config
    close = as_series(bars.close, "close")
    dtype = close.dtype
    target = jnp.broadcast_to(jnp.asarray(target, dtype), close.shape)
    if config.close_at_end:
        last_decision = -1 if config.fill == "close" else -2
        target = target.at[last_decision].set(0.0)
    p = jax.tree.map(lambda x: jnp.asarray(x, dtype), params)
    check_stops = not _no_stops(params)
    bars_index = jnp.arange(close.shape[0])
    if config.fill == "close":
        fill_price, fill_target = close, target
    else:
        fill_price = jnp.asarray(bars.open, dtype)
        fill_target = jnp.concatenate([jnp.zeros_like(target[:1]), target[:-1]])
    prices = tuple(jnp.asarray(x, dtype) for x in (bars.open, bars.high, bars.low))

    def step(book: _Book, inputs):
        bar, price, wanted, bar_prices = inputs
        book = book.replace(bar_fees=jnp.zeros_like(book.bar_fees))
        first = second = _nothing_closed(dtype)
        if config.fill == "next_open":
            book, first = _fill(book, wanted, price, bar, p, config)
        if check_stops:
            book, stop_closed = _stop(book, bar_prices, bar, p)
            if config.fill == "next_open":
                second = stop_closed
            else:
                first = stop_closed
        if config.fill == "close":
            book, second = _fill(book, wanted, price, bar, p, config)
        return book, (book.cash, book.units, book.bar_fees, first, second)

    zero = jnp.zeros((), dtype)
    start = _Book(
        cash=p.init_cash,
        units=zero,
        traded_target=zero,
        entry_bar=zero,
        entry_units=zero,
        entry_value=zero,
        exit_units=zero,
        exit_value=zero,
        trade_fees=zero,
        best_price=zero,
        bar_fees=zero,
    )
    end, (cash, units, fees, first, second) = jax.lax.scan(
        step, start, (bars_index, fill_price, fill_target, prices)
    )
    value = cash + units * close
    previous = jnp.concatenate([p.init_cash[None], value[:-1]])
    records = _trade_records(first, second, end, close)
    return Result(
        target=target,
        cash=cash,
        units=units,
        value=value,
        returns=value / previous - 1,
        fees=fees,
        trades=_packed(records, close.shape[0]),
        trade_records=records,
    )


def _trade_records(first: _Closed, second: _Closed, end: _Book, close) -> TradeLog:
    """Every trade in its slot: [2T] closes (two per bar at most), then the open one."""
    closed = jax.tree.map(lambda a, b: jnp.stack([a, b], axis=1).ravel(), first, second)
    held = jnp.abs(end.units)

    def slots(closes, open_trade, fill):
        return jnp.concatenate(
            [
                jnp.where(closed.valid, closes, fill),
                jnp.where(held != 0, open_trade, fill)[None],
            ]
        )

    nan = jnp.nan
    direction = slots(closed.direction, jnp.sign(end.units), 0)
    size = slots(closed.size, end.entry_units, nan)
    entry_value = slots(closed.entry_value, end.entry_value, nan)
    exit_value = slots(closed.exit_value, end.exit_value + held * close[-1], nan)
    fees = slots(closed.fees, end.trade_fees, nan)
    pnl = direction * (exit_value - entry_value) - fees
    is_open = jnp.zeros(direction.shape, bool).at[-1].set(held != 0)
    return TradeLog(
        entry_index=slots(closed.entry_bar, end.entry_bar, -1).astype(int),
        exit_index=slots(closed.exit_bar, close.shape[0] - 1, -1).astype(int),
        direction=direction.astype(jnp.int8),
        size=size,
        entry_price=entry_value / size,
        exit_price=exit_value / size,
        fees=fees,
        pnl=pnl,
        returns=pnl / entry_value,
        is_open=is_open,
        count=jnp.sum(closed.valid) + (held != 0),
    )


def _packed(records: TradeLog, length: int) -> TradeLog:
    """The trades of their slots moved to the front, in bar order, padded to length."""
    real = records.entry_index >= 0
    slot = jnp.where(real, jnp.cumsum(real) - 1, length)

    padding = {"entry_index": -1, "exit_index": -1, "direction": 0, "is_open": False}

    def pack(name: str) -> jnp.ndarray:
        x = getattr(records, name)
        empty = jnp.full((length,), padding.get(name, jnp.nan), x.dtype)
        return empty.at[slot].set(x, mode="drop")

    fields = {
        field.name: pack(field.name)
        for field in dataclasses.fields(records)
        if field.name != "count"
    }
    return TradeLog(**fields, count=records.count)
