"""Download OHLCV bars from an exchange through ccxt, with an incremental Parquet cache.

``fetch_ohlcv`` returns the bars of ``[since, until)`` and downloads only the stretches
the cache does not cover yet, one page at a time; every completed page is written to
the cache at once, so a run that fails midway keeps what it got and the next run goes
on from there. Bars are validated before they are stored or returned. Bars that have
not closed yet (plus a short settling margin) are returned but never cached, because
the exchange will still change them. The cache layout is described in
``neuroflux.data._cache``; ``query_ohlcv_cache`` runs DuckDB SQL over all of it.

Example:
    >>> bars = fetch_ohlcv("binance", "BTC/USDT", "1h", "2024-01-01", "2024-02-01")
    >>> query_ohlcv_cache("SELECT symbol, count(*) FROM ohlcv GROUP BY symbol")
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import ccxt
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import structlog
from tqdm.auto import tqdm

from neuroflux.data import _cache, validation

__all__ = ["fetch_ohlcv", "query_ohlcv_cache", "timeframe_milliseconds"]

_log = structlog.get_logger(__name__)

# A bar counts as closed only this long after its close time: it allows for a local
# clock ahead of the exchange and for trades the exchange books a moment late.
_SETTLE_MILLISECONDS = 60_000
# A Retry-After longer than this (Binance's 418 bans last minutes to days) is not
# waited out: the error goes to the caller at once instead of deepening the ban.
_MAX_RETRY_AFTER_SECONDS = 120.0


def _now_milliseconds() -> int:
    return time.time_ns() // 1_000_000


def _parse_time_milliseconds(moment: Any, name: str) -> int:
    if isinstance(moment, (int, float, np.number)):
        raise ValueError(
            f"{name}={moment!r}: a bare number has no unit; pass a time such as "
            "'2024-01-01' or pd.Timestamp(milliseconds, unit='ms', tz='UTC')"
        )
    if isinstance(moment, str) and moment.strip().lower() in ("now", "today"):
        now = pd.Timestamp.now(tz="UTC")  # pandas reads these as local wall time
        timestamp = now if moment.strip().lower() == "now" else now.normalize()
    else:
        timestamp = pd.Timestamp(moment)
    if timestamp is pd.NaT:
        raise ValueError(f"{name} must be a time, got {moment!r}")
    if timestamp.tzinfo is None:
        timestamp = timestamp.tz_localize("UTC")
    return timestamp.as_unit("ns").value // 1_000_000


def timeframe_milliseconds(timeframe: str) -> int:
    """Length in ms of a ccxt timeframe of fixed length (``"1m"``, ``"4h"``, ``"1w"``).

    Raises:
        ValueError: Not a ccxt timeframe, not a positive duration, or months or
            years (``"1M"``, ``"1y"``), which have no fixed length.
    """
    if isinstance(timeframe, str) and timeframe[-1:] in ("M", "y"):
        raise ValueError(
            f"timeframe {timeframe!r} is not supported: months and years have no fixed "
            "length; use days or weeks"
        )
    try:
        seconds = ccxt.Exchange.parse_timeframe(timeframe)
    except (ccxt.BaseError, KeyError, ValueError, TypeError, IndexError) as error:
        raise ValueError(
            f"timeframe must be a ccxt timeframe: {timeframe!r} is not like '1m', "
            "'4h', '1d'"
        ) from error
    if seconds <= 0:
        raise ValueError(f"timeframe must be a positive duration; got {timeframe!r}")
    return int(seconds * 1000)


def fetch_ohlcv(
    exchange: str,
    symbol: str,
    timeframe: str,
    since: Any,
    until: Any,
    *,
    cache_dir: Path | str | None = None,
    progress: bool = False,
    client: ccxt.Exchange | None = None,
    max_retries: int = 5,
    retry_delay: float = 1.0,
) -> pd.DataFrame:
    """OHLCV bars of one market with open time in ``[since, until)``, cached on disk.

    Args:
        exchange: ccxt exchange id, e.g. ``"binance"``.
        symbol: ccxt unified symbol, e.g. ``"BTC/USDT"``.
        timeframe: bar length in ccxt notation (``"1m"``, ``"1h"``, ``"1d"``, ``"1w"``);
            calendar months are not supported.
        since: first open time, inclusive; anything ``pd.Timestamp`` accepts except a
            bare number (its unit is ambiguous). A naive time is taken as UTC, an aware
            one is converted to UTC; ``"now"`` and ``"today"`` are UTC.
        until: end of the range, exclusive; same forms as ``since``. It may lie in the
            future: the range then ends with the bars the exchange has so far.
        cache_dir: cache folder; default ``$NEUROFLUX_CACHE_DIR``, else
            ``~/.cache/neuroflux``.
        progress: show a tqdm bar counting bar slots of the range.
        client: a ready ccxt exchange (for custom options, keys or URLs), used as
            configured (keep ``enableRateLimit`` on); default
            ``getattr(ccxt, exchange)({"enableRateLimit": True})``, made only when
            something has to be downloaded, so a cached range needs no network.
        max_retries: retries of one request after a ``ccxt.NetworkError`` (timeouts,
            HTTP 429/418/5xx, unreachable exchange) before the error is raised.
        retry_delay: seconds before the first retry; each further retry waits twice as
            long, or as long as the exchange's Retry-After header asks.

    Returns:
        ``[T, 5]`` float64 frame with columns ``open high low close volume`` and a
        UTC ``DatetimeIndex`` named ``timestamp``; ``attrs`` has ``name``
        (``"exchange:symbol:timeframe"``), ``source`` and ``synthetic=False``.

    Raises:
        ValueError: bad arguments.
        neuroflux.data.validation.DataValidationError: (a ValueError) a bar from the
            exchange breaks the rules of ``validate_ohlcv``; the message names the
            market, the bar's time and column.
        ccxt.NetworkError: still failing after ``max_retries`` retries; the message
            names the market and the page's start.
        ccxt.BaseError: any other exchange error (e.g. ``ccxt.BadSymbol``), at once.
    """
    start_ms, end_ms = (
        _parse_time_milliseconds(since, "since"),
        _parse_time_milliseconds(until, "until"),
    )
    if end_ms <= start_ms:
        raise ValueError(f"until ({until}) must be after since ({since})")
    if exchange not in ccxt.exchanges:
        raise ValueError(f"{exchange!r} is not a ccxt exchange id")
    if client is not None and client.id != exchange:
        raise ValueError(f"client is a {client.id!r} exchange, not {exchange!r}")
    if max_retries < 0 or retry_delay < 0:
        raise ValueError("max_retries and retry_delay must not be negative")
    timeframe_ms = timeframe_milliseconds(timeframe)
    series = _cache.SeriesCache(
        _cache.resolve_cache_dir(cache_dir), exchange, symbol, timeframe
    )
    now_ms = _now_milliseconds()
    missing = [
        interval
        for interval in _cache.subtract_intervals(
            (start_ms, end_ms), series.coverage(start_ms, end_ms)
        )
        if interval[0] <= now_ms
    ]
    total = math.ceil((min(end_ms, now_ms) - start_ms) / timeframe_ms)
    to_download = sum(math.ceil((b - a) / timeframe_ms) for a, b in missing)
    unstored: list[pd.DataFrame] = []
    with tqdm(
        total=max(total, 0),
        initial=max(total - to_download, 0),
        unit="bar",
        desc=f"{exchange} {symbol} {timeframe}",
        disable=not progress,
    ) as progress_bar:
        if missing:
            downloader = _Downloader(
                client or getattr(ccxt, exchange)({"enableRateLimit": True}),
                series,
                timeframe_ms,
                max_retries,
                retry_delay,
            )
            for interval in missing:
                unstored += downloader.download(*interval, progress_bar)
    frame = pd.concat([series.read(start_ms, end_ms), *unstored], ignore_index=True)
    frame = frame.sort_values("timestamp", ignore_index=True)
    index = pd.to_datetime(frame.pop("timestamp").to_numpy(), unit="ms", utc=True)
    frame.index = pd.DatetimeIndex(index.as_unit("us"), name="timestamp")
    frame.attrs = {
        "name": f"{exchange}:{symbol}:{timeframe}",
        "source": f"ccxt {exchange} (downloaded)",
        "synthetic": False,
    }
    return frame


class _Downloader:
    """Pages through one market's bars, storing each completed page."""

    def __init__(
        self,
        client: ccxt.Exchange,
        series: _cache.SeriesCache,
        timeframe_ms: int,
        max_retries: int,
        retry_delay: float,
    ):
        self.client, self.series, self.timeframe_ms = client, series, timeframe_ms
        self.max_retries, self.retry_delay = max_retries, retry_delay
        self.market: dict[str, Any] | None = None
        self.label = f"{series.exchange} {series.symbol} {series.timeframe}"

    def _page_limit(self) -> int | None:
        market = self.market or {}
        features = (getattr(self.client, "features", None) or {}).get(
            market.get("type") or "spot"
        ) or {}
        if "fetchOHLCV" not in features:
            features = features.get(market.get("subType") or "linear") or {}
        return (features.get("fetchOHLCV") or {}).get("limit")

    def download(
        self, start_ms: int, end_ms: int, progress_bar: tqdm
    ) -> list[pd.DataFrame]:
        """Downloads [start_ms, end_ms) and returns the bars too young to be cached."""
        if self.market is None:
            self._call(self.client.load_markets, start_ms)
            self.market = self.client.market(self.series.symbol)
            if self.series.timeframe not in (self.client.timeframes or {}):
                raise ValueError(
                    f"{self.series.exchange} has no timeframe "
                    f"{self.series.timeframe!r}; it offers "
                    f"{', '.join(self.client.timeframes or {})}"
                )
        unstored, cursor, page_limit = [], start_ms, self._page_limit()
        while cursor < end_ms and cursor <= _now_milliseconds():
            remaining = math.ceil((end_ms - cursor) / self.timeframe_ms)
            limit = remaining if page_limit is None else min(page_limit, remaining)
            rows = self._call(
                self.client.fetch_ohlcv,
                cursor,
                self.series.symbol,
                self.series.timeframe,
                since=cursor,
                limit=limit,
            )
            last_open_ms = max((int(row[0]) for row in rows), default=cursor - 1)
            if last_open_ms < cursor:  # nothing (more) from the exchange so far
                break
            page = self._validated(rows, cursor, end_ms)
            young = page["timestamp"] + self.timeframe_ms > (
                _now_milliseconds() - _SETTLE_MILLISECONDS
            )
            covered_end = min(end_ms, last_open_ms + self.timeframe_ms)
            if young.any():
                covered_end = min(covered_end, int(page["timestamp"][young].iloc[0]))
            if covered_end > cursor:
                self.series.store(page[~young], (cursor, covered_end))
            unstored.append(page[young])
            next_cursor = last_open_ms + self.timeframe_ms
            progress_bar.update(
                (min(next_cursor, end_ms) - cursor) // self.timeframe_ms
            )
            cursor = next_cursor
        return unstored

    def _call(self, method: Any, page_since_ms: int, *args: Any, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)`` with retries and backoff on network errors."""
        for attempt in range(self.max_retries + 1):
            try:
                return method(*args, **kwargs)
            except ccxt.NetworkError as error:
                delay = self.retry_delay * 2**attempt
                retry_after = _retry_after_seconds(self.client, error)
                page_since = pd.Timestamp(page_since_ms, unit="ms", tz="UTC")
                context = f"{self.label} (page since {page_since.isoformat()})"
                if retry_after is not None and retry_after > _MAX_RETRY_AFTER_SECONDS:
                    raise type(error)(
                        f"{context}: the exchange asks to wait {retry_after:g} s "
                        f"before another request: {error}"
                    ) from error
                if attempt == self.max_retries:
                    raise type(error)(
                        f"{context}: failed after {self.max_retries} retries: {error}"
                    ) from error
                delay = max(delay, retry_after or 0.0)
                _log.warning(
                    "ohlcv_request_retry",
                    market=self.label,
                    page_since=page_since.isoformat(),
                    attempt=attempt + 1,
                    delay_seconds=delay,
                    error=f"{type(error).__name__}: {error}",
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _validated(self, rows: list, since_ms: int, end_ms: int) -> pd.DataFrame:
        """Page rows in [since_ms, end_ms) as a frame with an int64 ms ``timestamp``
        column; identical repeats of a bar are merged, anything else invalid raises
        ``validation.DataValidationError`` naming the bar's time and column."""
        values = np.array([row[:6] for row in rows], dtype="float64").reshape(-1, 6)
        frame = pd.DataFrame(values[:, 1:], columns=list(validation.OHLCV_COLUMNS))
        frame.insert(0, "timestamp", values[:, 0].astype("int64"))
        inside = (frame["timestamp"] >= since_ms) & (frame["timestamp"] < end_ms)
        frame = frame[inside].drop_duplicates().reset_index(drop=True)
        page_since = pd.Timestamp(since_ms, unit="ms", tz="UTC").isoformat()
        validation.validate_ohlcv(
            frame.set_index(pd.to_datetime(frame["timestamp"], unit="ms", utc=True)),
            source=f"{self.label} (exchange page since {page_since})",
        )
        return frame


