"""CcxtStreamFeed against a loopback websocket speaking Binance's kline streams.

The real ``ccxt.pro.binance`` client loads markets from the loopback REST Binance
(``binance_server.py``) and subscribes on the loopback kline websocket of
``kline_stream.py``: several updates per candle, then the next candle, for two
symbols.
"""

from __future__ import annotations

import asyncio

import pytest
from kline_stream import (
    MARKET_IDS,
    SYMBOLS,
    UPDATES_PER_CANDLE,
    KlineStream,
    candle_values,
    stream_client,
)

from neuroflux.live.streams import CcxtStreamFeed

MINUTE = 60_000


async def _collect(feed: CcxtStreamFeed, after: int | None, count: int) -> list:
    """``count`` tuples, then checks that no further bar closes."""
    bars = feed.bars(after)
    try:
        collected = [await asyncio.wait_for(anext(bars), 5) for _ in range(count)]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(bars), 0.3)
        return collected
    finally:
        await bars.aclose()


def _check_stream_bars(bars: list, times: list[int]) -> None:
    assert [events[0].time for events in bars] == times
    for events in bars:
        assert [event.symbol for event in events] == list(SYMBOLS)
        for event in events:
            final = candle_values(event.symbol, event.time, UPDATES_PER_CANDLE - 1)
            assert (event.open, event.high, event.low, event.close, event.volume) == (
                final
            )


def test_stream_feed_yields_closed_candles_after(live_binance_server) -> None:
    server = live_binance_server
    first = (server.now_ms // MINUTE - 3) * MINUTE

    async def run(after: int | None, count: int) -> tuple[list, list]:
        async with KlineStream(first, 7) as stream:
            client = stream_client(server.base_url, stream.url)
            try:
                feed = CcxtStreamFeed(client, SYMBOLS, "1m")
                return await _collect(feed, after, count), stream.subscriptions
            finally:
                await client.close()

    async def session() -> tuple[list, list, list]:
        everything, subscriptions = await run(None, 6)
        later, _ = await run(first + 2 * MINUTE, 3)
        return everything, later, subscriptions

    everything, later, subscriptions = asyncio.run(session())
    _check_stream_bars(everything, [first + n * MINUTE for n in range(6)])
    _check_stream_bars(later, [first + n * MINUTE for n in range(3, 6)])
    assert sorted(p for params in subscriptions for p in params) == [
        "btcusdt@kline_1m",
        "ethusdt@kline_1m",
    ]


def test_stream_feed_backfills_a_restart_from_rest(live_binance_server) -> None:
    server = live_binance_server
    first = server.now_ms // MINUTE * MINUTE  # the stream starts with the open bar
    after = first - 10 * MINUTE

    async def session() -> list:
        async with KlineStream(first, 4) as stream:
            client = stream_client(server.base_url, stream.url)
            try:
                feed = CcxtStreamFeed(client, SYMBOLS, "1m", backoff_seconds=0.01)
                return await _collect(feed, after, 12)
            finally:
                await client.close()

    bars = asyncio.run(session())
    times = [events[0].time for events in bars]
    assert times == [after + n * MINUTE for n in range(1, 13)]
    for events in bars[:9]:  # from REST: the server's candles
        for event in events:
            (row,) = server.candles(
                MARKET_IDS[event.symbol], "1m", event.time, event.time + 1
            )
            assert [event.open, event.high, event.low, event.close] == row[1:5]
    _check_stream_bars(bars[9:], [first + n * MINUTE for n in range(3)])
    assert len(server.requests_to("/api/v3/klines")) == 2  # one page per symbol


def test_stream_feed_fills_a_reconnect_hole_from_rest(live_binance_server) -> None:
    server = live_binance_server
    first = (server.now_ms // MINUTE - 8) * MINUTE  # REST has closed first + 7
    drop = (first + 3 * MINUTE, first + 5 * MINUTE)

    async def session() -> tuple[list, int]:
        async with KlineStream(first, 9, drop=drop) as stream:
            client = stream_client(server.base_url, stream.url)
            try:
                feed = CcxtStreamFeed(client, SYMBOLS, "1m", backoff_seconds=0.01)
                return await _collect(feed, None, 8), stream.connections
            finally:
                await client.close()

    bars, connections = asyncio.run(session())
    assert connections == 2
    assert [events[0].time for events in bars] == [first + n * MINUTE for n in range(8)]
    _check_stream_bars(bars[:3], [first + n * MINUTE for n in range(3)])
    for events in bars[3:5]:  # the hole, and the candle cut short, from REST
        for event in events:
            (row,) = server.candles(
                MARKET_IDS[event.symbol], "1m", event.time, event.time + 1
            )
            assert [event.open, event.high, event.low, event.close] == row[1:5]
    _check_stream_bars(bars[5:], [first + n * MINUTE for n in range(5, 8)])


def test_stream_feed_refuses_weeks(live_binance_server) -> None:
    async def build() -> None:
        client = stream_client(live_binance_server.base_url, "ws://127.0.0.1:9")
        try:
            with pytest.raises(ValueError, match="timeframe '1w' is not supported"):
                CcxtStreamFeed(client, SYMBOLS, "1w")
        finally:
            await client.close()

    asyncio.run(build())
