"""AnalyticsEngine against NumPy on real S&P 500 paths; alerts; the alert webhook."""

from __future__ import annotations

import asyncio
import importlib.util
import math
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd
import pytest
from aiohttp import web

from neuroflux.live.analytics import AlertThresholds, AnalyticsEngine, post_alert
from neuroflux.live.events import Event
from neuroflux.metrics import ratios


@pytest.fixture(scope="module")
def sp500() -> pd.DataFrame:
    """The file ``neuroflux.data.load_sample("sp500")`` reads, read without
    importing ``arch`` (seconds of scipy and statsmodels imports)."""
    [package] = importlib.util.find_spec("arch").submodule_search_locations
    raw = pd.read_csv(Path(package) / "data" / "sp500" / "sp500.csv.gz")
    frame = raw[["Open", "High", "Low", "Close", "Volume"]].astype("float64")
    frame.columns = ["open", "high", "low", "close", "volume"]
    frame.index = pd.to_datetime(raw["Date"], format="%m/%d/%Y").dt.tz_localize("UTC")
    return frame


def _milliseconds(timestamp: pd.Timestamp) -> int:
    return int(timestamp.timestamp() * 1000)


def _cycle(bar_time: int, equity: float, close: float, units: float, **extra) -> Event:
    data = {
        "bar_time": bar_time,
        "equity": equity,
        "cash": equity - units * close,
        "positions": {"SPX": units},
        "prices": {"SPX": close},
        "exposure": units * close / equity,
        "latency_ms": 20.0,
        "agents": {},
        "breaker": "closed",
    }
    return Event(kind="cycle", data=data | extra)


def test_snapshot_matches_numpy_on_a_real_equity_path(sp500: pd.DataFrame) -> None:
    """2007-2009 closes: a book alternately half and fully invested in the index."""
    closes = sp500.loc["2007":"2009", "close"]
    rng = np.random.default_rng(7)
    latencies = rng.gamma(2.0, 15.0, closes.size)
    fractions = np.where(np.arange(closes.size) % 40 < 20, 1.0, 0.5)
    equity = np.empty(closes.size)
    equity[0] = 10_000.0
    for t in range(1, closes.size):  # what a book holding fraction[t-1] earns
        equity[t] = equity[t - 1] * (
            1 + fractions[t - 1] * (closes.iloc[t] / closes.iloc[t - 1] - 1)
        )
    window, thresholds = 60, AlertThresholds(drawdown=0.05, daily_loss=0.03)
    engine = AnalyticsEngine(periods_per_year=252, window=window, thresholds=thresholds)
    alerts: list[Event] = []
    for t, (timestamp, close) in enumerate(closes.items()):
        units = fractions[t] * equity[t] / close
        event = _cycle(
            _milliseconds(timestamp), equity[t], close, units, latency_ms=latencies[t]
        )
        alerts += engine.update(event)
    orders = [("a", "open"), ("b", "open"), ("a", "closed"), ("c", "canceled")]
    for order_id, status in orders:
        engine.update(
            Event(kind="order", data={"client_order_id": order_id, "status": status})
        )
    for trade in [("a", "1"), ("a", "2"), ("a", "2")]:  # the last one is a replay
        engine.update(
            Event(
                kind="fill",
                data=dict(zip(("client_order_id", "trade_id"), trade, strict=True)),
            )
        )
    snapshot = engine.snapshot()

    returns = equity[1:] / equity[:-1] - 1
    expected_sharpe = (
        np.mean(returns[-window:]) / np.std(returns[-window:], ddof=1) * np.sqrt(252)
    )
    drawdown = equity / np.maximum.accumulate(equity) - 1
    value = fractions[-1] * equity[-1]
    assert snapshot["cycles"] == closes.size
    assert snapshot["equity"] == pytest.approx(equity[-1], rel=1e-12)
    assert snapshot["pnl"] == pytest.approx(equity[-1] - 10_000.0, rel=1e-12)
    assert snapshot["pnl_pct"] == pytest.approx(equity[-1] / 10_000.0 - 1, rel=1e-12)
    assert snapshot["daily_pnl_pct"] == pytest.approx(returns[-1], rel=1e-9)
    assert snapshot["sharpe"] == pytest.approx(expected_sharpe, rel=1e-9)
    reference = ratios.sharpe_ratio(returns[-window:], periods_per_year=252)
    assert snapshot["sharpe"] == pytest.approx(float(reference), rel=1e-9)
    assert snapshot["drawdown"] == pytest.approx(drawdown[-1], abs=1e-12)
    assert snapshot["max_drawdown"] == pytest.approx(drawdown.min(), abs=1e-12)
    assert snapshot["exposure"]["gross"] == pytest.approx(fractions[-1], rel=1e-12)
    assert snapshot["exposure"]["net"] == pytest.approx(fractions[-1], rel=1e-12)
    assert snapshot["positions"][0]["value"] == pytest.approx(value, rel=1e-12)
    assert snapshot["cycle_latency_ms"]["p50"] == pytest.approx(np.median(latencies))
    assert snapshot["cycle_latency_ms"]["p99"] == pytest.approx(
        np.percentile(latencies, 99)
    )
    assert snapshot["orders"] == {"canceled": 1, "closed": 1, "open": 1}
    assert snapshot["fills"] == 2
    assert snapshot["breaker"] == "closed"

    # One alert per crossing: raised when the condition starts, again only after
    # it cleared. Daily bars, so each cycle is a new day.
    def starts(condition: np.ndarray) -> int:
        return int(np.sum(condition & ~np.concatenate([[False], condition[:-1]])))

    names = [alert.data["name"] for alert in alerts]
    assert names.count("drawdown") == starts(drawdown <= -0.05) > 1
    daily = np.concatenate([[0.0], returns])
    assert names.count("daily_loss") == starts(daily <= -0.03) > 1
    first = next(alert for alert in alerts if alert.data["name"] == "drawdown")
    assert first.data["level"] == "critical" and first.data["threshold"] == 0.05
    assert first.data["value"] <= -0.05 and "drawdown" in first.data["message"]


