"""The live runner end to end: real sp500 bars, paper exchange, SQLite journal.

The proof of parity: replaying history through :class:`Runner` with a
:class:`PaperExchange` must journal exactly the orders that
:func:`neuroflux.backtest.simulate` (close fills) implies for the same step strategy's
targets, and end with the same cash and units. The same comparison, against the
targets the consensus should have had, shows that an isolated agent stops counting
and that a resumed session continues as if it had never stopped.

Replays use segments of the sample (a full 5,031-bar replay costs ~5-10 s of journal
commits on two cores; this file must stay under ~20 s).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import math
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import psutil
import pytest

from neuroflux.backtest import Bars, SimulationConfig, SimulationParams, simulate
from neuroflux.data import load_sample
from neuroflux.live.decisions import Agent
from neuroflux.live.events import Event, EventBus
from neuroflux.live.feeds import ReplayFeed
from neuroflux.live.journal import Journal
from neuroflux.live.orders import BarEvent, Order, OrderRequest
from neuroflux.live.paper import PaperExchange
from neuroflux.live.risk import RiskLimits
from neuroflux.live.runner import Runner
from neuroflux.live.runner_config import RunnerConfig, RunSummary
from neuroflux.strategies.positions import Direction
from neuroflux.strategies.reversion import RsiReversionParams
from neuroflux.strategies.steps import STEP_STRATEGIES, Bar, StepStrategy, run_steps
from neuroflux.strategies.trend import SmaCrossParams

SYMBOL = "SP500/USD"
FEES, SLIPPAGE, CASH = 0.001, 0.0005, 10_000.0
SMA = SmaCrossParams(fast=10, slow=50, direction=Direction.LONG_SHORT)
RSI = RsiReversionParams(period=14, lower=30.0, upper=70.0)
_run_steps = jax.jit(run_steps, static_argnums=0)
_simulate = jax.jit(simulate, static_argnames="config")


@pytest.fixture(scope="module")
def sp500() -> pd.DataFrame:
    return load_sample("sp500")


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A scratch folder in memory where there is one (/dev/shm).

    The journal and the paper account commit with fsync; on a shared CI disk that
    dominates a replay, and what these tests check is the trading, not the disk.
    """
    memory = Path("/dev/shm")
    if not (memory.is_dir() and os.access(memory, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="neuroflux-runner-", dir=memory))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class RecordingBus(EventBus):
    """The real bus, also keeping every event in the order it was published."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Event] = []

    def publish(self, event: Event) -> None:
        self.log.append(event)
        super().publish(event)


def _alternating_steps(targets: tuple[float, ...]) -> StepStrategy:
    """Cycles through ``targets`` bar after bar (pure, jit-able)."""
    values = jnp.asarray(targets)

    def init(params: Any) -> jax.Array:
        return jnp.zeros((), jnp.int32)

    def step(state: jax.Array, bar: Bar, params: Any) -> tuple[jax.Array, jax.Array]:
        return state + 1, values[state % len(targets)] * params

    return StepStrategy(init, step)


def _failing_after(bar_index: int) -> StepStrategy:
    """Long until bar ``bar_index``, then a NaN target on every bar."""

    def init(params: Any) -> jax.Array:
        return jnp.zeros((), jnp.int32)

    def step(state: jax.Array, bar: Bar, params: Any) -> tuple[jax.Array, jax.Array]:
        return state + 1, jnp.where(state >= bar_index, jnp.nan, 1.0)

    return StepStrategy(init, step)


def _runner(
    agents: Sequence[Agent],
    frame: pd.DataFrame,
    folder: Path,
    *,
    limits: RiskLimits | None = None,
    bus: EventBus | None = None,
    paper_file: Path | None = None,
) -> Runner:
    config = RunnerConfig(
        session="test",
        symbols=(SYMBOL,),
        fees=FEES,
        slippage=SLIPPAGE,
        limits=limits or RiskLimits(),
    )
    exchange = PaperExchange(
        balances={"USD": CASH}, fees=FEES, slippage=SLIPPAGE, path=paper_file
    )
    return Runner(
        config,
        agents,
        feed=ReplayFeed({SYMBOL: frame}, timeframe="1d"),
        exchange=exchange,
        journal=Journal(folder / "journal.sqlite"),
        bus=bus,
    )


def _run(runner: Runner) -> RunSummary:
    async def run() -> RunSummary:
        try:
            return await runner.run()
        finally:
            await runner.exchange.close()
            runner.journal.close()

    return asyncio.run(run())


def _step_targets(strategy: StepStrategy, params: Any, frame: pd.DataFrame):
    bars = Bar.from_arrays(
        frame["close"].to_numpy(float),
        **{c: frame[c].to_numpy(float) for c in ("open", "high", "low", "volume")},
    )
    return np.asarray(_run_steps(strategy, params, bars)[1])


def _assert_backtest_parity(
    journal_file: Path, frame: pd.DataFrame, targets: np.ndarray
) -> int:
    """The journal's fills are simulate's orders, bar by bar; returns their count."""
    close = frame["close"].to_numpy(float)
    times = ReplayFeed({SYMBOL: frame}, timeframe="1d").times
    result = _simulate(
        Bars.from_close(close),
        targets,
        SimulationParams(init_cash=CASH, fees=FEES, slippage=SLIPPAGE),
        config=SimulationConfig(fill="close"),
    )
    units, fees = np.asarray(result.units), np.asarray(result.fees)
    change = np.diff(units, prepend=0.0)
    expected = {
        int(times[t]): (change[t], close[t] * (1 + SLIPPAGE * np.sign(change[t])))
        for t in np.flatnonzero(change)
    }
    with Journal(journal_file, create=False) as journal:
        fills, last = journal.fills(), journal.last_cycle()
    by_bar: dict[int, list] = {}
    for fill in fills:
        by_bar.setdefault(fill.time, []).append(fill)
    assert sorted(by_bar) == sorted(expected), "orders on other bars than the backtest"
    fee_at = {int(times[t]): fees[t] for t in range(len(times))}
    for bar_time, bar_fills in by_bar.items():
        amount, price = expected[bar_time]
        signed = sum(f.amount * (1 if f.side == "buy" else -1) for f in bar_fills)
        assert math.isclose(signed, amount, rel_tol=1e-9, abs_tol=1e-12), bar_time
        for fill in bar_fills:
            assert math.isclose(fill.price, price, rel_tol=1e-12), bar_time
        fee = sum(f.fee for f in bar_fills)
        assert math.isclose(fee, fee_at[bar_time], rel_tol=1e-9), bar_time
    assert last is not None and last.bar_time == int(times[-1])
    # cash may end near 0 (fully invested): compare on the account's scale
    assert math.isclose(last.cash, float(result.cash[-1]), abs_tol=1e-9 * CASH)
    assert math.isclose(last.positions[SYMBOL], units[-1], rel_tol=1e-9)
    return len(fills)


def test_replay_and_resume_repeat_the_backtest_trades(sp500, folder):
    """sma_cross over 2000-2006: one run, a rerun with nothing new, an extension."""
    frame = sp500.loc["2000":"2006"]
    head = len(frame) - 150
    agents = [Agent(name="sma", strategy=STEP_STRATEGIES["sma_cross"], params=SMA)]
    paper_file = folder / "paper.sqlite"
    first = _run(_runner(agents, frame.iloc[:head], folder, paper_file=paper_file))
    assert first.cycles == head and first.stopped_by == "feed ended"
    again = _run(_runner(agents, frame.iloc[:head], folder, paper_file=paper_file))
    assert again.cycles == head and again.orders == 0  # nothing new: no cycle
    resumed = _run(_runner(agents, frame, folder, paper_file=paper_file))
    assert resumed.cycles == len(frame)
    with Journal(folder / "journal.sqlite", create=False) as journal:
        cycles = journal.cycles()
        reconciled = journal.events("reconciled")
    assert len(cycles) == len(frame)  # the rerun and the extension added only new
    assert [r.data["resumed_after"] for r in reconciled][1:] == [
        first.last_bar_time,
        first.last_bar_time,
    ]
    targets = _step_targets(STEP_STRATEGIES["sma_cross"], SMA, frame)
    fills = _assert_backtest_parity(folder / "journal.sqlite", frame, targets)
    assert fills > 20 and first.orders > 0 and resumed.orders > 0


def test_rsi_reversion_replay_repeats_the_backtest_trades(sp500, folder):
    frame = sp500.loc["2007":"2009"]
    strategy = STEP_STRATEGIES["rsi_reversion"]
    summary = _run(
        _runner([Agent(name="rsi", strategy=strategy, params=RSI)], frame, folder)
    )
    assert summary.cycles == len(frame)
    targets = _step_targets(strategy, RSI, frame)
    assert _assert_backtest_parity(folder / "journal.sqlite", frame, targets) > 5


def test_failing_agent_is_isolated_and_the_consensus_follows_the_healthy_one(
    sp500, folder
):
    frame = sp500.loc["2010":"2010-12"]
    failing_from = 100
    healthy = Agent(name="sma", strategy=STEP_STRATEGIES["sma_cross"], params=SMA)
    broken = Agent(name="broken", strategy=_failing_after(failing_from), params=0)
    runner = _runner([healthy, broken], frame, folder)
    summary = _run(runner)

    assert summary.cycles == len(frame)  # the cycle went on
    health = runner.status()["agents"]
    assert health["sma"]["isolated"] is False and health["sma"]["ok"] is True
    assert health["broken"]["isolated"] is True
    assert "nan" in health["broken"]["error"].lower()
    assert health["broken"]["errors"] == 3  # isolated: never stepped again
    # The failing agent keeps its last target (1) for its first two errors; from the
    # third, the bar it is isolated on, the consensus is the healthy agent's alone.
    sma = _step_targets(STEP_STRATEGIES["sma_cross"], SMA, frame)
    isolated_from = failing_from + 2
    consensus = np.where(np.arange(len(frame)) < isolated_from, (sma + 1.0) / 2, sma)
    assert len(set(sma[isolated_from:])) > 1  # it trades after the isolation too
    _assert_backtest_parity(folder / "journal.sqlite", frame, consensus)
    with Journal(folder / "journal.sqlite", create=False) as journal:
        assert len(journal.cycles()) == len(frame)
    assert summary.breaker in ("NORMAL", "WARNING")


def test_breaker_halts_then_emergency_flattens_and_stops(sp500, folder):
    frame = sp500.loc["2008"]
    bus = RecordingBus()
    agent = Agent(
        name="swing",
        strategy=_alternating_steps((1.0, 0.75, 0.75, 0.5, 0.25)),
        params=1.0,
    )
    limits = RiskLimits(max_daily_loss=0.03, max_drawdown=0.08, emergency_drawdown=0.15)
    runner = _runner([agent], frame, folder, limits=limits, bus=bus)
    summary = _run(runner)

    assert summary.stopped_by == "emergency" and summary.breaker == "EMERGENCY"
    assert summary.cycles < len(frame)  # the run stopped by itself
    assert runner.positions()[0]["units"] == 0.0
    with Journal(folder / "journal.sqlite", create=False) as journal:
        transitions = [e.data for e in journal.events("breaker")]
        blocked = [e.data for e in journal.events("breaker_blocked")]
        flattened = journal.events("flattened")
    published = [e.data for e in bus.log if e.kind == "breaker"]
    assert transitions == published  # journaled in the order they happened
    states = [t["state"] for t in transitions]
    assert "HALTED" in states and states[-1] == "EMERGENCY"
    assert states.index("HALTED") < states.index("EMERGENCY")
    for previous, current in itertools.pairwise(transitions):
        assert current["previous"] == previous["state"]
    assert flattened and flattened[-1].data["positions"] == {SYMBOL: 0.0}

    assert blocked and {b["breaker"] for b in blocked} <= {"HALTED", "EMERGENCY"}
    for previous, current in itertools.pairwise(blocked):  # a block journaled once
        assert (current["target"], current["breaker"]) != (
            previous["target"],
            previous["breaker"],
        )
    for event in blocked:  # only what would grow (or flip) the position is blocked
        units, wanted = event["units"], event["wanted"]
        assert abs(wanted) > abs(units) or units * wanted < 0
    state, position, reductions = "NORMAL", 0.0, 0
    for event in bus.log:
        if event.kind == "breaker":
            state = event.data["state"]
        elif event.kind == "fill":
            sign = 1.0 if event.data["side"] == "buy" else -1.0
            after = position + sign * event.data["amount"]
            if state in ("HALTED", "EMERGENCY"):
                assert abs(after) <= abs(position) * (1 + 1e-12)
                assert after * position >= 0 or math.isclose(after, 0, abs_tol=1e-9)
                reductions += 1
            position = after
    assert reductions >= 2  # reducing orders passed while halted, then the flatten
    assert math.isclose(position, 0.0, abs_tol=1e-9)
    print(
        f"\nbreaker: {' -> '.join(['NORMAL', *states])} in {summary.cycles} cycles, "
        f"{len(blocked)} orders blocked, {reductions} reducing fills while halted"
    )


def test_risk_gate_caps_orders_at_max_position(sp500, folder):
    frame = sp500.loc["2003":"2003-10"]
    agents = [Agent(name="sma", strategy=STEP_STRATEGIES["sma_cross"], params=SMA)]
    limits = RiskLimits(max_position=3.0)
    summary = _run(_runner(agents, frame, folder, limits=limits))
    with Journal(folder / "journal.sqlite", create=False) as journal:
        gated = [e.data for e in journal.events("risk_gate")]
        cycles = journal.cycles()
        fills = journal.fills()
    assert summary.orders > 0 and gated
    assert all("max_position" in g["reason"] for g in gated)
    assert all(abs(g["allowed"]) == 3.0 < abs(g["wanted"]) for g in gated)
    held = [abs(c.positions[SYMBOL]) for c in cycles]
    assert max(held) == pytest.approx(3.0, rel=1e-12)
    assert all(h <= 3.0 * (1 + 1e-12) for h in held)
    assert all(f.amount <= 6.0 * (1 + 1e-12) for f in fills)  # a flip: 3 then 3


class _RejectingPaper(PaperExchange):
    """A paper account whose first ``rejections`` orders the exchange answers with
    status 'rejected' (as a venue may, without raising). PaperExchange itself only
    rejects by raising, which the runner always counted as a failure."""

    def __init__(self, rejections: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rejections = rejections

    async def create_order(self, request: OrderRequest) -> Order:
        if self.rejections > 0:
            self.rejections -= 1
            return Order(
                client_order_id=request.client_order_id,
                symbol=request.symbol,
                side=request.side,
                amount=request.amount,
                status="rejected",
            )
        return await super().create_order(request)


def test_an_order_the_exchange_answers_rejected_is_retried_and_fails_the_cycle(
    sp500, folder
):
    frame = sp500.iloc[:6]
    agent = Agent(name="long", strategy=_alternating_steps((1.0,)), params=1.0)
    runner = Runner(
        RunnerConfig(session="test", symbols=(SYMBOL,), fees=FEES, slippage=SLIPPAGE),
        [agent],
        feed=ReplayFeed({SYMBOL: frame}, timeframe="1d"),
        exchange=_RejectingPaper(
            2, balances={"USD": CASH}, fees=FEES, slippage=SLIPPAGE
        ),
        journal=Journal(folder / "journal.sqlite"),
    )
    summary = _run(runner)
    assert summary.cycles == len(frame)
    with Journal(folder / "journal.sqlite", create=False) as journal:
        orders = journal.orders()
        breaker = [e.data for e in journal.events("breaker")]
        cycles = journal.cycles()
    # The same long target is tried at bars 0 and 1 (rejected), then filled at 2.
    assert [(o.bar_time, o.side, o.status) for o in orders] == [
        (cycles[0].bar_time, "buy", "rejected"),
        (cycles[1].bar_time, "buy", "rejected"),
        (cycles[2].bar_time, "buy", "closed"),
    ]
    assert [c.positions[SYMBOL] for c in cycles[:2]] == [0.0, 0.0]
    assert all(c.positions[SYMBOL] > 0 for c in cycles[2:])
    # The failed cycles reached the breaker: it left NORMAL for errors.
    assert breaker[:1] == [
        {"previous": "NORMAL", "state": "WARNING", "reason": "1 consecutive errors"}
    ]


class _MeasuredFeed:
    """A feed that records the process's resident memory at given cycle counts."""

    def __init__(self, feed: ReplayFeed, at: set[int]) -> None:
        self.symbols, self.timeframe = feed.symbols, feed.timeframe
        self._feed, self._at = feed, at
        self.rss: dict[int, int] = {}

    def _measure(self, count: int) -> None:
        gc.collect()
        self.rss[count] = psutil.Process().memory_info().rss

    async def bars(
        self, after: int | None = None
    ) -> AsyncIterator[tuple[BarEvent, ...]]:
        count = 0
        async for events in self._feed.bars(after):
            if count in self._at:
                self._measure(count)
            yield events
            count += 1
        self._measure(count)


