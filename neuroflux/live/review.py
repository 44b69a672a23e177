"""The review of a live or paper session: its journal read as a research report.

:func:`review_session` reads a session's journal (:meth:`Journal.frames`) and the bars
it traded, and gives a :class:`SessionReview` of five tables and a summary:

* **fills vs the backtest** (:func:`fill_slippage`): :func:`neuroflux.backtest.simulate`
  with ``fill="close"`` fills an order at the close of the bar that decided it, a buy
  at ``close * (1 + slippage)`` and a sell at ``close * (1 - slippage)``. For each fill,
  with ``side = +1`` for a buy and ``-1`` for a sell::

      slippage_bps  = side * (price / close - 1) * 1e4           (vs the bar's close)
      shortfall_bps = side * (price / expected - 1) * 1e4         (vs the backtest)
      expected      = close * (1 + side * slippage)

  Positive is worse for the session. ``close`` is the close of the order's decision bar
  (``orders.bar_time``; a flatten's orders carry the last bar's time plus 1 ms and are
  priced at that bar's close). A paper fill without a book model has ``slippage_bps ==
  slippage * 1e4`` and ``shortfall_bps == 0``; a fill on a later bar (a partial fill's
  remainder) also pays the move since the decision.
* **equity** (:func:`equity_curve`): equity, cash, P&L since the first cycle,
  cycle-to-cycle returns and drawdown ``equity / peak - 1`` (``<= 0``) per committed
  cycle; the positions per symbol in their own table.
* **orders** (:func:`order_fills`): fill ratio ``filled / amount``, number of fills and
  latency (wall-clock time from the journaled intent to the order's last record).
* **incidents** (:func:`incident_table`): every journaled event (alerts, breaker
  transitions, risk-gate reductions, failed orders, reconciliations, flattening) with
  the bar of the cycle it happened in (events carry wall-clock times only), a level
  and a one-line description.

The journal is reviewable on its own: each cycle records the prices it marked equity
at (the bar's closes, :func:`journal_closes`) and each start of the runner records
the session's settings in a ``session`` event, slippage included
(:func:`journal_slippage`). A caller may still pass the closes
(:func:`bar_closes`) or the slippage, which then win.

:func:`replay_paper_session` runs a strategy through the real runner against a
:class:`~neuroflux.live.paper.PaperExchange`: the demo of the review notebook and the
journal its tests check.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuroflux.live.analytics import AnalyticsEngine
from neuroflux.live.decisions import Agent
from neuroflux.live.feeds import ReplayFeed, timeframe_milliseconds
from neuroflux.live.journal import Journal
from neuroflux.live.paper import OrderBookModel, PaperExchange
from neuroflux.live.risk import RiskLimits
from neuroflux.live.runner import Runner
from neuroflux.live.runner_config import RunnerConfig, RunSummary

__all__ = [
    "PaperReplay",
    "SessionReview",
    "bar_closes",
    "equity_curve",
    "fill_slippage",
    "incident_table",
    "journal_closes",
    "journal_slippage",
    "order_fills",
    "replay_paper_session",
    "review_session",
    "session_summary",
]

_SIDE = {"buy": 1.0, "sell": -1.0}
_INFO_EVENTS = frozenset({"session", "reconciled", "flattened"})
_BREAKER_LEVELS = {"NORMAL": "info", "WARNING": "warning"}
_YEAR_MS = 365.25 * 86_400_000
_FLATTEN_OFFSET = pd.Timedelta(milliseconds=1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SessionReview:
    """A session's journal as tables (see the module docstring for each column)."""

    fills: pd.DataFrame
    equity: pd.DataFrame
    positions: pd.DataFrame
    orders: pd.DataFrame
    incidents: pd.DataFrame
    summary: dict[str, Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PaperReplay:
    """A replayed paper session: its journal, the closes it traded, its costs."""

    journal: Path
    closes: pd.DataFrame
    fees: float
    slippage: float
    run: RunSummary


def bar_closes(bars: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The ``close`` column of a single-asset OHLCV frame, named ``symbol``.

    Returns:
        ``[T, 1]`` closes indexed by the bars' UTC open times.

    Raises:
        ValueError: ``bars`` has no ``close`` column or an index that is not a
            sorted, unique, tz-aware DatetimeIndex.
    """
    if "close" not in bars.columns:
        raise ValueError(f"bars: expected a 'close' column, got {list(bars.columns)}")
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError("bars: expected a tz-aware DatetimeIndex of bar open times")
    if not (index.is_monotonic_increasing and index.is_unique):
        raise ValueError("bars: bar times must be increasing and unique")
    return bars[["close"]].rename(columns={"close": symbol}).astype("float64")


def fill_slippage(
    fills: pd.DataFrame,
    orders: pd.DataFrame,
    closes: pd.DataFrame,
    *,
    slippage: float,
) -> pd.DataFrame:
    """Each fill against the price the backtest would have filled it at.

    Args:
        fills, orders: The journal's frames (:meth:`Journal.frames`).
        closes: ``[T, symbols]`` closes by UTC bar open time (:func:`bar_closes`).
        slippage: The session's slippage fraction (the backtest's).

    Returns:
        One row per fill: ``time, client_order_id, symbol, side, amount, price, fee,
        fee_currency, bar_time, close, expected_price, slippage_bps,
        shortfall_bps``.

    Raises:
        ValueError: A fill's symbol has no column in ``closes``, or its order's bar
            is not covered by ``closes`` (nothing is left out silently).
    """
    if not (math.isfinite(slippage) and slippage >= 0):
        raise ValueError(f"slippage must be finite and >= 0, got {slippage!r}")
    table = fills[
        [
            "time",
            "client_order_id",
            "symbol",
            "side",
            "amount",
            "price",
            "fee",
            "fee_currency",
        ]
    ].copy()
    table = table.astype({"amount": "float64", "price": "float64", "fee": "float64"})
    table = table.merge(
        orders[["client_order_id", "bar_time"]], on="client_order_id", how="left"
    )
    table["close"] = np.array(
        [
            _close_at(closes, row.symbol, row.bar_time, row.client_order_id)
            for row in table.itertuples()
        ],
        dtype="float64",
    )
    sign = table["side"].map(_SIDE).astype("float64")
    table["expected_price"] = table["close"] * (1 + sign * slippage)
    table["slippage_bps"] = sign * (table["price"] / table["close"] - 1) * 1e4
    table["shortfall_bps"] = sign * (table["price"] / table["expected_price"] - 1) * 1e4
    return table.reset_index(drop=True)


def _close_at(
    closes: pd.DataFrame, symbol: str, bar_time: pd.Timestamp, order: str
) -> float:
    if symbol not in closes.columns:
        raise ValueError(
            f"closes: no column for {symbol!r} (order {order}); has {list(closes)}"
        )
    index = closes.index
    position = -1 if pd.isna(bar_time) else index.searchsorted(bar_time, "right") - 1
    # A flatten's orders carry the last bar's time + 1 ms (see runner.Runner._flatten).
    if position < 0 or bar_time - index[position] > _FLATTEN_OFFSET:
        span = f"{index[0]} to {index[-1]}" if len(index) else "none"
        raise ValueError(
            f"closes: order {order} was decided on the {symbol} bar of {bar_time}, "
            f"which the closes (bars {span}) do not hold"
        )
    close = float(closes[symbol].iloc[position])
    if not math.isfinite(close):
        raise ValueError(
            f"closes: order {order} was decided on the {symbol} bar of {bar_time}, "
            f"whose close is {close}"
        )
    return close


def equity_curve(cycles: pd.DataFrame) -> pd.DataFrame:
    """Equity, cash, P&L since the first cycle, returns and drawdown per cycle.

    Returns:
        ``[cycles, 5]`` indexed by bar time: ``equity, cash, pnl, returns,
        drawdown`` (``returns`` is NaN at the first cycle; ``drawdown <= 0``).
    """
    equity = cycles.set_index("bar_time")["equity"].astype("float64")
    return pd.DataFrame(
        {
            "equity": equity,
            "cash": cycles.set_index("bar_time")["cash"].astype("float64"),
            "pnl": equity - (equity.iloc[0] if len(equity) else math.nan),
            "returns": equity.pct_change(),
            "drawdown": equity / equity.cummax() - 1,
        }
    )


def _positions(cycles: pd.DataFrame) -> pd.DataFrame:
    """Units held per symbol after each cycle, ``[cycles, symbols]``."""
    return pd.DataFrame(
        list(cycles["positions"]), index=cycles["bar_time"], dtype="float64"
    )


def order_fills(orders: pd.DataFrame, fills: pd.DataFrame) -> pd.DataFrame:
    """Per order: fill ratio, number of fills and latency.

    Returns:
        The journal's order columns plus ``fill_ratio`` (``filled / amount``),
        ``partial`` (``0 < filled < amount``), ``fills``, ``first_fill``,
        ``last_fill`` (fill times, NaT without fills) and ``latency_ms`` (from the
        journaled intent to the order's last record, wall clock).
    """
    numbers = ("amount", "filled", "average", "fee")
    table = orders.astype(dict.fromkeys(numbers, "float64"))
    table["fill_ratio"] = table["filled"] / table["amount"]
    table["partial"] = (table["filled"] > 0) & (table["filled"] < table["amount"])
    per_order = fills.groupby("client_order_id")["time"].agg(
        fills="size", first_fill="min", last_fill="max"
    )
    table = table.merge(
        per_order, left_on="client_order_id", right_index=True, how="left"
    )
    table["fills"] = table["fills"].fillna(0).astype("int64")
    elapsed = table["updated"] - table["created"]
    table["latency_ms"] = elapsed.dt.total_seconds() * 1e3
    return table


def incident_table(events: pd.DataFrame, cycles: pd.DataFrame) -> pd.DataFrame:
    """Every journaled event with its bar, a level and a one-line description.

    Args:
        events, cycles: The journal's frames (:meth:`Journal.frames`).

    Returns:
        ``seq, time, bar_time, kind, level, detail, data``; ``bar_time`` is the bar
        of the first cycle committed at or after the event (the cycle it happened
        in; NaT after the last cycle), ``level`` is ``info``, ``warning`` or
        ``critical``.
    """
    table = events[["seq", "time", "kind"]].copy()
    table["bar_time"] = pd.Series(
        pd.NaT, index=table.index, dtype="datetime64[ns, UTC]"
    )
    if len(table) and len(cycles):
        committed = cycles[["created", "bar_time"]].sort_values("created")
        table["bar_time"] = pd.merge_asof(
            table[["time"]],
            committed,
            left_on="time",
            right_on="created",
            direction="forward",
        )["bar_time"].to_numpy()
    pairs = list(zip(events["kind"], events["data"], strict=True))
    table["level"] = [_level(kind, data) for kind, data in pairs]
    table["detail"] = [_detail(kind, data) for kind, data in pairs]
    table["data"] = events["data"]
    columns = ["seq", "time", "bar_time", "kind", "level", "detail", "data"]
    return table[columns].reset_index(drop=True)


def _level(kind: str, data: Mapping[str, Any]) -> str:
    if kind == "alert":
        return str(data.get("level", "warning"))
    if kind == "breaker":
        return _BREAKER_LEVELS.get(str(data.get("state")), "critical")
    return "info" if kind in _INFO_EVENTS else "warning"


def _detail(kind: str, data: Mapping[str, Any]) -> str:
    if kind == "alert":
        return f"{data.get('name')}: {data.get('message')}"
    if kind == "breaker":
        return f"{data.get('previous')} -> {data.get('state')} ({data.get('reason')})"
    if kind == "session":
        return (
            f"{data.get('session')} started on {data.get('exchange')}: "
            f"{', '.join(data.get('symbols', []))}, fees {data.get('fees')}, "
            f"slippage {data.get('slippage')}"
        )
    if kind == "reconciled":
        return (
            f"{len(data.get('orders', []))} unfinished orders reconciled, resumed "
            f"after bar {data.get('resumed_after')}"
        )
    return json.dumps(data, sort_keys=True, default=str)


def session_summary(
    fills: pd.DataFrame,
    equity: pd.DataFrame,
    orders: pd.DataFrame,
    incidents: pd.DataFrame,
) -> dict[str, Any]:
    """Key numbers of a session from the tables of :func:`review_session`.

    ``pnl`` and ``total_return`` run from the first committed cycle's equity to the
    last; ``fill_ratio`` is units filled over units ordered (rejected orders
    included); ``fees`` sums the fees of every fill whatever their currency
    (``fees_by_currency`` splits them). Means and maxima over nothing are NaN.
    """
    start = float(equity["equity"].iloc[0]) if len(equity) else math.nan
    final = float(equity["equity"].iloc[-1]) if len(equity) else math.nan
    ordered = float(orders["amount"].sum())
    return {
        "cycles": len(equity),
        "orders": len(orders),
        "fills": len(fills),
        "partial_orders": int(orders["partial"].sum()),
        "split_orders": int((orders["fills"] > 1).sum()),
        "fill_ratio": float(orders["filled"].sum()) / ordered if ordered else math.nan,
        "traded_notional": float((fills["amount"] * fills["price"]).sum()),
        "fees": float(fills["fee"].sum()),
        "fees_by_currency": _fees_by_currency(fills),
        "start_equity": start,
        "final_equity": final,
        "pnl": final - start,
        "total_return": final / start - 1,
        "max_drawdown": float(equity["drawdown"].min()) if len(equity) else math.nan,
        "mean_slippage_bps": _mean(fills["slippage_bps"]),
        "max_slippage_bps": _max(fills["slippage_bps"]),
        "mean_shortfall_bps": _mean(fills["shortfall_bps"]),
        "max_shortfall_bps": _max(fills["shortfall_bps"]),
        "mean_latency_ms": _mean(orders["latency_ms"]),
        "max_latency_ms": _max(orders["latency_ms"]),
        "incidents": len(incidents),
        "incidents_by_kind": incidents["kind"].value_counts().sort_index().to_dict(),
    }


def _fees_by_currency(fills: pd.DataFrame) -> dict[str, float]:
    totals = fills.groupby("fee_currency")["fee"].sum() if len(fills) else {}
    return {str(currency): float(fee) for currency, fee in dict(totals).items()}


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan


def _max(values: pd.Series) -> float:
    return float(values.max()) if len(values) else math.nan


def journal_closes(cycles: pd.DataFrame) -> pd.DataFrame:
    """The prices the journaled cycles marked equity at, as closes.

    Args:
        cycles: The journal's ``cycles`` frame (:meth:`Journal.frames`).

    Returns:
        ``[cycles, symbols]`` prices by UTC bar open time (like :func:`bar_closes`).
    """
    return pd.DataFrame(
        list(cycles["prices"]), index=cycles["bar_time"], dtype="float64"
    )


def journal_slippage(events: pd.DataFrame, journal: str | Path = "journal") -> float:
    """The slippage fraction of the session's ``session`` events.

    Args:
        events: The journal's ``events`` frame (:meth:`Journal.frames`).
        journal: The journal's name for the error messages.

    Raises:
        ValueError: No ``session`` event (the runner journals one at each start)
            or starts with different slippages.
    """
    sessions = events.loc[events["kind"] == "session", "data"]
    values = sorted({float(data["slippage"]) for data in sessions})
    if not values:
        raise ValueError(
            f"journal {journal}: no 'session' event records the session's slippage "
            "(no runner started on it); pass slippage= "
            "the session's slippage fraction"
        )
    if len(values) > 1:
        raise ValueError(
            f"journal {journal}: the session was started with slippages {values}; "
            "pass slippage= the one to compare the fills with"
        )
    return values[0]


def review_session(
    journal: str | Path,
    closes: pd.DataFrame | None = None,
    *,
    slippage: float | None = None,
) -> SessionReview:
    """The review of the session journaled in ``journal``.

    Args:
        journal: The session's journal file (it must exist).
        closes: Closes of the bars the session traded (:func:`bar_closes`); None:
            the prices its cycles recorded (:func:`journal_closes`).
        slippage: The session's slippage fraction; None: the one its ``session``
            event recorded (:func:`journal_slippage`).

    Raises:
        FileNotFoundError: No journal at ``journal``.
        ValueError: See :func:`fill_slippage`; or ``closes`` or ``slippage`` is
            None and the journal does not record it (the message says what to pass).
    """
    reader = Journal(journal, create=False)
    try:
        frames = reader.frames()
    finally:
        reader.close()
    if closes is None:
        closes = journal_closes(frames["cycles"])
    if slippage is None:
        slippage = journal_slippage(frames["events"], journal)
    fills = fill_slippage(frames["fills"], frames["orders"], closes, slippage=slippage)
    equity = equity_curve(frames["cycles"])
    orders = order_fills(frames["orders"], frames["fills"])
    incidents = incident_table(frames["events"], frames["cycles"])
    return SessionReview(
        fills=fills,
        equity=equity,
        positions=_positions(frames["cycles"]),
        orders=orders,
        incidents=incidents,
        summary=session_summary(fills, equity, orders, incidents),
    )


def replay_paper_session(
    path: str | Path,
    bars: pd.DataFrame,
    *,
    symbol: str = "SP500/USD",
    strategy: str = "sma_cross",
    parameters: Mapping[str, Any] | None = None,
    balance: float = 10_000.0,
    fees: float = 0.001,
    slippage: float = 0.0005,
    limits: RiskLimits | None = None,
    book: OrderBookModel | None = None,
    timeframe: str = "1d",
) -> PaperReplay:
    """Replays ``bars`` through the live runner and a paper exchange into a journal.

    The session is what ``neuroflux live run NAME --paper`` runs for a promoted rule
    (the step strategy of ``strategy``, sized like the backtest with ``fees`` and
    ``slippage``), with an in-memory paper account and optionally a synthetic order
    book (partial fills and book impact). It runs on its own event loop in a worker
    thread when the caller already runs one (a Jupyter kernel).

    Args:
        path: The journal to create; it must not exist (a journal that exists
            would be resumed, not replayed).
        bars: A single-asset OHLCV frame indexed by UTC bar open time.
        symbol: The market's ``BASE/QUOTE`` name in the journal.
        strategy, parameters: A step strategy of
            :data:`neuroflux.strategies.STEP_STRATEGIES` and its parameters.
        balance: Starting cash in the quote asset.
        fees, slippage: Fractions per order (paper exchange and sizing alike).
        limits: Risk limits of the session (none by default).
        book: A synthetic order book for the paper exchange (none: fills at the
            slipped close, like the backtest).
        timeframe: The bars' ccxt timeframe.

    Raises:
        FileExistsError: ``path`` exists.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"journal {path} exists; replay into a new file")
    closes = bar_closes(bars, symbol)
    run = _run_coroutine(
        lambda: _replay(
            path,
            bars,
            symbol=symbol,
            strategy=strategy,
            parameters=dict(parameters or {}),
            balance=balance,
            fees=fees,
            slippage=slippage,
            limits=limits or RiskLimits(),
            book=book,
            timeframe=timeframe,
        )
    )
    return PaperReplay(
        journal=path, closes=closes, fees=fees, slippage=slippage, run=run
    )


async def _replay(path: Path, bars: pd.DataFrame, **session: Any) -> RunSummary:
    # Everything that opens SQLite is built here, in the thread that runs the loop:
    # sqlite3 connections refuse to be used from another thread.
    from neuroflux import strategies

    symbol, quote = session["symbol"], session["symbol"].partition("/")[2]
    name = session["strategy"]
    agent = Agent(
        name=name,
        strategy=strategies.STEP_STRATEGIES[name],
        params=strategies.make_params(name, **session["parameters"]),
    )
    exchange = PaperExchange(
        balances={quote: session["balance"]},
        fees=session["fees"],
        slippage=session["slippage"],
        book=session["book"],
    )
    timeframe_ms = timeframe_milliseconds(session["timeframe"])
    config = RunnerConfig(
        session=f"{name}@replay",
        symbols=(symbol,),
        fees=session["fees"],
        slippage=session["slippage"],
        limits=session["limits"],
        timeframe_ms=timeframe_ms,
    )
    feed = ReplayFeed(
        {symbol: bars[["open", "high", "low", "close", "volume"]]},
        timeframe=session["timeframe"],
    )
    journal = Journal(path)
    runner = Runner(
        config,
        [agent],
        feed=feed,
        exchange=exchange,
        journal=journal,
        engine=AnalyticsEngine(periods_per_year=_YEAR_MS / timeframe_ms),
    )
    try:
        return await runner.run()
    finally:
        await exchange.close()
        journal.close()


def _run_coroutine(make: Any) -> Any:
    """``asyncio.run(make())``, in a worker thread when a loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
