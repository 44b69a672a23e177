"""The live runner's HTTP API: status, Prometheus metrics, an event stream, a stop.

:func:`make_app` builds an ``aiohttp.web`` application over a :class:`LiveSource`
(the runner) and its :class:`~neuroflux.live.events.EventBus`:

=====================  =========================================================
route                  answer
=====================  =========================================================
``GET /health``        liveness ``{"status": "ok", "uptime_s": ...}``, never
                       behind the token
``GET /metrics``       Prometheus text, read from the source at scrape time
``GET /api/status``    ``source.status()``
``GET /api/positions`` ``source.positions()``
``GET /api/orders``    ``source.orders(limit)``, ``?limit=`` 1 to 10,000
                       (default 100)
``GET /api/analytics`` ``source.analytics()`` (an ``AnalyticsEngine`` snapshot)
``POST /api/stop``     body ``{"flatten": bool}``; calls ``source.request_stop``
``GET /api/events``    websocket: every bus event as ``Event.to_json()`` text
``GET /openapi.json``  the OpenAPI 3.1 document of these routes (:data:`OPENAPI`)
``GET /docs``          that document as a plain HTML page (no scripts, no CDN)
=====================  =========================================================

With a ``token``, every route but ``/health`` wants ``Authorization: Bearer <token>``
(the websocket may pass ``?token=`` instead, since browsers cannot set its headers),
compared in constant time; anything else gets 401. :func:`serve` refuses to bind
beyond loopback without a token. JSON has no NaN: non-finite numbers go out as
``null``. A websocket client that falls the bus's capacity behind is closed with code
1013 and a reason saying so, rather than fed an event stream with gaps.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import ipaddress
import json
import math
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol

import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

from neuroflux.live.events import EVENT_KINDS, Event, EventBus, SubscriberTooSlow

__all__ = ["BREAKER_STATES", "OPENAPI", "LiveSource", "make_app", "serve"]

_log = structlog.get_logger(__name__)
#: The numeric value of ``neuroflux_live_breaker_state``; another state reads -1.
BREAKER_STATES = {"NORMAL": 0, "WARNING": 1, "HALTED": 2, "EMERGENCY": 3}
_MAX_ORDERS = 10_000
_SOURCE = web.AppKey("source", object)
_BUS = web.AppKey("bus", EventBus)
_TOKEN = web.AppKey("token", object)
_STARTED = web.AppKey("started", float)
_SOCKETS = web.AppKey("sockets", weakref.WeakSet)
_REGISTRY = web.AppKey("registry", CollectorRegistry)


class LiveSource(Protocol):
    """What the API reads from the runner (the runner implements it).

    ``status()`` must hold ``running`` (bool) and ``mode`` (str, e.g. ``"paper"``);
    ``analytics()`` is an :meth:`AnalyticsEngine.snapshot
    <neuroflux.live.analytics.AnalyticsEngine.snapshot>`. Every dict is JSON-able.
    """

    def status(self) -> dict[str, Any]: ...

    def positions(self) -> list[dict[str, Any]]: ...

    def orders(self, limit: int = 100) -> list[dict[str, Any]]: ...

    def analytics(self) -> dict[str, Any]: ...

    def request_stop(self, flatten: bool) -> None: ...


def _without_nan(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    return value


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:  # only then pay for the walk that swaps NaN for null
        return json.dumps(_without_nan(value), allow_nan=False)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=_dumps)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


class _SourceCollector(Collector):
    """Reads the source at every scrape, so the numbers are never a copy behind."""

    def __init__(self, source: LiveSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        status, snapshot = self.source.status(), self.source.analytics()

        def gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
            metric = GaugeMetricFamily(f"neuroflux_live_{name}", doc)
            metric.add_metric([], math.nan if value is None else value)
            return metric

        yield gauge("running", "1 while the runner trades", float(status["running"]))
        yield gauge("equity", "Account equity in quote currency", snapshot["equity"])
        yield gauge("pnl", "P&L since the first cycle", snapshot["pnl"])
        yield gauge("pnl_ratio", "P&L / initial equity", snapshot["pnl_pct"])
        yield gauge("daily_pnl_ratio", "P&L today", snapshot["daily_pnl_pct"])
        yield gauge("drawdown_ratio", "Equity / peak - 1", snapshot["drawdown"])
        yield gauge("max_drawdown_ratio", "Lowest drawdown", snapshot["max_drawdown"])
        yield gauge("sharpe_ratio", "Rolling annualised Sharpe", snapshot["sharpe"])
        for name, doc in (("cycles", "Cycles completed"), ("fills", "Fills seen")):
            yield CounterMetricFamily(
                f"neuroflux_live_{name}", doc, value=snapshot[name]
            )
        exposure = GaugeMetricFamily(
            "neuroflux_live_exposure_ratio", "Position value / equity", labels=["kind"]
        )
        for kind in ("gross", "net"):
            exposure.add_metric([kind], snapshot["exposure"][kind])
        yield exposure
        units = GaugeMetricFamily(
            "neuroflux_live_position_units", "Units held", labels=["symbol"]
        )
        value = GaugeMetricFamily(
            "neuroflux_live_position_value", "Units * price", labels=["symbol"]
        )
        for position in snapshot["positions"]:
            units.add_metric([position["symbol"]], position["units"])
            value.add_metric([position["symbol"]], position["value"])
        yield units
        yield value
        orders = GaugeMetricFamily(
            "neuroflux_live_orders", "Orders by last known status", labels=["status"]
        )
        for order_status, count in snapshot["orders"].items():
            orders.add_metric([order_status], count)
        yield orders
        latency = GaugeMetricFamily(
            "neuroflux_live_cycle_latency_seconds",
            "Cycle latency percentiles over recent cycles",
            labels=["quantile"],
        )
        for quantile, key in (("0.5", "p50"), ("0.99", "p99")):
            milliseconds = snapshot["cycle_latency_ms"][key]
            latency.add_metric(
                [quantile], math.nan if milliseconds is None else milliseconds / 1e3
            )
        yield latency
        breaker = snapshot["breaker"]
        yield gauge(
            "breaker_state",
            "Circuit breaker: "
            + ", ".join(f"{code} {name}" for name, code in BREAKER_STATES.items())
            + ", -1 unknown",
            BREAKER_STATES.get(breaker, -1),
        )
        states = dict.fromkeys(BREAKER_STATES, False)
        if breaker is not None:
            states[breaker] = True
        yield StateSetMetricFamily(
            "neuroflux_live_breaker", "Circuit breaker state", value=states
        )
        health = GaugeMetricFamily(
            "neuroflux_live_agent_health", "Agent health in [0, 1]", labels=["agent"]
        )
        for agent, report in snapshot["agents"].items():
            score = report["score"]
            health.add_metric([agent], math.nan if score is None else score)
        yield health


def _authorised(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    offered = header[7:] if header.startswith("Bearer ") else ""
    if not offered and request.path == "/api/events":
        offered = request.query.get("token", "")
    return hmac.compare_digest(offered.encode(), token.encode())


@web.middleware
async def _auth(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    token = request.app[_TOKEN]
    if token is None or request.path == "/health" or _authorised(request, token):
        return await handler(request)
    return web.json_response(
        {"error": "missing or wrong bearer token"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="neuroflux"'},
    )


async def _health(request: web.Request) -> web.Response:
    return _json({"status": "ok", "uptime_s": time.monotonic() - request.app[_STARTED]})


async def _metrics(request: web.Request) -> web.Response:
    # Collected in the loop's own thread: the source is the runner, not thread-safe.
    return web.Response(
        body=generate_latest(request.app[_REGISTRY]),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


async def _status(request: web.Request) -> web.Response:
    return _json(request.app[_SOURCE].status())


async def _positions(request: web.Request) -> web.Response:
    return _json(request.app[_SOURCE].positions())


async def _orders(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= _MAX_ORDERS:
        return _error(400, f"limit must be an integer 1..{_MAX_ORDERS}, got {raw!r}")
    return _json(request.app[_SOURCE].orders(limit))


async def _analytics(request: web.Request) -> web.Response:
    return _json(request.app[_SOURCE].analytics())


async def _stop(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, 'body must be JSON: {"flatten": true|false}')
    if not isinstance(body, dict) or not isinstance(body.get("flatten"), bool):
        return _error(400, f'body must be {{"flatten": true|false}}, got {body!r}')
    request.app[_SOURCE].request_stop(body["flatten"])
    return _json({"stopping": True, "flatten": body["flatten"]}, 202)


async def _events(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse(heartbeat=30.0)
    # Subscribed before the handshake: the client sees every event published
    # after its connection is open.
    stream = request.app[_BUS].subscribe()
    try:
        await socket.prepare(request)
    except BaseException:  # not a websocket handshake: no subscriber left behind
        await stream.aclose()
        raise
    writer = asyncio.ensure_future(_forward(stream, socket))
    request.app[_SOCKETS].add(socket)
    reader = asyncio.ensure_future(_drain(socket))
    try:
        await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (writer, reader):
            task.cancel()
        # Wait for the cancellations so the stream is idle before it is closed.
        await asyncio.gather(writer, reader, return_exceptions=True)
        await stream.aclose()
    if writer.done() and not writer.cancelled():
        error = writer.exception()
        if isinstance(error, SubscriberTooSlow):
            reason = f"too slow: {error}; reconnect and resync"
            await socket.close(
                code=WSCloseCode.TRY_AGAIN_LATER, message=reason.encode()[:123]
            )  # a close reason holds at most 123 bytes
        elif error is not None and not isinstance(error, ConnectionResetError):
            raise error
    await socket.close()
    return socket


async def _forward(stream: AsyncIterator[Event], socket: web.WebSocketResponse) -> None:
    """Sends each event as it comes: one task for the stream, none per event."""
    async for event in stream:
        await socket.send_str(_dumps(event.to_json()))


async def _drain(socket: web.WebSocketResponse) -> None:
    """Reads until the client closes; its messages carry nothing the API needs."""
    async for message in socket:
        if message.type == WSMsgType.ERROR:
            break


async def _openapi_json(request: web.Request) -> web.Response:
    return _json(OPENAPI)


async def _docs(request: web.Request) -> web.Response:
    return web.Response(text=_DOCS_HTML, content_type="text/html")


async def _close_sockets(app: web.Application) -> None:
    for socket in list(app[_SOCKETS]):
        await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


_NUMBER = {"type": ["number", "null"]}
_ERROR = {"$ref": "#/components/schemas/Error"}
_OPEN_OBJECT = {"type": "object", "additionalProperties": True}


def _object(required: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": True,
    }


def _reply(description: str, schema: dict[str, Any], media: str = "application/json"):
    return {"description": description, "content": {media: {"schema": schema}}}


_SCHEMAS = {
    "Error": _object(("error",), error={"type": "string"}),
    "Health": _object(
        ("status", "uptime_s"), status={"const": "ok"}, uptime_s={"type": "number"}
    ),
    "Status": _object(
        ("running", "mode"), running={"type": "boolean"}, mode={"type": "string"}
    ),
    "Position": _object(
        ("symbol", "units"), symbol={"type": "string"}, units={"type": "number"}
    ),
    "Order": _object(
        ("client_order_id", "symbol", "side", "amount", "status"),
        client_order_id={"type": "string"},
        symbol={"type": "string"},
        side={"enum": ["buy", "sell"]},
        amount={"type": "number"},
        status={"enum": ["open", "closed", "canceled", "rejected"]},
        filled=_NUMBER,
        average=_NUMBER,
    ),
    "Analytics": _object(
        ("cycles", "equity", "pnl", "drawdown", "exposure", "positions", "agents"),
        cycles={"type": "integer"},
        equity=_NUMBER,
        pnl=_NUMBER,
        pnl_pct=_NUMBER,
        daily_pnl_pct=_NUMBER,
        sharpe=_NUMBER,
        drawdown=_NUMBER,
        max_drawdown=_NUMBER,
        exposure=_object(("gross", "net"), gross=_NUMBER, net=_NUMBER),
        positions={"type": "array", "items": _OPEN_OBJECT},
        fills={"type": "integer"},
        orders={"type": "object", "additionalProperties": {"type": "integer"}},
        agents={"type": "object", "additionalProperties": _OPEN_OBJECT},
        regimes={"type": "object", "additionalProperties": _OPEN_OBJECT},
        breaker={"type": ["string", "null"]},
        cycle_latency_ms=_object(("p50", "p99"), p50=_NUMBER, p99=_NUMBER),
        active_alerts={"type": "array", "items": {"type": "string"}},
    ),
    "Stop": _object(("flatten",), flatten={"type": "boolean"}),
    "Stopping": _object(
        ("stopping", "flatten"), stopping={"const": True}, flatten={"type": "boolean"}
    ),
    "Event": _object(
        ("kind", "time", "data"),
        kind={"enum": list(EVENT_KINDS)},
        time={"type": "number", "description": "UTC seconds when published"},
        data=_OPEN_OBJECT,
    ),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _route(method, path, handler, summary, status, schema, media=None, bad=None):
    """One row of the route table: the handler and its OpenAPI responses."""
    media = media or "application/json"
    responses = {status: _reply(summary, schema, media) if schema else {}}
    responses[status].setdefault("description", summary)
    if bad:
        responses["400"] = _reply(bad, _ERROR)
    return method, path, handler, summary, responses


_TEXT = {"type": "string"}
_ROUTES = [
    _route("GET", "/health", _health, "Liveness (no token needed)", "200",
           _ref("Health")),
    _route("GET", "/metrics", _metrics, "Prometheus metrics, read at scrape time",
           "200", _TEXT, "text/plain"),
    _route("GET", "/api/status", _status, "The runner's status", "200",
           _ref("Status")),
    _route("GET", "/api/positions", _positions, "Positions held", "200",
           {"type": "array", "items": _ref("Position")}),
    _route("GET", "/api/orders", _orders, "The latest orders, newest first", "200",
           {"type": "array", "items": _ref("Order")}, bad="Bad limit"),
    _route("GET", "/api/analytics", _analytics, "The analytics snapshot", "200",
           _ref("Analytics")),
    _route("POST", "/api/stop", _stop, "Asks the runner to stop (and flatten)",
           "202", _ref("Stopping"), bad="Bad body"),
    _route("GET", "/api/events", _events, "Websocket: each bus event as a JSON "
           "text message (schema Event); closed with code 1013 when the client "
           "falls behind", "101", None),
    _route("GET", "/openapi.json", _openapi_json, "This document", "200",
           _OPEN_OBJECT),
    _route("GET", "/docs", _docs, "This document as HTML", "200", _TEXT,
           "text/html"),
]  # fmt: skip


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict:
    parameter = {"name": name, "in": "query", "required": False, "schema": schema}
    return parameter | ({"description": description} if description else {})


def _operation(path: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    if path == "/health":
        operation["security"] = []
    else:
        operation["responses"]["401"] = _reply("Missing or wrong token", _ERROR)
    if path == "/api/orders":
        limit = {"type": "integer", "minimum": 1, "maximum": _MAX_ORDERS}
        operation["parameters"] = [_query("limit", limit | {"default": 100})]
    if path == "/api/events":
        operation["parameters"] = [
            _query("token", _TEXT, "The bearer token, for clients without headers")
        ]
    if path == "/api/stop":
        operation["requestBody"] = {"required": True, **_reply("", _ref("Stop"))}
        del operation["requestBody"]["description"]
    return operation


#: The OpenAPI 3.1 document of every route :func:`make_app` registers.
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "NeuroFlux live API", "version": "1"},
    "paths": {},
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}],
}
for _method, _path, _, _summary, _responses in _ROUTES:
    OPENAPI["paths"].setdefault(_path, {})[_method.lower()] = _operation(
        _path, _summary, _responses
    )


def _render_html(document: dict[str, Any]) -> str:
    sections = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            detail = json.dumps(operation, indent=2)
            sections.append(
                f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                f"<p>{html.escape(operation['summary'])}</p>"
                f"<pre>{html.escape(detail)}</pre>"
            )
    schemas = html.escape(json.dumps(document["components"]["schemas"], indent=2))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(document['info']['title'])}</title></head><body>"
        f"<h1>{html.escape(document['info']['title'])}</h1>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
        + "".join(sections)
        + f"<h2>Schemas</h2><pre>{schemas}</pre></body></html>"
    )


_DOCS_HTML = _render_html(OPENAPI)


def make_app(
    source: LiveSource, bus: EventBus, *, token: str | None = None
) -> web.Application:
    """The API over ``source`` and ``bus`` (routes in the module docstring).

    Args:
        source: The runner.
        bus: The bus whose events ``/api/events`` streams.
        token: Bearer token every route but ``/health`` requires; ``None`` for none.

    Raises:
        ValueError: An empty token.
    """
    if token is not None and not token:
        raise ValueError("token must be a non-empty string or None")
    app = web.Application(middlewares=[_auth])
    app[_SOURCE], app[_BUS], app[_TOKEN] = source, bus, token
    app[_STARTED], app[_SOCKETS] = time.monotonic(), weakref.WeakSet()
    app[_REGISTRY] = CollectorRegistry(auto_describe=False)
    app[_REGISTRY].register(_SourceCollector(source))
    app.on_shutdown.append(_close_sockets)
    for method, path, handler, _summary, _responses in _ROUTES:
        app.router.add_route(method, path, handler)
    return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


async def serve(
    app: web.Application,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None,
) -> web.AppRunner:
    """Starts ``app`` on ``host:port``; ``runner.addresses`` tells the bound port.

    Args:
        app: From :func:`make_app`.
        host: Address to bind; beyond loopback only with a token.
        port: TCP port; 0 picks a free one.
        token: The token the app was made with (the caller reads it from an
            environment variable such as ``NEUROFLUX_API_TOKEN``).

    Raises:
        ValueError: ``host`` is not loopback and there is no token, or ``token`` is
            not the one ``app`` checks.
    """
    if token is None and not _is_loopback(host):
        raise ValueError(
            f"binding the API to {host!r} (beyond loopback) requires a token: set "
            "one (e.g. from NEUROFLUX_API_TOKEN) or bind 127.0.0.1"
        )
    configured = app[_TOKEN]
    if (configured is None) != (token is None) or (
        token is not None
        and not hmac.compare_digest(token.encode(), configured.encode())
    ):
        raise ValueError("token differs from the one make_app was given")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    _log.info("live api listening", addresses=runner.addresses, auth=token is not None)
    return runner