def test_a_thousand_cycles_keep_resident_memory_flat(folder):
    symbol = "BTC/USDT"
    bars = 1_300
    feed = _MeasuredFeed(
        ReplayFeed.synthetic([symbol], bars=bars, seed=3, timeframe="1m"), {200}
    )
    params = SmaCrossParams(fast=5, slow=20, direction=Direction.LONG_SHORT)
    config = RunnerConfig(
        session="memory", symbols=(symbol,), fees=FEES, timeframe_ms=60_000
    )
    runner = Runner(
        config,
        [Agent(name="sma", strategy=STEP_STRATEGIES["sma_cross"], params=params)],
        feed=feed,
        exchange=PaperExchange(balances={"USDT": CASH}, fees=FEES),
        journal=Journal(folder / "journal.sqlite"),
    )
    summary = _run(runner)
    assert summary.cycles == bars and summary.orders > 100
    start, end = feed.rss[200], feed.rss[bars]
    growth = (end - start) / start
    print(
        f"\nRSS at cycle 200: {start / 2**20:.1f} MiB, at cycle {bars}: "
        f"{end / 2**20:.1f} MiB, growth {growth:+.2%}"
    )
    assert growth < 0.05
    # In absolute terms too: 4 MiB over 1,100 cycles is ~3.8 KiB a cycle, where a
    # pytest process's 5 % (hundreds of MB) would hide tens of KB a cycle; the
    # measured growth is under 0.1 MiB.
    assert end - start < 4 * 2**20


