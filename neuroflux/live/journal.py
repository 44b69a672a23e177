"""The session journal: a SQLite file that survives ``kill -9`` and proves its history.

Design:

* **One transaction per public write.** Every write method opens ``BEGIN IMMEDIATE``,
  writes its rows *and* the matching audit records, and commits before returning. With
  ``journal_mode=WAL`` and ``synchronous=FULL`` a committed write is on disk, and a
  process killed at any instant leaves either the whole write or none of it.
* **Several processes.** The runner holds the journal open while the CLI (``neuroflux
  live stop --flatten``) writes a command into ``commands``; WAL lets readers run beside
  the writer and the busy timeout (:data:`BUSY_TIMEOUT_S`) makes a second writer wait
  for the lock instead of failing.
* **An audit chain.** The schema, the append-only hash-chained ``audit`` table and
  :func:`~neuroflux.live.audit.verify_audit`, which replays the chain against the
  tables, live in :mod:`neuroflux.live.audit`; this module validates rows, writes them
  with their audit records and reads them back as records. ``verify_audit``,
  ``AuditReport``, ``JournalError`` and ``SCHEMA_VERSION`` are re-exported here for
  the callers that import them from the journal.

Times: ``bar_time`` and fill ``time`` are exchange UTC milliseconds; ``created``,
``updated`` and every other ``time`` are wall-clock UTC seconds (like
:class:`neuroflux.live.events.Event`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import operator
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from neuroflux.live import audit
from neuroflux.live.audit import SCHEMA_VERSION, AuditReport, JournalError, verify_audit
from neuroflux.live.orders import Fill, Order, OrderRequest

__all__ = [
    "BUSY_TIMEOUT_S",
    "ORDER_STATUSES",
    "SCHEMA_VERSION",
    "AuditReport",
    "Command",
    "CycleRecord",
    "EventRecord",
    "Journal",
    "JournalError",
    "OrderRecord",
    "verify_audit",
]

ORDER_STATUSES = frozenset({"new", "open", "closed", "canceled", "rejected"})
BUSY_TIMEOUT_S = 5.0


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

    def to_request(self) -> OrderRequest:
        """The request that placed (or will place) this order, for a resend."""
        return OrderRequest(
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,  # type: ignore[arg-type]
            amount=self.amount,
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


class Journal:
    """The session journal over the SQLite file ``path`` (see the module docstring).

    Args:
        path: The journal file; created with its tables when missing.
        create: False to refuse a missing file (the CLI talking to a session).

    Raises:
        FileNotFoundError: ``create`` is False and ``path`` does not exist.
        JournalError: The file is not a journal or has another schema version.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise FileNotFoundError(f"journal {self.path} does not exist")
        self._connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None
        )
        self._connection.row_factory = sqlite3.Row
        try:
            connection = self._connection
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise JournalError(f"journal {self.path}: cannot use WAL (got {mode})")
            connection.execute("PRAGMA synchronous = FULL")
            with self._transaction():
                audit.create_schema(connection, self.path)
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise JournalError(f"journal {self.path}: {error}") from error
        except BaseException:
            self._connection.close()
            raise

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection (a second call does nothing)."""
        self._connection.close()

    # -- writes: each one transaction with its audit records -------------------------

    def record_intent(self, request: OrderRequest, *, bar_time: int) -> bool:
        """Records an order about to be sent (status 'new'), before sending it.

        Returns:
            True when a row was written; False when the order is already journaled.
        """
        order = Order(
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            amount=request.amount,
            status="new",  # type: ignore[arg-type]
        )
        with self._transaction() as connection:
            if _fetch_order_row(connection, request.client_order_id) is not None:
                return False
            return self._upsert_order(connection, order, bar_time)

    def record_order(self, order: Order, *, bar_time: int | None = None) -> bool:
        """Upserts ``order`` and inserts its fills not yet journaled.

        ``bar_time`` None keeps the bar recorded with the intent. A fill already
        journaled is not stored again; one that comes back with other numbers is kept
        as first recorded and a ``fill_conflict`` event says so.

        Returns:
            True when anything was written (an unchanged order writes nothing).

        Raises:
            ValueError: A field is invalid, a fill belongs to another order, or the
                order's symbol or side differ from the journaled ones.
        """
        with self._transaction() as connection:
            changed = self._upsert_order(connection, order, bar_time)
            for fill in order.fills:
                changed |= self._insert_fill(connection, order, fill)
            return changed

    def commit_cycle(
        self,
        *,
        bar_time: int,
        equity: float,
        cash: float,
        positions: dict[str, float],
        prices: dict[str, float],
        state: bytes,
    ) -> None:
        """Records the session after the bar ``bar_time`` (strategy state as bytes).

        Args:
            bar_time: The bar's open time (UTC ms).
            equity, cash: The account after the bar, in the quote currency.
            positions: Units held per symbol.
            prices: Price per symbol that ``equity`` was marked at.
            state: The runner's state (flax msgpack bytes).

        Raises:
            TypeError: ``positions`` or ``prices`` is not a dict, ``state`` not bytes.
            ValueError: ``bar_time`` was already committed or a number is not finite.
        """
        row = _cycle_row(
            bar_time=bar_time,
            equity=equity,
            cash=cash,
            positions=positions,
            prices=prices,
            state=state,
            created=time.time(),
        )
        with self._transaction() as connection:
            exists = connection.execute(
                "SELECT 1 FROM cycles WHERE bar_time = ?", (bar_time,)
            ).fetchone()
            if exists:
                raise ValueError(
                    f"journal {self.path}: cycle bar_time={bar_time} already committed"
                )
            _insert_row(connection, "cycles", row)
            audit.audit_row(connection, "cycles", row)

    def record_event(self, kind: str, data: dict[str, Any]) -> int:
        """Appends an event (alert, breaker transition, incident, ...); returns seq."""
        with self._transaction() as connection:
            return _insert_event(connection, kind, data)

    def request_command(self, command: str, data: dict[str, Any]) -> int:
        """Queues ``command`` (e.g. 'stop' with {'flatten': True}); returns its seq."""
        if not isinstance(command, str) or not command:
            raise ValueError(f"command must be a non-empty string, got {command!r}")
        row = {
            "time": time.time(),
            "command": command,
            "data": audit.canonical_json(audit.json_safe(data, "data")),
            "done": 0,
        }
        with self._transaction() as connection:
            return _insert_sequenced(connection, "commands", row)

    def complete_command(self, seq: int) -> None:
        """Marks command ``seq`` done (a second call does nothing).

        Raises:
            KeyError: No command has that seq.
        """
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT done FROM commands WHERE seq = ?", (seq,)
            ).fetchone()
            if row is None:
                raise KeyError(f"journal {self.path}: no command with seq={seq}")
            if row[0]:
                return
            connection.execute("UPDATE commands SET done = 1 WHERE seq = ?", (seq,))
            audit.append_audit(connection, "command_done", {"seq": seq})

    # -- reads ------------------------------------------------------------------------

    def orders(self, status: str | None = None) -> list[OrderRecord]:
        """Journaled orders in the order they were first recorded."""
        if status is None:
            return self._orders("")
        if status not in ORDER_STATUSES:
            raise ValueError(
                f"status must be one of {sorted(ORDER_STATUSES)}, got {status!r}"
            )
        return self._orders("WHERE status = ?", (status,))

    def unfinished_orders(self) -> list[OrderRecord]:
        """Orders with status 'new' (maybe never sent) or 'open': to reconcile."""
        return self._orders("WHERE status IN ('new', 'open')")

    def fills(self, client_order_id: str | None = None) -> list[Fill]:
        """Journaled fills (of one order when ``client_order_id`` is given)."""
        query = "SELECT * FROM fills"
        parameters: tuple[Any, ...] = ()
        if client_order_id is not None:
            query += " WHERE client_order_id = ?"
            parameters = (client_order_id,)
        rows = self._select(query + " ORDER BY time, rowid", parameters)
        return [Fill(**dict(row)) for row in rows]

    def cycles(self) -> list[CycleRecord]:
        """Committed cycles by bar time."""
        rows = self._select("SELECT * FROM cycles ORDER BY bar_time")
        return [_cycle_record(row) for row in rows]

    def last_cycle(self) -> CycleRecord | None:
        """The latest committed cycle: where a restarted runner resumes."""
        rows = self._select("SELECT * FROM cycles ORDER BY bar_time DESC LIMIT 1")
        return _cycle_record(rows[0]) if rows else None

    def events(self, kind: str | None = None) -> list[EventRecord]:
        """Journaled events in order (of one kind when ``kind`` is given)."""
        if kind is None:
            rows = self._select("SELECT * FROM events ORDER BY seq")
        else:
            rows = self._select(
                "SELECT * FROM events WHERE kind = ? ORDER BY seq", (kind,)
            )
        return [EventRecord(**audit.row_payload("events", row)) for row in rows]

    def pending_commands(self) -> list[Command]:
        """Commands not yet completed, oldest first."""
        rows = self._select("SELECT * FROM commands WHERE done = 0 ORDER BY seq")
        return [
            Command(**audit.row_payload("commands", row) | {"done": bool(row["done"])})
            for row in rows
        ]

    def frames(self) -> dict[str, Any]:
        """orders, fills, cycles and events as pandas DataFrames (UTC datetimes)."""
        import pandas as pd  # only the review notebook needs pandas: keep it lazy

        # name -> (records, their class, time columns and their units)
        tables = {
            "orders": (
                self.orders(),
                OrderRecord,
                {"bar_time": "ms", "created": "s", "updated": "s"},
            ),
            "fills": (self.fills(), Fill, {"time": "ms"}),
            "cycles": (self.cycles(), CycleRecord, {"bar_time": "ms", "created": "s"}),
            "events": (self.events(), EventRecord, {"time": "s"}),
        }
        frames = {}
        for name, (records, record_class, times) in tables.items():
            frame = pd.DataFrame(
                [dataclasses.asdict(record) for record in records],
                columns=[field.name for field in dataclasses.fields(record_class)],
            )
            for column, unit in times.items():
                frame[column] = pd.to_datetime(
                    frame[column].astype("float64"), unit=unit, utc=True
                )
            frames[name] = frame
        return frames

    # -- internals --------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so the audit head read inside the
        # transaction cannot be moved by another process before the commit.
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield self._connection
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def _select(self, query: str, parameters: tuple[Any, ...] = ()) -> list[Any]:
        return self._connection.execute(query, parameters).fetchall()

    def _orders(
        self, where: str, parameters: tuple[Any, ...] = ()
    ) -> list[OrderRecord]:
        rows = self._select(
            f"SELECT * FROM orders {where} ORDER BY created, rowid", parameters
        )
        return [_order_record(row) for row in rows]

    def _upsert_order(
        self, connection: sqlite3.Connection, order: Order, bar_time: int | None
    ) -> bool:
        existing = _fetch_order_row(connection, order.client_order_id)
        now = time.time()
        row = _order_row(order, bar_time=bar_time, now=now, existing=existing)
        if existing is not None:
            for field in ("symbol", "side"):
                if existing[field] != row[field]:
                    raise ValueError(
                        f"journal {self.path}: order {order.client_order_id} has "
                        f"{field}={row[field]!r} but was journaled with "
                        f"{existing[field]!r}"
                    )
            if all(existing[key] == row[key] for key in row if key != "updated"):
                return False
        _insert_row(connection, "orders", row, replace=True)
        audit.audit_row(connection, "orders", row)
        return True

    def _insert_fill(
        self, connection: sqlite3.Connection, order: Order, fill: Fill
    ) -> bool:
        if fill.client_order_id != order.client_order_id:
            raise ValueError(
                f"fill {fill.trade_id} has client_order_id={fill.client_order_id!r}, "
                f"expected the order's {order.client_order_id!r}"
            )
        row = _fill_row(fill)
        previous = connection.execute(
            "SELECT * FROM fills WHERE client_order_id = ? AND trade_id = ?",
            (fill.client_order_id, fill.trade_id),
        ).fetchone()
        if previous is None:
            _insert_row(connection, "fills", row)
            audit.audit_row(connection, "fills", row)
            return True
        if any(previous[key] != row[key] for key in row):
            _insert_event(
                connection,
                "fill_conflict",
                {"journaled": dict(previous), "reported": row},
            )
            return True
        return False


# -- rows: validated on the way in, records on the way out ----------------------------


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


def _fetch_order_row(
    connection: sqlite3.Connection, client_order_id: str
) -> sqlite3.Row | None:
    return connection.execute(
        "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
    ).fetchone()


def _order_row(
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


def _fill_row(fill: Fill) -> dict[str, Any]:
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


def _cycle_row(
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


def _insert_row(
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


def _insert_sequenced(
    connection: sqlite3.Connection, table: str, row: dict[str, Any]
) -> int:
    """Inserts into events or commands and audits the row as stored; returns seq."""
    seq = _insert_row(connection, table, row)
    stored = connection.execute(
        f"SELECT * FROM {table} WHERE seq = ?", (seq,)
    ).fetchone()
    audit.audit_row(connection, table, stored)
    return seq


def _insert_event(
    connection: sqlite3.Connection, kind: str, data: dict[str, Any]
) -> int:
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"event kind must be a non-empty string, got {kind!r}")
    data_text = audit.canonical_json(audit.json_safe(data, f"event {kind} data"))
    row = {"time": time.time(), "kind": kind, "data": data_text}
    return _insert_sequenced(connection, "events", row)


def _order_record(row: sqlite3.Row) -> OrderRecord:
    values = dict(row)
    values["average"] = _from_nullable(values["average"])
    values["fee"] = _from_nullable(values["fee"])
    return OrderRecord(**values)


def _cycle_record(row: sqlite3.Row) -> CycleRecord:
    values = dict(row)
    values["positions"] = json.loads(values["positions"])
    values["prices"] = json.loads(values["prices"])
    values["state"] = bytes(values["state"])
    return CycleRecord(**values)
