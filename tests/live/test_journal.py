"""The session journal on real SQLite files: round trips, tampering, kill -9, two
processes."""

from __future__ import annotations

import math
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from neuroflux.live.audit import JournalError, verify_audit
from neuroflux.live.journal import Journal
from neuroflux.live.orders import Fill, Order, OrderRequest

SYMBOL = "BTC/USDT"


def make_fill(order_id: str, trade_id: str, amount: float, price: float) -> Fill:
    return Fill(
        client_order_id=order_id,
        trade_id=trade_id,
        symbol=SYMBOL,
        side="buy",
        amount=amount,
        price=price,
        fee=0.1,
        fee_currency="USDT",
        time=1_000,
    )


def make_order(order_id: str, status: str, fills: tuple[Fill, ...] = ()) -> Order:
    filled = sum(fill.amount for fill in fills)
    return Order(
        client_order_id=order_id,
        symbol=SYMBOL,
        side="buy",
        amount=1.0,
        status=status,
        filled=filled,
        average=fills[0].price if fills else math.nan,
        fee=0.1 * len(fills),
        exchange_id="x-" + order_id,
        fills=fills,
    )


def write_session(journal: Journal) -> None:
    """Orders 'a' (two fills, closed) and 'b' (one fill, open), a cycle, an event."""
    request = OrderRequest(client_order_id="a", symbol=SYMBOL, side="buy", amount=1.0)
    assert journal.record_intent(request, bar_time=60_000)
    assert not journal.record_intent(request, bar_time=60_000)
    first = make_fill("a", "t1", 0.4, 100.0)
    second = make_fill("a", "t2", 0.6, 101.0)
    journal.record_order(make_order("a", "open", (first,)))
    assert journal.record_order(make_order("a", "closed", (first, second)))
    assert not journal.record_order(make_order("a", "closed", (first, second)))
    journal.record_order(make_order("b", "open", (make_fill("b", "t3", 0.5, 99.0),)))
    journal.commit_cycle(
        bar_time=60_000,
        equity=1_000.5,
        cash=900.25,
        positions={SYMBOL: 1.5},
        prices={SYMBOL: 667.0},
        state=b"\x00flax-state\xff",
    )
    journal.record_event("alert", {"name": "drawdown", "value": math.nan})


def test_round_trips_and_a_fill_recorded_twice_is_stored_once(tmp_path):
    path = tmp_path / "session.sqlite"
    with Journal(path) as journal:
        write_session(journal)
        stop = journal.request_command("stop", {"flatten": True})
        journal.request_command("reset_breaker", {})
        orders = {order.client_order_id: order for order in journal.orders()}
        assert orders["a"].status == "closed" and orders["a"].filled == 1.0
        assert orders["a"].bar_time == 60_000  # kept from the intent
        assert orders["b"].average == 99.0 and orders["b"].bar_time is None
        assert [order.client_order_id for order in journal.unfinished_orders()] == ["b"]
        assert [fill.trade_id for fill in journal.fills()] == ["t1", "t2", "t3"]
        assert journal.fills("a")[1] == make_fill("a", "t2", 0.6, 101.0)
        cycle = journal.last_cycle()
        assert cycle.state == b"\x00flax-state\xff" and cycle.positions == {SYMBOL: 1.5}
        assert (cycle.equity, cycle.cash) == (1_000.5, 900.25)
        assert cycle.prices == {SYMBOL: 667.0}
        assert journal.events("alert")[0].data == {"name": "drawdown", "value": None}
        assert [c.command for c in journal.pending_commands()] == [
            "stop",
            "reset_breaker",
        ]
        journal.complete_command(stop)
        journal.complete_command(stop)  # a second call changes nothing
        assert [c.command for c in journal.pending_commands()] == ["reset_breaker"]
        with pytest.raises(ValueError, match="bar_time=60000 already committed"):
            journal.commit_cycle(
                bar_time=60_000,
                equity=1.0,
                cash=1.0,
                positions={},
                prices={},
                state=b"",
            )
        with pytest.raises(ValueError, match=r"prices\['BTC/USDT'\] must be finite"):
            journal.commit_cycle(
                bar_time=120_000,
                equity=1.0,
                cash=1.0,
                positions={},
                prices={SYMBOL: math.nan},
                state=b"",
            )
        frames = journal.frames()
        assert frames["cycles"]["prices"].tolist() == [{SYMBOL: 667.0}]
        assert len(frames["orders"]) == 2 and len(frames["fills"]) == 3
        assert str(frames["cycles"]["bar_time"].dt.tz) == "UTC"
    report = verify_audit(path)
    assert report.ok, report.problems
    assert report.records == 12  # 9 writes, 2 commands, 1 completion
    with Journal(path) as journal:  # re-opened, all still there
        assert len(journal.fills()) == 3 and len(journal.cycles()) == 1


def tamper_order_row(connection: sqlite3.Connection) -> None:
    connection.execute("UPDATE orders SET filled = 0.5 WHERE client_order_id = 'a'")


def tamper_audit_payload(connection: sqlite3.Connection) -> None:
    connection.execute("DROP TRIGGER audit_append_only_update")
    connection.execute(
        "UPDATE audit SET payload = replace(payload, '\"new\"', '\"open\"')"
        " WHERE seq = 1"
    )


def delete_audit_record(connection: sqlite3.Connection) -> None:
    connection.execute("DROP TRIGGER audit_append_only_delete")
    connection.execute("DELETE FROM audit WHERE seq = 3")


