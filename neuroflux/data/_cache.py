"""Parquet storage for downloaded OHLCV bars: one file per series and calendar month.

Layout::

    <cache>/ohlcv/<exchange>/<symbol>/<timeframe>/YYYY-MM.parquet

with "/" in the symbol written "-" and ":" written "_" (``BTC/USDT:USDT`` ->
``BTC-USDT_USDT``).

A month file holds the bars whose open time falls in that UTC month, sorted by time,
with the columns ``exchange symbol timeframe timestamp open high low close volume`` (the
first three repeat the path so that one DuckDB glob sees every series). Its schema
metadata records the *covered* intervals ``[[start_ms, end_ms], ...]``: the stretches of
time for which every bar the exchange has is in the file. Coverage, not the bars, is
what decides what still has to be downloaded, so a stretch without trading is not asked
for again.

Why months: a file stays small (a month of 1-minute bars is about 43,200 rows, a few
MB), the number of files stays bounded however often a series is topped up (files per
download chunk would pile up), and rewriting one month per downloaded page is cheap.
Every write goes to a temporary file in the same folder and is moved into place with
``os.replace``, so a reader or a crashed run only ever sees a whole old or a whole new
file. A lock file serialises writers of one series where ``fcntl`` exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from neuroflux import settings

try:
    import fcntl
except ImportError:  # Windows: writers of one series are not serialised.
    fcntl = None

from neuroflux.data.validation import OHLCV_COLUMNS

FILE_GLOB = "*/*/*/*.parquet"
_COVERAGE_KEY = b"neuroflux.covered"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SCHEMA = pa.schema(
    [
        ("exchange", pa.string()),
        ("symbol", pa.string()),
        ("timeframe", pa.string()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        *[(column, pa.float64()) for column in OHLCV_COLUMNS],
    ]
)

Interval = tuple[int, int]


def resolve_cache_dir(cache_dir: Path | str | None) -> Path:
    """The cache folder: the argument, else `neuroflux.settings.cache_dir`."""
    return settings.cache_dir() if cache_dir is None else Path(cache_dir).expanduser()


def merge_intervals(intervals: list[Interval]) -> list[Interval]:
    """Sorted union of half-open intervals; touching intervals are joined."""
    merged: list[list[int]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def subtract_intervals(interval: Interval, covered: list[Interval]) -> list[Interval]:
    """The parts of ``interval`` that no interval in ``covered`` contains."""
    start, end = interval
    missing = []
    for covered_start, covered_end in merge_intervals(covered):
        if covered_end <= start or covered_start >= end:
            continue
        if covered_start > start:
            missing.append((start, covered_start))
        start = max(start, covered_end)
    if start < end:
        missing.append((start, end))
    return missing


def _month_start(milliseconds: int) -> datetime:
    moment = _EPOCH + timedelta(milliseconds=milliseconds)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _datetime_milliseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _months(start_ms: int, end_ms: int) -> Iterator[tuple[str, int, int]]:
    """``(name, month_start_ms, month_end_ms)`` for each month meeting [start, end)."""
    month = _month_start(start_ms)
    while _datetime_milliseconds(month) < end_ms:
        following = datetime(
            month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC
        )
        start, end = _datetime_milliseconds(month), _datetime_milliseconds(following)
        yield f"{month:%Y-%m}", start, end
        month = following


class SeriesCache:
    """The month files of one (exchange, symbol, timeframe) series."""

    def __init__(self, cache_dir: Path, exchange: str, symbol: str, timeframe: str):
        self.exchange, self.symbol, self.timeframe = exchange, symbol, timeframe
        parts = [exchange, symbol.replace("/", "-").replace(":", "_"), timeframe]
        for part in parts:
            if part in ("", ".", "..") or any(c in part for c in '/\\:*?"<>|\0'):
                raise ValueError(
                    f"cannot cache {exchange}:{symbol}:{timeframe}: {part!r} is not "
                    "usable as a folder name"
                )
        self.directory = cache_dir / "ohlcv" / Path(*parts)

    def _path(self, month: str) -> Path:
        return self.directory / f"{month}.parquet"

    def coverage(self, start_ms: int, end_ms: int) -> list[Interval]:
        """Covered intervals of the months that meet [start_ms, end_ms)."""
        covered: list[Interval] = []
        for month, _, _ in _months(start_ms, end_ms):
            path = self._path(month)
            if path.exists():
                metadata = pq.read_schema(path).metadata or {}
                covered += [tuple(i) for i in json.loads(metadata[_COVERAGE_KEY])]
        return merge_intervals(covered)

    def read(self, start_ms: int, end_ms: int) -> pd.DataFrame:
        """Cached bars with open time in [start_ms, end_ms): int64 ``timestamp`` (ms)
        and float64 price columns, sorted."""
        tables = [
            pq.read_table(self._path(month), schema=SCHEMA)
            for month, _, _ in _months(start_ms, end_ms)
            if self._path(month).exists()
        ]
        frame = _to_frame(pa.concat_tables(tables) if tables else SCHEMA.empty_table())
        inside = (frame["timestamp"] >= start_ms) & (frame["timestamp"] < end_ms)
        return frame[inside].reset_index(drop=True)

    def store(self, bars: pd.DataFrame, covered: Interval) -> None:
        """Add validated closed ``bars`` (int64 ms ``timestamp`` column, all inside
        ``covered``) and mark ``covered`` as complete, one atomic rewrite per month."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock():
            for month, month_start, month_end in _months(*covered):
                in_month = bars[
                    (bars["timestamp"] >= month_start) & (bars["timestamp"] < month_end)
                ]
                part = (max(covered[0], month_start), min(covered[1], month_end))
                self._merge_month(month, in_month, part)

    def _merge_month(self, month: str, bars: pd.DataFrame, covered: Interval) -> None:
        path = self._path(month)
        intervals = [covered]
        if path.exists():
            table = pq.read_table(path, schema=SCHEMA)
            metadata = pq.read_schema(path).metadata or {}
            intervals += [tuple(i) for i in json.loads(metadata[_COVERAGE_KEY])]
            bars = pd.concat([_to_frame(table), bars], ignore_index=True)
            bars = bars.drop_duplicates().sort_values("timestamp", ignore_index=True)
            clashes = bars["timestamp"][bars["timestamp"].duplicated()]
            if len(clashes):
                moment = pd.Timestamp(int(clashes.iloc[0]), unit="ms", tz="UTC")
                raise ValueError(
                    f"{self.exchange} {self.symbol} {self.timeframe}: the bar at "
                    f"{moment.isoformat()} differs from the cached one in {path}; "
                    "delete that file to download the month again"
                )
        table = pa.table(
            {
                "exchange": pa.array([self.exchange] * len(bars), pa.string()),
                "symbol": pa.array([self.symbol] * len(bars), pa.string()),
                "timeframe": pa.array([self.timeframe] * len(bars), pa.string()),
                "timestamp": pa.array(bars["timestamp"], pa.int64()).cast(
                    pa.timestamp("ms", tz="UTC")
                ),
                **{c: pa.array(bars[c], pa.float64()) for c in OHLCV_COLUMNS},
            },
            schema=SCHEMA.with_metadata(
                {_COVERAGE_KEY: json.dumps(merge_intervals(intervals))}
            ),
        )
        handle, temporary = tempfile.mkstemp(
            dir=self.directory, prefix=f".{month}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "wb") as file:
                pq.write_table(table, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        with open(self.directory / ".lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)


def _to_frame(table: pa.Table) -> pd.DataFrame:
    frame = pd.DataFrame(
        {c: table.column(c).to_numpy().astype("float64") for c in OHLCV_COLUMNS}
    )
    timestamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    frame.insert(0, "timestamp", timestamps.astype("int64"))
    return frame