def test_alert_is_raised_once_and_rearmed_after_recovery() -> None:
    engine = AnalyticsEngine(
        periods_per_year=365, thresholds=AlertThresholds(drawdown=0.1, daily_loss=0.5)
    )
    day = 86_400_000
    path = [100.0, 89.0, 85.0, 88.0, 95.0, 99.0, 80.0, 79.0]
    raised = [
        [alert.data["name"] for alert in engine.update(_cycle(i * day, e, 1.0, 0.0))]
        for i, e in enumerate(path)
    ]
    assert raised == [[], ["drawdown"], [], [], [], [], ["drawdown"], []]
    assert engine.snapshot()["active_alerts"] == ["drawdown"]
    # Staleness: checked on a timer, since a stalled runner publishes nothing.
    last = engine.snapshot()["last_cycle_time"]
    assert engine.check(last + 299.0) == []
    [stale] = engine.check(last + 301.0)
    assert stale.data["name"] == "staleness" and stale.data["value"] == 301.0
    assert engine.check(last + 400.0) == []


def test_agent_health_score_formula() -> None:
    engine = AnalyticsEngine(periods_per_year=365, window=10, latency_budget_ms=100.0)
    # alpha: 10 cycles, 2 errors, 8 ok of which 6 signalled; slow in 3 cycles.
    latencies = [50.0, 60.0, 40.0, 300.0, 55.0, 45.0, 400.0, 50.0, 250.0, 30.0]
    oks = [True, True, False, True, True, True, False, True, True, True]
    signals = [True, True, False, True, False, True, False, True, True, math.nan]
    alerts = []
    for t in range(10):
        for agent, target in (("alpha", signals[t]), ("beta", 1.0)):
            if target is not False:
                engine.update(
                    Event(
                        kind="decision",
                        data={
                            "symbol": "SPX",
                            "agent": agent,
                            "target": float(target),
                            "latency_ms": 1.0,
                        },
                    )
                )
        agents = {
            "alpha": {"latency_ms": latencies[t], "ok": oks[t], "error": None},
            "beta": {"latency_ms": 10.0, "ok": True, "error": None},
        }
        alerts += engine.update(_cycle(t * 60_000, 100.0, 1.0, 0.0, agents=agents))
    p95 = np.percentile(latencies, 95)
    expected = (100.0 / p95) * (8 / 10) * (6 / 8)
    health = engine.snapshot()["agents"]
    assert health["alpha"]["score"] == pytest.approx(expected, rel=1e-12)
    assert health["alpha"]["errors"] == 2
    assert health["beta"]["score"] == 1.0
    assert [alert.data["name"] for alert in alerts] == ["agent_health:alpha"]
    engine.update(
        Event(
            kind="health",
            data={"agent": "beta", "score": 0.0, "errors": 0, "isolated": True},
        )
    )
    assert engine.snapshot()["agents"]["beta"]["score"] == 0.0


