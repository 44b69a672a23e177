"""The rules every OHLCV bar must satisfy, and the error that names the broken one.

Rules, checked on every row: values present and finite; timestamps unique and
increasing; open, high, low and close above zero; high at least max(open, close); low at
most min(open, close); volume not negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
SHOWN = 5  # violations kept per rule and shown in a message


@dataclass(frozen=True)
class Violation:
    """One broken rule: row (0-based position), column, what was expected and found."""

    row: int
    column: str
    expected: str
    found: str


class DataValidationError(ValueError):
    """Bad market data, with the file, row, line, timestamp and column of each problem.

    Attributes:
        source: the file or frame the data came from.
        violations: dicts with keys ``row line timestamp column expected found``,
            sorted by row, at most `SHOWN` per rule; ``row`` counts the file's data rows
            from 1, ``line`` is the CSV file line (None for Parquet and frames).
    """

    def __init__(self, message: str, *, source: str = "", violations=()):
        super().__init__(message)
        self.source = source
        self.violations = list(violations)

    @classmethod
    def from_violations(
        cls,
        violations: list[Violation],
        *,
        source: str,
        lines: np.ndarray | None = None,
        rows: np.ndarray | None = None,
        timestamps: pd.DatetimeIndex | np.ndarray | None = None,
        total: int | None = None,
    ) -> DataValidationError:
        """Builds the error; ``lines``/``rows`` map positions to file lines and to
        1-based data rows of the file (they differ from positions after a repair)."""
        ordered = sorted(violations, key=lambda v: v.row)
        described = [
            {
                "row": int(rows[v.row]) if rows is not None else v.row + 1,
                "line": int(lines[v.row]) if lines is not None else None,
                "timestamp": _format_time(timestamps, v.row),
                "column": v.column,
                "expected": v.expected,
                "found": v.found,
            }
            for v in ordered
        ]
        total = len(described) if total is None else total
        shown = "; ".join(_describe(item) for item in described[:SHOWN])
        more = f" (and {total - SHOWN} more)" if total > SHOWN else ""
        noun = "problem" if total == 1 else "problems"
        message = f"{source}: {total} {noun}: {shown}{more}"
        return cls(message, source=source, violations=described)


def check_bars(
    timestamps: np.ndarray,
    values: np.ndarray,
    *,
    source: str,
    lines: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> None:
    """Raises `DataValidationError` unless every bar follows the rules.

    Args:
        timestamps: ``[T]`` datetime64 in UTC, or a tz-aware DatetimeIndex.
        values: ``[T, 5]`` open, high, low, close, volume.
        source: file or frame name used in the message.
        lines: ``[T]`` CSV file line of each row, if any.
        rows: ``[T]`` 1-based row of each bar in its file (default: position + 1).
    """
    open_, high, low, close, volume = values.T
    rules = [
        *(
            (~np.isfinite(values[:, j]), column, "a finite number")
            for j, column in enumerate(OHLCV_COLUMNS)
        ),
        *(
            (values[:, j] <= 0, column, "a price above 0")
            for j, column in enumerate(OHLCV_COLUMNS[:4])
        ),
        (high < np.fmax(open_, close), "high", "high >= max(open, close)"),
        (low > np.fmin(open_, close), "low", "low <= min(open, close)"),
        (volume < 0, "volume", "volume >= 0"),
    ]
    stamps = pd.DatetimeIndex(timestamps)
    stamps = (stamps.tz_convert(None) if stamps.tz else stamps).to_numpy(
        "datetime64[ns]"
    )
    order = np.diff(stamps.astype("int64"))
    rules += [
        (np.r_[False, order == 0], "timestamp", "a timestamp after the previous row's"),
        (np.r_[False, order < 0], "timestamp", "timestamps in increasing order"),
    ]
    violations = []
    total = 0
    for broken, column, expected in rules:
        broken_rows = np.flatnonzero(broken)
        total += len(broken_rows)
        violations += [
            Violation(int(i), column, expected, _found(values, stamps, int(i), column))
            for i in broken_rows[:SHOWN]
        ]
    if violations:
        raise DataValidationError.from_violations(
            violations,
            source=source,
            lines=lines,
            rows=rows,
            timestamps=stamps,
            total=total,
        )


def validate_ohlcv(frame: pd.DataFrame, *, source: str | None = None) -> pd.DataFrame:
    """Checks an in-memory OHLCV frame (UTC DatetimeIndex) and returns it unchanged."""
    source = source or str(frame.attrs.get("name", "<frame>"))
    if not isinstance(frame.index, pd.DatetimeIndex) or str(frame.index.tz) != "UTC":
        raise DataValidationError(
            f"{source}: index: expected a UTC DatetimeIndex, found "
            f"{type(frame.index).__name__} (tz={getattr(frame.index, 'tz', None)})",
            source=source,
        )
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{source}: missing columns {missing}; expected {list(OHLCV_COLUMNS)}",
            source=source,
        )
    values = frame[list(OHLCV_COLUMNS)].to_numpy(dtype="float64", na_value=np.nan)
    check_bars(frame.index, values, source=source)
    return frame


def _found(values: np.ndarray, stamps: np.ndarray, row: int, column: str) -> str:
    if column == "timestamp":
        previous = _format_time(stamps, row - 1)
        return f"{_format_time(stamps, row)} after {previous}"
    value = values[row, OHLCV_COLUMNS.index(column)]
    if column == "high" or column == "low":
        open_, close = values[row, 0], values[row, 3]
        return f"{float(value)!r} (open {float(open_)!r}, close {float(close)!r})"
    return repr(float(value))


def _format_time(timestamps, row: int) -> str:
    if timestamps is None:
        return ""
    stamp = pd.Timestamp(timestamps[row])
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.isoformat()


def _describe(item: dict) -> str:
    where = f"row {item['row']}"
    if item["line"] is not None:
        where = f"line {item['line']} (row {item['row']})"
    if item["timestamp"]:
        where += f", {item['timestamp']}"
    return (
        f"{where}, column {item['column']!r}: expected {item['expected']}, "
        f"found {item['found']}"
    )
