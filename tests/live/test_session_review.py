"""The session review against independent computations on real replayed journals.

Each journal comes from :func:`replay_paper_session`: the real runner, paper exchange
and SQLite journal. The expectations are computed from the journal's tables read with
plain ``sqlite3`` and from the bars the session replayed, not from the review's code.
"""

import asyncio
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from neuroflux.data import load_sample
from neuroflux.live.journal import JournalError
from neuroflux.live.paper import OrderBookModel
from neuroflux.live.review import bar_closes, replay_paper_session, review_session
from neuroflux.live.risk import RiskLimits

SYMBOL = "SP500/USD"
SLIPPAGE = 0.0005
PARAMETERS = {"fast": 5, "slow": 20, "direction": "long_short"}


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return load_sample("sp500").loc["2018-01-01":]


def rows(path, query: str) -> list[sqlite3.Row]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def test_paper_session_review_matches_the_journal(bars, tmp_path):
    replay = replay_paper_session(
        tmp_path / "journal.sqlite",
        bars,
        symbol=SYMBOL,
        parameters=PARAMETERS,
        fees=0.001,
        slippage=SLIPPAGE,
    )
    review = review_session(replay.journal, replay.closes, slippage=SLIPPAGE)

    fills = rows(
        replay.journal,
        "SELECT f.side, f.price, f.fee, o.bar_time FROM fills f "
        "JOIN orders o USING (client_order_id) ORDER BY f.time, f.rowid",
    )
    assert len(fills) == len(review.fills) > 10
    bar_times = bars.index.as_unit("ms").asi8
    close_of = dict(zip(bar_times, bars["close"], strict=True))
    for fill, reviewed in zip(fills, review.fills.itertuples(), strict=True):
        close = close_of[fill["bar_time"]]
        sign = 1.0 if fill["side"] == "buy" else -1.0
        assert reviewed.close == close
        assert reviewed.expected_price == pytest.approx(close * (1 + sign * SLIPPAGE))
        # a paper fill is the backtest's fill: the configured slippage, no shortfall
        assert reviewed.slippage_bps == pytest.approx(SLIPPAGE * 1e4, abs=1e-8)
        assert reviewed.shortfall_bps == pytest.approx(0.0, abs=1e-8)

    cycles = rows(replay.journal, "SELECT equity FROM cycles ORDER BY bar_time")
    equity = np.array([cycle["equity"] for cycle in cycles])
    summary = review.summary
    assert summary["cycles"] == len(cycles) == len(bars) == replay.run.cycles
    assert summary["pnl"] == pytest.approx(equity[-1] - equity[0], abs=1e-9)
    assert summary["final_equity"] == replay.run.equity
    assert summary["total_return"] == pytest.approx(equity[-1] / equity[0] - 1)
    peak = np.maximum.accumulate(equity)
    assert summary["max_drawdown"] == pytest.approx((equity / peak - 1).min())
    np.testing.assert_allclose(review.equity["pnl"], equity - equity[0], atol=1e-9)
    assert summary["fees"] == pytest.approx(sum(fill["fee"] for fill in fills))
    assert summary["fills"] == len(fills)
    assert summary["orders"] == replay.run.orders == len(review.orders)
    assert (review.orders["fill_ratio"] == 1.0).all()
    assert summary["partial_orders"] == summary["split_orders"] == 0

    events = rows(replay.journal, "SELECT * FROM events ORDER BY seq")
    assert list(review.incidents["seq"]) == [event["seq"] for event in events]
    committed = rows(replay.journal, "SELECT created, bar_time FROM cycles")
    for event, bar_time in zip(events, review.incidents["bar_time"], strict=True):
        after = [c["bar_time"] for c in committed if c["created"] >= event["time"]]
        assert bar_time == pd.Timestamp(min(after), unit="ms", tz="UTC")
    assert list(review.incidents["kind"]) == [event["kind"] for event in events]
    assert list(review.incidents["data"]) == [json.loads(e["data"]) for e in events]
    kinds = pd.Series([event["kind"] for event in events]).value_counts().to_dict()
    assert summary["incidents_by_kind"] == kinds
    assert "reconciled" in kinds

    # The journal alone: the cycles' prices as closes, the session event's slippage.
    (session,) = [json.loads(e["data"]) for e in events if e["kind"] == "session"]
    assert session == {
        "session": "sma_cross@replay",
        "symbols": [SYMBOL],
        "fees": 0.001,
        "slippage": SLIPPAGE,
        "exchange": "paper",
        "limits": session["limits"] | {"max_drawdown": "inf", "recovery_cycles": 10},
        "trade_from": None,
    }
    alone = review_session(replay.journal)
    for table in ("fills", "equity", "positions", "orders", "incidents"):
        pd.testing.assert_frame_equal(getattr(alone, table), getattr(review, table))
    np.testing.assert_equal(alone.summary, review.summary)
    # explicit arguments win over the journal's
    unslipped = review_session(replay.journal, slippage=0.0)
    assert (unslipped.fills["expected_price"] == review.fills["close"]).all()


