"""Throughput and latency of the live runner's cycle, against its own engine.

Run with ``python bench/live_runner.py`` (about 4 minutes on a 2-core CPU;
``--bars N`` sets the synthetic series' length, ``--profile`` adds a cProfile of one
run). Three measurements:

1. Replay throughput, cycles (= candles, one symbol) a second, of ``Runner.run``:
   the ``sma_cross`` step strategy (fast 10, slow 50, long/short), a ``ReplayFeed``
   as fast as it goes, a ``PaperExchange`` (fees 0.1 %, slippage 0.05 %), a real
   ``Journal`` (WAL, synchronous FULL) and an ``AnalyticsEngine``. Variants: journal
   and paper account on disk (as ``neuroflux live run --paper``), paper account in
   memory, journal on tmpfs (``/dev/shm``: what fsync costs), and no analytics. The
   first runner of the process (jit compiles of the step and of the order sizing) is
   timed on its own and excluded. Beside them, in the same run: the pure decision loop
   (the jitted step called bar by bar from Python), the step driven by ``lax.scan``
   (``run_steps``), and the vectorised backtest (``sma_cross`` + ``simulate`` with
   close fills, one ``jax.jit``), each in bars a second. The peer figure, jesse's
   published ~510,000 candles/s on a Raspberry Pi 5, is a backtest loop, not a
   journaled cycle: it cannot be run here and is quoted, not measured.
2. Decision latency: ``Decisions.decide`` timed per bar over the S&P 500 bars, for
   the SMA cross and a neural policy (``make_neural_step``: an MLP 16x5 -> 32 -> 1 on
   the observation window), p50/p99/max in microseconds; target p99 < 1 ms.
3. Event latency, runner to websocket client: a runner (journal on disk) replays bars
   paced at 200 a second and, separately, unpaced, with the API served on its loop
   (``make_app`` + ``serve``, as ``run_session`` does) in a child process; an aiohttp
   client here subtracts each ``cycle`` event's ``time`` (wall clock, set at publish)
   from the wall clock at receipt. Target p95 < 50 ms. ``bench/live_api.py`` measures
   the API alone (events published by a bench route).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import pstats
import tempfile
import time
from pathlib import Path

import aiohttp
import jax
import numpy as np
import structlog
from _machine import best_time, describe_machine

from neuroflux.backtest import Bars, SimulationConfig, SimulationParams, simulate
from neuroflux.live.analytics import AnalyticsEngine
from neuroflux.live.decisions import Agent, Decisions
from neuroflux.live.events import EventBus
from neuroflux.live.feeds import ReplayFeed
from neuroflux.live.journal import Journal
from neuroflux.live.paper import PaperExchange
from neuroflux.live.runner import Runner
from neuroflux.live.runner_config import RunnerConfig
from neuroflux.strategies import sma_cross
from neuroflux.strategies.steps import STEP_STRATEGIES, Bar, run_steps
from neuroflux.strategies.trend import SmaCrossParams

PARAMS = SmaCrossParams(fast=10, slow=50)
FEES, SLIPPAGE, CASH = 0.001, 0.0005, 10_000.0
JESSE_PI5 = 510_000  # candles/s, jesse's published backtest figure (Raspberry Pi 5)
TOKEN = "bench-token"  # a loopback benchmark, not a secret
DAY_MS = 86_400_000
# The runner logs every alert (drawdown, daily loss) at warning level; the replays
# cross those thresholds often, so logs below errors are dropped to keep the tables
# readable (the alerts are still journaled and published).
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


def _runner(feed: ReplayFeed, folder: Path, *, paper_on_disk: bool, engine: bool):
    symbol = feed.symbols[0]
    quote = symbol.partition("/")[2]
    exchange = PaperExchange(
        balances={quote: CASH},
        fees=FEES,
        slippage=SLIPPAGE,
        path=folder / "paper.sqlite" if paper_on_disk else None,
    )
    timeframe_ms = int(np.diff(feed.times[:2])[0]) if len(feed) > 1 else DAY_MS
    config = RunnerConfig(
        session="bench",
        symbols=feed.symbols,
        fees=FEES,
        slippage=SLIPPAGE,
        timeframe_ms=timeframe_ms,
    )
    agent = Agent(name="sma", strategy=STEP_STRATEGIES["sma_cross"], params=PARAMS)
    return Runner(
        config,
        [agent],
        feed=feed,
        exchange=exchange,
        journal=Journal(folder / "journal.sqlite"),
        bus=EventBus(),
        engine=AnalyticsEngine(periods_per_year=365 * DAY_MS / timeframe_ms)
        if engine
        else None,
    )


def _replay(feed, root: str, profile=None, **options) -> tuple[float, int, int]:
    """Seconds of ``runner.run()``, cycles and orders, in a fresh folder of root."""
    with tempfile.TemporaryDirectory(dir=root) as folder:
        runner = _runner(feed, Path(folder), **options)
        start = time.perf_counter()
        if profile is not None:
            profile.enable()
        summary = asyncio.run(runner.run())
        if profile is not None:
            profile.disable()
        seconds = time.perf_counter() - start
        runner.journal.close()
        asyncio.run(runner.exchange.close())
    _last[0] = runner
    assert summary.cycles == len(feed), (summary.cycles, len(feed))
    return seconds, summary.cycles, summary.orders


_last: list[Runner | None] = [None]  # the last runner, for the direct timings


def _engine_rates(close: np.ndarray) -> dict[str, tuple[float, float]]:
    """Bars/s and first-call seconds of the scan, the backtest and the Python loop."""
    step = STEP_STRATEGIES["sma_cross"]
    bars = Bar.from_arrays(close, open=close, high=close, low=close, volume=close)
    sim_params = SimulationParams(init_cash=CASH, fees=FEES, slippage=SLIPPAGE)
    scan = jax.jit(run_steps, static_argnums=0)

    def backtest(close):
        target = sma_cross(close, PARAMS)
        return simulate(
            Bars.from_close(close), target, sim_params, SimulationConfig(fill="close")
        ).value

    backtest = jax.jit(backtest)
    jitted_step = jax.jit(step.step)

    def python_loop(count: int):
        state, target = step.init(PARAMS), 0.0
        for price in close[:count].tolist():
            value = np.float64(price)
            state, target = jitted_step(
                state, Bar(open=value, high=value, low=value, close=value,
                           volume=value), PARAMS,
            )  # fmt: skip
            target = float(target)
        return target

    rates = {}
    for name, function, count in (
        ("step under lax.scan (run_steps)", lambda: scan(step, PARAMS, bars), None),
        ("sma_cross + simulate, one jit", lambda: backtest(close), None),
        ("jitted step, Python loop", lambda: python_loop(20_000), 20_000),
    ):
        start = time.perf_counter()
        jax.block_until_ready(function())
        first = time.perf_counter() - start
        seconds = best_time(function, 3 if count else 7)
        rates[name] = (min(count or len(close), len(close)) / seconds, first)
    return rates


def throughput(synthetic_bars: int, profile: bool) -> None:
    sp500 = ReplayFeed.from_sample("sp500")
    synthetic = ReplayFeed.synthetic(["BTC/USDT"], bars=synthetic_bars, seed=7)
    disk, shm = tempfile.gettempdir(), "/dev/shm"
    seconds, cycles, _ = _replay(sp500, shm, paper_on_disk=False, engine=True)
    print(
        f"first runner of the process (jit compiles), S&P 500: {seconds:.2f} s for "
        f"{cycles} cycles (excluded from the table)\n"
    )
    variants = (
        ("journal + paper on disk, analytics", disk, True, True),
        ("journal on disk, paper in memory, analytics", disk, False, True),
        ("journal on tmpfs, paper in memory, analytics", shm, False, True),
        ("journal on tmpfs, paper in memory, no analytics", shm, False, False),
    )
    print(
        f"{'data':<22} {'runner':<48} {'cycles':>7} {'orders':>6} {'s':>7} "
        f"{'cycles/s':>9} {'jesse/us':>8}"
    )
    close_by_data = {}
    for data, feed in (("S&P 500 daily", sp500), ("SYNTHETIC 1m", synthetic)):
        close_by_data[data] = np.array([b[0].close for b in feed._bars])
        # The long series skips the on-disk paper account: fsync-bound, as above.
        for name, root, paper_on_disk, engine in variants[feed is synthetic :]:
            seconds, cycles, orders = _replay(
                feed, root, paper_on_disk=paper_on_disk, engine=engine
            )
            rate = cycles / seconds
            print(
                f"{data:<22} {name:<48} {cycles:>7} {orders:>6} {seconds:>7.2f} "
                f"{rate:>9,.0f} {JESSE_PI5 / rate:>8.0f}"
            )
    print("load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"\nengine, same strategy (jesse on a Pi 5: {JESSE_PI5:,} candles/s)")
    print(f"{'data':<22} {'path':<34} {'bars/s':>12} {'first call s':>12}")
    for data, close in close_by_data.items():
        for name, (rate, first) in _engine_rates(close).items():
            print(f"{data:<22} {name:<34} {rate:>12,.0f} {first:>12.2f}")
    if profile:
        _profile(sp500, disk)


_PROFILED = (
    ("journal.py", "commit_cycle"),
    ("journal.py", "record_intent"),
    ("journal.py", "record_order"),
    ("journal.py", "unfinished_orders"),
    ("~", "<method 'execute' of 'sqlite3.Connection' objects>"),
    ("decisions.py", "decide"),
    ("decisions.py", "_bar"),
    ("pjit.py", "cache_miss"),
    ("runner.py", "_state_bytes"),
    ("runner.py", "_trade"),
    ("runner.py", "_publish"),
    ("events.py", "publish"),
    ("analytics.py", "update"),
    ("dataclasses.py", "asdict"),
    ("paper.py", "on_bar"),
    ("paper.py", "create_order"),
    ("paper.py", "_commit"),
    ("runner.py", "_cycle"),
)


def _profile(feed: ReplayFeed, root: str) -> None:
    profile = cProfile.Profile()
    seconds, cycles, _ = _replay(feed, root, profile, paper_on_disk=False, engine=True)
    stats = pstats.Stats(profile).stats  # {(file, line, name): (cc, nc, tt, ct, ...)}
    print(
        f"\ncProfile of one S&P 500 run (journal on disk, paper in memory, "
        f"analytics): {seconds:.2f} s profiled, {cycles} cycles"
    )
    runner = _last[0]
    start = time.perf_counter()
    for _ in range(1_000):
        runner._state_bytes()
    state_us = (time.perf_counter() - start) * 1e3
    print(
        f"unprofiled: Runner._state_bytes (msgpack of every agent state, "
        f"{len(runner._state_bytes())} bytes, each cycle) {state_us:.0f} us a call"
    )
    print(f"{'function (cumulative)':<58} {'calls':>7} {'us/cycle':>9} {'share':>6}")
    for suffix, name in _PROFILED:
        found = [v for k, v in stats.items() if k[0].endswith(suffix) and k[2] == name]
        calls = sum(v[1] for v in found)
        cumulative = sum(v[3] for v in found)
        label = f"{suffix.removesuffix('.py')}:{name}"[:58]
        print(
            f"{label:<58} {calls:>7} {cumulative / cycles * 1e6:>9.1f} "
            f"{cumulative / seconds:>6.1%}"
        )


def _percentiles(microseconds: np.ndarray) -> str:
    p50, p99 = np.percentile(microseconds, [50, 99])
    return f"{p50:>9.1f} {p99:>9.1f} {microseconds.max():>9.1f}"


def decision_latency() -> None:
    from neuroflux.agents.neural import (
        NeuralPolicyConfig,
        init_neural_policy,
        make_neural_step,
    )

    feed = ReplayFeed.from_sample("sp500")
    symbol = feed.symbols[0]
    config = NeuralPolicyConfig(window=16, hidden_sizes=(32,))
    agents = (
        ("sma_cross (10, 50)", STEP_STRATEGIES["sma_cross"], PARAMS),
        (
            "neural policy, MLP 80-32-1",
            make_neural_step(config),
            init_neural_policy(jax.random.key(0), config.window, config.hidden_sizes),
        ),
    )
    print(f"{'agent (1 symbol)':<28} {'bars':>6} {'1st ms':>7} {'2nd ms':>7} "
          f"{'p50 us':>9} {'p99 us':>9} {'max us':>9}")  # fmt: skip
    for name, strategy, params in agents:
        decisions = Decisions([Agent(name="a", strategy=strategy, params=params)],
                              [symbol])  # fmt: skip
        times = []
        for (bar,) in feed._bars:
            start = time.perf_counter()
            target = decisions.decide({symbol: bar})[symbol]
            times.append(time.perf_counter() - start)
            assert target is not None and decisions.health["a"].errors == 0
        # The first two calls apart: a state whose types change after the first step
        # (the neural policy's) is traced and compiled again on the second call.
        micro = np.asarray(times[2:]) * 1e6
        first, second = times[0] * 1e3, times[1] * 1e3
        print(f"{name:<28} {micro.size:>6} {first:>7.1f} {second:>7.1f} "
              f"{_percentiles(micro)}")  # fmt: skip


def _serve_runner(bars: int, rate: float | None, ports: multiprocessing.Queue):
    from neuroflux.data import load_sample
    from neuroflux.live import api

    frame = load_sample("sp500").iloc[:bars]
    speed = None if rate is None else rate * DAY_MS / 1e3

    async def main(folder: Path) -> None:
        warm = ReplayFeed({"SP500/USD": frame.iloc[:200]}, timeframe="1d")
        (folder / "warm").mkdir()
        await _runner(warm, folder / "warm", paper_on_disk=False, engine=True).run()
        feed = ReplayFeed({"SP500/USD": frame}, timeframe="1d", speed=speed)
        runner = _runner(feed, folder, paper_on_disk=False, engine=True)
        app = api.make_app(runner, runner.bus, token=TOKEN)
        site = await api.serve(app, port=0, token=TOKEN)
        ports.put(site.addresses[0][1])
        while runner.bus.subscribers < 1:
            await asyncio.sleep(0.01)
        await runner.run()
        await asyncio.sleep(1.0)  # the client reads the last events, then closes
        await site.cleanup()

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(main(Path(folder)))


async def _client(port: int) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        url = f"http://127.0.0.1:{port}/api/events"
        async with session.ws_connect(url, max_msg_size=0) as socket:
            while True:
                event = await socket.receive_json()
                received = time.time()
                latencies.setdefault(event["kind"], []).append(received - event["time"])
                if event["kind"] == "status" and "stopped_by" in event["data"]:
                    return latencies


def event_latency(bars: int) -> None:
    context = multiprocessing.get_context("spawn")
    print(f"{'runner':<34} {'kind':<8} {'events':>7} {'p50':>7} {'p95':>7} "
          f"{'p99':>7} {'max':>7}   (ms)")  # fmt: skip
    for label, rate in (("paced, 200 bars/s", 200.0), ("unpaced (as fast)", None)):
        ports = context.Queue()
        server = context.Process(target=_serve_runner, args=(bars, rate, ports))
        server.start()
        try:
            latencies = asyncio.run(_client(ports.get(timeout=180)))
        finally:
            server.join(timeout=60)
        for kind in ("cycle", "bar", "decision", "order"):
            milli = np.asarray(latencies.get(kind, [np.nan])) * 1e3
            p50, p95, p99 = np.percentile(milli, [50, 95, 99])
            print(f"{label:<34} {kind:<8} {milli.size:>7} {p50:>7.2f} {p95:>7.2f} "
                  f"{p99:>7.2f} {milli.max():>7.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=20_000, help="synthetic 1m bars")
    parser.add_argument("--event-bars", type=int, default=2_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only", choices=("throughput", "decisions", "events"))
    arguments = parser.parse_args()
    print(describe_machine(aiohttp=aiohttp.__version__))
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"jesse (published, Raspberry Pi 5): {JESSE_PI5:,} candles/s\n")
    if arguments.only in (None, "throughput"):
        throughput(arguments.bars, arguments.profile)
    if arguments.only in (None, "decisions"):
        print()
        decision_latency()
    if arguments.only in (None, "events"):
        print()
        event_latency(arguments.event_bars)


if __name__ == "__main__":
    main()
