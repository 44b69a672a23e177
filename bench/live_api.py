"""Latency of the live API: bus event to websocket client, and ``GET /api/status``.

Run with ``python bench/live_api.py`` (about 20 seconds). The server
(``neuroflux.live.api.make_app`` behind ``serve`` on 127.0.0.1 with a bearer token)
runs in its own process, as beside a runner; the client is an aiohttp client in this
process. A bench-only route on the server publishes events on its ``EventBus``, each
stamped with ``time.perf_counter()`` just before ``bus.publish``; the client subtracts
that stamp from its own ``perf_counter()`` on receipt (Linux's CLOCK_MONOTONIC, one
clock for every process on the machine). Scenarios:

- paced: 2,000 events at 1 per ms to one client (a busy runner: bars, decisions,
  orders and fills of many symbols);
- paced x 8: the same to 8 clients at once (dashboards and monitors);
- burst: 2,000 events published in one go (a reconnect flood); each event's latency
  includes the wait behind the ones before it.

Then 1,000 sequential ``GET /api/status`` on a keep-alive connection, and 200
``GET /api/analytics`` and ``/metrics`` (the source is an AnalyticsEngine fed 500
cycles). Percentiles in ms; the target is p95 < 50 ms for events.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

import aiohttp
import numpy as np
from _machine import describe_machine
from aiohttp import web

EVENTS = 2_000
TOKEN = "bench-token"  # a loopback benchmark, not a secret
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


class _BenchSource:
    """A LiveSource over an AnalyticsEngine fed 500 cycles of a random walk."""

    def __init__(self) -> None:
        from neuroflux.live.analytics import AnalyticsEngine
        from neuroflux.live.events import Event

        self.engine = AnalyticsEngine(periods_per_year=365 * 24)
        rng = np.random.default_rng(0)
        prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (500, 4)), axis=0))
        symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT"]
        for t, row in enumerate(prices):
            data = {
                "bar_time": t * 3_600_000,
                "equity": 10_000 + row.sum(),
                "cash": 10_000.0,
                "positions": dict.fromkeys(symbols, 0.25),
                "prices": dict(zip(symbols, row, strict=True)),
                "exposure": 0.1,
                "latency_ms": 12.0,
                "breaker": "closed",
                "agents": {"trend": {"latency_ms": 3.0, "ok": True, "error": None}},
            }
            for symbol, price in zip(symbols, row, strict=True):
                self.engine.update(
                    Event(
                        kind="bar",
                        data={
                            "symbol": symbol,
                            "time": t * 3_600_000,
                            "open": price,
                            "high": price,
                            "low": price,
                            "close": price,
                            "volume": 1.0,
                        },
                    )
                )
            self.engine.update(Event(kind="cycle", data=data))

    def status(self) -> dict[str, Any]:
        return {
            "running": True,
            "mode": "paper",
            "exchange": "paper",
            "symbols": 4,
            "cycles": self.engine.snapshot()["cycles"],
        }

    def positions(self) -> list[dict[str, Any]]:
        return self.engine.snapshot()["positions"]

    def orders(self, limit: int = 100) -> list[dict[str, Any]]:
        return []

    def analytics(self) -> dict[str, Any]:
        return self.engine.snapshot()

    def request_stop(self, flatten: bool) -> None:
        pass


def _server(ports: multiprocessing.Queue) -> None:
    from neuroflux.live import api
    from neuroflux.live.events import Event, EventBus

    async def main() -> None:
        bus = EventBus()
        app = api.make_app(_BenchSource(), bus, token=TOKEN)

        async def publish(request: web.Request) -> web.Response:
            spec = await request.json()
            count, interval = spec["count"], spec["interval_ms"] / 1e3
            start = time.perf_counter()
            for sequence in range(count):
                if interval:
                    delay = start + sequence * interval - time.perf_counter()
                    await asyncio.sleep(max(delay, 0.0))
                data = {
                    "sequence": sequence,
                    "symbol": "BTC/USDT",
                    "agent": "trend",
                    "target": 0.5,
                    "latency_ms": 1.0,
                }
                data["sent"] = time.perf_counter()
                bus.publish(Event(kind="decision", data=data))
            return web.json_response({"published": count})

        async def subscribers(request: web.Request) -> web.Response:
            return web.json_response({"subscribers": bus.subscribers})

        app.router.add_post("/bench/publish", publish)
        app.router.add_get("/bench/subscribers", subscribers)
        runner = await api.serve(app, port=0, token=TOKEN)
        ports.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def _receive(socket: aiohttp.ClientWebSocketResponse, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        message = await socket.receive_json()
        latencies.append(time.perf_counter() - message["data"]["sent"])
    return latencies


async def _events(
    client: aiohttp.ClientSession, clients: int, interval_ms: float
) -> np.ndarray:
    sockets = [await client.ws_connect("/api/events") for _ in range(clients)]
    receivers = [asyncio.ensure_future(_receive(s, EVENTS)) for s in sockets]
    await client.post(
        "/bench/publish", json={"count": EVENTS, "interval_ms": interval_ms}
    )
    latencies = await asyncio.gather(*receivers)
    for socket in sockets:
        await socket.close()
    return np.concatenate(latencies) * 1e3


async def _requests(client: aiohttp.ClientSession, path: str, count: int):
    times = []
    for _ in range(count):
        start = time.perf_counter()
        async with client.get(path) as response:
            await response.read()
            assert response.status == 200, response.status
        times.append(time.perf_counter() - start)
    return np.asarray(times) * 1e3


def _row(name: str, milliseconds: np.ndarray) -> str:
    p50, p95, p99 = np.percentile(milliseconds, [50, 95, 99])
    return (
        f"{name:<34} {milliseconds.size:>7} {p50:>8.2f} {p95:>8.2f} {p99:>8.2f} "
        f"{milliseconds.max():>8.2f}"
    )


async def _measure(port: int) -> None:
    async with aiohttp.ClientSession(
        f"http://127.0.0.1:{port}", headers=HEADERS
    ) as client:
        await _events(client, 1, 1.0)  # warm-up: imports, first connections
        print(
            f"{'scenario':<34} {'samples':>7} {'p50':>8} {'p95':>8} {'p99':>8} "
            f"{'max':>8}   (ms)"
        )
        print(_row("event, 1 per ms, 1 client", await _events(client, 1, 1.0)))
        print(_row("event, 1 per ms, 8 clients", await _events(client, 8, 1.0)))
        print(_row("event, burst of 2,000, 1 client", await _events(client, 1, 0.0)))
        print(_row("GET /api/status", await _requests(client, "/api/status", 1_000)))
        print(
            _row("GET /api/analytics", await _requests(client, "/api/analytics", 200))
        )
        print(_row("GET /metrics", await _requests(client, "/metrics", 200)))


def main() -> None:
    print(describe_machine(aiohttp=aiohttp.__version__))
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    server = context.Process(target=_server, args=(ports,), daemon=True)
    server.start()
    try:
        asyncio.run(_measure(ports.get(timeout=120)))
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
