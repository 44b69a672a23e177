"""A loopback HTTP server that speaks enough of Binance's spot REST API for ccxt.

It answers ``GET /api/v3/exchangeInfo``, ``/api/v3/time``, ``/api/v3/ping`` and
``/api/v3/klines`` the way api.binance.com does, with deterministic seeded candles, so
the real ``ccxt.binance`` client can be pointed at it (``point_client``). Tests inject
faults per route (HTTP errors with Retry-After, slow answers), bad candles and gaps,
and read the request log. Any other route answers 404 and is logged, so a test sees
an unexpected request.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import ccxt

INTERVAL_MILLISECONDS = {
    f"{n}{unit}": n * size
    for unit, size, counts in (
        ("m", 60_000, (1, 3, 5, 15, 30)),
        ("h", 3_600_000, (1, 2, 4, 6, 8, 12)),
        ("d", 86_400_000, (1, 3)),
    )
    for n in counts
}
BASE_PRICES = {"BTCUSDT": 30_000.0, "ETHUSDT": 2_000.0}
LISTING_MS = 1_577_836_800_000  # 2020-01-01: no candles before it.
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Fault:
    """One faulty answer: ``status`` with ``body`` (a JSON object, or plain text as
    from a proxy in front of the exchange) and maybe Retry-After; or, with ``delay``
    > 0, a normal answer that comes ``delay`` seconds late."""

    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    body: dict | str = "Service Unavailable"


@dataclass(frozen=True)
class Request:
    path: str
    params: dict[str, str]


class BinanceServer:
    """Threaded loopback Binance; use as a context manager or start()/stop().

    Args:
        now_ms: the server's clock in ms (candles exist up to it); None: real time.
        seed: changes every candle.
    """

    def __init__(self, now_ms: int | None = None, seed: int = 7):
        self.now_ms, self.seed = now_ms, seed
        self.requests: list[Request] = []
        self.gaps: list[tuple[int, int]] = []  # [start, end) without trading
        self.overrides: dict[tuple[str, str, int], dict[str, str]] = {}
        self.duplicates: dict[tuple[str, str, int], dict[str, str]] = {}
        self._faults: dict[str, deque[Fault | None]] = {}
        self._persistent: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> BinanceServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> BinanceServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def point_client(self, client: ccxt.Exchange) -> ccxt.Exchange:
        """Rewrites every ``client.urls["api"]`` base URL to this server."""
        for name, url in client.urls["api"].items():
            parts = urlsplit(url)
            client.urls["api"][name] = self.base_url + parts.path
        return client

    def queue_faults(self, route: str, faults: Iterable[Fault | None]) -> None:
        """Answers the next requests to ``route`` with ``faults`` in order (None
        answers normally), then normally again."""
        with self._lock:
            self._faults.setdefault(route, deque()).extend(faults)

    def set_persistent_fault(self, route: str, fault: Fault | None) -> None:
        """Answers every request to ``route`` that no queued fault takes with
        ``fault``; None switches it off."""
        with self._lock:
            if fault is None:
                self._persistent.pop(route, None)
            else:
                self._persistent[route] = fault

    def requests_to(self, route: str) -> list[dict[str, str]]:
        with self._lock:
            return [r.params for r in self.requests if r.path == route]

    def _next_fault(self, route: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(route)
            if queue:
                return queue.popleft()
            return self._persistent.get(route)

    def current_ms(self) -> int:
        return self.now_ms if self.now_ms is not None else time.time_ns() // 1_000_000

    def raw_kline(self, symbol: str, interval: str, open_ms: int) -> list:
        """The Binance kline row for one open time (strings as Binance sends them)."""
        step = INTERVAL_MILLISECONDS[interval]
        key = f"{self.seed}|{symbol}|{interval}|{open_ms}".encode()
        generator = random.Random(zlib.crc32(key))
        middle = BASE_PRICES[symbol] * (1 + 0.1 * math.sin(open_ms / 604_800_000))
        open_price = middle * (1 + generator.uniform(-0.01, 0.01))
        close = middle * (1 + generator.uniform(-0.01, 0.01))
        high = max(open_price, close) * (1 + generator.uniform(0, 0.005))
        low = min(open_price, close) * (1 - generator.uniform(0, 0.005))
        volume = generator.uniform(0, 100)
        values = {
            "open": f"{open_price:.2f}",
            "high": f"{high:.2f}",
            "low": f"{low:.2f}",
            "close": f"{close:.2f}",
            "volume": f"{volume:.5f}",
        }
        values.update(self.overrides.get((symbol, interval, open_ms), {}))
        return [
            open_ms,
            *values.values(),
            open_ms + step - 1,
            f"{float(values['volume']) * middle:.8f}",
            generator.randint(1, 500),
            "0",
            "0",
            "0",
        ]

    def open_times(self, interval: str, start_ms: int, end_ms: int) -> list[int]:
        """Open times in [start_ms, end_ms) that have a candle (listed, not in a
        gap, opened by the server's now)."""
        step = INTERVAL_MILLISECONDS[interval]
        first = max(start_ms, LISTING_MS)
        first = -(-first // step) * step
        last = min(end_ms, self.current_ms() + 1)
        return [
            t
            for t in range(first, last, step)
            if not any(a <= t < b for a, b in self.gaps)
        ]

    def candles(
        self, symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> list[list[float]]:
        """Expected ``[ms, open, high, low, close, volume]`` rows in [start, end)."""
        rows = []
        for t in self.open_times(interval, start_ms, end_ms):
            raw = self.raw_kline(symbol, interval, t)
            rows.append([t, *(float(v) for v in raw[1:6])])
        return rows

    def _klines(self, params: dict[str, str]) -> tuple[int, object]:
        symbol, interval = params.get("symbol"), params.get("interval")
        if symbol not in BASE_PRICES:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if interval not in INTERVAL_MILLISECONDS:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        limit = int(params.get("limit", 500))
        if not 1 <= limit <= MAX_LIMIT:
            return 400, {"code": -1130, "msg": "Invalid limit."}
        step = INTERVAL_MILLISECONDS[interval]
        end = (
            int(params["endTime"]) + 1 if "endTime" in params else self.current_ms() + 1
        )
        if "startTime" in params:
            start = max(int(params["startTime"]), LISTING_MS)
            times = []
            while start < end and len(times) < limit:
                chunk_end = min(end, start + limit * step)
                times += self.open_times(interval, start, chunk_end)
                start = chunk_end
                if start > self.current_ms():
                    break
            times = times[:limit]
        else:
            times = self.open_times(interval, end - limit * step, end)[-limit:]
        rows = []
        for t in times:
            rows.append(self.raw_kline(symbol, interval, t))
            if (symbol, interval, t) in self.duplicates:
                duplicate = self.raw_kline(symbol, interval, t)
                changes = self.duplicates[(symbol, interval, t)]
                for position, column in enumerate(("open", "high", "low", "close")):
                    duplicate[position + 1] = changes.get(
                        column, duplicate[position + 1]
                    )
                rows.append(duplicate)
        return 200, rows

    def exchange_info(self) -> dict:
        return {
            "timezone": "UTC",
            "serverTime": self.current_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                }
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_info(symbol) for symbol in BASE_PRICES],
        }

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, object]:
        if path == "/api/v3/klines":
            return self._klines(params)
        if path == "/api/v3/exchangeInfo":
            return 200, self.exchange_info()
        if path == "/api/v3/time":
            return 200, {"serverTime": self.current_ms()}
        if path == "/api/v3/ping":
            return 200, {}
        return 404, {"code": -1, "msg": f"no route {path} on this test server"}


def _symbol_info(symbol: str) -> dict:
    base = symbol.removesuffix("USDT")
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": "USDT",
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {"filterType": "NOTIONAL", "minNotional": "5.00000000"},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }


def _handler_for(server: BinanceServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query))
            with server._lock:
                server.requests.append(Request(parts.path, params))
            fault = server._next_fault(parts.path)
            status, payload = server.answer(parts.path, params)
            headers = {}
            if fault is not None and fault.delay > 0:
                time.sleep(fault.delay)
            elif fault is not None:
                status, payload = fault.status, fault.body
                if fault.retry_after is not None:
                    headers["Retry-After"] = fault.retry_after
            text = isinstance(payload, str)
            body = (payload if text else json.dumps(payload)).encode()
            try:
                self.send_response(status)
                self.send_header(
                    "Content-Type", "text/plain" if text else "application/json"
                )
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet; the request log is server.requests

    return Handler
