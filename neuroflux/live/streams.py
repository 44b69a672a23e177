"""Closed bars from an exchange's websocket kline streams (ccxt.pro).

:class:`CcxtStreamFeed` is a :class:`~neuroflux.live.feeds.Feed` on
``client.watch_ohlcv(symbol, timeframe)`` of a ``ccxt.pro`` client: one watcher task
per symbol keeps the latest values of every candle the stream has sent.

When is a candle closed? Binance's kline payload says so (``"x": true``), but ccxt's
``watch_ohlcv`` drops that flag and other exchanges have none, so the portable rule is
used: **a candle is closed once a candle with a later open time has been seen for the
same symbol**, and its values are the last update received for it. An exchange sends
a candle's final update before the next candle's first on the same connection (ccxt
shares one connection for all kline subscriptions), so the last update is the final
one. A bar is therefore yielded at the first message of the following candle.

Each yielded tuple holds one event per symbol (in ``symbols`` order) for one bar
time; a time is yielded only when every symbol has closed it, strictly increasing,
one bar step apart, and only after ``after``.

Bars the stream does not have come from REST, by composition with
:class:`~neuroflux.live.feeds.CcxtFeed` on the same client (``self.backfill``): the
catch-up after a restart (``after`` older than the stream's first candle) and any
hole a reconnect left. Such a tuple is wholly from REST (never mixed), and the REST
iterator is closed as soon as the stream has the bars again, so there is neither a
gap nor a repeat at the seam. Without ``after`` the feed starts with the first bar
that every symbol's stream has seen.

Reconnecting is ccxt.pro's: a ``ccxt.NetworkError`` from ``watch_ohlcv`` is retried
(which reconnects) after an exponential backoff (at least the server's Retry-After
where the error carries one as ``retry_after``), ``retries`` times in a row at most,
then raised from :meth:`CcxtStreamFeed.bars`. On such an error the candle that was
forming is forgotten (its last updates may be lost), so REST supplies it. Updates for
a bar already yielded (or older than ``after``) are ignored: by the rule above that
bar was already final.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence

import ccxt
import structlog

from neuroflux.live.feeds import (
    CcxtFeed,
    FeedDataError,
    ccxt_bar_event,
    epoch_grid_milliseconds,
)
from neuroflux.live.orders import BarEvent

__all__ = ["CcxtStreamFeed"]

_log = structlog.get_logger(__name__)


@dataclasses.dataclass(kw_only=True)
class _SymbolStream:
    """What one symbol's stream has sent: candle values by open time."""

    candles: dict[int, tuple] = dataclasses.field(default_factory=dict)
    first: int | None = None  # open time of the first candle seen
    newest: int | None = None  # open time of the latest candle seen


