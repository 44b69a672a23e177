"""The runner against a faulty loopback Binance, and killed with SIGKILL mid-run.

Real parts only: the :class:`~neuroflux.live.runner.Runner`, the real ccxt client
(:func:`~neuroflux.live.ccxt_exchange.make_ccxt_exchange` aimed at
``tests/data/binance_server.py``) and a SQLite :class:`~neuroflux.live.journal.Journal`.
The agent alternates long and flat every bar, so every bar places one order.

* A thousand bars while a fifth of the order-route requests fail (timeouts, 500 after
  booking, 503, 429, connections dropped after booking): the exchange's booked orders
  and the journal's are the same set, with the same status and fills.
* ``tests/live/runner_child.py`` runs the session in processes killed with SIGKILL
  (three at seeded random moments once trading, one after an order was booked and
  journaled but before its cycle committed, one while the order's answer was on its
  way) and restarted: each bar is committed exactly once, no order is lost or sent
  twice, and the journal's positions are the exchange's balances.
* A partial fill is journaled open, then settled (remainder canceled) next bar.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from exchange_fixtures import (
    CANARY_KEY,
    CANARY_SECRET,
    BinanceServer,
    Fault,
    binance_exchange,
)
from runner_child import PRICE, SYMBOL, flat_feed, make_runner

from neuroflux.live.ccxt_exchange import CcxtExchange
from neuroflux.live.journal import Journal, verify_audit

ORDER_ROUTE = "/api/v3/order"
ACCOUNT_ROUTE = "/api/v3/account"
CHILD = Path(__file__).with_name("runner_child.py")
FUNDS = {"USDT": "100000"}
STATUSES = {
    "NEW": "open",
    "PARTIALLY_FILLED": "open",
    "FILLED": "closed",
    "CANCELED": "canceled",
}


def _server() -> BinanceServer:
    server = BinanceServer().start()
    server.set_balances(FUNDS)
    server.set_price("BTCUSDT", str(PRICE))
    return server


def _run(exchange: CcxtExchange, path: Path, bars: int):
    async def run():
        try:
            with Journal(path) as journal:
                return await make_runner(flat_feed(bars), exchange, journal).run()
        finally:
            await exchange.close()

    return asyncio.run(run())


def _assert_journal_is_exchange(server: BinanceServer, path: Path) -> None:
    """Same orders, statuses, fills and final positions in the journal and server."""
    report = verify_audit(path)
    assert report.ok, report.problems[:5]
    with Journal(path, create=False) as journal:
        orders = {o.client_order_id: o for o in journal.orders()}
        fills = journal.fills()
        cycles = journal.cycles()
    booked = server.orders
    assert len(booked) == len({o["clientOrderId"] for o in booked.values()})
    assert set(orders) == set(booked)  # none lost, none made up
    for client_id, order in orders.items():
        assert order.status == STATUSES[booked[client_id]["status"]], client_id
        assert order.filled == float(booked[client_id]["executedQty"]), client_id
        assert order.exchange_id == str(booked[client_id]["orderId"])
    exchange_ids = {str(o["orderId"]): o["clientOrderId"] for o in booked.values()}
    assert sorted((f.trade_id, f.client_order_id) for f in fills) == sorted(
        (str(t["id"]), exchange_ids[str(t["orderId"])]) for t in server.trades
    )
    last = cycles[-1]
    assert last.positions == {SYMBOL: float(server.balances.get("BTC", Decimal(0)))}
    assert last.cash == float(server.balances["USDT"])


def test_thousand_bars_under_faults_journal_equals_exchange(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = 1000
    server = _server()
    try:
        server.random_faults(ORDER_ROUTE, 0.2, seed=2024, timeout_delay=0.2)
        exchange = binance_exchange(
            server, monkeypatch, timeout_ms=100, retries=25, max_backoff=0.1
        )
        started = time.perf_counter()
        summary = _run(exchange, tmp_path / "journal.sqlite", bars)
        elapsed = time.perf_counter() - started
        _assert_journal_is_exchange(server, tmp_path / "journal.sqlite")
    finally:
        server.stop()
    assert summary.cycles == bars and summary.stopped_by == "feed ended"
    assert len(server.orders) == bars  # one order per bar, each booked once
    assert all(o["status"] == "FILLED" for o in server.orders.values())
    faults = server.fault_counts(ORDER_ROUTE)
    requests = len(server.requests_to(ORDER_ROUTE))
    assert set(faults) == {"timeout", "500", "503", "429", "drop"}
    assert sum(faults.values()) > 0.15 * requests
    assert exchange.counts["adopted"] > 0
    print(
        f"\n{bars} bars, {len(server.orders)} orders in {elapsed:.1f}s; "
        f"{requests} order-route requests, faults {dict(sorted(faults.items()))}, "
        f"client {dict(exchange.counts)}"
    )


def _wait_for(count: Callable[[], int], seen: int, log: Path) -> None:
    """Returns once ``count()`` (of server requests) passes ``seen``."""
    deadline = time.monotonic() + 30
    while count() <= seen:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.005)


class _Runs:
    """``runner_child.py --serve``: forks a run per :meth:`start`, by pid.

    Its answers are read by a thread, so that a hung run fails the test after a
    deadline instead of blocking it on ``readline``.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), "--serve"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.running: int | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")  # end of output

    def _answer(self, timeout: float) -> list[str]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"runner_child.py --serve: no answer within {timeout} s")
        assert line, "runner_child.py --serve ended without answering"
        return line.split()

    def start(self, *argv: object) -> int:
        self.process.stdin.write(" ".join(map(str, argv)) + "\n")
        self.process.stdin.flush()
        word, pid = self._answer(timeout=120)  # the first waits for imports
        assert word == "pid"
        self.running = int(pid)
        return self.running

    def exit_code(self, timeout: float = 120) -> int:
        """The exit code of the run, once it ended (``-9``: killed); a run still
        going after ``timeout`` seconds fails the test (:meth:`close` kills it)."""
        word, pid, code = self._answer(timeout)
        assert (word, int(pid)) == ("exit", self.running)
        self.running = None
        return int(code)

    def close(self) -> None:
        if self.running is not None:
            os.kill(self.running, signal.SIGKILL)
        self.process.stdin.close()
        self.process.wait(timeout=10)