def tamper_cycle_price(connection: sqlite3.Connection) -> None:
    connection.execute("UPDATE cycles SET prices = '{\"BTC/USDT\":700.0}'")


def delete_fill_row(connection: sqlite3.Connection) -> None:
    connection.execute("DELETE FROM fills WHERE trade_id = 't3'")


@pytest.mark.parametrize(
    ("tamper", "first_problem"),
    [
        (tamper_order_row, "orders['a']: filled=0.5 in the table but 1.0 in audit"),
        (tamper_audit_payload, "audit seq 1 (order): hash does not match"),
        (delete_audit_record, "audit seq 3: missing (records deleted)"),
        (
            tamper_cycle_price,
            "cycles[60000]: prices={'BTC/USDT': 700.0} in the table but "
            "{'BTC/USDT': 667.0} in audit",
        ),
        (delete_fill_row, "fills[('b', 't3')]: missing, recorded by audit seq"),
    ],
)
def test_verify_audit_names_each_tamper(tmp_path, tamper, first_problem):
    path = tmp_path / "session.sqlite"
    with Journal(path) as journal:
        write_session(journal)
    connection = sqlite3.connect(path)
    with connection:
        tamper(connection)
    connection.close()
    report = verify_audit(path)
    assert not report.ok
    assert report.problems[0].startswith(first_problem), report.problems


def test_an_unknown_schema_version_is_refused(tmp_path):
    path = tmp_path / "session.sqlite"
    Journal(path).close()
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    connection.close()
    with pytest.raises(JournalError, match=r"schema version '99'.*reads version 2"):
        Journal(path)
    with pytest.raises(JournalError, match="schema version '99'"):
        verify_audit(path)


WRITER = """
import sys
from neuroflux.live.journal import Journal
from neuroflux.live.orders import Fill, Order, OrderRequest

with Journal(sys.argv[1]) as journal:
    last = journal.last_cycle()
    index = 0 if last is None else last.bar_time + 1
    print("ready", flush=True)
    while True:
        order_id = f"o{index}"
        request = OrderRequest(
            client_order_id=order_id, symbol="X", side="buy", amount=1.0
        )
        journal.record_intent(request, bar_time=index)
        fill = Fill(
            client_order_id=order_id, trade_id=f"t{index}", symbol="X", side="buy",
            amount=1.0, price=100.0 + index, fee=0.1, fee_currency="USDT", time=index,
        )
        journal.record_order(Order(
            client_order_id=order_id, symbol="X", side="buy", amount=1.0,
            status="closed", filled=1.0, average=100.0 + index, fills=(fill,),
        ))
        journal.record_event("tick", {"index": index})
        journal.commit_cycle(
            bar_time=index, equity=1000.0 + index, cash=0.0,
            positions={"X": index + 1.0}, prices={"X": 100.0 + index},
            state=bytes([index % 256]) * 1000,
        )
        index += 1
"""


def test_kill_9_at_random_moments_leaves_a_consistent_prefix(tmp_path):
    path = tmp_path / "session.sqlite"
    rng = random.Random(7)
    for _ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.05, 0.3))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        report = verify_audit(path)
        assert report.ok, report.problems
        with Journal(path) as journal:
            cycles = journal.cycles()
            count = len(cycles)
            assert [cycle.bar_time for cycle in cycles] == list(range(count))
            for cycle in cycles:
                assert cycle.state == bytes([cycle.bar_time % 256]) * 1000
                assert cycle.positions == {"X": cycle.bar_time + 1.0}
                assert cycle.prices == {"X": 100.0 + cycle.bar_time}
            orders = journal.orders()
            # Every bar committed has its order closed with its fill; at most the
            # order of the bar the kill interrupted goes beyond.
            assert [order.client_order_id for order in orders[:count]] == [
                f"o{index}" for index in range(count)
            ]
            assert all(order.status == "closed" for order in orders[:count])
            assert len(orders) in (count, count + 1)
            closed = [order for order in orders if order.status == "closed"]
            assert len(journal.fills()) == len(closed)
            ticks = [event.data["index"] for event in journal.events("tick")]
            assert ticks == sorted(ticks)
            assert sorted(set(ticks)) in (list(range(count)), list(range(count + 1)))
    assert count > 0


CLI = """
import sys
from neuroflux.live.journal import Journal

print("opening", flush=True)
with Journal(sys.argv[1], create=False) as journal:
    print(journal.request_command("stop", {"flatten": True}))
"""


def test_a_second_process_writes_a_command_while_the_runner_writes(tmp_path):
    path = tmp_path / "session.sqlite"
    with Journal(path) as journal:
        journal.record_event("start", {})
        # The runner is in the middle of a write: the CLI must wait, not fail.
        runner_write = sqlite3.connect(path, isolation_level=None)
        runner_write.execute("BEGIN IMMEDIATE")
        cli = subprocess.Popen(
            [sys.executable, "-c", CLI, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert cli.stdout.readline() == "opening\n"
        time.sleep(0.5)
        # Still waiting on the lock (not failed, not done): nothing written yet.
        assert cli.poll() is None
        assert journal.pending_commands() == []  # a WAL read needs no write lock
        runner_write.execute("COMMIT")
        runner_write.close()
        output, _ = cli.communicate(timeout=30)
        assert cli.returncode == 0
        pending = journal.pending_commands()
        assert [(c.seq, c.command, c.data) for c in pending] == [
            (int(output), "stop", {"flatten": True})
        ]
    assert verify_audit(path).ok
    with pytest.raises(FileNotFoundError, match=r"missing\.sqlite does not exist"):
        Journal(tmp_path / "missing.sqlite", create=False)
