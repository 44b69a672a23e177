"""A paper exchange: the :class:`~neuroflux.live.orders.Exchange` contract, simulated.

:class:`PaperExchange` is a margin account in memory or in a SQLite file. Symbols are
ccxt unified ``BASE/QUOTE`` (``BTC/USDT``, ``SP500/USD``); balances are per asset and
the base may go negative (a short), as may the quote: there are no margin checks, the
runner's risk gate owns limits.

Fill model (the same arithmetic as :func:`neuroflux.backtest.simulate` with
``fill="close"``, so that a replay matches the backtest to the last bit):

* A market order fills at the last price seen for its symbol: the close of the bar
  given to :meth:`PaperExchange.on_bar`, i.e. the price when the order arrives after
  the runner saw that bar. A buy pays ``price * (1 + slippage)``, a sell gets
  ``price * (1 - slippage)``.
* The fee is ``|units| * fill_price * fees`` in the quote asset; the quote balance
  changes by ``-(units * fill_price) - fee`` and the base by ``units`` (signed).
* Times are bar times (UTC ms of the last bar seen), the paper clock, never the wall
  clock, so a replay is deterministic.

Two liquidity limits, both off by default (exact parity needs them off):

* ``participation``: the orders of a symbol fill at most ``participation * volume``
  units of each bar in total, oldest order first; what does not fit stays ``open`` and
  fills on the next bars (one :class:`~neuroflux.live.orders.Fill` per order and bar,
  at that bar's price) until it is filled or canceled.
* ``book`` (:class:`OrderBookModel`): a synthetic book of ``levels`` price levels per
  side holding ``depth`` units each. Level ``k`` (``k = 0 .. levels - 1``) of the ask
  side is at ``reference * (1 + spacing * k)``, of the bid side at
  ``reference * (1 - spacing * k)``, with ``reference`` the slippage-adjusted price. A
  market order walks the levels from where earlier orders of the same bar left them
  (liquidity taken is gone until the next bar, when the book is rebuilt around the
  new close) and fills at the size-weighted average price of the units it took; what
  the book cannot hold stays open for the next bars.

Persistence (``path``): the account (settings, balances, orders, fills and the last
bar of each symbol) lives in a SQLite file in WAL mode with ``synchronous=FULL``; each
order, each bar's fills and each cancel is one transaction, so a session killed at
any point (kill -9 included) reopens exactly where its last transaction left it.
Reopening a file with other settings (fees, slippage, liquidity, initial balances)
is an error: it would silently change an account's history.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

import ccxt

from neuroflux.live.orders import BarEvent, Fill, Order, OrderRequest

__all__ = ["OrderBookModel", "PaperExchange", "PaperOrderRejected"]

_SIDES = {"buy": 1.0, "sell": -1.0}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS balances (asset TEXT PRIMARY KEY, amount REAL NOT NULL);
CREATE TABLE IF NOT EXISTS markets (
    symbol TEXT PRIMARY KEY, price REAL, time INTEGER, volume REAL,
    traded REAL, bid_taken REAL, ask_taken REAL);
CREATE TABLE IF NOT EXISTS orders (
    sequence INTEGER PRIMARY KEY, client_order_id TEXT UNIQUE NOT NULL,
    symbol TEXT, side TEXT, amount REAL, status TEXT, filled REAL, average REAL,
    fee REAL, time INTEGER, exchange_id TEXT);
CREATE TABLE IF NOT EXISTS fills (
    sequence INTEGER PRIMARY KEY, client_order_id TEXT NOT NULL,
    trade_id TEXT UNIQUE NOT NULL, symbol TEXT, side TEXT, amount REAL, price REAL,
    fee REAL, fee_currency TEXT, time INTEGER);
"""