def test_sigkill_restarts_commit_each_bar_once_and_lose_no_order(
    tmp_path: Path,
) -> None:
    bars, speed, kills = 200, 3000.0, 5  # a bar every 20 ms
    rng = random.Random(20240607)
    path = tmp_path / "journal.sqlite"
    env = {
        **os.environ,
        "NEUROFLUX_BINANCE_API_KEY": CANARY_KEY,
        "NEUROFLUX_BINANCE_API_SECRET": CANARY_SECRET,
    }
    server = _server()
    runs = _Runs(env)
    started = time.perf_counter()
    committed = []
    try:
        argv = (path, server.base_url, 7, bars, speed)
        for kill in range(kills):
            posts = len(server.requests_to(ORDER_ROUTE, "POST"))
            accounts = len(server.requests_to(ACCOUNT_ROUTE))
            log = Path(f"{path}.log")
            if kill == 1:  # booked and journaled closed, cycle not yet committed
                server.queue_faults(ACCOUNT_ROUTE, [None, Fault(delay=5.0)])
                pid = runs.start(*argv)
                _wait_for(
                    lambda: len(server.requests_to(ACCOUNT_ROUTE)), accounts + 1, log
                )
            elif kill == 2:  # booked, its answer never arrived: journaled 'new'
                server.queue_faults(f"POST {ORDER_ROUTE}", [Fault(delay=5.0)])
                pid = runs.start(*argv)
                _wait_for(
                    lambda: len(server.requests_to(ORDER_ROUTE, "POST")), posts, log
                )
            else:  # a seeded moment once it trades: somewhere in a cycle
                pid = runs.start(*argv)
                _wait_for(
                    lambda: len(server.requests_to(ORDER_ROUTE, "POST")), posts, log
                )
                time.sleep(rng.uniform(0.0, 0.3))
            time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
            assert runs.exit_code() == -signal.SIGKILL
            with Journal(path, create=False) as journal:
                last = journal.last_cycle()
                pending = [o for o in journal.orders() if o.bar_time > last.bar_time]
                committed.append(len(journal.cycles()))
            if kill == 1:
                assert [o.status for o in pending] == ["closed"]
            if kill == 2:
                assert [o.status for o in pending] == ["new"]
                assert pending[0].client_order_id in server.orders
        runs.start(*argv)
        assert runs.exit_code() == 0, Path(f"{path}.log").read_text()[-3000:]
        _assert_journal_is_exchange(server, path)
    finally:
        runs.close()
        server.stop()
    elapsed = time.perf_counter() - started
    with Journal(path, create=False) as journal:
        cycles = journal.cycles()
        reconciled = journal.events("reconciled")
    # Each bar committed once across six processes: none repeated, none skipped.
    assert [c.bar_time for c in cycles] == flat_feed(bars).times.tolist()
    assert len(reconciled) == kills + 1
    assert 0 < committed[0] and committed == sorted(committed) and committed[-1] < bars
    assert len(server.orders) == bars
    posts = len(server.requests_to(ORDER_ROUTE, "POST"))
    print(
        f"\n{kills} kills after {committed} committed cycles; {bars} bars, "
        f"{len(server.orders)} orders, {posts} POSTs, {elapsed:.1f}s"
    )


class _PartialFirstBar(CcxtExchange):
    """The real adapter; the server fills only half of the first bar's order."""

    server: BinanceServer
    bars_seen = 0

    async def on_bar(self, bar) -> None:
        self.bars_seen += 1
        self.server.partial_fill(0.5 if self.bars_seen == 1 else None)


def test_partial_fill_is_journaled_open_then_settled_next_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = _server()
    path = tmp_path / "journal.sqlite"
    try:
        client = binance_exchange(
            server, monkeypatch, retries=25, max_backoff=0.1
        ).client
        exchange = _PartialFirstBar(client, retries=3, backoff=0.01)
        exchange.server = server
        summary = _run(exchange, path, bars=3)
        _assert_journal_is_exchange(server, path)
    finally:
        server.stop()
    assert summary.cycles == 3
    with Journal(path, create=False) as journal:
        first, *rest = journal.orders()
        cycles = journal.cycles()
    booked = server.orders[first.client_order_id]
    assert booked["status"] == "CANCELED"
    assert (first.status, first.filled) == ("canceled", first.amount / 2)
    assert [o.status for o in rest] == ["closed", "closed"]
    assert [o.side for o in rest] == ["sell", "buy"]
    assert rest[0].amount == first.filled  # bar 2 sells what bar 1 bought
    # The audit chain holds the order's history: placed, open after bar 1 (its
    # cycle committed with half the position), canceled at bar 2's start.
    with sqlite3.connect(path) as connection:
        payloads = [
            json.loads(payload)
            for (payload,) in connection.execute(
                "SELECT payload FROM audit WHERE kind = 'order' ORDER BY seq"
            )
        ]
    history = [
        (p["status"], p["filled"])
        for p in payloads
        if p["client_order_id"] == first.client_order_id
    ]
    assert history == [
        ("new", 0.0),
        ("open", first.filled),
        ("canceled", first.filled),
    ]
    assert cycles[0].positions == {SYMBOL: first.filled}
