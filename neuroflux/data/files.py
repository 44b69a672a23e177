"""Reading OHLCV bars from CSV and Parquet files, with validation and named repairs.

A file holds one timestamp column (``timestamp``, ``date``, ``time`` or ``datetime``, or
the index of a Parquet file written by pandas) and the columns ``open high low close
volume`` (any letter case). `read_ohlcv` checks every row and raises
`DataValidationError` naming the file, the row (line and timestamp), the column and what
was expected. Nothing is dropped, clipped or filled: `repair_ohlcv` applies only the
repairs it is asked for and returns a table of every change it made.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroflux.data.validation import (
    OHLCV_COLUMNS,
    SHOWN,
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
        ``sort_timestamps``: sorts rows by timestamp (``before``/``after`` in the
            change table are the row's 1-based positions).
        ``widen_high_low``: raises high to max(open, close), lowers low to
            min(open, close).

    Returns:
        The bars and a table with one row for every row dropped or value changed.
    """
    if isinstance(repairs, str):
        raise TypeError(f"repairs must be a list of names, got the string {repairs!r}")
    unknown = sorted(set(repairs) - set(REPAIRS))
    if unknown:
        raise ValueError(f"unknown repair {unknown}; expected some of {list(REPAIRS)}")
    path = Path(path)
    table, lines = _read_table(path)
    if table.empty:
        raise DataValidationError(f"{path}: no data rows", source=str(path))
    timestamps, values = _parse(table, path, lines, assume_timezone)
    frame = pd.DataFrame(values, columns=list(OHLCV_COLUMNS))
    frame.insert(0, "timestamp", timestamps)
    frame["_row"] = np.arange(1, len(frame) + 1)
    frame["_line"] = lines if lines is not None else frame["_row"]
    changes: list[dict] = []
    for repair in REPAIRS:
        if repair in repairs:
            frame = _REPAIR_FUNCTIONS[repair](frame, changes)
    check_bars(
        frame["timestamp"],
        frame[list(OHLCV_COLUMNS)].to_numpy(),
        source=str(path),
        lines=frame["_line"].to_numpy() if lines is not None else None,
        rows=frame["_row"].to_numpy(),
    )
    bars = frame.set_index(pd.DatetimeIndex(frame["timestamp"], name="timestamp"))
    bars = bars[list(OHLCV_COLUMNS)]
    bars.attrs = {"name": path.stem, "source": str(path), "synthetic": False}
    columns = ["repair", "line", "timestamp", "column", "before", "after"]
    return RepairedBars(bars=bars, changes=pd.DataFrame(changes, columns=columns))


def _read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The file's columns as read, and for CSV the line each row starts on."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataValidationError(
            f"{path}: unsupported file type {suffix!r}; expected .csv or .parquet"
        )
    lines = None
    try:
        if suffix == ".csv":
            table, lines = _read_csv(path)
        else:
            table = pd.read_parquet(path)
    except (ValueError, UnicodeDecodeError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise DataValidationError(
            f"{path}: not a readable {suffix[1:]} file: {type(error).__name__}: "
            f"{reason}",
            source=str(path),
        ) from error
    if isinstance(table.index, pd.DatetimeIndex):
        table = table.rename_axis(table.index.name or "timestamp").reset_index()
    return _select_columns(table, path), lines


def _read_csv(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Every cell as text. A row with too many or too few fields is an error (pandas
    would drop or pad them); a blank line is kept as a row of empty cells."""
    records, lines = [], []
    with path.open(newline="") as file:
        reader = csv.reader(file)
        header = next(reader, [])
        start = reader.line_num + 1
        for record in reader:
            record = record or [""] * len(header)
            if len(record) != len(header):
                raise DataValidationError(
                    f"{path}: line {start}: expected {len(header)} fields like the "
                    f"header, found {len(record)}",
                    source=str(path),
                )
            records.append(record)
            lines.append(start)
            start = reader.line_num + 1
    return pd.DataFrame(records, columns=header, dtype=str), np.asarray(lines)


def _select_columns(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    names = {str(name).strip().lower(): name for name in table.columns}
    if len(names) < len(table.columns):
        folded = [str(name).strip().lower() for name in table.columns]
        clashing = [
            str(n)
            for n, f in zip(table.columns, folded, strict=True)
            if folded.count(f) > 1
        ]
        raise DataValidationError(
            f"{path}: columns {clashing} differ only in letter case; expected each "
            "column once",
            source=str(path),
        )
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


def _parse(
    table: pd.DataFrame,
    path: Path,
    lines: np.ndarray,
    assume_timezone: str | None,
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    timestamps = _parse_timestamps(table["timestamp"], path, lines, assume_timezone)
    violations = []
    total = 0
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
            Violation(i, column, "a number", repr(raw.iloc[i])) for i in bad[:SHOWN]
        ]
        total += len(bad)
        values[:, j] = parsed.to_numpy(dtype="float64", na_value=np.nan)
    if violations:
        raise DataValidationError.from_violations(
            violations,
            source=str(path),
            lines=lines,
            timestamps=timestamps,
            total=total,
        )
    return timestamps, values


def _parse_timestamps(
    raw: pd.Series, path: Path, lines: np.ndarray, assume_timezone: str | None
) -> pd.DatetimeIndex:
    def fail(rows: np.ndarray, expected: str, found: list[str]) -> None:
        violations = [
            Violation(i, "timestamp", expected, text)
            for i, text in zip(rows[:SHOWN], found, strict=False)
        ]
        raise DataValidationError.from_violations(
            violations, source=str(path), lines=lines, total=len(rows)
        )

    def localize(stamps: pd.DatetimeIndex, text: pd.Series) -> pd.DatetimeIndex:
        """Local times to UTC; times a DST change skips or repeats are errors."""
        try:
            local = stamps.tz_localize(
                assume_timezone, ambiguous="NaT", nonexistent="NaT"
            )
        except (KeyError, ValueError) as error:  # unknown zone name
            raise DataValidationError(
                f"{path}: assume_timezone={assume_timezone!r} is not a known time "
                f"zone ({type(error).__name__})",
                source=str(path),
            ) from error
        rows = np.flatnonzero(local.isna() & stamps.notna())
        if len(rows):
            fail(
                rows,
                f"a local time that exists once in {assume_timezone}",
                list(text.iloc[rows]),
            )
        return local.tz_convert("UTC")

    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(raw).tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        if assume_timezone is None:
            fail(
                np.array([0]),
                "timezone-aware timestamps (or pass assume_timezone)",
                [f"naive {raw.dtype} column"],
            )
        return localize(pd.DatetimeIndex(raw), raw.astype(str))
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
    return stamps.tz_convert("UTC") if aware.all() else localize(stamps, text)


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
    """Records each moved row with its 1-based position before and after sorting."""
    order = np.argsort(frame["timestamp"].to_numpy(), kind="stable")
    ordered = frame.iloc[order]
    for position in np.flatnonzero(order != np.arange(len(order))):
        row = ordered.iloc[position]
        before, after = int(order[position]) + 1, int(position) + 1
        _record(changes, "sort_timestamps", row, "timestamp", before, after)
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