def test_alerts_are_journaled_published_and_posted_to_the_webhook(sp500, folder):
    """The analytics engine's alerts reach the journal, the bus and a real webhook
    server, each once."""
    from aiohttp import web

    from neuroflux.live.analytics import AlertThresholds, AnalyticsEngine

    frame = sp500.loc["2008-09":"2008-11"]
    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    async def run() -> RunSummary:
        app = web.Application()
        app.router.add_post("/hook", hook)
        server = web.AppRunner(app)
        await server.setup()
        site = web.TCPSite(server, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        agent = Agent(name="long", strategy=_alternating_steps((1.0,)), params=1.0)
        runner = _runner([agent], frame, folder, bus=bus)
        runner.engine = AnalyticsEngine(
            periods_per_year=252, thresholds=AlertThresholds(drawdown=0.05)
        )
        runner.webhook_url = f"http://127.0.0.1:{port}/hook"
        try:
            return await runner.run()  # it waits for its own in-flight posts
        finally:
            await runner.exchange.close()
            runner.journal.close()
            await server.cleanup()

    bus = RecordingBus()
    summary = asyncio.run(run())
    assert summary.cycles == len(frame)
    with Journal(folder / "journal.sqlite", create=False) as journal:
        journaled = [e.data for e in journal.events("alert")]
    assert any(a["name"] == "drawdown" for a in journaled)  # long into 2008's crash
    assert [e.data for e in bus.log if e.kind == "alert"] == journaled

    def ordered(alerts: list[dict]) -> list[str]:  # posts run side by side
        return sorted(json.dumps(alert, sort_keys=True) for alert in alerts)

    assert ordered([post["data"] for post in received]) == ordered(journaled)
