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
  tables, live in :mod:`neuroflux.live.audit`; the rows and records in
  :mod:`neuroflux.live.journal_rows`; this module writes rows with their audit
  records and reads them back as records. ``verify_audit``, ``AuditReport``,
  ``JournalError``, ``SCHEMA_VERSION`` and the records are re-exported here for the
  callers that import them from the journal.

Times: ``bar_time`` and fill ``time`` are exchange UTC milliseconds; ``created``,
``updated`` and every other ``time`` are wall-clock UTC seconds (like
:class:`neuroflux.live.events.Event`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from neuroflux.live import audit, journal_rows
from neuroflux.live.audit import SCHEMA_VERSION, AuditReport, JournalError, verify_audit
from neuroflux.live.journal_rows import (
    ORDER_STATUSES,
    Command,
    CycleRecord,
    EventRecord,
    OrderRecord,
)
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

BUSY_TIMEOUT_S = 5.0


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
            if (
                journal_rows.fetch_order_row(connection, request.client_order_id)
                is not None
            ):
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
        row = journal_rows.cycle_row(
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
            journal_rows.insert_row(connection, "cycles", row)
            audit.audit_row(connection, "cycles", row)

    def record_event(self, kind: str, data: dict[str, Any]) -> int:
        """Appends an event (alert, breaker transition, incident, ...); returns seq."""
        with self._transaction() as connection:
            return journal_rows.insert_event(connection, kind, data)

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
            return journal_rows.insert_sequenced(connection, "commands", row)

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

    def orders(self) -> list[OrderRecord]:
        """Journaled orders in the order they were first recorded."""
        return self._orders("ORDER BY created, rowid")

    def latest_orders(self, limit: int) -> list[OrderRecord]:
        """The ``limit`` orders recorded last, newest first."""
        return self._orders("ORDER BY created DESC, rowid DESC LIMIT ?", (limit,))

    def order(self, client_order_id: str) -> OrderRecord | None:
        """The journaled order of ``client_order_id``, if any."""
        found = self._orders("WHERE client_order_id = ?", (client_order_id,))
        return found[0] if found else None

    def unfinished_orders(self) -> list[OrderRecord]:
        """Orders with status 'new' (maybe never sent) or 'open': to reconcile."""
        return self._orders("WHERE status IN ('new', 'open') ORDER BY created, rowid")

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
        return [journal_rows.cycle_record(row) for row in rows]

    def last_cycle(self) -> CycleRecord | None:
        """The latest committed cycle: where a restarted runner resumes."""
        rows = self._select("SELECT * FROM cycles ORDER BY bar_time DESC LIMIT 1")
        return journal_rows.cycle_record(rows[0]) if rows else None

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
        rows = self._select(f"SELECT * FROM orders {where}", parameters)
        return [journal_rows.order_record(row) for row in rows]

    def _upsert_order(
        self, connection: sqlite3.Connection, order: Order, bar_time: int | None
    ) -> bool:
        existing = journal_rows.fetch_order_row(connection, order.client_order_id)
        now = time.time()
        row = journal_rows.order_row(
            order, bar_time=bar_time, now=now, existing=existing
        )
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
        journal_rows.insert_row(connection, "orders", row, replace=True)
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
        row = journal_rows.fill_row(fill)
        previous = connection.execute(
            "SELECT * FROM fills WHERE client_order_id = ? AND trade_id = ?",
            (fill.client_order_id, fill.trade_id),
        ).fetchone()
        if previous is None:
            journal_rows.insert_row(connection, "fills", row)
            audit.audit_row(connection, "fills", row)
            return True
        if any(previous[key] != row[key] for key in row):
            journal_rows.insert_event(
                connection,
                "fill_conflict",
                {"journaled": dict(previous), "reported": row},
            )
            return True
        return False
