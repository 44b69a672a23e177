"""``live run --exchange``: a paper session on an exchange's bars, end to end.

The session is the one ``neuroflux live run NAME --paper --exchange binance`` opens
(:func:`open_session`, :func:`run_session`), on the loopback Binance running in real
time with 1-second bars, through the real ccxt clients: polling its REST klines, or
its websocket candles (ccxt.pro) with the warm-up backfilled from REST. A fresh
session warms the strategy up on the closed bars before its start without trading,
then takes the position the strategy wants at the first bar closing after the start.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from exchange_fixtures import BinanceServer
from kline_stream import UPDATES_PER_CANDLE, KlineStream, candle_values

from neuroflux.live.artifacts import Artifact, promote
from neuroflux.live.journal import Journal, verify_audit
from neuroflux.live.sessions import SessionOptions, open_session, run_session
from neuroflux.strategies import STRATEGIES, make_params

SYMBOL = "BTC/USDT"
SECOND = 1_000
WARMUP = 30
TRADED_BARS = 3
PARAMETERS = {"fast": 3, "slow": 8, "direction": "long_short"}


@pytest.fixture
def artifact(tmp_path) -> Artifact:
    config = tmp_path / "sma.yaml"
    config.write_text(
        "strategy: sma_cross\n"
        "params: {fast: 3, slow: 8, direction: long_short}\n"  # PARAMETERS
    )
    return promote(
        config,
        name="sma",
        symbols=[SYMBOL],
        timeframe="1s",
        fees=0.001,
        slippage=0.0005,
        store=tmp_path / "strategies",
    )


async def _run_until(runner, options: SessionOptions, cycles: int) -> None:
    """Runs the session until it committed ``cycles`` cycles, then stops it."""
    session = asyncio.create_task(run_session(runner, options))
    async with asyncio.timeout(60):
        while runner.cycles < cycles and not session.done():
            await asyncio.sleep(0.05)
        runner.request_stop(flatten=False)
        await session


def _check_session(journal_file, trade_from: int) -> np.ndarray:
    """Checks cycles, orders and positions; returns the journaled closes."""
    with Journal(journal_file, create=False) as journal:
        cycles = journal.cycles()
        orders = journal.orders()
    assert verify_audit(journal_file).ok
    times = [cycle.bar_time for cycle in cycles]
    first = trade_from - WARMUP * SECOND
    assert times[: WARMUP + TRADED_BARS] == [
        first + n * SECOND for n in range(WARMUP + TRADED_BARS)
    ]
    closes = np.array([cycle.prices[SYMBOL] for cycle in cycles])
    signal = STRATEGIES["sma_cross"].signal
    targets = np.asarray(signal(closes, make_params("sma_cross", **PARAMETERS)))
    units = np.array([cycle.positions.get(SYMBOL, 0.0) for cycle in cycles])
    warm = np.array(times) < trade_from
    assert targets[WARMUP - 1] != 0  # the warm-up readied the strategy
    assert np.all(units[warm] == 0)  # and nothing traded during it
    assert np.array_equal(np.sign(units[~warm]), targets[~warm])
    assert min(order.bar_time for order in orders) == trade_from
    assert all(order.status == "closed" for order in orders)
    return closes


def test_a_paper_session_on_polled_bars_warms_up_then_trades(artifact, tmp_path):
    journal_file = tmp_path / "live" / "journal.sqlite"
    with BinanceServer() as server:
        options = SessionOptions(
            exchange="binance",
            exchange_url=server.base_url,
            poll=True,
            warmup_bars=WARMUP,
            journal=journal_file,
        )
        runner = open_session(artifact, options)
        trade_from = runner.config.trade_from
        asyncio.run(_run_until(runner, options, WARMUP + TRADED_BARS))
        candles = server.candles(
            "BTCUSDT",
            "1s",
            trade_from - WARMUP * SECOND,
            trade_from + TRADED_BARS * SECOND,
        )
    closes = _check_session(journal_file, trade_from)
    assert closes[: WARMUP + TRADED_BARS].tolist() == [row[4] for row in candles]


def test_a_paper_session_on_streamed_bars_warms_up_from_rest(artifact, tmp_path):
    journal_file = tmp_path / "live" / "journal.sqlite"
    streamed = 5  # closed stream candles before the start

    async def session(server: BinanceServer) -> int:
        async with KlineStream(0, 0, interval="1s", symbols=(SYMBOL,)) as stream:
            options = SessionOptions(
                exchange="binance",
                exchange_url=server.base_url,
                stream_url=stream.url,
                warmup_bars=WARMUP,
                journal=journal_file,
            )
            runner = open_session(artifact, options)
            trade_from = runner.config.trade_from
            stream.first = trade_from - streamed * SECOND
            stream.count = streamed + TRADED_BARS + 1  # the last one stays open
            await _run_until(runner, options, WARMUP + TRADED_BARS)
            return trade_from

    with BinanceServer() as server:
        trade_from = asyncio.run(session(server))
        rest = server.candles(
            "BTCUSDT",
            "1s",
            trade_from - WARMUP * SECOND,
            trade_from - streamed * SECOND,
        )
    closes = _check_session(journal_file, trade_from)
    from_rest = WARMUP - streamed
    assert closes[:from_rest].tolist() == [row[4] for row in rest]
    stream_times = trade_from + SECOND * np.arange(-streamed, TRADED_BARS)
    assert closes[from_rest : WARMUP + TRADED_BARS].tolist() == [
        candle_values(SYMBOL, int(t), UPDATES_PER_CANDLE - 1, "1s")[3]
        for t in stream_times
    ]