def test_regimes_on_real_calm_and_volatile_periods(sp500: pd.DataFrame) -> None:
    engine = AnalyticsEngine(periods_per_year=252)
    bars = sp500.loc[:"2008-10-31"]
    wanted = {"2003-12-31", "2005-12-30", "2008-03-31", "2008-10-15"}
    regimes = {}
    for timestamp, bar in bars.iterrows():
        data = {"symbol": "SPX", "time": _milliseconds(timestamp), **bar.to_dict()}
        engine.update(Event(kind="bar", data=data))
        if str(timestamp.date()) in wanted:
            regimes[str(timestamp.date())] = engine.regime("SPX")
    engine.update(Event(kind="bar", data={**data, "close": 1.0}))  # not newer
    assert engine.snapshot()["stale_bars"] == 1

    log_returns = np.log(bars["close"]).diff()
    volatility = log_returns.rolling(20).std() * np.sqrt(252)
    change = bars["close"].diff(20).abs()
    efficiency = change / bars["close"].diff().abs().rolling(20).sum()
    labels = {day: (r["volatility"], r["trend"]) for day, r in regimes.items()}
    assert labels == {
        "2003-12-31": ("calm", "trending"),
        "2005-12-30": ("calm", "ranging"),
        "2008-03-31": ("volatile", "ranging"),
        "2008-10-15": ("volatile", "ranging"),
    }
    for day, regime in regimes.items():
        assert regime["volatility_annualised"] == pytest.approx(volatility[day])
        assert regime["efficiency_ratio"] == pytest.approx(efficiency[day])
    assert regimes["2005-12-30"]["volatility_percentile"] < 0.05
    assert regimes["2008-10-15"]["volatility_percentile"] > 0.95


def test_post_alert_reaches_a_real_webhook_and_failures_do_not_raise() -> None:
    async def scenario() -> list[dict]:
        received: list[dict] = []

        async def hook(request: web.Request) -> web.Response:
            received.append(await request.json())
            return web.Response(status=204 if request.path == "/ok" else 500)

        app = web.Application()
        app.router.add_post("/{name}", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        alert = Event(
            kind="alert",
            data={
                "name": "drawdown",
                "level": "critical",
                "message": "m",
                "value": -0.2,
                "threshold": 0.1,
            },
        )
        async with aiohttp.ClientSession() as session:
            await post_alert(session, f"http://127.0.0.1:{port}/ok", alert)
            await post_alert(session, f"http://127.0.0.1:{port}/fails", alert)
            await runner.cleanup()
            await post_alert(session, f"http://127.0.0.1:{port}/ok", alert)
        return received, alert

    received, alert = asyncio.run(scenario())
    assert received == [alert.to_json(), alert.to_json()]
