"""Live monitor: one running session's status, equity, positions, orders and alerts.

The page follows a session through its HTTP API (:mod:`neuroflux.live.api`). The
connection lives server-side, in the Panel process: one asyncio task per browser
session (:meth:`LiveMonitor.start`, run by ``pn.state.onload``) that

1. opens the websocket ``/api/events`` first (the API subscribes it to the bus before
   the handshake), then reads ``/api/status``, ``/api/positions``, ``/api/orders`` and
   ``/api/analytics`` once for the initial state, then folds every event into the
   state. Events that came in while the REST answers were on their way are folded
   after them; a ``cycle`` whose bar is not newer than the last one is not drawn
   twice, and orders are keyed by client order id, so the overlap does no harm.
2. on any failure (refused, closed, cut off as too slow with code 1013) waits with a
   backoff of 0.5 s doubling to 5 s, then starts over at 1: a reconnect resyncs.
3. is cancelled when the browser session is destroyed (:meth:`LiveMonitor.stop`).

The task only folds events into plain Python state: at 100 cycles a second, pushing
each one to the browser would flood the websocket to it. A periodic callback every
``refresh_ms`` (run with the document's lock, as bokeh requires) draws what changed:
new equity points are ``stream``-ed into the chart's source (at most ``max_points``
kept), the tables and the status are replaced. The analytics that need more than the
stream carries (rolling Sharpe, regimes, health scores) are re-read from
``/api/analytics`` every ``analytics_s`` seconds; nothing is read per event.

The token comes from ``NEUROFLUX_API_TOKEN`` in the dashboard server's environment
and is sent as ``Authorization: Bearer``, only to a loopback API or to the host of
``NEUROFLUX_LIVE_API``: the page's ``?api=`` may point anywhere, and the token must not
go where a visitor points it. It never reaches the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import html
import ipaddress
import json
import math
import os
import urllib.parse
from collections import deque
from typing import Any

import aiohttp
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

__all__ = [
    "API_URL_VARIABLE",
    "DEFAULT_API_URL",
    "TOKEN_VARIABLE",
    "LiveMonitor",
    "token_for",
]

DEFAULT_API_URL = "http://127.0.0.1:8765"
API_URL_VARIABLE = "NEUROFLUX_LIVE_API"
TOKEN_VARIABLE = "NEUROFLUX_API_TOKEN"
_BACKOFF_S = (0.5, 5.0)
_TIMEOUT = aiohttp.ClientTimeout(total=10)
_ORDER_COLUMNS = ["time", "symbol", "side", "amount", "filled", "average", "status"]
_ALERT_COLUMNS = ["time", "level", "name", "message"]
_BREAKER_COLORS = {"NORMAL": "#2ca02c", "WARNING": "#ff7f0e"}


def default_api_url() -> str:
    """``$NEUROFLUX_LIVE_API`` if set, else ``http://127.0.0.1:8765``."""
    return os.environ.get(API_URL_VARIABLE) or DEFAULT_API_URL


def token_for(api_url: str) -> str | None:
    """The token to send to ``api_url``: ``$NEUROFLUX_API_TOKEN`` or ``None``.

    ``None`` unless the URL's host is loopback or the host of
    :func:`default_api_url`, so a URL typed into the page never receives it.
    """
    token = os.environ.get(TOKEN_VARIABLE) or None
    host = urllib.parse.urlsplit(api_url).hostname or ""
    trusted = host == urllib.parse.urlsplit(default_api_url()).hostname
    with contextlib.suppress(ValueError):
        trusted = trusted or ipaddress.ip_address(host).is_loopback
    return token if trusted or host == "localhost" else None


def _check_api_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"api_url must be an http(s) URL with a host, got {url!r}")
    return url.rstrip("/")


