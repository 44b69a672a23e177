"""Reading OHLCV bars from CSV and Parquet files, with validation and named repairs.

A file holds one timestamp column (``timestamp``, ``date``, ``time`` or ``datetime``, or
the index of a Parquet file written by pandas) and the columns ``open high low close
volume`` (any letter case). `read_ohlcv` checks every row and raises
`DataValidationError` naming the file, the row (line and timestamp), the column and what
was expected. Nothing is dropped, clipped or filled: `repair_ohlcv` applies only the
repairs it is asked for and returns a table of every change it made.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroflux.data.validation import (
    OHLCV_COLUMNS,
    DataValidationError,
    Violation,
    check_bars,
)

TIMESTAMP_NAMES = ("timestamp", "date", "time", "datetime")
REPAIRS = (
    "drop_missing",
    "drop_duplicate_timestamps",
    "sort_timestamps",
    "widen_high_low",
)
_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
_MISSING = {"", "nan", "NaN", "NA", "N/A", "null", "None"}


@dataclass(frozen=True)
class RepairedBars:
    """Bars after the requested repairs, and one row per change made.

    Attributes:
        bars: the validated OHLCV frame.
        changes: columns ``repair line timestamp column before after``.
    """

    bars: pd.DataFrame
    changes: pd.DataFrame


def read_ohlcv(path: str | Path, *, assume_timezone: str | None = None) -> pd.DataFrame:
    """Reads and validates an OHLCV file (``.csv`` or ``.parquet``).

    Args:
        path: the file.
        assume_timezone: zone for timestamps written without a UTC offset (e.g.
            ``"UTC"``). Without it such timestamps are an error, never a guess.

    Returns:
        ``[T, 5]`` float64 frame, UTC DatetimeIndex ``timestamp``, sorted and unique.

    Raises:
        DataValidationError: for the first violations, naming row, column and rule.
    """
    return repair_ohlcv(path, (), assume_timezone=assume_timezone).bars


def repair_ohlcv(
    path: str | Path,
    repairs: Sequence[str],
    *,
    assume_timezone: str | None = None,
) -> RepairedBars:
    """Reads an OHLCV file, applies the named repairs, then validates what is left.

    Repairs, applied in this order whatever the order asked:
        ``drop_missing``: drops rows with a missing price or volume.
        ``drop_duplicate_timestamps``: keeps the first of rows sharing a timestamp.
        ``sort_timestamps``: sorts rows by timestamp.
        ``widen_high_low``: raises high to max(open, close), lowers low to
            min(open, close).

    Returns:
        The bars and a table with one row for every row dropped or value changed.
    """
    unknown = sorted(set(repairs) - set(REPAIRS))
    if unknown:
        raise ValueError(f"unknown repair {unknown}; expected some of {list(REPAIRS)}")
    path = Path(path)
    table = _read_table(path)
    lines = _line_numbers(path, len(table))
    timestamps, values = _parse(table, path, lines, assume_timezone)
    frame = pd.DataFrame(values, columns=list(OHLCV_COLUMNS))
    frame.insert(0, "timestamp", timestamps)
    frame["_line"] = lines if lines is not None else np.arange(1, len(frame) + 1)
    changes: list[dict] = []
    for repair in REPAIRS:
        if repair in repairs:
            frame = _REPAIR_FUNCTIONS[repair](frame, changes)
    check_bars(
        frame["timestamp"],
        frame[list(OHLCV_COLUMNS)].to_numpy(),
        source=str(path),
        lines=frame["_line"].to_numpy() if lines is not None else None,
    )
    bars = frame.set_index(pd.DatetimeIndex(frame["timestamp"], name="timestamp"))
    bars = bars[list(OHLCV_COLUMNS)]
    bars.attrs = {"name": path.stem, "source": str(path), "synthetic": False}
    columns = ["repair", "line", "timestamp", "column", "before", "after"]
    return RepairedBars(bars=bars, changes=pd.DataFrame(changes, columns=columns))


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    elif suffix in (".parquet", ".pq"):
        table = pd.read_parquet(path)
        if isinstance(table.index, pd.DatetimeIndex):
            table = table.reset_index()
    else:
        raise DataValidationError(
            f"{path}: unsupported file type {suffix!r}; expected .csv or .parquet"
        )
    return _select_columns(table, path)


def _select_columns(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    names = {str(name).strip().lower(): name for name in table.columns}
    stamp = [name for name in TIMESTAMP_NAMES if name in names]
    missing = [name for name in OHLCV_COLUMNS if name not in names]
    extra = sorted(set(names) - set(OHLCV_COLUMNS) - set(stamp[:1]))
    if not stamp or missing or extra:
        expected = f"one of {list(TIMESTAMP_NAMES)} and {list(OHLCV_COLUMNS)}"
        found = list(map(str, table.columns))
        detail = [
            *(["no timestamp column"] if not stamp else []),
            *([f"missing columns {missing}"] if missing else []),
            *([f"extra columns {extra}"] if extra else []),
        ]
        raise DataValidationError(
            f"{path}: {'; '.join(detail)}; expected columns {expected}, found {found}"
        )
    selected = table[[names[stamp[0]], *(names[c] for c in OHLCV_COLUMNS)]]
    selected.columns = ["timestamp", *OHLCV_COLUMNS]
    return selected.reset_index(drop=True)


def _line_numbers(path: Path, rows: int) -> np.ndarray | None:
    """The file line of each CSV data row (after the header); Parquet has no lines."""
    return np.arange(2, 2 + rows) if path.suffix.lower() == ".csv" else None


def _parse(
    table: pd.DataFrame,
    path: Path,
    lines: np.ndarray,
    assume_timezone: str | None,
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    timestamps = _parse_timestamps(table["timestamp"], path, lines, assume_timezone)
    violations = []
    values = np.empty((len(table), len(OHLCV_COLUMNS)))
    for j, column in enumerate(OHLCV_COLUMNS):
        raw = table[column]
        if pd.api.types.is_numeric_dtype(raw.dtype):
            values[:, j] = raw.to_numpy(dtype="float64", na_value=np.nan)
            continue
        text = raw.astype(str).str.strip()
        parsed = pd.to_numeric(text.where(~text.isin(_MISSING)), errors="coerce")
        bad = np.flatnonzero(parsed.isna() & ~text.isin(_MISSING))
        violations += [
            Violation(i, column, "a number", repr(raw.iloc[i])) for i in bad[:5]
        ]
        values[:, j] = parsed.to_numpy(dtype="float64", na_value=np.nan)
    if violations:
        raise DataValidationError.from_violations(
            violations, source=str(path), lines=lines, timestamps=timestamps
        )
    return timestamps, values


def _parse_timestamps(
    raw: pd.Series, path: Path, lines: np.ndarray, assume_timezone: str | None
) -> pd.DatetimeIndex:
    def fail(rows: np.ndarray, expected: str, found: list[str]) -> None:
        violations = [
            Violation(i, "timestamp", expected, text)
            for i, text in zip(rows[:5], found, strict=False)
        ]
        raise DataValidationError.from_violations(
            violations, source=str(path), lines=lines
        )

    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(raw).tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        if assume_timezone is None:
            fail(
                np.array([0]),
                "timezone-aware timestamps (or pass assume_timezone)",
                [f"naive {raw.dtype} column"],
            )
        return pd.DatetimeIndex(raw).tz_localize(assume_timezone).tz_convert("UTC")
    text = raw.astype(str).str.strip()
    offsets = text.str.extract(_OFFSET, expand=False)
    aware = offsets.notna().to_numpy()
    if aware.any() and not aware.all():
        rows = np.flatnonzero(aware != aware[0])
        kind = "with a UTC offset" if aware[0] else "without a UTC offset"
        fail(rows, f"timestamps {kind}, like the first row", list(text.iloc[rows]))
    if aware.all():
        normalized = offsets.str.replace(":", "").replace("Z", "+0000")
        rows = np.flatnonzero(normalized.to_numpy() != normalized.iloc[0])
        if len(rows):
            fail(rows, f"one UTC offset ({offsets.iloc[0]})", list(text.iloc[rows]))
    elif assume_timezone is None:
        fail(
            np.array([0]),
            "a UTC offset such as 'Z' or '+00:00' (or pass assume_timezone)",
            [text.iloc[0]],
        )
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=aware.all())
    rows = np.flatnonzero(parsed.isna().to_numpy())
    if len(rows):
        fail(rows, "an ISO 8601 timestamp", list(text.iloc[rows]))
    stamps = pd.DatetimeIndex(parsed)
    if not aware.all():
        stamps = stamps.tz_localize(assume_timezone)
    return stamps.tz_convert("UTC")


def _record(
    changes: list[dict], repair: str, row: pd.Series, column: str, before, after
):
    changes.append(
        {
            "repair": repair,
            "line": int(row["_line"]),
            "timestamp": row["timestamp"],
            "column": column,
            "before": before,
            "after": after,
        }
    )


def _drop_missing(frame: pd.DataFrame, changes: list[dict]) -> pd.DataFrame:
    missing = frame[list(OHLCV_COLUMNS)].isna()
    for _, row in frame[missing.any(axis=1)].iterrows():
        columns = [c for c in OHLCV_COLUMNS if pd.isna(row[c])]
        _record(changes, "drop_missing", row, ",".join(columns), "row", None)
    return frame[~missing.any(axis=1)]


def _drop_duplicate_timestamps(frame: pd.DataFrame, changes: list[dict]):
    duplicated = frame["timestamp"].duplicated(keep="first")
    for _, row in frame[duplicated].iterrows():
        _record(changes, "drop_duplicate_timestamps", row, "timestamp", "row", None)
    return frame[~duplicated]


def _sort_timestamps(frame: pd.DataFrame, changes: list[dict]) -> pd.DataFrame:
    ordered = frame.sort_values("timestamp", kind="stable")
    moved = np.flatnonzero(ordered["_line"].to_numpy() != frame["_line"].to_numpy())
    for position in moved:
        row = ordered.iloc[position]
        before = int(np.flatnonzero(frame["_line"].to_numpy() == row["_line"])[0])
        _record(changes, "sort_timestamps", row, "timestamp", before, int(position))
    return ordered


def _widen_high_low(frame: pd.DataFrame, changes: list[dict]) -> pd.DataFrame:
    frame = frame.copy()
    body_high = frame[["open", "close"]].max(axis=1)
    body_low = frame[["open", "close"]].min(axis=1)
    for column, target, wrong in (
        ("high", body_high, frame["high"] < body_high),
        ("low", body_low, frame["low"] > body_low),
    ):
        for index in frame.index[wrong]:
            row = frame.loc[index]
            _record(changes, "widen_high_low", row, column, row[column], target[index])
        frame.loc[wrong, column] = target[wrong]
    return frame


_REPAIR_FUNCTIONS = {
    "drop_missing": _drop_missing,
    "drop_duplicate_timestamps": _drop_duplicate_timestamps,
    "sort_timestamps": _sort_timestamps,
    "widen_high_low": _widen_high_low,
}
