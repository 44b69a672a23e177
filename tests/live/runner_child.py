"""A runner session in its own process, for the ``kill -9`` tests; and its parts.

``python tests/live/runner_child.py JOURNAL URL SEED BARS SPEED`` trades the
:data:`ALTERNATING` agent over :func:`flat_feed` (``BARS`` one-minute bars of
BTC/USDT, paced ``SPEED`` times real time) through the real ccxt client aimed at the
loopback Binance at ``URL``, journaling into ``JOURNAL``. The keys come from
``NEUROFLUX_BINANCE_API_KEY`` / ``_API_SECRET``, as in a real session. Run again on
the same journal it resumes after the last committed bar, which is what the tests
kill it to check. ``SEED`` only appears in the log line: everything the child does
is deterministic, so every restart sees the same bars.

``python tests/live/runner_child.py --serve`` imports all that once, then forks one
such run per line of stdin (the same five arguments), answering ``pid N`` and, when
that run ends, ``exit N CODE`` (``-9``: killed). Each run is its own process that
opens the journal and the exchange afresh and compiles its steps again; only the
imports (several seconds, most of a restart) are shared, so a test can kill and
restart the runner many times within seconds.

The test module imports :data:`ALTERNATING`, :func:`flat_feed` and
:func:`make_runner` from here, so the in-process tests and the child run one
definition.

Prices are flat (every bar's OHLC is :data:`PRICE`, the server's fill price), because
the server lives in the parent process and cannot follow a feed the child replays; a
market order then fills at exactly the price the runner sized it with.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback

import jax.numpy as jnp
import numpy as np
import pandas as pd

from neuroflux.live.ccxt_exchange import make_ccxt_exchange
from neuroflux.live.decisions import Agent
from neuroflux.live.feeds import ReplayFeed
from neuroflux.live.journal import Journal
from neuroflux.live.orders import Exchange
from neuroflux.live.runner import Runner
from neuroflux.live.runner_config import RunnerConfig
from neuroflux.strategies.steps import Bar, StepStrategy

__all__ = ["ALTERNATING", "PRICE", "SESSION", "SYMBOL", "flat_feed", "make_runner"]

SYMBOL = "BTC/USDT"
SESSION = "alternate@v1"
PRICE = 30_000.0
COMMISSION = 0.001  # the loopback Binance's taker fee, so orders are sized to fit


def _init(params: object) -> jnp.ndarray:
    return jnp.zeros((), jnp.int32)


def _step(state: jnp.ndarray, bar: Bar, params: object) -> tuple:
    # Long on even bars, flat on odd ones: the target changes every bar, so every bar
    # places one order (Binance spot cannot short).
    return state + 1, jnp.where(state % 2 == 0, 1.0, 0.0)


ALTERNATING = StepStrategy(init=_init, step=_step)


def flat_feed(bars: int, *, speed: float | None = None) -> ReplayFeed:
    """``bars`` one-minute BTC/USDT bars at :data:`PRICE`, from 2024-01-01 UTC."""
    index = pd.date_range("2024-01-01", periods=bars, freq="1min", tz="UTC")
    columns = {name: np.full(bars, PRICE) for name in ("open", "high", "low", "close")}
    frame = pd.DataFrame({**columns, "volume": np.ones(bars)}, index=index)
    return ReplayFeed({SYMBOL: frame}, timeframe="1m", speed=speed)


def make_runner(feed: ReplayFeed, exchange: Exchange, journal: Journal) -> Runner:
    """The alternating agent's runner over ``feed``, trading through ``exchange``."""
    config = RunnerConfig(
        session=SESSION, symbols=(SYMBOL,), fees=COMMISSION, timeframe_ms=60_000
    )
    agent = Agent(name="alternate", strategy=ALTERNATING, params=())
    return Runner(config, [agent], feed=feed, exchange=exchange, journal=journal)


async def _run(journal_path: str, url: str, bars: int, speed: float) -> None:
    exchange = make_ccxt_exchange(
        "binance",
        api_url=url,
        timeout_ms=1_000,
        rate_limit=False,
        retries=25,
        backoff=0.01,
        max_backoff=0.1,
    )
    try:
        with Journal(journal_path) as journal:
            runner = make_runner(flat_feed(bars, speed=speed), exchange, journal)
            summary = await runner.run()
    finally:
        await exchange.close()
    print(f"finished {summary}", flush=True)


def run_once(argv: list[str]) -> None:
    """One session run: ``argv`` is ``JOURNAL URL SEED BARS SPEED``."""
    if len(argv) != 5:
        raise SystemExit(
            "usage: runner_child.py JOURNAL URL SEED BARS SPEED (keys in environment)"
            " | runner_child.py --serve"
        )
    journal_path, url, seed, bars, speed = argv
    print(f"child seed={seed} bars={bars} speed={speed}", flush=True)
    asyncio.run(_run(journal_path, url, int(bars), float(speed)))


def serve() -> None:
    """Forks one run per stdin line (its argv), answering ``pid N`` then ``exit N S``.

    The imports (jax, ccxt, pandas) take seconds, several times a restart's work; a
    run forked from this already-imported process is still a process of its own,
    killed by pid, that opens the journal and the exchange afresh and compiles its
    steps again. Nothing has touched jax's backend here, so forking is safe. A run's
    output goes to ``JOURNAL.log``. ``S`` is the exit code, or ``-signal``.
    """
    for line in sys.stdin:
        argv = line.split()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with open(argv[0] + ".log", "a") as log:
                    os.dup2(log.fileno(), 1)
                    os.dup2(log.fileno(), 2)
                run_once(argv)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {pid} {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        run_once(sys.argv[1:])
