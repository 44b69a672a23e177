"""PaperExchange: parity with simulate, partial fills, the book walk, persistence."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import ccxt
import numpy as np
import pytest

import neuroflux  # noqa: F401  (64-bit mode before any array is made)
from neuroflux.backtest import Bars, SimulationConfig, SimulationParams, simulate
from neuroflux.data import load_sample
from neuroflux.live.orders import BarEvent, OrderRequest, client_order_id
from neuroflux.live.paper import OrderBookModel, PaperExchange, PaperOrderRejected
from neuroflux.strategies import SmaCrossParams, sma_cross

REPOSITORY = Path(__file__).resolve().parents[2]


def _bar(symbol: str, time: int, close: float, volume: float = 100.0) -> BarEvent:
    return BarEvent(
        symbol=symbol,
        time=time,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=volume,
    )


def _request(identifier: str, side: str, amount: float, symbol: str = "BTC/USDT"):
    return OrderRequest(
        client_order_id=identifier, symbol=symbol, side=side, amount=amount
    )


def _orders_between(held: float, wanted: float) -> list[float]:
    """The signed orders simulate places: a reversal closes first, then opens."""
    if wanted == held:
        return []
    if held != 0 and np.sign(wanted) != np.sign(held):
        return [-held] + ([wanted] if wanted != 0 else [])
    return [wanted - held]


def test_paper_fills_match_simulate_close_fills_on_sp500() -> None:
    frame = load_sample("sp500")
    close = frame["close"].to_numpy(np.float64)
    times = frame.index.as_unit("ms").asi8
    target = np.asarray(sma_cross(close, SmaCrossParams(fast=10, slow=50)))
    params = SimulationParams(init_cash=10_000.0, fees=0.001, slippage=0.0005)
    result = simulate(
        Bars.from_close(close), target, params, SimulationConfig(fill="close")
    )
    cash, units = np.asarray(result.cash), np.asarray(result.units)
    assert np.sum(np.diff(np.sign(units)) != 0) > 50  # many entries and reversals

    async def replay() -> tuple[np.ndarray, np.ndarray, int]:
        exchange = PaperExchange(
            balances={"USD": 10_000.0}, fees=0.001, slippage=0.0005
        )
        paper_cash, paper_units, held, count = [], [], 0.0, 0
        for bar, (time, price) in enumerate(zip(times, close, strict=True)):
            await exchange.on_bar(_bar("SP500/USD", int(time), float(price)))
            for sequence, delta in enumerate(_orders_between(held, units[bar])):
                identifier = client_order_id("sma", "SP500/USD", int(time), sequence)
                side = "buy" if delta > 0 else "sell"
                order = await exchange.create_order(
                    _request(identifier, side, abs(float(delta)), "SP500/USD")
                )
                assert order.status == "closed" and order.filled == abs(delta)
                count += 1
            held = units[bar]
            balance = await exchange.fetch_balance()
            paper_cash.append(balance["USD"])
            paper_units.append(balance.get("SP500", 0.0))
        return np.array(paper_cash), np.array(paper_units), count

    paper_cash, paper_units, count = asyncio.run(replay())
    assert count > 100
    np.testing.assert_allclose(paper_cash, cash, rtol=0, atol=1e-9)
    np.testing.assert_allclose(paper_units, units, rtol=0, atol=1e-9)


def test_partial_fills_follow_participation_until_canceled() -> None:
    async def session() -> None:
        exchange = PaperExchange(
            balances={"USDT": 0.0}, fees=0.001, slippage=0.01, participation=0.1
        )
        await exchange.on_bar(_bar("BTC/USDT", 0, 100.0, volume=100.0))
        order = await exchange.create_order(_request("a", "buy", 25.0))
        assert (order.status, order.filled, order.remaining) == ("open", 10.0, 15.0)
        # A second order in the same bar finds the bar's share already used.
        other = await exchange.create_order(_request("b", "sell", 1.0))
        assert other.filled == 0.0 and math.isnan(other.average)
        await exchange.on_bar(_bar("BTC/USDT", 60_000, 110.0, volume=100.0))
        order = await exchange.fetch_order("BTC/USDT", "a")
        assert order.filled == 20.0
        assert [fill.price for fill in order.fills] == [101.0, 110.0 * 1.01]
        assert [fill.time for fill in order.fills] == [0, 60_000]
        open_orders = await exchange.fetch_open_orders("BTC/USDT")
        assert [o.client_order_id for o in open_orders] == ["a", "b"]

        canceled = await exchange.cancel_order("BTC/USDT", "a")
        assert (canceled.status, canceled.filled, canceled.remaining) == (
            "canceled",
            20.0,
            5.0,
        )
        await exchange.on_bar(_bar("BTC/USDT", 120_000, 120.0, volume=1e6))
        assert (await exchange.fetch_order("BTC/USDT", "a")).filled == 20.0
        other = await exchange.fetch_order("BTC/USDT", "b")
        assert other.status == "closed" and other.fills[0].price == 120.0 * 0.99
        assert await exchange.fetch_open_orders() == []
        fills = [*canceled.fills, *other.fills]
        assert len({fill.trade_id for fill in fills}) == 3
        spent = sum(
            (1 if f.side == "buy" else -1) * f.amount * f.price + f.fee for f in fills
        )
        balance = await exchange.fetch_balance()
        assert balance["BTC"] == 19.0
        assert balance["USDT"] == pytest.approx(-spent, rel=1e-12)
        assert canceled.average == pytest.approx((101.0 + 110.0 * 1.01) / 2)

    asyncio.run(session())


def _numpy_book_average(
    reference: float, sign: float, book: OrderBookModel, taken: float, units: float
) -> float:
    edges = np.arange(book.levels + 1) * book.depth
    low = np.clip(taken, edges[:-1], edges[1:])
    high = np.clip(taken + units, edges[:-1], edges[1:])
    prices = reference * (1 + sign * book.spacing * np.arange(book.levels))
    return float((high - low) @ prices / (high - low).sum())


def test_market_orders_walk_the_synthetic_book() -> None:
    book = OrderBookModel(levels=5, spacing=0.001, depth=2.0)

    async def session() -> None:
        exchange = PaperExchange(balances={"USDT": 1e6}, slippage=0.0002, book=book)
        await exchange.on_bar(_bar("BTC/USDT", 0, 100.0))
        ask, bid = 100.0 * 1.0002, 100.0 * 0.9998
        buy = await exchange.create_order(_request("buy-7", "buy", 7.0))
        assert buy.average == pytest.approx(
            _numpy_book_average(ask, 1, book, 0.0, 7.0), rel=1e-15
        )
        sell = await exchange.create_order(_request("sell-3", "sell", 3.0))
        assert sell.average == pytest.approx(
            _numpy_book_average(bid, -1, book, 0.0, 3.0), rel=1e-15
        )
        # The ask side holds 10 units; 7 are gone, so 3 of 5 fill from levels 3-4.
        rest = await exchange.create_order(_request("buy-5", "buy", 5.0))
        assert (rest.status, rest.filled) == ("open", 3.0)
        assert rest.average == pytest.approx(
            _numpy_book_average(ask, 1, book, 7.0, 3.0), rel=1e-15
        )
        await exchange.on_bar(_bar("BTC/USDT", 60_000, 200.0))
        rest = await exchange.fetch_order("BTC/USDT", "buy-5")
        assert rest.status == "closed" and rest.fills[1].price == 200.0 * 1.0002

    asyncio.run(session())


def test_create_order_is_idempotent_and_rejections_are_kept() -> None:
    async def session() -> None:
        exchange = PaperExchange(balances={"USDT": 1_000.0})
        with pytest.raises(PaperOrderRejected, match="no price seen yet for BTC/USDT"):
            await exchange.create_order(_request("early", "buy", 1.0))
        early = await exchange.fetch_order("BTC/USDT", "early")
        assert early.status == "rejected" and early.exchange_id == ""
        await exchange.on_bar(_bar("BTC/USDT", 0, 100.0))
        # The same id again is the order already there, even once a price exists.
        assert await exchange.create_order(_request("early", "buy", 1.0)) == early
        for identifier, amount in (("zero", 0.0), ("minus", -1.0), ("nan", math.nan)):
            with pytest.raises(PaperOrderRejected, match="amount must be finite"):
                await exchange.create_order(_request(identifier, "buy", amount))
            rejected = await exchange.fetch_order("BTC/USDT", identifier)
            assert rejected.status == "rejected"

        first = await exchange.create_order(_request("once", "buy", 2.0))
        again = await exchange.create_order(_request("once", "buy", 2.0))
        assert again == first and first.status == "closed"
        assert await exchange.fetch_balance() == {"USDT": 800.0, "BTC": 2.0}
        with pytest.raises(PaperOrderRejected, match=r"already used for buy 2\.0"):
            await exchange.create_order(_request("once", "sell", 2.0))
        with pytest.raises(ccxt.OrderNotFound):
            await exchange.cancel_order("BTC/USDT", "never")
        assert (await exchange.cancel_order("BTC/USDT", "once")).status == "closed"
        with pytest.raises(ValueError, match="older than the last bar"):
            await exchange.on_bar(_bar("BTC/USDT", -60_000, 100.0))

    asyncio.run(session())


_KILLED_SESSION = """
import asyncio, os, signal, sys
from neuroflux.live.orders import BarEvent, OrderRequest
from neuroflux.live.paper import PaperExchange

async def main():
    exchange = PaperExchange(
        balances={"USDT": 10_000.0}, fees=0.001, participation=0.5, path=sys.argv[1]
    )
    bar = dict(open=100.0, high=100.0, low=100.0, close=100.0)
    await exchange.on_bar(BarEvent(symbol="BTC/USDT", time=0, volume=4.0, **bar))
    for identifier, side, amount in (("a", "buy", 1.0), ("b", "buy", 3.0)):
        await exchange.create_order(OrderRequest(
            client_order_id=identifier, symbol="BTC/USDT", side=side, amount=amount))
    print("placed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no close(), no cleanup: a crash

asyncio.run(main())
"""


def test_paper_account_survives_kill_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "paper.sqlite"
    process = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_SESSION), str(path)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert process.stdout == "placed\n"

    async def reopened() -> None:
        exchange = PaperExchange(
            balances={"USDT": 10_000.0}, fees=0.001, participation=0.5, path=path
        )
        balance = await exchange.fetch_balance()
        assert balance == pytest.approx({"USDT": 10_000.0 - 200.2, "BTC": 2.0})
        a = await exchange.fetch_order("BTC/USDT", "a")
        b = await exchange.fetch_order("BTC/USDT", "b")
        assert (a.status, b.status, b.filled) == ("closed", "open", 1.0)
        assert a.fills[0].price == 100.0 and a.fills[0].fee_currency == "USDT"
        # The same bar again changes nothing; the next bar fills the rest of b.
        await exchange.on_bar(_bar("BTC/USDT", 0, 100.0, volume=4.0))
        await exchange.on_bar(_bar("BTC/USDT", 60_000, 110.0, volume=4.0))
        b = await exchange.fetch_order("BTC/USDT", "b")
        assert (b.status, b.filled) == ("closed", 3.0)
        assert [fill.trade_id for fill in b.fills] == ["paper-t2", "paper-t3"]
        await exchange.create_order(_request("c", "sell", 0.5))
        await exchange.close()

        again = PaperExchange(
            balances={"USDT": 10_000.0}, fees=0.001, participation=0.5, path=path
        )
        # b took the whole bar's share (2 units), so c waits for the next bar.
        assert await again.fetch_balance() == {
            "USDT": pytest.approx(balance["USDT"] - 220.22),
            "BTC": 4.0,
        }
        c = await again.fetch_order("BTC/USDT", "c")
        assert c.status == "open" and math.isnan(c.average)  # NaN survives SQLite
        assert c.exchange_id == "paper-3"
        await again.close()
        with pytest.raises(ValueError, match=r"fees=0\.001; got fees=0\.002"):
            PaperExchange(
                balances={"USDT": 10_000.0}, fees=0.002, participation=0.5, path=path
            )

    asyncio.run(reopened())


def test_open_orders_are_kept_by_symbol_in_placement_order(tmp_path: Path) -> None:
    path = tmp_path / "paper.sqlite"

    def identifiers(orders) -> list[str]:
        return [order.client_order_id for order in orders]

    async def session() -> None:
        exchange = PaperExchange(balances={"USDT": 0.0}, participation=0.1, path=path)
        for symbol in ("BTC/USDT", "ETH/USDT"):
            await exchange.on_bar(_bar(symbol, 0, 100.0, volume=10.0))
        for identifier, symbol in [("a", "BTC"), ("b", "ETH"), ("c", "BTC")]:
            await exchange.create_order(
                _request(identifier, "buy", 5.0, f"{symbol}/USDT")
            )
        await exchange.create_order(_request("d", "buy", 0.5, "ETH/USDT"))
        assert identifiers(await exchange.fetch_open_orders()) == list("abcd")
        assert identifiers(await exchange.fetch_open_orders("BTC/USDT")) == ["a", "c"]
        await exchange.cancel_order("BTC/USDT", "a")
        await exchange.close()

        again = PaperExchange(balances={"USDT": 0.0}, participation=0.1, path=path)
        assert identifiers(await again.fetch_open_orders()) == list("bcd")
        # An ETH bar fills ETH's open orders only, oldest first: b takes the share.
        await again.on_bar(_bar("ETH/USDT", 60_000, 100.0, volume=10.0))
        assert (await again.fetch_order("ETH/USDT", "b")).filled == 2.0
        assert (await again.fetch_order("ETH/USDT", "d")).filled == 0.0
        assert (await again.fetch_order("BTC/USDT", "c")).filled == 0.0
        await again.on_bar(_bar("ETH/USDT", 120_000, 100.0, volume=1e6))
        assert identifiers(await again.fetch_open_orders()) == ["c"]
        assert await again.fetch_open_orders("ETH/USDT") == []
        assert await again.fetch_open_orders("SOL/USDT") == []
        await again.close()

    asyncio.run(session())
