"""Live analytics: a running summary of a session and the alerts it raises.

:class:`AnalyticsEngine` folds the runner's :class:`~neuroflux.live.events.Event` s
(the kinds and data of the table in :mod:`neuroflux.live.events`) into a state that
:meth:`AnalyticsEngine.snapshot` reports as a JSON-able dict. It is plain Python and
NumPy: it runs on every event in the runner's event loop, so it does no JAX dispatch
and no I/O, and each update costs microseconds.

- **Performance** from ``cycle`` events: equity, P&L since the first cycle, P&L since
  the first cycle of the UTC day of ``bar_time``, the rolling Sharpe ratio of the last
  ``window`` cycle-to-cycle returns (the formula of
  :func:`neuroflux.metrics.ratios.sharpe_ratio`: ``mean / std(ddof=1) * sqrt(P)``),
  drawdown ``equity / peak - 1`` (``<= 0``) and its minimum so far, exposure
  ``sum |units * price| / equity`` (gross) and ``sum units * price / equity`` (net).
- **Agent health** in ``[0, 1]``, over the agent's last ``window`` cycles::

      score = 0                                             if isolated
            = latency_score * (1 - error_rate) * signal_rate  otherwise
      latency_score = min(1, latency_budget_ms / p95(decision latency))
      error_rate    = cycles with ok=False / cycles
      signal_rate   = ok cycles with >= 1 finite ``decision`` target / ok cycles

  A product, so that any one failure (slow, failing, silent) pulls the score down;
  ``isolated`` comes from ``health`` events (the runner isolates an agent).
- **Market regime** per symbol from ``bar`` closes: realized volatility ``sigma`` =
  std(ddof=1) of the last ``regime_window`` log returns, ranked against the symbol's
  last ``regime_history`` readings (percentile ``= share of readings <= current``):
  below 0.25 ``calm``, above 0.75 ``volatile``, else ``normal``. Kaufman's
  efficiency ratio ``|c_t - c_{t-n}| / sum |c_s - c_{s-1}|`` over the same window:
  ``>= 0.3`` ``trending``, else ``ranging`` (P. J. Kaufman, *Trading Systems and
  Methods*, 5th ed., 2013, ch. 17). ``unknown`` until ``regime_window`` returns and
  as many volatility readings exist. A bar not newer than the symbol's last one is
  not used and is counted in ``stale_bars``.
- **Alerts** (:class:`AlertThresholds`): each condition raises one ``alert`` event
  when it becomes true and is re-armed only once it is false again, so a condition
  that stays true never storms. Staleness (seconds since the last ``cycle``) is
  checked on every event and by :meth:`AnalyticsEngine.check`, which a caller runs
  on a timer because a stalled runner publishes nothing.

JSON has no NaN or infinity: a statistic that is undefined or infinite (the Sharpe
ratio of fewer than two returns or of a constant series) is reported as ``None``.
:func:`post_alert` sends an alert to a webhook.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import time
import urllib.parse
from collections import Counter, deque
from typing import Any

import aiohttp
import numpy as np
import structlog

from neuroflux.live.events import Event

__all__ = ["AlertThresholds", "AnalyticsEngine", "post_alert"]

_log = structlog.get_logger(__name__)
_CALM_BELOW, _VOLATILE_ABOVE, _TRENDING_FROM = 0.25, 0.75, 0.3


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlertThresholds:
    """When the engine raises an alert (each is re-armed after it recovers).

    Attributes:
        drawdown: Critical when the drawdown is ``<= -drawdown`` (a fraction).
        daily_loss: Critical when the P&L since the day's first cycle is
            ``<= -daily_loss`` (a fraction of the equity before that cycle).
        agent_health: Warning when an agent's health score is below this.
        cycle_latency_ms: Warning when the p99 cycle latency exceeds this.
        staleness_s: Critical when no cycle came for more than this many seconds;
            set it above the bar interval (the default suits bars up to 4 minutes).
    """

    drawdown: float = 0.10
    daily_loss: float = 0.05
    agent_health: float = 0.5
    cycle_latency_ms: float = 5_000.0
    staleness_s: float = 300.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not (isinstance(value, int | float) and math.isfinite(value)) or (
                value <= 0
            ):
                raise ValueError(
                    f"AlertThresholds.{field.name} must be a finite number > 0, "
                    f"got {value!r}"
                )
        if self.agent_health > 1:
            raise ValueError(
                f"AlertThresholds.agent_health must be in (0, 1], "
                f"got {self.agent_health!r}"
            )


@dataclasses.dataclass
class _Agent:
    latencies: deque[float]
    oks: deque[bool]
    signals: deque[bool]
    signalled: bool = False
    isolated: bool = False
    errors: int = 0


@dataclasses.dataclass
class _Symbol:
    closes: deque[float]
    volatilities: deque[float]
    last_time: int


def _field(event: Event, name: str) -> Any:
    try:
        return event.data[name]
    except KeyError:
        raise KeyError(
            f"{event.kind!r} event lacks field {name!r}; it has {sorted(event.data)}"
        ) from None


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


class AnalyticsEngine:
    """Folds a session's events into a summary and raises alerts.

    Args:
        periods_per_year: Cycles in a year, to annualise the Sharpe ratio.
        window: Cycle returns in the rolling Sharpe ratio, cycles in agent health.
        thresholds: When to raise alerts.
        latency_budget_ms: Decision latency an agent may take at full health.
        latency_window: Cycles in the cycle-latency percentiles.
        regime_window: Bars in the volatility and efficiency-ratio windows.
        regime_history: Volatility readings the current one is ranked against.
    """

    def __init__(
        self,
        *,
        periods_per_year: float,
        window: int = 50,
        thresholds: AlertThresholds = AlertThresholds(),
        latency_budget_ms: float = 250.0,
        latency_window: int = 1_000,
        regime_window: int = 20,
        regime_history: int = 1_000,
    ) -> None:
        for name, value in (
            ("window", window),
            ("latency_window", latency_window),
            ("regime_window", regime_window),
            ("regime_history", regime_history),
        ):
            if not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
        for name, value in (
            ("periods_per_year", periods_per_year),
            ("latency_budget_ms", latency_budget_ms),
        ):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        self.periods_per_year = float(periods_per_year)
        self.window = window
        self.thresholds = thresholds
        self.latency_budget_ms = float(latency_budget_ms)
        self.regime_window = regime_window
        self.regime_history = regime_history
        self._returns: deque[float] = deque(maxlen=window)
        self._latencies: deque[float] = deque(maxlen=latency_window)
        self._agents: dict[str, _Agent] = {}
        self._symbols: dict[str, _Symbol] = {}
        self._orders: dict[str, str] = {}
        self._fills: set[tuple[str, str]] = set()
        self._events: Counter[str] = Counter()
        self._active: set[str] = set()
        self._stale_bars = 0
        self._cycles = 0
        self._last: dict[str, Any] | None = None
        self._initial = self._peak = self._day_start = math.nan
        self._max_drawdown = 0.0
        self._day: datetime.date | None = None
        self._breaker: str | None = None
        self._last_cycle_time = time.time()

    # ----------------------------------------------------------------- updates
    def update(self, event: Event) -> list[Event]:
        """Folds in one event; returns the ``alert`` events it raised."""
        self._events[event.kind] += 1
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)
        alerts = self._evaluate() if event.kind == "cycle" else []
        return alerts + self.check(event.time)

    def check(self, now: float | None = None) -> list[Event]:
        """The staleness alert at ``now`` (default: the wall clock), if it is new."""
        now = time.time() if now is None else now
        age = now - self._last_cycle_time
        limit = self.thresholds.staleness_s
        alert = self._crossing(
            "staleness",
            age > limit,
            "critical",
            f"no cycle for {age:.0f} s (limit {limit:g} s)",
            age,
            limit,
        )
        return [alert] if alert else []

    def _on_bar(self, event: Event) -> None:
        symbol, bar_time = _field(event, "symbol"), int(_field(event, "time"))
        close = float(_field(event, "close"))
        if not (math.isfinite(close) and close > 0):
            raise ValueError(f"bar of {symbol} at {bar_time}: close {close!r} <= 0")
        state = self._symbols.get(symbol)
        if state is None:
            state = self._symbols[symbol] = _Symbol(
                deque(maxlen=self.regime_window + 1),
                deque(maxlen=self.regime_history),
                bar_time - 1,
            )
        if bar_time <= state.last_time:
            self._stale_bars += 1
            return
        state.last_time = bar_time
        state.closes.append(close)
        if len(state.closes) == state.closes.maxlen:
            state.volatilities.append(
                float(np.std(np.diff(np.log(state.closes)), ddof=1))
            )

    def _on_decision(self, event: Event) -> None:
        target = _field(event, "target")
        agent = self._agent(_field(event, "agent"))
        if target is not None and math.isfinite(float(target)):
            agent.signalled = True

    def _on_health(self, event: Event) -> None:
        self._agent(_field(event, "agent")).isolated = bool(_field(event, "isolated"))

    def _on_breaker(self, event: Event) -> None:
        self._breaker = str(_field(event, "state"))

    def _on_order(self, event: Event) -> None:
        self._orders[_field(event, "client_order_id")] = str(_field(event, "status"))

    def _on_fill(self, event: Event) -> None:
        self._fills.add((_field(event, "client_order_id"), _field(event, "trade_id")))

    def _on_cycle(self, event: Event) -> None:
        equity = float(_field(event, "equity"))
        if not (math.isfinite(equity) and equity > 0):
            raise ValueError(
                f"cycle event: equity must be finite and > 0, got {equity}"
            )
        bar_time = int(_field(event, "bar_time"))
        positions, prices = _field(event, "positions"), _field(event, "prices")
        missing = sorted(set(positions) - set(prices))
        if missing:
            raise ValueError(f"cycle event: no price for positions in {missing}")
        latency = float(_field(event, "latency_ms"))
        agents = _field(event, "agents")
        self._breaker = _field(event, "breaker")
        if self._cycles == 0:
            self._initial = self._peak = equity
        else:
            self._returns.append(equity / self._last["equity"] - 1)
        day = datetime.datetime.fromtimestamp(bar_time / 1000, datetime.UTC).date()
        if day != self._day:
            self._day = day
            self._day_start = self._last["equity"] if self._last else equity
        self._peak = max(self._peak, equity)
        self._max_drawdown = min(self._max_drawdown, equity / self._peak - 1)
        self._latencies.append(latency)
        for name, report in agents.items():
            self._fold_agent(name, report)
        self._cycles += 1
        self._last_cycle_time = event.time
        self._last = {
            "bar_time": bar_time,
            "equity": equity,
            "cash": float(_field(event, "cash")),
            "positions": {symbol: float(units) for symbol, units in positions.items()},
            "prices": {symbol: float(price) for symbol, price in prices.items()},
        }

    def _agent(self, name: str) -> _Agent:
        if name not in self._agents:
            self._agents[name] = _Agent(
                deque(maxlen=self.window),
                deque(maxlen=self.window),
                deque(maxlen=self.window),
            )
        return self._agents[name]

    def _fold_agent(self, name: str, report: dict[str, Any]) -> None:
        agent = self._agent(name)
        ok = bool(report["ok"])
        latency = report.get("latency_ms")
        if latency is not None and math.isfinite(float(latency)):
            agent.latencies.append(float(latency))
        agent.oks.append(ok)
        if ok:
            agent.signals.append(agent.signalled)
        else:
            agent.errors += 1
        agent.signalled = False

    # ------------------------------------------------------------------ alerts
    def _crossing(
        self,
        name: str,
        crossed: bool,
        level: str,
        message: str,
        value: float,
        threshold: float,
    ) -> Event | None:
        if not crossed:
            self._active.discard(name)
            return None
        if name in self._active:
            return None
        self._active.add(name)
        data = {"name": name, "level": level, "message": message}
        data |= {"value": _finite(value), "threshold": threshold}
        return Event(kind="alert", data=data)

    def _evaluate(self) -> list[Event]:
        limits = self.thresholds
        drawdown, daily = self._drawdown(), self._daily_return()
        p99 = float(np.percentile(self._latencies, 99))
        candidates = [
            self._crossing(
                "drawdown",
                drawdown <= -limits.drawdown,
                "critical",
                f"drawdown {drawdown:.2%} reached the limit -{limits.drawdown:.2%}",
                drawdown,
                limits.drawdown,
            ),
            self._crossing(
                "daily_loss",
                daily <= -limits.daily_loss,
                "critical",
                f"P&L today {daily:.2%} reached the limit -{limits.daily_loss:.2%}",
                daily,
                limits.daily_loss,
            ),
            self._crossing(
                "cycle_latency",
                p99 > limits.cycle_latency_ms,
                "warning",
                f"p99 cycle latency {p99:.0f} ms > {limits.cycle_latency_ms:g} ms",
                p99,
                limits.cycle_latency_ms,
            ),
        ]
        for name in sorted(self._agents):
            score = self.health(name)
            candidates.append(
                self._crossing(
                    f"agent_health:{name}",
                    score is not None and score < limits.agent_health,
                    "warning",
                    f"agent {name} health {score or 0:.2f} < {limits.agent_health:g}",
                    math.nan if score is None else score,
                    limits.agent_health,
                )
            )
        return [alert for alert in candidates if alert is not None]

    # ------------------------------------------------------------- statistics
    def _drawdown(self) -> float:
        return self._last["equity"] / self._peak - 1 if self._last else 0.0

    def _daily_return(self) -> float:
        return self._last["equity"] / self._day_start - 1 if self._last else 0.0

    def sharpe(self) -> float:
        """Annualised Sharpe ratio of the last ``window`` cycle returns (NaN if < 2)."""
        returns = np.asarray(self._returns)
        if returns.size < 2:
            return math.nan
        std = 0.0 if returns.max() == returns.min() else np.std(returns, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.mean(returns) / std * math.sqrt(self.periods_per_year))

    def health(self, name: str) -> float | None:
        """The agent's health score (module docstring), ``None`` before its cycles."""
        agent = self._agents[name]
        if agent.isolated:
            return 0.0
        if not agent.oks:
            return None
        p95 = float(np.percentile(agent.latencies, 95)) if agent.latencies else 0.0
        latency_score = (
            1.0 if p95 <= self.latency_budget_ms else self.latency_budget_ms / p95
        )
        reliability = sum(agent.oks) / len(agent.oks)
        signal_rate = sum(agent.signals) / len(agent.signals) if agent.signals else 0.0
        return latency_score * reliability * signal_rate

    def regime(self, symbol: str) -> dict[str, Any]:
        """The symbol's volatility and trend labels and the numbers behind them."""
        state = self._symbols[symbol]
        result: dict[str, Any] = {"volatility": "unknown", "trend": "unknown"}
        if len(state.volatilities) < self.regime_window:
            return result | {"bars": len(state.closes)}
        history = np.asarray(state.volatilities)
        current = history[-1]
        percentile = float(np.mean(history <= current))
        closes = np.asarray(state.closes)
        path = float(np.sum(np.abs(np.diff(closes))))
        efficiency = abs(closes[-1] - closes[0]) / path if path > 0 else 0.0
        if percentile < _CALM_BELOW:
            result["volatility"] = "calm"
        elif percentile > _VOLATILE_ABOVE:
            result["volatility"] = "volatile"
        else:
            result["volatility"] = "normal"
        result["trend"] = "trending" if efficiency >= _TRENDING_FROM else "ranging"
        return result | {
            "volatility_annualised": float(current * math.sqrt(self.periods_per_year)),
            "volatility_percentile": percentile,
            "efficiency_ratio": float(efficiency),
        }

    def snapshot(self) -> dict[str, Any]:
        """The session's summary as a JSON-able dict (``None`` where undefined)."""
        last = self._last
        equity = last["equity"] if last else None
        values = {
            symbol: units * last["prices"][symbol]
            for symbol, units in (last["positions"].items() if last else ())
        }
        latencies = np.asarray(self._latencies)
        agents = {}
        for name, agent in sorted(self._agents.items()):
            agents[name] = {
                "score": self.health(name),
                "cycles": len(agent.oks),
                "errors": agent.errors,
                "isolated": agent.isolated,
            }
        return {
            "cycles": self._cycles,
            "bar_time": last["bar_time"] if last else None,
            "equity": equity,
            "cash": last["cash"] if last else None,
            "initial_equity": _finite(self._initial),
            "pnl": equity - self._initial if last else 0.0,
            "pnl_pct": equity / self._initial - 1 if last else 0.0,
            "daily_pnl_pct": self._daily_return(),
            "sharpe": _finite(self.sharpe()),
            "drawdown": self._drawdown(),
            "max_drawdown": self._max_drawdown,
            "exposure": {
                "gross": sum(abs(v) for v in values.values()) / equity if last else 0.0,
                "net": sum(values.values()) / equity if last else 0.0,
            },
            "positions": [
                {
                    "symbol": symbol,
                    "units": last["positions"][symbol],
                    "price": last["prices"][symbol],
                    "value": value,
                }
                for symbol, value in sorted(values.items())
            ],
            "fills": len(self._fills),
            "orders": dict(sorted(Counter(self._orders.values()).items())),
            "agents": agents,
            "regimes": {
                symbol: self.regime(symbol) for symbol in sorted(self._symbols)
            },
            "stale_bars": self._stale_bars,
            "breaker": self._breaker,
            "cycle_latency_ms": {
                "p50": float(np.percentile(latencies, 50)) if latencies.size else None,
                "p99": float(np.percentile(latencies, 99)) if latencies.size else None,
            },
            "active_alerts": sorted(self._active),
            "events": dict(sorted(self._events.items())),
            "last_cycle_time": self._last_cycle_time if last else None,
        }


async def post_alert(
    session: aiohttp.ClientSession, url: str, alert: Event, *, timeout_s: float = 5.0
) -> None:
    """POSTs ``alert.to_json()`` to a webhook; a failure is logged, never raised.

    Only the URL's host is logged: a webhook URL often carries its secret in the path.
    """
    host = urllib.parse.urlsplit(url).hostname
    try:
        async with session.post(
            url, json=alert.to_json(), timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            if response.status >= 400:
                _log.warning(
                    "alert webhook refused",
                    host=host,
                    status=response.status,
                    alert=alert.data.get("name"),
                )
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        _log.warning(
            "alert webhook failed",
            host=host,
            error=type(error).__name__,
            alert=alert.data.get("name"),
        )