class LiveMonitor(pn.viewable.Viewer):
    """A running session followed through its API's websocket (see module docs)."""

    api_url = param.String(
        default=DEFAULT_API_URL, doc="Base URL of the session's HTTP API"
    )
    max_points = param.Integer(
        default=5_000, bounds=(10, None), doc="Equity points the chart keeps"
    )
    refresh_ms = param.Integer(
        default=500, bounds=(50, None), doc="Milliseconds between two redraws"
    )
    analytics_s = param.Number(
        default=5.0, bounds=(0.5, None), doc="Seconds between analytics re-reads"
    )
    connection = param.String(
        default="not connected", doc="The websocket's state, e.g. 'live'"
    )
    status_html = param.String(default="", doc="Session and breaker state, as HTML")
    analytics_html = param.String(default="", doc="Key analytics, as HTML")
    positions = param.DataFrame(doc="Positions held: symbol, units, price, value")
    orders = param.DataFrame(doc="Latest orders, newest first")
    alerts = param.DataFrame(doc="Alerts raised since the page connected, newest first")
    agents = param.DataFrame(doc="Health of every agent")

    def __init__(self, **params: Any):
        params.setdefault("api_url", default_api_url())
        params["api_url"] = _check_api_url(params["api_url"])
        super().__init__(**params)
        self.equity_source = ColumnDataSource(
            {"time": [], "equity": []}, name="nf-live-equity"
        )
        self.equity_chart = figure(
            title="Equity",
            x_axis_type="datetime",
            height=280,
            sizing_mode="stretch_width",
            tools="pan,xwheel_zoom,reset",
        )
        self.equity_chart.line("time", "equity", source=self.equity_source)
        self._status: dict[str, Any] = {}
        self._analytics: dict[str, Any] = {}
        self._orders: dict[str, dict[str, Any]] = {}
        self._alerts: deque[dict[str, Any]] = deque(maxlen=200)
        self._agents: dict[str, dict[str, Any]] = {}
        # New equity points; a None clears the chart first.
        self._pending: list[tuple[int, float] | None] = []
        self._last_bar_time = -1
        self._peak = float("nan")
        self._changed = False
        self._task: asyncio.Task | None = None
        self._callback: Any = None
        self._draw()

    @classmethod
    def for_session(cls) -> LiveMonitor:
        """The monitor of a page request: ``?api=URL`` overrides the API URL.

        Connects once the page has loaded and disconnects when the browser session
        ends.
        """
        argument = pn.state.session_args.get("api")
        params = {"api_url": argument[0].decode()} if argument else {}
        monitor = cls(**params)
        pn.state.onload(monitor.start)
        pn.state.on_session_destroyed(lambda _context: monitor.stop())
        return monitor

    # Connection --------------------------------------------------------------------

    def start(self) -> None:
        """Starts following the session (on the running event loop) and redrawing."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # built with no loop (the server's warm-up): no session
            return
        if self._task is None:
            self._task = loop.create_task(self.follow())
            self._callback = pn.state.add_periodic_callback(
                self._draw, period=self.refresh_ms
            )

    def stop(self) -> None:
        """Stops the websocket task and the redraws."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    async def follow(self) -> None:
        """Connects, resyncs and folds events until cancelled; reconnects on failure."""
        token = token_for(self.api_url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        delay = _BACKOFF_S[0]
        async with aiohttp.ClientSession(headers=headers, timeout=_TIMEOUT) as client:
            while True:
                try:
                    await self._follow_once(client)
                    reason = "the session closed the stream"
                except aiohttp.ClientResponseError as error:
                    reason = f"HTTP {error.status} {error.message}"
                except (aiohttp.ClientError, OSError, TimeoutError) as error:
                    reason = str(error) or type(error).__name__
                self.connection = f"reconnecting in {delay:g} s: {reason}"
                self._changed = True
                await asyncio.sleep(delay)
                delay = min(2 * delay, _BACKOFF_S[1])

    async def _follow_once(self, client: aiohttp.ClientSession) -> None:
        self.connection = "connecting"
        async with client.ws_connect(
            f"{self.api_url}/api/events", timeout=aiohttp.ClientWSTimeout(ws_close=5)
        ) as socket:
            self.load(
                status=await self._get(client, "status"),
                positions=await self._get(client, "positions"),
                orders=await self._get(client, "orders?limit=100"),
                analytics=await self._get(client, "analytics"),
            )
            self.connection = "live"
            refresh = asyncio.get_running_loop().create_task(
                self._refresh_analytics(client)
            )
            try:
                async for message in socket:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    self.fold(json.loads(message.data))
            finally:
                refresh.cancel()
            if socket.close_code == aiohttp.WSCloseCode.TRY_AGAIN_LATER:
                raise aiohttp.ClientError(f"cut off as too slow: {socket.exception()}")

    async def _get(self, client: aiohttp.ClientSession, path: str) -> Any:
        async with client.get(f"{self.api_url}/api/{path}") as response:
            response.raise_for_status()
            return await response.json()

    async def _refresh_analytics(self, client: aiohttp.ClientSession) -> None:
        while True:
            await asyncio.sleep(self.analytics_s)
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                self._analytics = await self._get(client, "analytics")
                self._changed = True

    # State -------------------------------------------------------------------------

    def load(
        self,
        *,
        status: dict[str, Any],
        positions: list[dict[str, Any]],
        orders: list[dict[str, Any]],
        analytics: dict[str, Any],
    ) -> None:
        """Replaces the state with the API's answers (at a (re)connect)."""
        self._status, self._analytics = dict(status), dict(analytics)
        self._status["positions"] = {p["symbol"]: p["units"] for p in positions}
        self._status["prices"] = {p["symbol"]: p["price"] for p in positions}
        # The journal's orders carry ``updated`` (wall clock); the stream's, ``time``.
        self._orders = {
            order["client_order_id"]: {"time": order.get("updated"), **order}
            for order in orders
        }
        self._agents = {
            name: {**report, **analytics.get("agents", {}).get(name, {})}
            for name, report in status.get("agents", {}).items()
        }
        self._status["exposure"] = analytics.get("exposure", {})
        equity, drawdown = analytics.get("equity"), analytics.get("drawdown")
        if equity is not None and drawdown is not None:
            self._peak = equity / (1 + drawdown)
        last_bar_time = status.get("last_bar_time")
        if last_bar_time is not None and last_bar_time < self._last_bar_time:
            self._pending = [None]  # another session there: its curve starts afresh
        if last_bar_time is not None and last_bar_time != self._last_bar_time:
            self._last_bar_time = last_bar_time
            if status.get("equity") is not None:
                self._pending.append((last_bar_time, status["equity"]))
        self._changed = True

    def fold(self, event: dict[str, Any]) -> None:
        """Folds one ``Event.to_json()`` dict of the stream into the state."""
        kind, data = event["kind"], event["data"]
        if kind == "cycle":
            self._fold_cycle(data)
        elif kind == "order":
            self._orders[data["client_order_id"]] = {
                **self._orders.get(data["client_order_id"], {}),
                **data,
                "time": data.get("time") or event["time"],
            }
        elif kind == "alert":
            self._alerts.appendleft({"time": event["time"], **data})
        elif kind == "breaker":
            self._status["breaker"] = data["state"]
        elif kind == "health":
            self._agents.setdefault(data["agent"], {}).update(data)
        elif kind == "status":  # the runner's last word: it stopped
            self._status.update(data)
        else:
            return
        self._changed = True

    def _fold_cycle(self, data: dict[str, Any]) -> None:
        if data["bar_time"] <= self._last_bar_time:
            return  # already in the state read at the (re)connect
        self._last_bar_time, equity = data["bar_time"], data["equity"]
        self._status.update(
            cycles=self._status.get("cycles", 0) + 1,
            last_bar_time=data["bar_time"],
            equity=equity,
            breaker=data["breaker"],
            positions=data["positions"],
            prices=data["prices"],
            exposure=data["exposure"],
            running=True,
        )
        for name, report in data["agents"].items():
            self._agents.setdefault(name, {}).update(report)
        if equity is not None:
            self._pending.append((data["bar_time"], equity))
            if not equity <= self._peak:  # also while the peak is NaN
                self._peak = equity
        self._changed = True

    # View --------------------------------------------------------------------------

    def _draw(self) -> None:
        """Pushes what changed since the last call to the page."""
        if None in self._pending:
            self.equity_source.data = {"time": [], "equity": []}
            del self._pending[: self._pending.index(None) + 1]
        if self._pending:
            times, values = zip(*self._pending, strict=True)
            self._pending = []
            self.equity_source.stream(
                {"time": list(times), "equity": list(values)}, rollover=self.max_points
            )
        if not self._changed:
            return
        self._changed = False
        self.param.update(
            status_html=self._status_html(),
            analytics_html=self._analytics_html(),
            positions=self._positions_frame(),
            orders=_frame(
                sorted(self._orders.values(), key=lambda o: -(o.get("time") or 0))[
                    :100
                ],
                _ORDER_COLUMNS,
                "time",
            ),
            alerts=_frame(list(self._alerts), _ALERT_COLUMNS, "time"),
            agents=pd.DataFrame.from_dict(self._agents, orient="index")
            .rename_axis("agent")
            .reset_index(),
        )

    def _positions_frame(self) -> pd.DataFrame:
        units = self._status.get("positions", {})
        prices = self._status.get("prices", {})
        return pd.DataFrame(
            [
                {
                    "symbol": symbol,
                    "units": amount,
                    "price": prices.get(symbol),
                    "value": amount * prices[symbol] if symbol in prices else None,
                }
                for symbol, amount in units.items()
            ],
            columns=["symbol", "units", "price", "value"],
        )

    def _status_html(self) -> str:
        status = self._status
        breaker = status.get("breaker") or "unknown"
        color = _BREAKER_COLORS.get(breaker, "#d62728")
        running = {True: "running", False: "stopped"}.get(status.get("running"), "?")
        if status.get("stopped_by"):
            running = f"stopped ({status['stopped_by']})"
        rows = {
            "API": self.api_url,
            "Connection": self.connection,
            "Session": status.get("session", "?"),
            "Mode": f"{status.get('mode', '?')}, {running}",
            "Cycles": status.get("cycles", 0),
            "Last bar": _time(status.get("last_bar_time"), milliseconds=True),
        }
        badge = (
            f'<span class="nf-breaker" style="background:{color};color:white;'
            f'padding:2px 8px;border-radius:4px">{html.escape(breaker)}</span>'
        )
        return _table(rows, {"nf-cycles": "Cycles"}) + f"<p>Breaker {badge}</p>"

    def _analytics_html(self) -> str:
        snapshot, status = self._analytics, self._status
        equity = status.get("equity", snapshot.get("equity"))
        initial = snapshot.get("initial_equity")
        exposure = status.get("exposure", {})
        drawdown = equity / self._peak - 1 if equity is not None else None
        regimes = ", ".join(
            f"{symbol}: {regime.get('volatility')}/{regime.get('trend')}"
            for symbol, regime in snapshot.get("regimes", {}).items()
        )
        rows = {
            "Equity": _number(equity),
            "P&L": _number(equity - initial if None not in (equity, initial) else None),
            "P&L %": _percent(equity / initial - 1 if equity and initial else None),
            "Drawdown": _percent(drawdown),
            "Max drawdown": _percent(snapshot.get("max_drawdown")),
            "Rolling Sharpe": _number(snapshot.get("sharpe")),
            "Gross exposure": _percent(exposure.get("gross")),
            "Net exposure": _percent(exposure.get("net")),
            "Regime": regimes or "unknown",
            "Active alerts": ", ".join(snapshot.get("active_alerts", [])) or "none",
        }
        return _table(rows, {"nf-equity-value": "Equity"})

    def __panel__(self):
        table = {
            "disabled": True,
            "show_index": False,
            "layout": "fit_data_stretch",
            "sizing_mode": "stretch_width",
        }
        return pn.Column(
            pn.Row(
                pn.pane.HTML(self.param.status_html, css_classes=["nf-live-status"]),
                pn.pane.HTML(
                    self.param.analytics_html, css_classes=["nf-live-analytics"]
                ),
                sizing_mode="stretch_width",
            ),
            pn.pane.Bokeh(self.equity_chart, sizing_mode="stretch_width"),
            pn.pane.Markdown("### Positions"),
            pn.widgets.Tabulator(self.param.positions, name="positions", **table),
            pn.pane.Markdown("### Agents"),
            pn.widgets.Tabulator(self.param.agents, **table),
            pn.pane.Markdown("### Recent orders"),
            pn.widgets.Tabulator(
                self.param.orders, pagination="local", page_size=10, **table
            ),
            pn.pane.Markdown("### Alerts"),
            pn.widgets.Tabulator(
                self.param.alerts, pagination="local", page_size=10, **table
            ),
            sizing_mode="stretch_width",
        )

    def controls(self) -> list:
        """Nothing to choose: the API comes from ``?api=``; the refresh rate."""
        return [
            pn.widgets.IntInput.from_param(
                self.param.refresh_ms, name="Redraw every (ms)", disabled=True
            )
        ]


def _frame(rows: list[dict[str, Any]], columns: list[str], time: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    frame[time] = [_time(value) for value in frame[time]]
    return frame


def _time(value: float | None, *, milliseconds: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    seconds = value / 1e3 if milliseconds else value
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _table(rows: dict[str, Any], classes: dict[str, str]) -> str:
    """A two-column HTML table; ``classes`` maps a class name to the row it marks."""
    marked = {label: name for name, label in classes.items()}
    cells = "".join(
        f'<tr class="{marked.get(label, "")}"><th style="text-align:left;'
        f'padding-right:12px">{html.escape(label)}</th>'
        f"<td>{html.escape(str(value))}</td></tr>"
        for label, value in rows.items()
    )
    return f"<table>{cells}</table>"
