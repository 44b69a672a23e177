"""CcxtStreamFeed against a loopback websocket speaking Binance's kline streams.

The real ``ccxt.pro.binance`` client loads markets from the loopback REST Binance
(``binance_server.py``) and subscribes on a loopback aiohttp websocket that answers
``SUBSCRIBE`` as Binance does and pushes ``kline`` events: several updates per
candle, then the next candle, for two symbols. The websocket path holds ``/stream``
because ccxt tells spot from futures kline connections by that part of the URL.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import ccxt.pro
import pytest
from aiohttp import WSMsgType, web

from neuroflux.live.streams import CcxtStreamFeed

SYMBOLS = ("BTC/USDT", "ETH/USDT")
MARKET_IDS = {"BTC/USDT": "BTCUSDT", "ETH/USDT": "ETHUSDT"}
MINUTE = 60_000
UPDATES_PER_CANDLE = 3


def _values(symbol: str, time: int, update: int) -> tuple[float, ...]:
    """Candle values after ``update`` (the last update's are the final ones)."""
    base = 30_000.0 if symbol == "BTC/USDT" else 2_000.0
    shift = (time // MINUTE) % 97
    open_ = base + shift
    close = open_ + update + 0.5
    return (open_, close + 2.0, open_ - 1.0 - update, close, 10.0 + update)


def _kline(symbol: str, time: int, update: int) -> dict:
    open_, high, low, close, volume = _values(symbol, time, update)
    market_id = MARKET_IDS[symbol]
    return {
        "e": "kline",
        "E": time + 1000 * update,
        "s": market_id,
        "k": {
            "t": time,
            "T": time + MINUTE - 1,
            "s": market_id,
            "i": "1m",
            "o": str(open_),
            "c": str(close),
            "h": str(high),
            "l": str(low),
            "v": str(volume),
            "n": update + 1,
            "x": update == UPDATES_PER_CANDLE - 1,
        },
    }


class KlineStream:
    """Loopback Binance kline websocket: candles ``first .. first + count`` (the
    last stays open, re-sent until the client leaves)."""

    def __init__(self, first: int, count: int, drop: tuple[int, int] | None = None):
        self.first, self.count = first, count
        # (candle, resume): the first connection closes after the first update of
        # ``candle``; the next starts at ``resume``.
        self.drop = drop
        self.connections = 0
        self.subscriptions: list[list[str]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> KlineStream:
        app = web.Application()
        app.router.add_get("/stream/ws/{index}", self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/stream/ws"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        wanted = {f"{market.lower()}@kline_1m" for market in MARKET_IDS.values()}
        streams: set[str] = set()
        while streams != wanted:
            message = await socket.receive()
            if message.type != WSMsgType.TEXT:
                return socket
            subscribe = json.loads(message.data)
            assert subscribe["method"] == "SUBSCRIBE"
            self.subscriptions.append(subscribe["params"])
            streams.update(subscribe["params"])
            await socket.send_json({"result": None, "id": subscribe["id"]})
        self.connections += 1
        start = self.first
        if self.drop is not None and self.connections > 1:
            start = self.drop[1]
        last = self.first + (self.count - 1) * MINUTE
        for time in range(start, last, MINUTE):
            for update in range(UPDATES_PER_CANDLE):
                for symbol in SYMBOLS:
                    await socket.send_json(_kline(symbol, time, update))
                await asyncio.sleep(0.002)
                if self.drop and self.connections == 1 and time == self.drop[0]:
                    await socket.close()
                    return socket
        while True:  # the forming candle never closes
            for symbol in SYMBOLS:
                await socket.send_json(_kline(symbol, last, 0))
            try:  # receiving also answers the client's close frame
                message = await socket.receive(timeout=0.02)
            except TimeoutError:
                continue
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                return socket


def _client(rest_url: str, ws_url: str) -> ccxt.pro.binance:
    client = ccxt.pro.binance(
        {
            "enableRateLimit": False,
            "timeout": 5000,
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
        }
    )
    for name, url in client.urls["api"].items():
        if isinstance(url, str):  # REST bases; "ws" is the websocket table
            client.urls["api"][name] = rest_url + urlsplit(url).path
    client.urls["api"]["ws"] = {"spot": ws_url, "margin": ws_url}
    return client


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
            final = _values(event.symbol, event.time, UPDATES_PER_CANDLE - 1)
            assert (event.open, event.high, event.low, event.close, event.volume) == (
                final
            )


def test_stream_feed_yields_closed_candles_after(live_binance_server) -> None:
    server = live_binance_server
    first = (server.now_ms // MINUTE - 3) * MINUTE

    async def run(after: int | None, count: int) -> tuple[list, list]:
        async with KlineStream(first, 7) as stream:
            client = _client(server.base_url, stream.url)
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
            client = _client(server.base_url, stream.url)
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
            client = _client(server.base_url, stream.url)
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
