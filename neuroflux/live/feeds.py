"""Where the live runner's bars come from: replayed frames or an exchange's REST API.

A :class:`Feed` yields, for each bar time, one closed
:class:`~neuroflux.live.orders.BarEvent` per symbol (all of the same time; ``time`` is
the bar's open time in UTC ms), strictly increasing, and only bars later than
``after``, so that a restarted runner resumes after the last bar it processed.

* :class:`ReplayFeed` replays stored OHLCV frames (samples, synthetic data, files).
  The frames are validated once and every bar's tuple of events is built once from
  NumPy arrays, so iteration does no pandas work. With ``speed=None`` it runs as fast
  as possible but still yields to the event loop (``asyncio.sleep(0)``) every
  ``yield_every`` bars, so that the event bus's subscribers, the API and the monitor
  keep up with the runner. A loop pass costs a few microseconds (an epoll call), more
  than handing out a bar, so the default 16 bars keeps the replay itself above a
  million bars a second while a subscriber waits at most 16 bars' events (the bus
  holds 10,000); ``yield_every=1`` yields after every bar. With a ``speed`` it paces
  bars at ``timeframe / speed`` on the loop's clock.
* :class:`CcxtFeed` polls ``fetch_ohlcv`` of a ccxt asyncio client. A bar is closed
  when its close time (open + timeframe) is at or before the exchange's clock
  (``fetch_time``), so the forming bar the exchange also returns is never yielded.
  Given ``after``, it first backfills every bar since then, in order, page by page.
  A missing bar time is a :class:`FeedGapError`, never skipped; network errors are
  retried ``retries`` times with exponential backoff (at least the server's
  Retry-After where the error carries one, as ``retry_after`` seconds), then raised.
  It takes bar open times to be multiples of the bar length since the Unix epoch, so
  it refuses weeks (Binance's open on Mondays; 1970-01-01 was a Thursday), months and
  years.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

import ccxt
import numpy as np
import pandas as pd
import structlog

from neuroflux.data.downloads import timeframe_milliseconds
from neuroflux.live.orders import BarEvent

__all__ = [
    "CcxtFeed",
    "Feed",
    "FeedDataError",
    "FeedGapError",
    "ReplayFeed",
    "ccxt_bar_event",
    "epoch_grid_milliseconds",
    "timeframe_milliseconds",
]

_COLUMNS = ("open", "high", "low", "close", "volume")
_log = structlog.get_logger(__name__)


class FeedDataError(ValueError):
    """A bar that cannot be used (bad value, out of order, misaligned frames)."""


class FeedGapError(RuntimeError):
    """A bar time that the exchange skipped while later bars exist."""


class Feed(Protocol):
    """A source of closed bars for a fixed set of symbols and one timeframe."""

    symbols: tuple[str, ...]
    timeframe: str

    def bars(self, after: int | None = None) -> AsyncIterator[tuple[BarEvent, ...]]:
        """One event per symbol for each bar time > ``after``, in time order."""
        ...

    async def close(self) -> None:
        """Releases what the feed holds (its exchange client's connections)."""
        ...


def epoch_grid_milliseconds(timeframe: str) -> int:
    """Length in ms of a timeframe whose bars open on multiples of it since the epoch.

    Raises:
        ValueError: A week, month or year timeframe (its bars open on a weekday or a
            calendar date, not on that grid), or not a ccxt timeframe.
    """
    if isinstance(timeframe, str) and timeframe[-1:] in ("w", "M", "y"):
        raise ValueError(
            f"timeframe {timeframe!r} is not supported by the exchange feeds: its bars "
            "do not open on multiples of the bar length since 1970-01-01 (weeks open "
            "on Mondays, months and years on calendar dates); use s, m, h or d"
        )
    return timeframe_milliseconds(timeframe)


def _when(time: int) -> str:
    return f"{pd.Timestamp(time, unit='ms', tz='UTC').isoformat()} ({time} ms)"


def _frame_arrays(symbol: str, frame: pd.DataFrame) -> tuple[np.ndarray, list]:
    """Bar times [T] in ms and the columns of a validated frame."""
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or str(index.tz) != "UTC":
        raise FeedDataError(f"{symbol}: index must be a UTC DatetimeIndex; got {index}")
    missing = [column for column in _COLUMNS if column not in frame.columns]
    if missing:
        raise FeedDataError(f"{symbol}: missing columns {missing}")
    times = index.as_unit("ms").asi8
    backward = np.flatnonzero(np.diff(times) <= 0)
    if backward.size:
        row = backward[0] + 1
        raise FeedDataError(
            f"{symbol}: row {index[row]}: index must be strictly increasing "
            f"(previous row {index[row - 1]})"
        )
    columns = []
    for column in _COLUMNS:
        values = frame[column].to_numpy(np.float64)
        valid = np.isfinite(values) & (
            values >= 0 if column == "volume" else values > 0
        )
        if not valid.all():
            row = np.flatnonzero(~valid)[0]
            expected = "finite and >= 0" if column == "volume" else "finite and > 0"
            raise FeedDataError(
                f"{symbol}: row {index[row]} column {column}: expected {expected}; "
                f"got {values[row]}"
            )
        columns.append(values.tolist())
    return times, columns


class ReplayFeed:
    """Replays OHLCV frames bar by bar (see the module docstring).

    Args:
        frames: ``{symbol: frame}``; each frame has a UTC DatetimeIndex (bar open
            times), the same index for every symbol, and columns ``open high low
            close volume`` with finite prices > 0 and volume >= 0.
        timeframe: The bars' ccxt timeframe (``"1m"``, ``"1d"``).
        speed: ``None``: as fast as possible; else bars come every
            ``timeframe / speed`` seconds (``speed=60`` replays 1m bars each second).
        yield_every: With ``speed=None``, bars between two yields to the event loop.

    Raises:
        FeedDataError: Naming the symbol, row timestamp and column at fault.
    """

    def __init__(
        self,
        frames: Mapping[str, pd.DataFrame],
        *,
        timeframe: str,
        speed: float | None = None,
        yield_every: int = 16,
    ) -> None:
        if not frames:
            raise ValueError("frames must hold at least one symbol")
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be finite and > 0, or None; got {speed!r}")
        self.symbols = tuple(frames)
        self.timeframe = timeframe
        self.speed = speed
        if yield_every < 1:
            raise ValueError(f"yield_every must be >= 1; got {yield_every!r}")
        self.yield_every = yield_every
        self._interval = timeframe_milliseconds(timeframe) / 1000 / (speed or 1)
        first, times, events = self.symbols[0], None, []
        for symbol in self.symbols:
            symbol_times, columns = _frame_arrays(symbol, frames[symbol])
            if times is None:
                times = symbol_times
            elif len(symbol_times) != len(times) or (symbol_times != times).any():
                row = _first_difference(times, symbol_times)
                raise FeedDataError(
                    f"{symbol}: row {_row_label(symbol_times, row)}: index differs "
                    f"from {first}'s (row {_row_label(times, row)}); every symbol "
                    "needs the same bar times"
                )
            events.append(
                [
                    BarEvent(
                        symbol=symbol, time=t, open=o, high=h, low=lo, close=c, volume=v
                    )
                    for t, o, h, lo, c, v in zip(
                        symbol_times.tolist(), *columns, strict=True
                    )
                ]
            )
        self.times: np.ndarray = times
        self._bars = tuple(zip(*events, strict=True))

    def __len__(self) -> int:
        return len(self._bars)

    @classmethod
    def from_sample(
        cls, name: str, symbol: str | None = None, *, speed: float | None = None
    ) -> ReplayFeed:
        """Daily bars of a :func:`neuroflux.data.load_sample` sample.

        Args:
            name: A single-asset sample (``"sp500"``, ``"aapl"``).
            symbol: Its ccxt symbol; default ``NAME/USD`` (``"SP500/USD"``).
            speed: As in :class:`ReplayFeed`.
        """
        from neuroflux.data import load_sample

        frame = load_sample(name)
        if isinstance(frame.columns, pd.MultiIndex):
            raise ValueError(f"sample {name!r} is a panel; give a single-asset sample")
        symbol = symbol or f"{name.upper()}/USD"
        return cls({symbol: frame}, timeframe="1d", speed=speed)

    @classmethod
    def synthetic(
        cls,
        symbols: Sequence[str],
        bars: int,
        seed: int,
        timeframe: str = "1m",
        *,
        speed: float | None = None,
    ) -> ReplayFeed:
        """SYNTHETIC correlated bars of :func:`neuroflux.data.synthetic_panel`."""
        from neuroflux.data import synthetic_panel

        seconds = timeframe_milliseconds(timeframe) // 1000
        panel = synthetic_panel(bars, list(symbols), bar=f"{seconds}s", seed=seed)
        frames = {
            symbol: panel.xs(symbol, axis="columns", level="symbol")
            for symbol in symbols
        }
        return cls(frames, timeframe=timeframe, speed=speed)

    async def close(self) -> None:
        """Nothing to release: the bars are in memory."""

    async def bars(
        self, after: int | None = None
    ) -> AsyncIterator[tuple[BarEvent, ...]]:
        """Each bar time's events (one per symbol) later than ``after``."""
        start = 0 if after is None else int(np.searchsorted(self.times, after, "right"))
        if self.speed is None:
            every = self.yield_every
            for count, events in enumerate(self._bars[start:], start=1):
                yield events
                if count % every == 0:
                    await asyncio.sleep(0)
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        begin = loop.time()
        for count, events in enumerate(self._bars[start:]):
            # Due times on one clock, so the pace does not drift with slow consumers.
            await asyncio.sleep(max(0.0, begin + count * self._interval - loop.time()))
            yield events


def _first_difference(a: np.ndarray, b: np.ndarray) -> int:
    length = min(len(a), len(b))
    differs = np.flatnonzero(a[:length] != b[:length])
    return int(differs[0]) if differs.size else length


def _row_label(times: np.ndarray, row: int) -> str:
    return (
        str(pd.Timestamp(times[row], unit="ms", tz="UTC"))
        if row < len(times)
        else (f"{row} (past the end)")
    )


class CcxtFeed:
    """Closed bars polled from a ccxt asyncio client's ``fetch_ohlcv``.

    Args:
        client: A ccxt asyncio exchange (closed by :meth:`close`).
        symbols: ccxt unified symbols.
        timeframe: ccxt timeframe of the bars, in s, m, h or d (whose bars open on
            multiples of the bar length since the epoch).
        poll_seconds: Seconds between polls while waiting for the next bar; ``None``:
            sleep until the next bar's close by the exchange's clock, plus
            ``settle_seconds`` for the exchange to publish it.
        retries: Retries of a call that failed with a ``ccxt.NetworkError``.
        backoff_seconds: First retry delay; it doubles on each retry, and is at
            least the error's ``retry_after`` (the server's Retry-After) if set.
        page_size: Bars asked per ``fetch_ohlcv`` call while catching up.
        settle_seconds: See ``poll_seconds``.
    """

    def __init__(
        self,
        client: ccxt.Exchange,
        symbols: Sequence[str],
        timeframe: str,
        *,
        poll_seconds: float | None = None,
        retries: int = 5,
        backoff_seconds: float = 0.5,
        page_size: int = 500,
        settle_seconds: float = 1.0,
    ) -> None:
        if not symbols or len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols must be distinct and not empty; got {symbols!r}")
        if poll_seconds is not None and not poll_seconds > 0:
            raise ValueError(f"poll_seconds must be > 0 or None; got {poll_seconds!r}")
        if retries < 0 or page_size < 1:
            raise ValueError(
                f"retries must be >= 0 and page_size >= 1; got {retries}, {page_size}"
            )
        self.client = client
        self.symbols = tuple(symbols)
        self.timeframe = timeframe
        self.poll_seconds = poll_seconds
        self.retries, self.backoff_seconds = retries, backoff_seconds
        self.page_size, self.settle_seconds = page_size, settle_seconds
        self._step = epoch_grid_milliseconds(timeframe)

    async def close(self) -> None:
        """Closes the client."""
        await self.client.close()

    async def bars(
        self, after: int | None = None
    ) -> AsyncIterator[tuple[BarEvent, ...]]:
        """Closed bars after ``after`` (backfilled first), then each new one.

        Without ``after`` it starts with the last closed bar.

        Raises:
            FeedGapError: The exchange skipped a bar time (named with the symbol).
            FeedDataError: A bar with a bad value, or ``after`` not on the grid.
            ccxt.NetworkError: A call still failed after ``retries`` retries.
        """
        step = self._step
        if after is not None and after % step:
            raise FeedDataError(f"after={after} is not a {self.timeframe} bar time")
        await self._call("load_markets")
        now = await self._call("fetch_time")
        expected = after + step if after is not None else (now - step) // step * step
        while True:
            last_closed = (now - step) // step * step
            count = 0
            if expected <= last_closed:
                columns = await _all_or_none(
                    [self._closed_bars(s, expected, last_closed) for s in self.symbols]
                )
                count = min(len(column) for column in columns)
                for events in zip(*(column[:count] for column in columns), strict=True):
                    yield events
                expected += count * step
            if count == 0 or expected > last_closed:
                await asyncio.sleep(self._wait_seconds(expected, now))
            now = await self._call("fetch_time")

    def _wait_seconds(self, expected: int, now: int) -> float:
        if self.poll_seconds is not None:
            return self.poll_seconds
        return max(0.0, (expected + self._step - now) / 1000) + self.settle_seconds

    async def _closed_bars(self, symbol: str, start: int, end: int) -> list[BarEvent]:
        """The consecutive bars of ``symbol`` from ``start`` to at most ``end``."""
        limit = min(self.page_size, (end - start) // self._step + 1)
        rows = await self._call(
            "fetch_ohlcv", symbol, self.timeframe, since=start, limit=limit
        )
        bars: list[BarEvent] = []
        for row in rows:
            time = int(row[0])
            if time < start or time > end:
                continue  # already yielded, or not closed yet: neither is new
            if bars and time == bars[-1].time:
                if tuple(row[1:6]) != _values(bars[-1]):
                    raise FeedDataError(
                        f"{symbol}: two different bars at {_when(time)}"
                    )
                continue  # the same bar sent twice
            wanted = start + len(bars) * self._step
            if time != wanted:
                raise FeedGapError(
                    f"{symbol}: no {self.timeframe} bar at {_when(wanted)}; the "
                    f"exchange's next bar is at {_when(time)}"
                )
            bars.append(ccxt_bar_event(symbol, time, row[1:6]))
        return bars

    async def _call(self, method: str, *args, **kwargs):
        """``client.method(...)``, retrying network errors with backoff (at least
        the server's Retry-After, where the error carries it as ``retry_after``)."""
        for attempt in range(self.retries + 1):
            try:
                return await getattr(self.client, method)(*args, **kwargs)
            except ccxt.NetworkError as error:
                if attempt == self.retries:
                    raise
                delay = _at_least_retry_after(self.backoff_seconds * 2**attempt, error)
                _log.warning(
                    "feed_retry",
                    method=method,
                    attempt=attempt + 1,
                    delay=delay,
                    error=f"{type(error).__name__}: {error}",
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def _at_least_retry_after(delay: float, error: BaseException) -> float:
    """``delay``, or the error's ``retry_after`` (seconds the server asked) if
    longer."""
    retry_after = getattr(error, "retry_after", None)
    return delay if retry_after is None else max(delay, float(retry_after))


async def _all_or_none(calls: list) -> list:
    """The results of ``calls`` run together; on an error the others are canceled."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _values(bar: BarEvent) -> tuple[float, ...]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume)


def ccxt_bar_event(symbol: str, time: int, values: Sequence[object]) -> BarEvent:
    """A bar from ccxt's ``[open, high, low, close, volume]``, values checked."""
    numbers = []
    for column, value in zip(_COLUMNS, values, strict=True):
        number = math.nan if value is None else float(value)
        lowest_ok = number >= 0 if column == "volume" else number > 0
        if not (math.isfinite(number) and lowest_ok):
            raise FeedDataError(
                f"{symbol}: bar {_when(time)} column {column}: expected a finite "
                f"{'volume >= 0' if column == 'volume' else 'price > 0'}; got {value!r}"
            )
        numbers.append(number)
    open_, high, low, close, volume = numbers
    return BarEvent(
        symbol=symbol,
        time=time,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )
