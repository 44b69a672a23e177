"""ReplayFeed and CcxtFeed: bar order, resuming after a bar, validation, gaps."""

from __future__ import annotations

import asyncio
import time

import ccxt.async_support
import numpy as np
import pandas as pd
import pytest
from binance_server import Fault

from neuroflux.data import synthetic_panel
from neuroflux.live.ccxt_exchange import make_market_data_client
from neuroflux.live.feeds import CcxtFeed, FeedDataError, FeedGapError, ReplayFeed

SYMBOLS = ("BTC/USDT", "ETH/USDT")
MINUTE = 60_000


async def _collect(feed, after=None, limit=None) -> list:
    collected = []
    async for events in feed.bars(after):
        collected.append(events)
        if limit is not None and len(collected) == limit:
            break
    return collected


def test_replay_feed_yields_every_symbol_per_bar_and_resumes_after() -> None:
    feed = ReplayFeed.synthetic(SYMBOLS, bars=300, seed=3, timeframe="1m")
    panel = synthetic_panel(300, list(SYMBOLS), bar="60s", seed=3)
    times = panel.index.as_unit("ms").asi8
    bars = asyncio.run(_collect(feed))
    assert [events[0].time for events in bars] == times.tolist()
    assert all(
        [event.symbol for event in events] == list(SYMBOLS)
        and len({event.time for event in events}) == 1
        for events in bars
    )
    for position, symbol in enumerate(SYMBOLS):
        for column in ("open", "high", "low", "close", "volume"):
            got = [getattr(events[position], column) for events in bars]
            np.testing.assert_array_equal(got, panel[(column, symbol)].to_numpy())

    resumed = asyncio.run(_collect(feed, after=int(times[100])))
    assert resumed == bars[101:]
    assert asyncio.run(_collect(feed, after=int(times[-1]))) == []
    assert asyncio.run(_collect(feed, after=int(times[100]) + 1)) == bars[101:]

    sample = ReplayFeed.from_sample("sp500")
    assert sample.symbols == ("SP500/USD",) and len(sample) == 5031

    async def timed(feed) -> tuple[int, float]:
        start = time.perf_counter()
        count = len(await _collect(feed))
        return count, time.perf_counter() - start

    count, seconds = asyncio.run(timed(sample))
    print(f"replay of sp500: {count / seconds:,.0f} bars/s")

    paced = ReplayFeed.synthetic(SYMBOLS, bars=5, seed=3, timeframe="1m", speed=6000)
    count, seconds = asyncio.run(timed(paced))
    assert count == 5 and seconds >= 4 * 0.01  # bars due every 60 s / 6000


def _frame(start: str = "2024-01-01", bars: int = 5) -> pd.DataFrame:
    index = pd.date_range(start, periods=bars, freq="1min", tz="UTC", name="timestamp")
    prices = np.linspace(100.0, 104.0, bars)
    return pd.DataFrame(
        {"open": prices, "high": prices + 1, "low": prices - 1, "close": prices}
        | {"volume": np.full(bars, 10.0)},
        index=index,
    )


def test_replay_feed_errors_name_symbol_row_and_column() -> None:
    def error(frames) -> str:
        with pytest.raises((FeedDataError, ValueError)) as caught:
            ReplayFeed(frames, timeframe="1m")
        return str(caught.value)

    bad = _frame()
    bad.iloc[3, bad.columns.get_loc("close")] = np.nan
    message = error({"BTC/USDT": _frame(), "ETH/USDT": bad})
    assert message.startswith("ETH/USDT: row 2024-01-01 00:03:00+00:00 column close")
    assert "expected finite and > 0; got nan" in message

    bad = _frame()
    bad.iloc[1, bad.columns.get_loc("volume")] = -1.0
    assert "row 2024-01-01 00:01:00+00:00 column volume" in error({"X/Y": bad})
    bad = _frame()
    bad.iloc[4, bad.columns.get_loc("low")] = 0.0
    assert "X/Y: row 2024-01-01 00:04:00+00:00 column low" in error({"X/Y": bad})

    shuffled = _frame().iloc[[0, 2, 1, 3, 4]]
    assert error({"X/Y": shuffled}) == (
        "X/Y: row 2024-01-01 00:01:00+00:00: index must be strictly increasing "
        "(previous row 2024-01-01 00:02:00+00:00)"
    )
    shifted = _frame("2024-01-01 00:01")
    message = error({"A/B": _frame(), "C/D": shifted})
    assert message.startswith("C/D: row 2024-01-01 00:01:00+00:00: index differs")
    assert "A/B's (row 2024-01-01 00:00:00+00:00)" in message
    assert "columns ['volume']" in error({"X/Y": _frame().drop(columns="volume")})
    assert "UTC DatetimeIndex" in error({"X/Y": _frame().tz_localize(None)})
    with pytest.raises(ValueError, match="timeframe must be a ccxt timeframe"):
        ReplayFeed({"X/Y": _frame()}, timeframe="minute")