class PaperOrderRejected(ccxt.InvalidOrder):
    """The paper exchange refused an order (a ccxt ``InvalidOrder``)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderBookModel:
    """A synthetic order book around the last price (see the module docstring).

    Attributes:
        levels: Price levels per side (>= 1).
        spacing: Fractional price step between levels (>= 0).
        depth: Units resting at each level (> 0).
    """

    levels: int
    spacing: float
    depth: float

    def __post_init__(self) -> None:
        if not isinstance(self.levels, int) or self.levels < 1:
            raise ValueError(f"levels must be an integer >= 1; got {self.levels!r}")
        if not (math.isfinite(self.spacing) and self.spacing >= 0):
            raise ValueError(f"spacing must be finite and >= 0; got {self.spacing!r}")
        if not (math.isfinite(self.depth) and self.depth > 0):
            raise ValueError(f"depth must be finite and > 0; got {self.depth!r}")

    @property
    def size(self) -> float:
        """Units on one side of the book."""
        return self.levels * self.depth

    def average_price(
        self, reference: float, sign: float, taken: float, units: float
    ) -> float:
        """Average price of ``units`` taken after ``taken`` units of one side.

        Args:
            reference: Price of level 0.
            sign: 1 for the ask side (a buy), -1 for the bid side (a sell).
            taken: Units of this side already taken in this bar.
            units: Units to take (``taken + units <= size``).
        """
        cost, position, end = 0.0, taken, taken + units
        while position < end:
            level = min(int(position // self.depth), self.levels - 1)
            portion = min(end, (level + 1) * self.depth) - position
            cost += portion * reference * (1 + sign * self.spacing * level)
            position += portion
        return cost / units


@dataclasses.dataclass(kw_only=True)
class _Market:
    """The last bar of a symbol and the liquidity its orders took from it."""

    price: float
    time: int
    volume: float
    traded: float = 0.0
    bid_taken: float = 0.0
    ask_taken: float = 0.0


def _assets(symbol: str) -> tuple[str, str]:
    """``(base, quote)`` of a ccxt unified symbol (``BASE/QUOTE[:SETTLE]``)."""
    base, slash, rest = symbol.partition("/")
    quote = rest.partition(":")[0]
    if not (slash and base and quote):
        raise PaperOrderRejected(f"symbol must be BASE/QUOTE; got {symbol!r}")
    return base, quote


class PaperExchange:
    """A simulated margin account implementing the ``Exchange`` protocol.

    Args:
        balances: Starting amount of each asset (used when the account is new; a
            reopened ``path`` keeps its own balances).
        fees: Proportional fee, a fraction of each fill's value.
        slippage: Fraction added to buy prices and taken from sell prices.
        participation: Largest fraction of a bar's volume the orders of a symbol
            fill in that bar; ``None``: unlimited.
        book: A synthetic :class:`OrderBookModel` to walk; ``None``: no book.
        path: SQLite file holding the account; ``None``: in memory.
        name: The exchange's name in the runner's journal.
    """

    def __init__(
        self,
        *,
        balances: Mapping[str, float],
        fees: float = 0.0,
        slippage: float = 0.0,
        participation: float | None = None,
        book: OrderBookModel | None = None,
        path: str | Path | None = None,
        name: str = "paper",
    ) -> None:
        for field, value in (("fees", fees), ("slippage", slippage)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{field} must be finite and >= 0; got {value!r}")
        if participation is not None and not (
            math.isfinite(participation) and participation > 0
        ):
            raise ValueError(f"participation must be > 0 or None; got {participation}")
        for asset, amount in balances.items():
            if not math.isfinite(amount):
                raise ValueError(f"balances[{asset!r}] must be finite; got {amount}")
        self.name = name
        self.fees, self.slippage = float(fees), float(slippage)
        self.participation, self.book = participation, book
        self._balances = {asset: float(x) for asset, x in balances.items()}
        self._markets: dict[str, _Market] = {}
        self._orders: dict[str, Order] = {}  # in the order they were placed
        # The open orders of each symbol, in the order they were placed: what a bar
        # fills, without walking every order ever placed.
        self._open_orders: dict[str, dict[str, Order]] = {}
        self._sequence: dict[str, int] = {}
        self._fill_count = 0
        self._database: sqlite3.Connection | None = None
        if path is not None:
            self._open(Path(path))

    # -- the Exchange protocol ---------------------------------------------------

    async def create_order(self, request: OrderRequest) -> Order:
        """Places a market order, or returns the one placed under its id.

        Raises:
            PaperOrderRejected: No price seen for the symbol, amount not > 0, an
                unknown side or symbol form, or the id already used for another
                order. The rejected order is kept with status ``'rejected'``.
        """
        known = self._orders.get(request.client_order_id)
        if known is not None:
            if (known.symbol, known.side, known.amount) != (
                request.symbol,
                request.side,
                request.amount,
            ):
                raise PaperOrderRejected(
                    f"client_order_id {request.client_order_id!r} was already used "
                    f"for {known.side} {known.amount} {known.symbol}"
                )
            return known
        market = self._markets.get(request.symbol)
        order = Order(
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            amount=request.amount,
            status="open",
            time=market.time if market else 0,
            exchange_id=f"paper-{len(self._orders) + 1}",
        )
        reason = self._rejection(request, market)
        if reason is not None:
            rejected = dataclasses.replace(order, status="rejected", exchange_id="")
            self._commit(orders=[rejected])
            raise PaperOrderRejected(f"order {request.client_order_id}: {reason}")
        assert market is not None
        order, fill = self._execute(order, market)
        self._commit(orders=[order], fills=[fill] if fill else [], market=order.symbol)
        return order

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        order = self._orders.get(client_order_id)
        return order if order is not None and order.symbol == symbol else None

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        if symbol is not None:
            return list(self._open_orders.get(symbol, {}).values())
        orders = [
            order for open_ in self._open_orders.values() for order in open_.values()
        ]
        return sorted(orders, key=lambda order: self._sequence[order.client_order_id])

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancels the unfilled rest of an open order; other orders come back as is.

        Raises:
            ccxt.OrderNotFound: No order of ``symbol`` has this id.
        """
        order = await self.fetch_order(symbol, client_order_id)
        if order is None:
            raise ccxt.OrderNotFound(f"no {symbol} order {client_order_id!r}")
        if order.status != "open":
            return order
        order = dataclasses.replace(order, status="canceled")
        self._commit(orders=[order])
        return order

    async def fetch_balance(self) -> dict[str, float]:
        return dict(self._balances)

    async def on_bar(self, bar: BarEvent) -> None:
        """Prices later fills from ``bar`` and fills open orders of its symbol.

        A bar older than the last one seen for the symbol is an error; the same bar
        again (a restarted runner) changes nothing.
        """
        market = self._markets.get(bar.symbol)
        if market is not None and bar.time <= market.time:
            if bar.time < market.time:
                raise ValueError(
                    f"{bar.symbol} bar at {bar.time} is older than the last bar seen "
                    f"({market.time})"
                )
            return
        if not (math.isfinite(bar.close) and bar.close > 0):
            raise ValueError(f"{bar.symbol} bar at {bar.time}: close must be > 0")
        if not (math.isfinite(bar.volume) and bar.volume >= 0):
            raise ValueError(f"{bar.symbol} bar at {bar.time}: volume must be >= 0")
        market = _Market(price=bar.close, time=bar.time, volume=bar.volume)
        self._markets[bar.symbol] = market
        orders, fills = [], []
        for order in await self.fetch_open_orders(bar.symbol):
            order, fill = self._execute(order, market)
            if fill is not None:
                orders.append(order)
                fills.append(fill)
        self._commit(orders=orders, fills=fills, market=bar.symbol)

    async def close(self) -> None:
        if self._database is not None:
            self._database.close()
            self._database = None

    # -- fills ---------------------------------------------------------------------

    def _rejection(self, request: OrderRequest, market: _Market | None) -> str | None:
        try:
            _assets(request.symbol)
        except PaperOrderRejected as error:
            return str(error)
        if request.side not in _SIDES:
            return f"side must be 'buy' or 'sell'; got {request.side!r}"
        if not (math.isfinite(request.amount) and request.amount > 0):
            return f"amount must be finite and > 0; got {request.amount!r}"
        if market is None:
            return f"no price seen yet for {request.symbol} (no bar given to on_bar)"
        return None

    def _execute(self, order: Order, market: _Market) -> tuple[Order, Fill | None]:
        """Fills what the bar's liquidity allows of ``order``; updates balances."""
        sign = _SIDES[order.side]
        units = order.remaining
        if self.participation is not None:
            units = min(units, self.participation * market.volume - market.traded)
        taken = market.ask_taken if sign > 0 else market.bid_taken
        if self.book is not None:
            units = min(units, self.book.size - taken)
        if units <= 0:
            return order, None
        price = market.price * (1 + self.slippage * sign)
        if self.book is not None:
            price = self.book.average_price(price, sign, taken, units)
        fee = units * price * self.fees
        base, quote = _assets(order.symbol)
        signed = sign * units
        self._balances[quote] = self._balances.get(quote, 0.0) - signed * price - fee
        self._balances[base] = self._balances.get(base, 0.0) + signed
        market.traded += units
        if sign > 0:
            market.ask_taken += units
        else:
            market.bid_taken += units
        self._fill_count += 1
        fill = Fill(
            client_order_id=order.client_order_id,
            trade_id=f"paper-t{self._fill_count}",
            symbol=order.symbol,
            side=order.side,
            amount=units,
            price=price,
            fee=fee,
            fee_currency=quote,
            time=market.time,
        )
        complete = units == order.remaining
        filled = order.amount if complete else order.filled + units
        average = (
            price
            if order.filled == 0
            else (order.average * order.filled + price * units) / filled
        )
        order = dataclasses.replace(
            order,
            status="closed" if complete else "open",
            filled=filled,
            average=average,
            fee=order.fee + fee,
            fills=(*order.fills, fill),
        )
        return order, fill

    # -- persistence ---------------------------------------------------------------

    def _settings(self) -> dict[str, object]:
        book = None if self.book is None else dataclasses.asdict(self.book)
        return {
            "fees": self.fees,
            "slippage": self.slippage,
            "participation": self.participation,
            "book": book,
            "balances": self._balances,
        }

    def _open(self, path: Path) -> None:
        database = sqlite3.connect(path, isolation_level=None)
        database.execute("PRAGMA journal_mode=WAL")
        database.execute("PRAGMA synchronous=FULL")
        database.executescript(_SCHEMA)
        self._database = database
        stored = dict(database.execute("SELECT key, value FROM settings"))
        settings = self._settings()
        if not stored:
            with self._transaction() as cursor:
                cursor.executemany(
                    "INSERT INTO settings VALUES (?, ?)",
                    [(key, json.dumps(value)) for key, value in settings.items()],
                )
                cursor.executemany(
                    "INSERT INTO balances VALUES (?, ?)", self._balances.items()
                )
            return
        for key, value in settings.items():
            if json.loads(stored[key]) != json.loads(json.dumps(value)):
                raise ValueError(
                    f"{path} holds a paper account with {key}={stored[key]}; "
                    f"got {key}={json.dumps(value)}"
                )
        self._load(database)

    def _load(self, database: sqlite3.Connection) -> None:
        self._balances = dict(database.execute("SELECT asset, amount FROM balances"))
        for symbol, *values in database.execute("SELECT * FROM markets"):
            self._markets[symbol] = _Market(
                **dict(zip(_MARKET_FIELDS, values, strict=True))
            )
        fills: dict[str, list[Fill]] = {}
        for row in database.execute("SELECT * FROM fills ORDER BY sequence"):
            fill = Fill(**dict(zip(_FILL_FIELDS, row[1:], strict=True)))
            fills.setdefault(fill.client_order_id, []).append(fill)
            self._fill_count = row[0]
        for row in database.execute("SELECT * FROM orders ORDER BY sequence"):
            values = dict(zip(_ORDER_FIELDS, row[1:], strict=True))
            if values["average"] is None:  # SQLite stores NaN as NULL
                values["average"] = math.nan
            identifier = values["client_order_id"]
            self._sequence[identifier] = row[0]
            self._remember(Order(**values, fills=tuple(fills.get(identifier, ()))))

    def _remember(self, order: Order) -> None:
        """Keeps ``order`` (new or changed) and the index of open orders."""
        identifier = order.client_order_id
        self._orders[identifier] = order
        if order.status == "open":
            self._open_orders.setdefault(order.symbol, {})[identifier] = order
        elif identifier in self._open_orders.get(order.symbol, ()):
            del self._open_orders[order.symbol][identifier]

    def _transaction(self) -> _Transaction:
        assert self._database is not None
        return _Transaction(self._database)

    def _commit(
        self,
        *,
        orders: Sequence[Order] = (),
        fills: Sequence[Fill] = (),
        market: str | None = None,
    ) -> None:
        """Records orders, fills, balances and a market in one transaction."""
        for order in orders:
            self._remember(order)
            self._sequence.setdefault(order.client_order_id, len(self._sequence) + 1)
        if self._database is None:
            return
        sequence = self._sequence
        first_fill = self._fill_count - len(fills) + 1
        with self._transaction() as cursor:
            cursor.executemany(
                f"INSERT OR REPLACE INTO orders VALUES ({', '.join('?' * 11)})",
                [
                    (sequence[order.client_order_id], *_row(order, _ORDER_FIELDS))
                    for order in orders
                ],
            )
            cursor.executemany(
                f"INSERT INTO fills VALUES ({', '.join('?' * 10)})",
                [
                    (first_fill + n, *_row(fill, _FILL_FIELDS))
                    for n, fill in enumerate(fills)
                ],
            )
            if fills:
                cursor.executemany(
                    "INSERT OR REPLACE INTO balances VALUES (?, ?)",
                    self._balances.items(),
                )
            if market is not None:
                state = self._markets[market]
                cursor.execute(
                    "INSERT OR REPLACE INTO markets VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (market, *_row(state, _MARKET_FIELDS)),
                )


_ORDER_FIELDS = (
    "client_order_id",
    "symbol",
    "side",
    "amount",
    "status",
    "filled",
    "average",
    "fee",
    "time",
    "exchange_id",
)
_FILL_FIELDS = tuple(field.name for field in dataclasses.fields(Fill))
_MARKET_FIELDS = tuple(field.name for field in dataclasses.fields(_Market))


def _row(record: object, fields: tuple[str, ...]) -> tuple[object, ...]:
    return tuple(getattr(record, field) for field in fields)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises."""

    def __init__(self, database: sqlite3.Connection) -> None:
        self._database = database

    def __enter__(self) -> sqlite3.Cursor:
        self._database.execute("BEGIN IMMEDIATE")
        return self._database.cursor()

    def __exit__(self, kind: object, *rest: object) -> None:
        self._database.execute("ROLLBACK" if kind else "COMMIT")
