"""CcxtExchange: the real ccxt async binance client against a trading loopback Binance.

The headline test sends 1000 market orders while a fifth of the order-route requests
fail (timeouts, 500 after booking, 503, 429, connections dropped after booking) and
checks that the exchange booked each client id exactly once and that the balances
are the sum of the fills.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import pytest
import structlog
from exchange_fixtures import (
    BALANCES,
    CANARY_KEY,
    CANARY_SECRET,
    BinanceServer,
    Fault,
    binance_exchange,
    trading_server,
)

from neuroflux.live.ccxt_exchange import (
    ExchangeUnavailable,
    OrderRejected,
    make_ccxt_exchange,
)
from neuroflux.live.orders import Order, OrderRequest, client_order_id

__all__ = ["trading_server"]  # the fixture, imported so that pytest finds it

ORDER_ROUTE = "/api/v3/order"
SYMBOL = "BTC/USDT"


def _request(sequence: int, side: str = "buy", amount: float = 0.01) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id(
            "headline", SYMBOL, 1_700_000_000_000, sequence
        ),
        symbol=SYMBOL,
        side=side,
        amount=amount,
    )


def test_thousand_orders_under_faults_are_each_booked_once(
    trading_server: BinanceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = trading_server
    server.random_faults(ORDER_ROUTE, 0.2, seed=2024, timeout_delay=0.5)
    exchange = binance_exchange(
        server, monkeypatch, timeout_ms=300, retries=25, backoff=0.01
    )
    requests = [
        _request(i, "buy" if i % 3 else "sell", round(0.001 * (1 + i % 7), 5))
        for i in range(1000)
    ]
    gate = asyncio.Semaphore(16)

    async def place(request: OrderRequest) -> Order:
        async with gate:
            return await exchange.create_order(request)

    async def run() -> tuple[list[Order], dict[str, float]]:
        try:
            orders = await asyncio.gather(*(place(r) for r in requests))
            return orders, await exchange.fetch_balance()
        finally:
            await exchange.close()

    started = time.perf_counter()
    orders, balance = asyncio.run(run())
    elapsed = time.perf_counter() - started

    ids = [r.client_order_id for r in requests]
    assert len(set(ids)) == 1000
    assert [o.client_order_id for o in orders] == ids
    assert set(server.orders) == set(ids)  # none lost, none extra
    booked = [o["clientOrderId"] for o in server.orders.values()]
    assert len(booked) == len(set(booked)) == 1000
    assert {int(o.exchange_id) for o in orders} == set(range(1, 1001))
    for request, order in zip(requests, orders, strict=True):
        assert order.status == "closed" and order.side == request.side
        assert math.isclose(order.filled, request.amount, rel_tol=1e-12)
        assert math.isclose(sum(f.amount for f in order.fills), order.filled)
    trade_ids = [f.trade_id for o in orders for f in o.fills]
    assert sorted(trade_ids, key=int) == [str(t["id"]) for t in server.trades]

    expected = {asset: float(amount) for asset, amount in BALANCES.items()}
    for order in orders:
        sign = 1.0 if order.side == "buy" else -1.0
        for fill in order.fills:
            expected["BTC"] += sign * fill.amount
            expected["USDT"] -= sign * fill.amount * fill.price + fill.fee
    for asset, amount in expected.items():
        assert math.isclose(balance[asset], amount, rel_tol=1e-12, abs_tol=1e-6)

    faults = server.fault_counts(ORDER_ROUTE)
    order_requests = len(server.requests_to(ORDER_ROUTE))
    assert sum(faults.values()) > 0.15 * order_requests
    assert set(faults) == {"timeout", "500", "503", "429", "drop"}
    assert exchange.counts["adopted"] > 0
    print(
        f"\n1000 orders in {elapsed:.1f}s, {order_requests} order-route requests, "
        f"faults {dict(sorted(faults.items()))}, client {dict(exchange.counts)}"
    )


def test_partial_fill_then_cancel_and_later_fills(
    trading_server: BinanceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = trading_server
    exchange = binance_exchange(server, monkeypatch)
    first, second = _request(1, amount=0.01), _request(2, "sell", 0.02)

    async def run() -> None:
        try:
            server.partial_fill(0.4)
            placed = await exchange.create_order(first)
            assert (placed.status, placed.filled, len(placed.fills)) == (
                "open",
                pytest.approx(0.004),
                1,
            )
            assert [o.client_order_id for o in await exchange.fetch_open_orders()] == [
                first.client_order_id
            ]
            canceled = await exchange.cancel_order(SYMBOL, first.client_order_id)
            assert (canceled.status, canceled.filled) == ("canceled", 0.004)
            assert canceled.fills == placed.fills  # from myTrades: same trade ids
            again = await exchange.cancel_order(SYMBOL, first.client_order_id)
            assert again == canceled

            await exchange.create_order(second)
            server.partial_fill(None)
            server.set_price("BTCUSDT", "31000")
            server.fill_open_orders()
            filled = await exchange.fetch_order(SYMBOL, second.client_order_id)
            assert (filled.status, filled.filled) == ("closed", 0.02)
            assert [f.price for f in filled.fills] == [30_000.0, 31_000.0]
            assert filled.average == pytest.approx(30_600.0)
            assert filled.fee == pytest.approx(sum(f.fee for f in filled.fills))
            kept = await exchange.cancel_order(SYMBOL, second.client_order_id)
            assert kept == filled  # nothing left to cancel: returned as it is
            assert await exchange.fetch_open_orders(SYMBOL) == []
            balance = await exchange.fetch_balance()
            assert balance["BTC"] == pytest.approx(100 + 0.004 - 0.02)
        finally:
            await exchange.close()

    asyncio.run(run())


def test_duplicates_and_dropped_answers_are_adopted_and_unknown_is_none(
    trading_server: BinanceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = trading_server
    exchange = binance_exchange(server, monkeypatch)
    dropped, repeated = _request(3), _request(4)

    async def run() -> None:
        try:
            server.queue_faults(f"POST {ORDER_ROUTE}", [Fault(drop=True)])
            adopted = await exchange.create_order(dropped)
            assert adopted.status == "closed" and adopted.exchange_id == "1"
            first = await exchange.create_order(repeated)
            second = await exchange.create_order(repeated)  # "Duplicate order sent."
            assert second == first
            assert await exchange.fetch_order(SYMBOL, "nf-never-placed") is None
        finally:
            await exchange.close()

    asyncio.run(run())
    posts = [p["newClientOrderId"] for p in server.requests_to(ORDER_ROUTE, "POST")]
    assert posts == [dropped.client_order_id] + [repeated.client_order_id] * 2
    assert list(server.orders) == [dropped.client_order_id, repeated.client_order_id]
    assert exchange.counts["adopted"] == 2


def test_refusals_raise_at_once_and_keys_never_leak(
    trading_server: BinanceServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = trading_server
    server.queue_faults(f"GET {ORDER_ROUTE}", [Fault(503), Fault(429, "0")])
    exchange = binance_exchange(server, monkeypatch, retries=2)
    caplog.set_level(logging.DEBUG)
    errors: list[Exception] = []

    async def run() -> None:
        try:
            assert await exchange.fetch_order(SYMBOL, "nf-unknown") is None
            with pytest.raises(OrderRejected, match="insufficient funds") as rejected:
                await exchange.create_order(_request(5, amount=1_000.0))
            errors.append(rejected.value)
            server.set_persistent_fault(ORDER_ROUTE, Fault(502))
            with pytest.raises(ExchangeUnavailable, match="after 2 retries") as down:
                await exchange.fetch_order(SYMBOL, "nf-unknown")
            errors.append(down.value)
        finally:
            await exchange.close()

    with structlog.testing.capture_logs() as events:
        asyncio.run(run())
    assert len(server.requests_to(ORDER_ROUTE, "POST")) == 1  # refused: not retried
    assert [e["event"] for e in events] == ["exchange_retry"] * 4
    assert server.api_keys == {CANARY_KEY}  # the key from the environment was used

    monkeypatch.delenv("NEUROFLUX_BINANCE_API_SECRET")
    with pytest.raises(ValueError, match="NEUROFLUX_BINANCE_API_SECRET") as missing:
        make_ccxt_exchange("binance")
    errors.append(missing.value)
    texts = [
        repr(exchange),
        str(exchange.client),
        repr(exchange.client),
        repr(events),
        caplog.text,
        *(f"{e!r} {e} {e.__cause__!r} {e.__context__!r}" for e in errors),
    ]
    for text in texts:
        assert CANARY_KEY not in text and CANARY_SECRET not in text
