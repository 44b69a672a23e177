"""The journal's rows: records read back and checked rows written.

Records (:class:`OrderRecord`, :class:`CycleRecord`, :class:`EventRecord`,
:class:`Command`) are what :class:`~neuroflux.live.journal.Journal` returns. Rows are
what it writes: every number is checked finite (NaN only where a value may be
missing, stored as NULL), integers are integers, and dicts of numbers are stored as
canonical JSON, so that a row reads back to the same record and hashes the same in
the audit chain. The ``insert_*`` functions write inside the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import sqlite3
import time
from typing import Any

from neuroflux.live import audit
from neuroflux.live.orders import Fill, Order

__all__ = [
    "ORDER_STATUSES",
    "Command",
    "CycleRecord",
    "EventRecord",
    "OrderRecord",
    "cycle_record",
    "cycle_row",
    "fetch_order_row",
    "fill_row",
    "insert_event",
    "insert_row",
    "insert_sequenced",
    "order_record",
    "order_row",
]

ORDER_STATUSES = frozenset({"new", "open", "closed", "canceled", "rejected"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderRecord:
    """A row of ``orders``: the order as last recorded, with the bar it was for."""

    client_order_id: str
    symbol: str
    side: str
    amount: float
    status: str
    filled: float
    average: float
    fee: float
    exchange_id: str
    bar_time: int | None
    created: float
    updated: float

    def to_order(self) -> Order:
        """The order as journaled (its fills are in ``fills``)."""
        return Order(
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,  # type: ignore[arg-type]
            amount=self.amount,
            status=self.status,  # type: ignore[arg-type]
            filled=self.filled,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class CycleRecord:
    """A row of ``cycles``: the session after one bar; ``state`` is flax bytes.

    ``prices`` are the prices per symbol the cycle marked ``equity`` at (the bar's
    closes): with them a journal is reviewable without the market data.
    """

    bar_time: int
    equity: float
    cash: float
    positions: dict[str, float]
    prices: dict[str, float]
    state: bytes
    created: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class EventRecord:
    """A row of ``events`` (alerts, breaker transitions, incidents, reconciliations)."""

    seq: int
    time: float
    kind: str
    data: dict[str, Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Command:
    """A row of ``commands``: an operator's request to the running session."""

    seq: int
    time: float
    command: str
    data: dict[str, Any]
    done: bool


def _finite(value: Any, where: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{where} must be finite, got {value!r}")
    return number


def _nullable(value: Any, where: str) -> float | None:
    """None for NaN (SQLite would store NaN as NULL anyway); infinities are errors."""
    number = float(value)
    return None if math.isnan(number) else _finite(number, where)


def _from_nullable(value: float | None) -> float:
    return math.nan if value is None else value


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{where} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{where} must be an integer, got {value!r}") from None


def fetch_order_row(
    connection: sqlite3.Connection, client_order_id: str
) -> sqlite3.Row | None:
    return connection.execute(
        "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
    ).fetchone()


def order_row(
    order: Order, *, bar_time: int | None, now: float, existing: sqlite3.Row | None
) -> dict[str, Any]:
    where = f"order {order.client_order_id}"
    if order.status not in ORDER_STATUSES:
        raise ValueError(
            f"{where}: status must be one of {sorted(ORDER_STATUSES)}, "
            f"got {order.status!r}"
        )
    if order.side not in ("buy", "sell"):
        raise ValueError(f"{where}: side must be 'buy' or 'sell', got {order.side!r}")
    if bar_time is None and existing is not None:
        bar_time = existing["bar_time"]
    return {
        "client_order_id": str(order.client_order_id),
        "symbol": str(order.symbol),
        "side": order.side,
        "amount": _finite(order.amount, f"{where}: amount"),
        "status": order.status,
        "filled": _finite(order.filled, f"{where}: filled"),
        "average": _nullable(order.average, f"{where}: average"),
        "fee": _nullable(order.fee, f"{where}: fee"),
        "exchange_id": str(order.exchange_id),
        "bar_time": None if bar_time is None else _integer(bar_time, "bar_time"),
        "created": now if existing is None else existing["created"],
        "updated": now,
    }


def fill_row(fill: Fill) -> dict[str, Any]:
    where = f"fill {fill.client_order_id}/{fill.trade_id}"
    return {
        "client_order_id": str(fill.client_order_id),
        "trade_id": str(fill.trade_id),
        "symbol": str(fill.symbol),
        "side": fill.side,
        "amount": _finite(fill.amount, f"{where}: amount"),
        "price": _finite(fill.price, f"{where}: price"),
        "fee": _nullable(fill.fee, f"{where}: fee"),
        "fee_currency": str(fill.fee_currency),
        "time": _integer(fill.time, f"{where}: time"),
    }


def cycle_row(
    *,
    bar_time: int,
    equity: float,
    cash: float,
    positions: dict[str, float],
    prices: dict[str, float],
    state: bytes,
    created: float,
) -> dict[str, Any]:
    if not isinstance(state, (bytes, bytearray)):
        raise TypeError(f"state must be bytes, got {type(state).__name__}")
    return {
        "bar_time": _integer(bar_time, "bar_time"),
        "equity": _finite(equity, "equity"),
        "cash": _finite(cash, "cash"),
        "positions": _finite_json(positions, "positions"),
        "prices": _finite_json(prices, "prices"),
        "state": bytes(state),
        "created": created,
    }


def _finite_json(values: dict[str, float], name: str) -> str:
    """``values`` (symbol -> number) as canonical JSON; every number finite."""
    if not isinstance(values, dict):
        raise TypeError(f"{name} must be a dict, got {type(values).__name__}")
    numbers = {
        str(symbol): _finite(value, f"{name}[{symbol!r}]")
        for symbol, value in values.items()
    }
    return audit.canonical_json(numbers)


def insert_row(
    connection: sqlite3.Connection,
    table: str,
    row: dict[str, Any],
    *,
    replace: bool = False,
) -> int:
    """Inserts ``row`` (column -> value) into ``table``; returns the new rowid."""
    cursor = connection.execute(
        "INSERT {}INTO {} ({}) VALUES ({})".format(
            "OR REPLACE " if replace else "",
            table,
            ", ".join(row),
            ", ".join(f":{key}" for key in row),
        ),
        row,
    )
    return int(cursor.lastrowid or 0)


def insert_sequenced(
    connection: sqlite3.Connection, table: str, row: dict[str, Any]
) -> int:
    """Inserts into events or commands and audits the row as stored; returns seq."""
    seq = insert_row(connection, table, row)
    stored = connection.execute(
        f"SELECT * FROM {table} WHERE seq = ?", (seq,)
    ).fetchone()
    audit.audit_row(connection, table, stored)
    return seq


def insert_event(
    connection: sqlite3.Connection, kind: str, data: dict[str, Any]
) -> int:
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"event kind must be a non-empty string, got {kind!r}")
    data_text = audit.canonical_json(audit.json_safe(data, f"event {kind} data"))
    row = {"time": time.time(), "kind": kind, "data": data_text}
    return insert_sequenced(connection, "events", row)


def order_record(row: sqlite3.Row) -> OrderRecord:
    values = dict(row)
    values["average"] = _from_nullable(values["average"])
    values["fee"] = _from_nullable(values["fee"])
    return OrderRecord(**values)


def cycle_record(row: sqlite3.Row) -> CycleRecord:
    values = dict(row)
    values["positions"] = json.loads(values["positions"])
    values["prices"] = json.loads(values["prices"])
    values["state"] = bytes(values["state"])
    return CycleRecord(**values)