class CcxtStreamFeed:
    """Closed bars from ``watch_ohlcv`` streams (see the module docstring).

    Args:
        client: A ``ccxt.pro`` exchange (closed by :meth:`close`).
        symbols: Distinct ccxt unified symbols.
        timeframe: ccxt timeframe of the bars, in s, m, h or d (see
            :class:`~neuroflux.live.feeds.CcxtFeed`).
        retries: Consecutive ``ccxt.NetworkError`` retries of ``watch_ohlcv`` (and
            of the REST backfill's calls) before the error is raised.
        backoff_seconds: First retry delay; it doubles on each retry in a row.
        max_backoff_seconds: The longest retry delay, unless the error's
            ``retry_after`` (the server's Retry-After) asks for longer.
        page_size: Bars per ``fetch_ohlcv`` call of the REST backfill.
        rest_poll_seconds: ``poll_seconds`` of the backfill's :class:`CcxtFeed`
            (used only if REST has not yet published a bar the stream closed).
    """

    def __init__(
        self,
        client: ccxt.Exchange,
        symbols: Sequence[str],
        timeframe: str,
        *,
        retries: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        page_size: int = 500,
        rest_poll_seconds: float | None = 1.0,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0; got {retries!r}")
        if not 0 < backoff_seconds <= max_backoff_seconds:
            raise ValueError(
                "backoff_seconds must be > 0 and <= max_backoff_seconds; got "
                f"{backoff_seconds!r}, {max_backoff_seconds!r}"
            )
        # CcxtFeed validates symbols, page_size and rest_poll_seconds.
        self.backfill = CcxtFeed(
            client,
            symbols,
            timeframe,
            poll_seconds=rest_poll_seconds,
            retries=retries,
            backoff_seconds=backoff_seconds,
            page_size=page_size,
        )
        self.client = client
        self.symbols = self.backfill.symbols
        self.timeframe = timeframe
        self.retries = retries
        self.backoff_seconds, self.max_backoff_seconds = (
            backoff_seconds,
            max_backoff_seconds,
        )
        self._step = epoch_grid_milliseconds(timeframe)

    async def close(self) -> None:
        """Closes the client and its websockets."""
        await self.client.close()

    async def bars(
        self, after: int | None = None
    ) -> AsyncIterator[tuple[BarEvent, ...]]:
        """Closed bars after ``after`` (REST catch-up first), then each new one.

        Raises:
            FeedDataError: A bad candle value, ``after`` not on the bar grid, or the
                REST backfill answering a bar time other than the one needed.
            FeedGapError: REST lacks a bar that the stream also lacks.
            ccxt.NetworkError: ``watch_ohlcv`` still failed after ``retries``.
        """
        step = self._step
        if after is not None and after % step:
            raise FeedDataError(f"after={after} is not a {self.timeframe} bar time")
        expected = None if after is None else after + step
        streams = {symbol: _SymbolStream() for symbol in self.symbols}
        changed = asyncio.Event()
        watchers = [
            asyncio.create_task(self._watch(symbol, streams[symbol], changed))
            for symbol in self.symbols
        ]
        rest: AsyncIterator[tuple[BarEvent, ...]] | None = None
        try:
            while True:
                await changed.wait()
                changed.clear()
                for watcher in watchers:
                    if watcher.done():
                        watcher.result()  # raises the watcher's error
                states = list(streams.values())
                if any(state.newest is None for state in states):
                    continue
                if expected is None:
                    expected = max(state.first for state in states)
                while all(state.newest > expected for state in states):
                    if all(expected in state.candles for state in states):
                        if rest is not None:
                            await rest.aclose()
                            rest = None
                        events = tuple(
                            ccxt_bar_event(
                                symbol, expected, streams[symbol].candles[expected]
                            )
                            for symbol in self.symbols
                        )
                    else:
                        # The stream lacks this bar (catch-up, or a reconnect's hole).
                        if rest is None:
                            rest = self.backfill.bars(expected - step)
                        events = await anext(rest)
                        if events[0].time != expected:
                            raise FeedDataError(
                                f"REST backfill answered bar {events[0].time}; "
                                f"expected {expected}"
                            )
                    for state in states:
                        for time in [t for t in state.candles if t <= expected]:
                            del state.candles[time]
                    yield events
                    expected += step
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            if rest is not None:
                await rest.aclose()

    async def _watch(
        self, symbol: str, state: _SymbolStream, changed: asyncio.Event
    ) -> None:
        """Records every candle update of ``symbol``; sets ``changed`` on each."""
        failures = 0
        while True:
            try:
                rows = await self.client.watch_ohlcv(symbol, self.timeframe)
            except ccxt.NetworkError as error:
                if failures == self.retries:
                    changed.set()
                    raise
                delay = min(
                    self.backoff_seconds * 2**failures, self.max_backoff_seconds
                )
                retry_after = getattr(error, "retry_after", None)
                if retry_after is not None:
                    delay = max(delay, float(retry_after))
                failures += 1
                if state.newest is not None:
                    # The candle forming at the drop may have lost its last updates.
                    state.candles.pop(state.newest, None)
                _log.warning(
                    "stream_retry",
                    symbol=symbol,
                    attempt=failures,
                    delay=delay,
                    error=f"{type(error).__name__}: {error}",
                )
                await asyncio.sleep(delay)
                continue
            except BaseException:
                changed.set()  # bars() re-raises it from this task's result
                raise
            failures = 0
            for row in rows:
                time = int(row[0])
                if time % self._step:
                    changed.set()
                    raise FeedDataError(
                        f"{symbol}: stream candle open time {time} is not on the "
                        f"{self.timeframe} grid"
                    )
                # Copied: ccxt updates its cached rows in place.
                state.candles[time] = tuple(row[1:6])
                if state.first is None:
                    state.first = time
                if state.newest is None or time > state.newest:
                    state.newest = time
            changed.set()
