"""The live HTTP API on a real loopback server over an AnalyticsEngine-fed source."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import jsonschema
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from neuroflux.live import api
from neuroflux.live.analytics import AnalyticsEngine
from neuroflux.live.events import Event, EventBus

# 30 daily S&P 500 closes (arch's sp500 sample, 2008-09-02 to 2008-10-13).
CLOSES = np.array(
    [
        1277.58,
        1274.98,
        1236.83,
        1242.31,
        1267.79,
        1224.51,
        1232.04,
        1249.05,
        1251.70,
        1192.70,
        1213.60,
        1156.39,
        1206.51,
        1255.08,
        1207.09,
        1188.22,
        1185.87,
        1209.18,
        1213.27,
        1106.39,
        1166.36,
        1161.06,
        1114.28,
        1099.23,
        1056.89,
        996.23,
        984.94,
        909.92,
        899.22,
        1003.35,
    ]
)


class ReplaySource:
    """A LiveSource that replays a book holding 2 units of the index."""

    def __init__(self) -> None:
        self.engine = AnalyticsEngine(periods_per_year=252, window=20)
        self.order_log: list[dict[str, Any]] = []
        self.stops: list[bool] = []
        day = 86_400_000
        for t, close in enumerate(CLOSES):
            bar = {
                "symbol": "SPX",
                "time": t * day,
                "open": close,
                "high": close,
                "low": close,
                "close": close,
                "volume": 1.0,
            }
            self.engine.update(Event(kind="bar", data=bar))
            order = {
                "client_order_id": f"o{t}",
                "symbol": "SPX",
                "side": "buy",
                "amount": 0.1,
                "status": "closed" if t % 3 else "canceled",
                "filled": 0.1,
                "average": float("nan"),
            }
            self.order_log.append(order)
            self.engine.update(Event(kind="order", data=order))
            decision = {
                "symbol": "SPX",
                "agent": "trend",
                "target": 1.0,
                "latency_ms": 5.0,
            }
            self.engine.update(Event(kind="decision", data=decision))
            agents = {"trend": {"latency_ms": 5.0, "ok": True, "error": None}}
            self.engine.update(
                Event(
                    kind="cycle",
                    data={
                        "bar_time": t * day,
                        "equity": 1_000.0 + 2 * close,
                        "cash": 1_000.0,
                        "positions": {"SPX": 2.0},
                        "prices": {"SPX": close},
                        "exposure": 0.0,
                        "latency_ms": 10.0 + t,
                        "agents": agents,
                        "breaker": "WARNING",
                    },
                )
            )

    def status(self) -> dict[str, Any]:
        return {"running": not self.stops, "mode": "paper"}

    def positions(self) -> list[dict[str, Any]]:
        return self.engine.snapshot()["positions"]

    def orders(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.order_log[::-1][:limit]

    def analytics(self) -> dict[str, Any]:
        return self.engine.snapshot()

    def request_stop(self, flatten: bool) -> None:
        self.stops.append(flatten)


async def _start(source: ReplaySource, bus: EventBus, token: str | None = None):
    app = api.make_app(source, bus, token=token)
    runner = await api.serve(app, port=0, token=token)
    host, port = runner.addresses[0][:2]
    return app, runner, f"http://{host}:{port}"


def _metrics(text: str) -> dict[tuple[str, tuple], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return values


def _check_schema(path: str, method: str, status: int, body: Any) -> None:
    """``body`` against the schema OPENAPI documents (JSON Schema 2020-12)."""
    responses = api.OPENAPI["paths"][path][method]["responses"]
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    root = {**schema, "components": api.OPENAPI["components"]}
    jsonschema.Draft202012Validator(root).validate(body)


def test_every_route_metrics_and_event_stream() -> None:
    async def scenario() -> None:
        source, bus = ReplaySource(), EventBus()
        app, runner, base = await _start(source, bus)
        snapshot = json.loads(json.dumps(source.engine.snapshot(), allow_nan=False))
        async with aiohttp.ClientSession(base) as client:
            for path in (
                "/health",
                "/api/status",
                "/api/positions",
                "/api/orders",
                "/api/analytics",
            ):
                async with client.get(path) as response:
                    _check_schema(path, "get", response.status, await response.json())
            async with client.get("/health") as response:
                assert (await response.json())["status"] == "ok"
            async with client.get("/api/status") as response:
                assert await response.json() == {"running": True, "mode": "paper"}
            async with client.get("/api/positions") as response:
                assert await response.json() == snapshot["positions"]
            async with client.get("/api/orders", params={"limit": "3"}) as response:
                orders = await response.json()
                assert [order["client_order_id"] for order in orders] == [
                    "o29",
                    "o28",
                    "o27",
                ]
                assert orders[0]["average"] is None  # NaN goes out as null
            for bad in ("0", "x", "10001"):
                async with client.get("/api/orders", params={"limit": bad}) as reply:
                    assert reply.status == 400
                    assert "limit" in (await reply.json())["error"]
            async with client.get("/api/analytics") as response:
                assert await response.json() == snapshot
            async with client.post("/api/stop", json={"flatten": "yes"}) as reply:
                assert reply.status == 400
            async with client.post("/api/stop", json={"flatten": True}) as reply:
                _check_schema("/api/stop", "post", reply.status, await reply.json())
            assert source.stops == [True]

            async with client.get("/metrics") as response:
                assert response.status == 200
                metrics = _metrics(await response.text())
            assert metrics["neuroflux_live_equity", ()] == snapshot["equity"]
            assert metrics["neuroflux_live_pnl", ()] == snapshot["pnl"]
            assert metrics["neuroflux_live_drawdown_ratio", ()] == snapshot["drawdown"]
            assert metrics["neuroflux_live_sharpe_ratio", ()] == snapshot["sharpe"]
            assert metrics["neuroflux_live_running", ()] == 0.0  # stop requested
            assert metrics["neuroflux_live_cycles_total", ()] == 30
            assert metrics["neuroflux_live_fills_total", ()] == 0
            assert (
                metrics["neuroflux_live_exposure_ratio", (("kind", "gross"),)]
                == (snapshot["exposure"]["gross"])
            )
            assert metrics["neuroflux_live_position_units", (("symbol", "SPX"),)] == 2.0
            assert metrics["neuroflux_live_orders", (("status", "canceled"),)] == 10
            assert metrics["neuroflux_live_orders", (("status", "closed"),)] == 20
            assert metrics[
                "neuroflux_live_cycle_latency_seconds", (("quantile", "0.99"),)
            ] == pytest.approx(np.percentile(10.0 + np.arange(30), 99) / 1e3)
            assert metrics["neuroflux_live_breaker_state", ()] == 1.0
            for state, value in api.BREAKER_STATES.items():
                key = ("neuroflux_live_breaker", (("neuroflux_live_breaker", state),))
                assert metrics[key] == float(value == 1)  # WARNING
            assert metrics["neuroflux_live_agent_health", (("agent", "trend"),)] == 1.0

            async with client.get("/openapi.json") as response:
                document = await response.json()
            routes = {
                (route.method.lower(), route.resource.canonical)
                for route in app.router.routes()
            }
            documented = {
                (method, path)
                for path, operations in document["paths"].items()
                for method in operations
            }
            assert routes == documented and len(routes) == 10
            assert document["openapi"] == "3.1.0"
            async with client.get("/docs") as response:
                page = await response.text()
                assert all(path in page for _, path in routes)
                assert "<script" not in page and "https://" not in page

            async with client.ws_connect("/api/events") as socket:
                events = [
                    Event(
                        kind="decision",
                        data={
                            "symbol": "SPX",
                            "agent": "trend",
                            "target": i / 500,
                            "latency_ms": 1.0,
                        },
                    )
                    for i in range(500)
                ]
                for i, event in enumerate(events):
                    bus.publish(event)
                    if i % 50 == 0:
                        await asyncio.sleep(0)
                received = [await socket.receive_json() for _ in events]
                assert received == [event.to_json() for event in events]
                event_schema = {
                    "$ref": "#/components/schemas/Event",
                    "components": api.OPENAPI["components"],
                }
                jsonschema.Draft202012Validator(event_schema).validate(received[0])
            # A plain GET (no websocket upgrade) is refused and leaves no subscriber.
            async with client.get("/api/events") as response:
                assert response.status >= 400
            assert bus.subscribers == 0
        await runner.cleanup()
        assert bus.subscribers == 0

    asyncio.run(scenario())


def test_token_slow_client_and_loopback_rule() -> None:
    async def scenario() -> None:
        token = "test-token"
        source, bus = ReplaySource(), EventBus(capacity=5)
        _, runner, base = await _start(source, bus, token)
        good = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(base) as client:
            async with client.get("/health") as response:
                assert response.status == 200
            for path in ("/api/status", "/metrics", "/openapi.json", "/docs"):
                for headers in ({}, {"Authorization": "Bearer wrong"}):
                    async with client.get(path, headers=headers) as response:
                        assert response.status == 401, path
                async with client.get(path, headers=good) as response:
                    assert response.status == 200, path
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect("/api/events")
            assert refused.value.status == 401
            async with client.ws_connect(
                "/api/events", params={"token": token}
            ) as socket:
                bus.publish(Event(kind="bar", data={"n": 0}))
                assert (await socket.receive_json())["data"] == {"n": 0}
            # A client more than capacity events behind is cut off, told why.
            async with client.ws_connect("/api/events", headers=good) as socket:
                for n in range(10):
                    bus.publish(Event(kind="bar", data={"n": n}))
                messages = [await socket.receive() for _ in range(6)]
            assert [json.loads(m.data)["data"]["n"] for m in messages[:5]] == [
                0,
                1,
                2,
                3,
                4,
            ]
            assert messages[5].type == aiohttp.WSMsgType.CLOSE
            assert messages[5].data == aiohttp.WSCloseCode.TRY_AGAIN_LATER
            assert "too slow" in messages[5].extra
        await runner.cleanup()

        app = api.make_app(source, bus)
        for host in ("0.0.0.0", "192.168.1.10", "example.com", "::"):
            with pytest.raises(ValueError, match="requires a token"):
                await api.serve(app, host=host, port=0, token=None)
        with pytest.raises(ValueError, match="differs"):
            await api.serve(app, port=0, token="other")
        runner = await api.serve(app, host="localhost", port=0, token=None)
        await runner.cleanup()

    asyncio.run(scenario())