def _retry_after_seconds(client: ccxt.Exchange, error: Exception) -> float | None:
    if not isinstance(error, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        return None
    headers = getattr(client, "last_response_headers", None) or {}
    try:
        return float(headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None


def query_ohlcv_cache(sql: str, cache_dir: Path | str | None = None) -> pd.DataFrame:
    """Runs DuckDB SQL over the whole OHLCV cache, seen as the view ``ohlcv``.

    The view has the columns ``exchange symbol timeframe timestamp open high low close
    volume``; ``timestamp`` is a ``TIMESTAMPTZ`` and the session time zone is UTC.

    Args:
        sql: a DuckDB query over ``ohlcv``, e.g. ``"SELECT symbol, avg(close) FROM
            ohlcv GROUP BY symbol"``.
        cache_dir: cache folder; default as in ``fetch_ohlcv``.

    Returns:
        The query's result as a pandas frame.
    """
    root = _cache.resolve_cache_dir(cache_dir) / "ohlcv"
    columns = ", ".join(field.name for field in _cache.SCHEMA)
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        if any(root.glob(_cache.FILE_GLOB)):
            pattern = str(root / _cache.FILE_GLOB).replace("'", "''")
            source = f"read_parquet('{pattern}')"
        else:
            types = [
                f"NULL::{_duckdb_type(field.type)} AS {field.name}"
                for field in _cache.SCHEMA
            ]
            source = f"(SELECT {', '.join(types)} WHERE false)"
        connection.execute(f"CREATE VIEW ohlcv AS SELECT {columns} FROM {source}")
        relation = connection.sql(sql)
        return (
            pd.DataFrame()
            if relation is None
            else relation.to_arrow_table().to_pandas()
        )


def _duckdb_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type):
        return "VARCHAR"
    return "TIMESTAMPTZ" if pa.types.is_timestamp(arrow_type) else "DOUBLE"
