"""The journal's file format and the proof of its history.

:class:`neuroflux.live.journal.Journal` writes through this module and
:func:`verify_audit` reads the file without a ``Journal``, so what both must agree on
lives here:

* **The schema.** :data:`SCHEMA` is the only description of the tables; the ``meta``
  table records :data:`SCHEMA_VERSION`, and a file of another version is refused with
  :class:`JournalError`.
* **Canonical JSON.** Sorted keys, no spaces, no NaN: :func:`json_safe` stores NaN as
  ``null`` and infinities as the strings ``"inf"``/``"-inf"``, so a payload hashes the
  same on every machine.
* **The audit chain.** ``audit`` is append-only (triggers refuse UPDATE and DELETE)
  and hash-chained: ``hash = sha256(prev_hash + canonical_json({seq, time, kind,
  payload}))``, the first ``prev_hash`` being 64 zeros. Every row the journal writes
  to ``orders``, ``fills``, ``cycles``, ``events`` and ``commands`` is audited in its
  *payload* form (:func:`row_payload`: JSON columns such as a cycle's positions and
  the prices it marked equity at parsed, the strategy state blob by its sha256), in
  the same transaction.
* **Verification.** :func:`verify_audit` recomputes the chain and replays it into the
  rows the tables must hold, so a row edited behind the journal's back is found too,
  not only an edited audit record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "AuditReport",
    "JournalError",
    "append_audit",
    "audit_row",
    "canonical_json",
    "check_schema",
    "create_schema",
    "json_safe",
    "row_payload",
    "verify_audit",
]

SCHEMA_VERSION = 2  # 2: cycles record the prices they marked equity at
_GENESIS_HASH = "0" * 64


class JournalError(RuntimeError):
    """The file is not a journal this version of neuroflux can read."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditReport:
    """What :func:`verify_audit` found: ``ok`` when ``problems`` is empty."""

    ok: bool
    records: int
    problems: list[str]


# -- the schema: the only description of the tables -----------------------------------

SCHEMA = {
    "meta": "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "orders": (
        "CREATE TABLE orders (client_order_id TEXT PRIMARY KEY, symbol TEXT NOT NULL,"
        " side TEXT NOT NULL, amount REAL NOT NULL, status TEXT NOT NULL,"
        " filled REAL NOT NULL, average REAL, fee REAL, exchange_id TEXT NOT NULL,"
        " bar_time INTEGER, created REAL NOT NULL, updated REAL NOT NULL)"
    ),
    "fills": (
        "CREATE TABLE fills (client_order_id TEXT NOT NULL, trade_id TEXT NOT NULL,"
        " symbol TEXT NOT NULL, side TEXT NOT NULL, amount REAL NOT NULL,"
        " price REAL NOT NULL, fee REAL, fee_currency TEXT NOT NULL,"
        " time INTEGER NOT NULL, UNIQUE (client_order_id, trade_id))"
    ),
    "cycles": (
        "CREATE TABLE cycles (bar_time INTEGER PRIMARY KEY, equity REAL NOT NULL,"
        " cash REAL NOT NULL, positions TEXT NOT NULL, prices TEXT NOT NULL,"
        " state BLOB NOT NULL, created REAL NOT NULL)"
    ),
    "events": (
        "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " time REAL NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL)"
    ),
    "commands": (
        "CREATE TABLE commands (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " time REAL NOT NULL, command TEXT NOT NULL, data TEXT NOT NULL,"
        " done INTEGER NOT NULL DEFAULT 0)"
    ),
    "audit": (
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY, time REAL NOT NULL,"
        " kind TEXT NOT NULL, payload TEXT NOT NULL, prev_hash TEXT NOT NULL,"
        " hash TEXT NOT NULL)"
    ),
}
# The journal itself never updates or deletes audit records; the triggers make an
# accidental write fail loudly (a deliberate one must drop them, and verify finds it).
_TRIGGERS = [
    f"CREATE TRIGGER audit_append_only_{action.lower()} BEFORE {action} ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END"
    for action in ("UPDATE", "DELETE")
]


def create_schema(connection: sqlite3.Connection, path: Path) -> None:
    """Creates the tables in an empty file, or checks those of an existing journal.

    Raises:
        JournalError: The file has other tables, another version or lacks a table.
    """
    tables = _table_names(connection)
    if "meta" in tables:
        check_schema(connection, path)
        return
    if tables:
        raise JournalError(
            f"{path} is not a neuroflux journal: it has tables {sorted(tables)} "
            "but no meta table"
        )
    for statement in [*SCHEMA.values(), *_TRIGGERS]:
        connection.execute(statement)
    connection.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )


def check_schema(connection: sqlite3.Connection, path: Path) -> None:
    """Raises :class:`JournalError` unless ``path`` is a journal of this version."""
    tables = _table_names(connection)
    if "meta" not in tables:
        raise JournalError(f"{path} is not a neuroflux journal: no meta table")
    row = connection.execute(
        "SELECT value FROM meta WHERE key = 'schema_version'"
    ).fetchone()
    found = None if row is None else row[0]
    if found != str(SCHEMA_VERSION):
        raise JournalError(
            f"journal {path} has schema version {found!r}; this neuroflux reads "
            f"version {SCHEMA_VERSION} only"
        )
    missing = set(SCHEMA) - tables
    if missing:
        raise JournalError(f"journal {path} lacks the tables {sorted(missing)}")


def _table_names(connection: sqlite3.Connection) -> set[str]:
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in rows} - {"sqlite_sequence"}


# -- canonical JSON and payloads ------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces; NaN and infinities are errors (see :func:`json_safe`)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def json_safe(value: Any, where: str) -> Any:
    """``value`` with NaN as None, infinities as "inf"/"-inf", numpy scalars unboxed.

    Raises:
        TypeError: A key is not a string or a value is not JSON-able (``where`` and
            the path inside ``value`` name it).
    """
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, dict):
        safe = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not a string")
            safe[key] = json_safe(item, f"{where}.{key}")
        return safe
    if isinstance(value, (list, tuple)):
        return [json_safe(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-able")


def _cycle_payload(row: Any) -> dict[str, Any]:
    """The strategy state blob by its digest: the chain proves it, not repeats it."""
    return {
        "bar_time": row["bar_time"],
        "equity": row["equity"],
        "cash": row["cash"],
        "positions": json.loads(row["positions"]),
        "prices": json.loads(row["prices"]),
        "state_sha256": hashlib.sha256(row["state"]).hexdigest(),
        "created": row["created"],
    }


def _with_data(row: Any) -> dict[str, Any]:
    return {key: row[key] for key in row.keys()} | {"data": json.loads(row["data"])}


@dataclasses.dataclass(frozen=True)
class _Audited:
    kind: str
    key: Callable[[dict[str, Any]], Any]
    payload: Callable[[Any], dict[str, Any]]


# Per table: the audit kind of its rows, a row's key and its payload form.
_AUDITED = {
    "orders": _Audited("order", lambda p: p["client_order_id"], dict),
    "fills": _Audited("fill", lambda p: (p["client_order_id"], p["trade_id"]), dict),
    "cycles": _Audited("cycle", lambda p: p["bar_time"], _cycle_payload),
    "events": _Audited("event", lambda p: p["seq"], _with_data),
    "commands": _Audited("command", lambda p: p["seq"], _with_data),
}


def row_payload(table: str, row: Any) -> dict[str, Any]:
    """What the audit log records of a ``table`` row (a mapping or sqlite3.Row).

    Raises:
        ValueError: A JSON column does not hold JSON.
    """
    return _AUDITED[table].payload(row)


# -- the chain ------------------------------------------------------------------------


def _audit_hash(
    prev_hash: str, seq: int, created: float, kind: str, payload: Any
) -> str:
    record = {"seq": seq, "time": created, "kind": kind, "payload": payload}
    return hashlib.sha256((prev_hash + canonical_json(record)).encode()).hexdigest()


def append_audit(
    connection: sqlite3.Connection, kind: str, payload: dict[str, Any]
) -> None:
    """Appends one record to the chain (inside the caller's write transaction)."""
    head = connection.execute(
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    seq, prev_hash = (1, _GENESIS_HASH) if head is None else (head[0] + 1, head[1])
    created = time.time()
    connection.execute(
        "INSERT INTO audit (seq, time, kind, payload, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            seq,
            created,
            kind,
            canonical_json(payload),
            prev_hash,
            _audit_hash(prev_hash, seq, created, kind, payload),
        ),
    )


def audit_row(connection: sqlite3.Connection, table: str, row: Any) -> None:
    """Appends the record of a row just written to ``table``."""
    append_audit(connection, _AUDITED[table].kind, row_payload(table, row))


# -- verification ---------------------------------------------------------------------


def verify_audit(path: str | Path) -> AuditReport:
    """Recomputes the audit chain of the journal ``path`` and checks the tables by it.

    Opens the file read-only. Reports every record whose hash does not match its
    content, whose ``prev_hash`` does not match its predecessor's hash (reordered or
    replaced records) and every gap in ``seq`` (deleted records), then replays the
    chain and reports each row of orders, fills, cycles, events and commands that
    differs from, is missing from, or is absent in the state the chain implies.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        JournalError: The file is not a journal of :data:`SCHEMA_VERSION`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"journal {path} does not exist")
    connection = sqlite3.connect(
        path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None
    )
    connection.row_factory = sqlite3.Row
    try:
        # One read transaction: one snapshot of the chain and the tables, even while
        # the runner keeps writing.
        connection.execute("BEGIN")
        check_schema(connection, path)
        problems: list[str] = []
        records, expected = _replay_audit(connection, problems)
        for table, payloads in expected.items():
            _compare_table(connection, table, payloads, problems)
    finally:
        connection.close()
    return AuditReport(ok=not problems, records=records, problems=problems)


def _replay_audit(
    connection: sqlite3.Connection, problems: list[str]
) -> tuple[int, dict[str, dict[Any, tuple[int, dict[str, Any]]]]]:
    """Checks the chain; returns the record count and, per table, key -> (seq, row)."""
    expected: dict[str, dict[Any, tuple[int, dict[str, Any]]]] = {
        table: {} for table in _AUDITED
    }
    table_of_kind = {audited.kind: table for table, audited in _AUDITED.items()}
    previous_seq, previous_hash, records = 0, _GENESIS_HASH, 0
    rows = connection.execute(
        "SELECT seq, time, kind, payload, prev_hash, hash FROM audit ORDER BY seq"
    )
    for seq, created, kind, payload_text, prev_hash, stored_hash in rows:
        records += 1
        if seq != previous_seq + 1:
            first, last = previous_seq + 1, seq - 1
            missing = str(first) if first == last else f"{first}..{last}"
            problems.append(f"audit seq {missing}: missing (records deleted)")
        elif prev_hash != previous_hash:
            problems.append(
                f"audit seq {seq}: prev_hash does not match the hash of seq "
                f"{previous_seq} (records reordered or replaced, or a hash edited)"
            )
        previous_seq, previous_hash = seq, stored_hash
        try:
            payload = json.loads(payload_text)
        except ValueError:
            problems.append(f"audit seq {seq}: payload is not JSON")
            continue
        if _audit_hash(prev_hash, seq, created, kind, payload) != stored_hash:
            problems.append(
                f"audit seq {seq} ({kind}): hash does not match the record "
                "(payload, time, kind or hash edited)"
            )
        if kind == "command_done":
            entry = expected["commands"].get(payload.get("seq"))
            if entry is None:
                problems.append(
                    f"audit seq {seq}: command_done for unknown command "
                    f"seq={payload.get('seq')}"
                )
            else:
                entry[1]["done"] = 1
        elif kind in table_of_kind:
            table = table_of_kind[kind]
            expected[table][_AUDITED[table].key(payload)] = (seq, payload)
        else:
            problems.append(f"audit seq {seq}: unknown kind {kind!r}")
    return records, expected


def _compare_table(
    connection: sqlite3.Connection,
    table: str,
    expected: dict[Any, tuple[int, dict[str, Any]]],
    problems: list[str],
) -> None:
    actual: dict[Any, dict[str, Any]] = {}
    for row in connection.execute(f"SELECT * FROM {table}"):
        try:
            values = row_payload(table, row)
        except ValueError:
            problems.append(f"{table}: a row holds invalid JSON: {tuple(row)!r}")
            continue
        actual[_AUDITED[table].key(values)] = values
    for key, (seq, payload) in expected.items():
        values = actual.pop(key, None)
        if values is None:
            problems.append(f"{table}[{key!r}]: missing, recorded by audit seq {seq}")
            continue
        for column, value in payload.items():
            if values.get(column) != value:
                problems.append(
                    f"{table}[{key!r}]: {column}={values.get(column)!r} in the table "
                    f"but {value!r} in audit seq {seq}"
                )
    for key in actual:
        problems.append(f"{table}[{key!r}]: row not recorded in the audit log")