def _async_binance(server) -> ccxt.async_support.binance:
    client = ccxt.async_support.binance(
        {
            "enableRateLimit": False,
            "timeout": 5000,
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
        }
    )
    return server.point_client(client)


def test_ccxt_feed_catches_up_then_yields_only_closed_bars(
    live_binance_server,
) -> None:
    server = live_binance_server
    last_closed = (server.now_ms - MINUTE) // MINUTE * MINUTE
    after = last_closed - 250 * MINUTE
    server.queue_faults("/api/v3/klines", [Fault(status=503), Fault(status=503)])

    async def session() -> tuple[list, list]:
        client = _async_binance(server)
        feed = CcxtFeed(
            client,
            SYMBOLS,
            "1m",
            poll_seconds=0.01,
            backoff_seconds=0.01,
            page_size=100,
        )
        collected: list = []

        async def consume() -> None:
            async for events in feed.bars(after):
                collected.append(events)

        try:
            task = asyncio.create_task(consume())
            async with asyncio.timeout(30):  # a stalled feed fails, never hangs
                while len(collected) < 250 and not task.done():
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # polls that must not yield the forming bar
            caught_up = list(collected)
            server.now_ms += MINUTE
            async with asyncio.timeout(30):
                while len(collected) < 251 and not task.done():
                    await asyncio.sleep(0.01)
            task.cancel()
            latest = await _collect(feed, limit=1)
        finally:
            await client.close()
        return caught_up, collected + latest

    caught_up, bars = asyncio.run(session())
    assert len(caught_up) == 250
    times = [events[0].time for events in bars]
    assert times[:251] == list(range(after + MINUTE, last_closed + 2 * MINUTE, MINUTE))
    assert times[251] == last_closed + MINUTE  # no after: starts at the last closed
    for position, symbol in enumerate(SYMBOLS):
        expected = server.candles(
            symbol.replace("/", ""), "1m", after + MINUTE, last_closed + 2 * MINUTE
        )
        got = [
            [e.time, e.open, e.high, e.low, e.close, e.volume]
            for e in (events[position] for events in bars[:251])
        ]
        assert got == expected
    starts = [int(p["startTime"]) for p in server.requests_to("/api/v3/klines")]
    assert starts[:2] == [after + MINUTE] * 2  # the two 503s, retried


def test_ccxt_feed_reports_a_missing_bar(live_binance_server) -> None:
    server = live_binance_server
    last_closed = (server.now_ms - MINUTE) // MINUTE * MINUTE
    missing = last_closed - 20 * MINUTE
    server.gaps.append((missing, missing + MINUTE))

    async def session() -> None:
        client = _async_binance(server)
        feed = CcxtFeed(client, SYMBOLS, "1m", poll_seconds=0.01)
        try:
            bars = []
            with pytest.raises(FeedGapError) as caught:
                async for events in feed.bars(last_closed - 30 * MINUTE):
                    bars.append(events)
        finally:
            await client.close()
        assert bars == []  # the page holding the gap yields nothing
        when = pd.Timestamp(missing, unit="ms", tz="UTC").isoformat()
        assert f"/USDT: no 1m bar at {when} ({missing} ms)" in str(caught.value)
        following = pd.Timestamp(missing + MINUTE, unit="ms", tz="UTC").isoformat()
        assert f"next bar is at {following}" in str(caught.value)

    asyncio.run(session())


@pytest.mark.parametrize("timeframe", ["1w", "1M", "1y"])
def test_ccxt_feed_refuses_bars_off_the_epoch_grid(timeframe) -> None:
    client = ccxt.async_support.binance()
    with pytest.raises(ValueError, match=f"timeframe '{timeframe}' is not supported"):
        CcxtFeed(client, SYMBOLS, timeframe)
    assert CcxtFeed(client, SYMBOLS, "4h")._step == 4 * 60 * MINUTE
    asyncio.run(client.close())


def test_ccxt_feed_waits_out_retry_after(live_binance_server) -> None:
    server = live_binance_server
    last_closed = (server.now_ms - MINUTE) // MINUTE * MINUTE
    too_many = {"code": -1003, "msg": "Too many requests."}
    server.queue_faults("/api/v3/klines", [Fault(429, retry_after="1", body=too_many)])

    async def session() -> tuple[list, float]:
        # The client of a paper session: its 429s carry the server's Retry-After.
        client = make_market_data_client(
            "binance", api_url=server.base_url, timeout_ms=5000, rate_limit=False
        )
        feed = CcxtFeed(client, SYMBOLS, "1m", retries=1, backoff_seconds=0.01)
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            async with asyncio.timeout(30):
                bars = await _collect(feed, last_closed - 3 * MINUTE, limit=3)
        finally:
            await client.close()
        return bars, loop.time() - began

    bars, seconds = asyncio.run(session())
    assert seconds >= 1.0  # the backoff alone would have retried after 0.01 s
    assert [events[0].time for events in bars] == [
        last_closed - 2 * MINUTE,
        last_closed - MINUTE,
        last_closed,
    ]
    assert len(server.requests_to("/api/v3/klines")) == 3  # one 429, retried once
