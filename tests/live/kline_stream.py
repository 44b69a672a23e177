"""A loopback websocket speaking Binance's kline streams, for a real ccxt.pro client.

:class:`KlineStream` answers ``SUBSCRIBE`` as Binance does and pushes ``kline``
events: several updates per candle, then the next candle, for each symbol. Its base
URL (``stream.url``, for ``make_market_data_client(stream_url=...)``) ends in
``/stream`` because ccxt tells spot from futures kline connections by that part of
the URL. Candle values are :func:`candle_values` (the last update's are final).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import WSMsgType, web

from neuroflux.live.ccxt_exchange import make_market_data_client
from neuroflux.live.feeds import timeframe_milliseconds

__all__ = [
    "MARKET_IDS",
    "SYMBOLS",
    "UPDATES_PER_CANDLE",
    "KlineStream",
    "candle_values",
    "stream_client",
]

SYMBOLS = ("BTC/USDT", "ETH/USDT")
MARKET_IDS = {"BTC/USDT": "BTCUSDT", "ETH/USDT": "ETHUSDT"}
UPDATES_PER_CANDLE = 3


def candle_values(
    symbol: str, time: int, update: int, interval: str = "1m"
) -> tuple[float, ...]:
    """Candle values after ``update`` (the last update's are the final ones)."""
    base = 30_000.0 if symbol == "BTC/USDT" else 2_000.0
    shift = (time // timeframe_milliseconds(interval)) % 97
    open_ = base + shift
    close = open_ + update + 0.5
    return (open_, close + 2.0, open_ - 1.0 - update, close, 10.0 + update)


def _kline(symbol: str, time: int, update: int, interval: str) -> dict:
    open_, high, low, close, volume = candle_values(symbol, time, update, interval)
    market_id = MARKET_IDS[symbol]
    return {
        "e": "kline",
        "E": time + 1000 * update,
        "s": market_id,
        "k": {
            "t": time,
            "T": time + timeframe_milliseconds(interval) - 1,
            "s": market_id,
            "i": interval,
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
    """Loopback Binance kline websocket: ``interval`` candles ``first .. first +
    count`` of ``symbols`` (the last stays open, re-sent until the client leaves).
    ``first`` and ``count`` may be set after start, before a client connects."""

    def __init__(
        self,
        first: int,
        count: int,
        *,
        interval: str = "1m",
        symbols: tuple[str, ...] = SYMBOLS,
        drop: tuple[int, int] | None = None,
    ):
        self.first, self.count = first, count
        self.interval, self.symbols = interval, symbols
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
        self.url = f"ws://127.0.0.1:{port}/stream"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        wanted = {
            f"{MARKET_IDS[symbol].lower()}@kline_{self.interval}"
            for symbol in self.symbols
        }
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
        step = timeframe_milliseconds(self.interval)
        self.connections += 1
        start = self.first
        if self.drop is not None and self.connections > 1:
            start = self.drop[1]
        last = self.first + (self.count - 1) * step
        for time in range(start, last, step):
            for update in range(UPDATES_PER_CANDLE):
                for symbol in self.symbols:
                    await socket.send_json(_kline(symbol, time, update, self.interval))
                await asyncio.sleep(0.002)
                if self.drop and self.connections == 1 and time == self.drop[0]:
                    await socket.close()
                    return socket
        while True:  # the forming candle never closes
            for symbol in self.symbols:
                await socket.send_json(_kline(symbol, last, 0, self.interval))
            try:  # receiving also answers the client's close frame
                message = await socket.receive(timeout=0.02)
            except TimeoutError:
                continue
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                return socket


def stream_client(rest_url: str, stream_url: str):
    """A ``ccxt.pro.binance`` client on the loopback REST Binance and stream."""
    return make_market_data_client(
        "binance",
        api_url=rest_url,
        streams=True,
        stream_url=stream_url,
        timeout_ms=5000,
        rate_limit=False,
    )