def test_book_session_has_partial_fills_and_breaker_incidents(bars, tmp_path):
    async def replay_inside_an_event_loop():  # as in a Jupyter kernel
        return replay_paper_session(
            tmp_path / "journal.sqlite",
            bars,
            symbol=SYMBOL,
            parameters=PARAMETERS,
            slippage=SLIPPAGE,
            limits=RiskLimits(max_drawdown=0.3, warning_fraction=0.1),
            book=OrderBookModel(levels=2, spacing=0.001, depth=1.0),
        )

    replay = asyncio.run(replay_inside_an_event_loop())
    review = review_session(replay.journal, replay.closes, slippage=SLIPPAGE)

    orders = rows(replay.journal, "SELECT * FROM orders ORDER BY created, rowid")
    counts = rows(
        replay.journal,
        "SELECT client_order_id, COUNT(*) AS n FROM fills GROUP BY client_order_id",
    )
    fill_counts = {row["client_order_id"]: row["n"] for row in counts}
    table = review.orders.set_index("client_order_id")
    partial = 0
    for order in orders:
        reviewed = table.loc[order["client_order_id"]]
        assert reviewed["fill_ratio"] == order["filled"] / order["amount"]
        assert reviewed["fills"] == fill_counts.get(order["client_order_id"], 0)
        partial += 0 < order["filled"] < order["amount"]
    assert review.summary["partial_orders"] == partial > 0
    assert review.summary["split_orders"] > 0

    # on its decision bar a fill walks the book from the slipped close: never better
    same_bar = review.fills[review.fills["time"] == review.fills["bar_time"]]
    assert len(same_bar) > 0
    assert (same_bar["shortfall_bps"] >= -1e-9).all()
    assert review.summary["max_shortfall_bps"] > 0

    breaker = rows(replay.journal, "SELECT data FROM events WHERE kind = 'breaker'")
    assert len(breaker) > 0
    incidents = review.incidents[review.incidents["kind"] == "breaker"]
    assert len(incidents) == len(breaker)
    first = json.loads(breaker[0]["data"])
    described = f"{first['previous']} -> {first['state']} ({first['reason']})"
    assert incidents["detail"].iloc[0] == described


def test_bad_inputs_are_named(bars, tmp_path):
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"")
    with pytest.raises(FileExistsError, match=r"journal\.sqlite exists"):
        replay_paper_session(path, bars)
    with pytest.raises(FileNotFoundError, match=r"missing\.sqlite"):
        review_session(
            tmp_path / "missing.sqlite", bar_closes(bars, SYMBOL), slippage=0.0
        )
    replay = replay_paper_session(
        tmp_path / "short.sqlite", bars.iloc[:80], symbol=SYMBOL, parameters=PARAMETERS
    )
    later = bar_closes(bars.iloc[60:], SYMBOL)
    with pytest.raises(ValueError, match="was decided on the SP500/USD bar of"):
        review_session(replay.journal, later, slippage=0.0)
    with pytest.raises(ValueError, match="no column for 'SP500/USD'"):
        review_session(replay.journal, bar_closes(bars, "OTHER/USD"), slippage=0.0)

    # A journal whose runner never journaled its settings needs the slippage passed.
    connection = sqlite3.connect(replay.journal)
    with connection:
        connection.execute("DELETE FROM events WHERE kind = 'session'")
    connection.close()
    closes = bar_closes(bars.iloc[:80], SYMBOL)
    with pytest.raises(ValueError, match=r"no 'session' event.*pass slippage="):
        review_session(replay.journal, closes)
    assert len(review_session(replay.journal, closes, slippage=0.0).fills) > 0

    # A journal of version 1 (its cycles without prices) is refused by name.
    connection = sqlite3.connect(replay.journal)
    with connection:
        connection.execute("ALTER TABLE cycles DROP COLUMN prices")
        connection.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    connection.close()
    with pytest.raises(JournalError, match=r"short\.sqlite has schema version '1'"):
        review_session(replay.journal, closes, slippage=0.0)
