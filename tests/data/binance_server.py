"""A loopback HTTP server that speaks enough of Binance's spot REST API for ccxt.

It answers ``GET /api/v3/exchangeInfo``, ``/api/v3/time``, ``/api/v3/ping`` and
``/api/v3/klines`` the way api.binance.com does, with deterministic seeded candles, so
the real ``ccxt.binance`` client can be pointed at it (``point_client``). Tests inject
faults per route (HTTP errors with Retry-After, slow answers), bad candles and gaps,
and read the request log. Any other route answers 404 and is logged, so a test sees
an unexpected request.

It also trades: the signed spot routes ``POST/GET/DELETE /api/v3/order``,
``GET /api/v3/openOrders``, ``/api/v3/account`` and ``/api/v3/myTrades`` (any
signature is accepted, the ``X-MBX-APIKEY`` header is required). MARKET orders fill
at ``set_price`` (default: the close of the current 1m candle) with a commission in
the quote asset, against balances the test funds with ``set_balances``; a
``newClientOrderId`` used before (by any order, ever) is refused as Binance refuses a
duplicate. ``partial_fill(fraction)`` leaves the rest of the next orders open until
``fill_open_orders()`` or a cancel. Faults may be keyed by path or by
``"METHOD path"``; besides Binance's answers they can book the order and then answer
an error (``Fault(500, accept=True)``: Binance's "execution status unknown") or close
the connection without answering (``Fault(drop=True)``), and ``random_faults`` draws
them at a seeded rate. ``orders`` (by client id) is what the exchange booked.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import ccxt

INTERVAL_MILLISECONDS = {
    f"{n}{unit}": n * size
    for unit, size, counts in (
        ("s", 1_000, (1,)),
        ("m", 60_000, (1, 3, 5, 15, 30)),
        ("h", 3_600_000, (1, 2, 4, 6, 8, 12)),
        ("d", 86_400_000, (1, 3)),
    )
    for n in counts
}
BASE_PRICES = {"BTCUSDT": 30_000.0, "ETHUSDT": 2_000.0}
LISTING_MS = 1_577_836_800_000  # 2020-01-01: no candles before it.
MAX_LIMIT = 1000
COMMISSION_RATE = Decimal("0.001")  # taker, charged in the quote asset
QUANTUM = Decimal("0.00000001")
SIGNED_ROUTES = frozenset(
    {"/api/v3/order", "/api/v3/openOrders", "/api/v3/account", "/api/v3/myTrades"}
)
UNKNOWN_ORDER = {"code": -2013, "msg": "Order does not exist."}


@dataclass(frozen=True)
class Fault:
    """One faulty answer: ``status`` with ``body`` (a JSON object, or plain text as
    from a proxy in front of the exchange) and maybe Retry-After; or, with ``delay``
    > 0, a normal answer that comes ``delay`` seconds late (an order it places is
    booked). ``accept``: the request takes effect before the error is answered.
    ``drop``: the request takes effect, then the connection closes unanswered."""

    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    body: dict | str = "Service Unavailable"
    accept: bool = False
    drop: bool = False


# The faults ``random_faults`` draws from, by kind.
RANDOM_FAULTS = {
    "timeout": Fault(delay=1.0),
    "500": Fault(500, body="Internal Server Error", accept=True),
    "503": Fault(503),
    "429": Fault(
        429, retry_after="0", body={"code": -1003, "msg": "Too many requests."}
    ),
    "drop": Fault(drop=True),
}


@dataclass(frozen=True)
class Request:
    """One request as received; ``query`` and ``body`` are the raw strings as sent
    (what a signature covers), ``params`` both of them parsed."""

    path: str
    params: dict[str, str]
    method: str = "GET"
    query: str = ""
    body: str = ""


@dataclass
class _RandomFaults:
    rate: float
    generator: random.Random
    faults: dict[str, Fault]
    counts: Counter = field(default_factory=Counter)


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
        self._random: dict[str, _RandomFaults] = {}
        self.orders: dict[str, dict] = {}  # Binance order objects by clientOrderId
        self.trades: list[dict] = []  # myTrades rows
        self.balances: dict[str, Decimal] = {}
        self.prices: dict[str, Decimal] = {}
        self.fill_fraction: Decimal | None = None
        self.api_keys: set[str] = set()  # every X-MBX-APIKEY header seen
        self._lock = threading.RLock()
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

    def random_faults(
        self,
        route: str,
        rate: float,
        seed: int,
        kinds: Iterable[str] = tuple(RANDOM_FAULTS),
        *,
        timeout_delay: float = 1.0,
    ) -> None:
        """Answers a seeded ``rate`` of the requests to ``route`` that no queued or
        persistent fault takes with a fault of one of ``kinds`` (keys of
        ``RANDOM_FAULTS``), drawn uniformly; timeouts answer ``timeout_delay`` s
        late. ``fault_counts(route)`` tells what was injected."""
        faults = {kind: RANDOM_FAULTS[kind] for kind in kinds}
        if "timeout" in faults:
            faults["timeout"] = Fault(delay=timeout_delay)
        with self._lock:
            self._random[route] = _RandomFaults(rate, random.Random(seed), faults)

    def fault_counts(self, route: str) -> dict[str, int]:
        with self._lock:
            chosen = self._random.get(route)
            return dict(chosen.counts) if chosen else {}

    def requests_to(
        self, route: str, method: str | None = None
    ) -> list[dict[str, str]]:
        with self._lock:
            return [
                r.params
                for r in self.requests
                if r.path == route and method in (None, r.method)
            ]

    def _next_fault(self, route: str, method: str = "GET") -> Fault | None:
        with self._lock:
            for key in (f"{method} {route}", route):
                queue = self._faults.get(key)
                if queue:
                    return queue.popleft()
            for key in (f"{method} {route}", route):
                if key in self._persistent:
                    return self._persistent[key]
            for key in (f"{method} {route}", route):
                chosen = self._random.get(key)
                if chosen and chosen.generator.random() < chosen.rate:
                    kind = chosen.generator.choice(sorted(chosen.faults))
                    chosen.counts[kind] += 1
                    return chosen.faults[kind]
            return None

    def set_balances(self, balances: dict[str, float | str]) -> None:
        """Sets the free balance of each asset named (others keep theirs)."""
        with self._lock:
            for asset, amount in balances.items():
                self.balances[asset] = Decimal(str(amount))

    def set_price(self, symbol: str, price: float | str | None) -> None:
        """Market orders on ``symbol`` fill at ``price``; None: the candle close."""
        with self._lock:
            if price is None:
                self.prices.pop(symbol, None)
            else:
                self.prices[symbol] = Decimal(str(price))

    def partial_fill(self, fraction: float | None) -> None:
        """The next market orders fill only ``fraction`` of their quantity (the rest
        stays open); None: they fill completely again."""
        with self._lock:
            self.fill_fraction = None if fraction is None else Decimal(str(fraction))

    def fill_open_orders(self) -> None:
        """Fills what remains of every open order at the current price."""
        with self._lock:
            for order in self.orders.values():
                if order["status"] in ("NEW", "PARTIALLY_FILLED"):
                    rest = Decimal(order["origQty"]) - Decimal(order["executedQty"])
                    self._execute(order, rest)

    def price(self, symbol: str) -> Decimal:
        if symbol in self.prices:
            return self.prices[symbol]
        minute = self.current_ms() // 60_000 * 60_000
        return Decimal(self.raw_kline(symbol, "1m", minute)[4])

    def _execute(self, order: dict, quantity: Decimal) -> None:
        """Fills ``quantity`` of ``order`` at the current price, moving balances."""
        symbol, now = order["symbol"], self.current_ms()
        price = self.price(symbol)
        quote = (quantity * price).quantize(QUANTUM)
        commission = (quote * COMMISSION_RATE).quantize(QUANTUM)
        base_asset = symbol.removesuffix("USDT")
        sign = 1 if order["side"] == "BUY" else -1
        self.balances[base_asset] = self.balances.get(base_asset, Decimal(0)) + (
            sign * quantity
        )
        self.balances["USDT"] = (
            self.balances.get("USDT", Decimal(0)) - sign * quote - commission
        )
        executed = Decimal(order["executedQty"]) + quantity
        order["executedQty"] = f"{executed:.8f}"
        total_quote = Decimal(order["cummulativeQuoteQty"]) + quote
        order["cummulativeQuoteQty"] = f"{total_quote:.8f}"
        filled = executed == Decimal(order["origQty"])
        order["status"] = "FILLED" if filled else "PARTIALLY_FILLED"
        order["updateTime"] = now
        self.trades.append(
            {
                "symbol": symbol,
                "id": len(self.trades) + 1,
                "orderId": order["orderId"],
                "orderListId": -1,
                "price": f"{price:.8f}",
                "qty": f"{quantity:.8f}",
                "quoteQty": f"{quote:.8f}",
                "commission": f"{commission:.8f}",
                "commissionAsset": "USDT",
                "time": now,
                "isBuyer": order["side"] == "BUY",
                "isMaker": False,
                "isBestMatch": True,
            }
        )

    def _find_order(self, params: dict[str, str]) -> dict | None:
        if "origClientOrderId" in params:
            order = self.orders.get(params["origClientOrderId"])
        else:
            order = next(
                (
                    o
                    for o in self.orders.values()
                    if str(o["orderId"]) == params.get("orderId")
                ),
                None,
            )
        if order is None or order["symbol"] != params.get("symbol"):
            return None
        return order

    def _place(self, params: dict[str, str]) -> tuple[int, object]:
        symbol, side = params.get("symbol"), params.get("side")
        client_id = params.get("newClientOrderId")
        if symbol not in BASE_PRICES:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if params.get("type") != "MARKET" or side not in ("BUY", "SELL"):
            return 400, {"code": -1116, "msg": "Invalid orderType."}
        if not client_id:
            return 400, {"code": -1102, "msg": "newClientOrderId is required here."}
        if client_id in self.orders:
            return 400, {"code": -2010, "msg": "Duplicate order sent."}
        quantity = Decimal(params.get("quantity", "0"))
        if quantity <= 0:
            return 400, {"code": -1013, "msg": "Invalid quantity."}
        price, base_asset = self.price(symbol), symbol.removesuffix("USDT")
        cost = quantity * price * (1 + COMMISSION_RATE)
        if (side == "BUY" and self.balances.get("USDT", Decimal(0)) < cost) or (
            side == "SELL" and self.balances.get(base_asset, Decimal(0)) < quantity
        ):
            return 400, {
                "code": -2010,
                "msg": "Account has insufficient balance for requested action.",
            }
        now = self.current_ms()
        order = {
            "symbol": symbol,
            "orderId": len(self.orders) + 1,
            "orderListId": -1,
            "clientOrderId": client_id,
            "price": "0.00000000",
            "origQty": f"{quantity:.8f}",
            "executedQty": "0.00000000",
            "cummulativeQuoteQty": "0.00000000",
            "status": "NEW",
            "timeInForce": "GTC",
            "type": "MARKET",
            "side": side,
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": now,
            "updateTime": now,
            "isWorking": True,
            "workingTime": now,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        self.orders[client_id] = order
        first_trade = len(self.trades)
        fraction = self.fill_fraction if self.fill_fraction is not None else 1
        self._execute(order, (quantity * fraction).quantize(QUANTUM))
        fills = [
            {
                "price": t["price"],
                "qty": t["qty"],
                "commission": t["commission"],
                "commissionAsset": t["commissionAsset"],
                "tradeId": t["id"],
            }
            for t in self.trades[first_trade:]
        ]
        answer = {key: order[key] for key in order if key not in ("time", "isWorking")}
        return 200, {**answer, "transactTime": now, "fills": fills}

    def _trade(
        self, method: str, path: str, params: dict[str, str]
    ) -> tuple[int, object]:
        with self._lock:
            if (method, path) == ("POST", "/api/v3/order"):
                return self._place(params)
            if path == "/api/v3/order" and method in ("GET", "DELETE"):
                order = self._find_order(params)
                if order is None:
                    return 400, (
                        UNKNOWN_ORDER
                        if method == "GET"
                        else {"code": -2011, "msg": "Unknown order sent."}
                    )
                if method == "GET":
                    return 200, dict(order)
                if order["status"] not in ("NEW", "PARTIALLY_FILLED"):
                    return 400, {"code": -2011, "msg": "Unknown order sent."}
                order["status"], order["updateTime"] = "CANCELED", self.current_ms()
                canceled = {**order, "origClientOrderId": order["clientOrderId"]}
                canceled["clientOrderId"] = f"cancel{order['orderId']}"
                return 200, canceled
            if (method, path) == ("GET", "/api/v3/openOrders"):
                return 200, [
                    dict(o)
                    for o in self.orders.values()
                    if o["status"] in ("NEW", "PARTIALLY_FILLED")
                    and params.get("symbol", o["symbol"]) == o["symbol"]
                ]
            if (method, path) == ("GET", "/api/v3/account"):
                return 200, self._account()
            if (method, path) == ("GET", "/api/v3/myTrades"):
                return 200, [
                    t
                    for t in self.trades
                    if t["symbol"] == params.get("symbol")
                    and str(t["orderId"]) == params.get("orderId", str(t["orderId"]))
                ]
            return 405, {"code": -1, "msg": f"no {method} {path} on this test server"}

    def _account(self) -> dict:
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "updateTime": self.current_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": asset, "free": f"{amount:.8f}", "locked": "0.00000000"}
                for asset, amount in sorted(self.balances.items())
            ],
            "permissions": ["SPOT"],
        }

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

    def answer(
        self, path: str, params: dict[str, str], method: str = "GET"
    ) -> tuple[int, object]:
        if path in SIGNED_ROUTES:
            return self._trade(method, path, params)
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
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query))
            length = int(self.headers.get("Content-Length") or 0)
            sent = self.rfile.read(length).decode() if length else ""
            params.update(parse_qsl(sent))
            with server._lock:
                server.requests.append(
                    Request(parts.path, params, method, parts.query, sent)
                )
            fault = server._next_fault(parts.path, method)
            api_key = self.headers.get("X-MBX-APIKEY")
            if api_key:
                with server._lock:
                    server.api_keys.add(api_key)
            if parts.path in SIGNED_ROUTES and not api_key:
                status, payload = 401, {"code": -2014, "msg": "API-key format invalid."}
            elif fault is None or fault.delay > 0 or fault.accept or fault.drop:
                status, payload = server.answer(parts.path, params, method)
            headers = {}
            if fault is not None and fault.drop:
                self.close_connection = True
                return  # the request took effect; the client never hears of it
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
