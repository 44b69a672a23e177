"""from_signals against vectorbt 1.2.0's Portfolio.from_signals, run in the test."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from conftest import random_panel

from neuroflux import backtest

vbt = pytest.importorskip("vectorbt")

from_signals = jax.jit(backtest.from_signals)

SETTINGS = [
    {},
    {"fees": 0.001},
    {"fees": 0.0025, "fixed_fees": 0.5, "slippage": 0.001},
    {"slippage": 0.01, "init_cash": 10_000.0},
    {"fees": 0.01, "size": 0.3},  # finite size: some buys fit, others are cut to cash
    {"fixed_fees": 40.0},  # fees that cannot be covered: rejected buys and sells
]

TRADE_FIELDS = [
    ("size", "size"),
    ("entry_price", "entry_price"),
    ("entry_fees", "entry_fees"),
    ("exit_price", "exit_price"),
    ("exit_fees", "exit_fees"),
    ("pnl", "pnl"),
    ("return", "returns"),
]


def assert_matches_vectorbt(close, entries, exits, **settings) -> None:
    portfolio = vbt.Portfolio.from_signals(close, entries, exits, freq="1D", **settings)
    result = jax.device_get(from_signals(close, entries, exits, **settings))
    expected_value = portfolio.value().to_numpy()
    value = result.value.reshape(expected_value.shape)
    np.testing.assert_allclose(value, expected_value, rtol=1e-9, atol=0)
    np.testing.assert_allclose(
        value[-1], np.asarray(portfolio.final_value()), rtol=1e-9
    )
    np.testing.assert_allclose(
        result.cash.reshape(expected_value.shape),
        portfolio.cash().to_numpy(),
        rtol=1e-9,
        atol=1e-9,
    )
    np.testing.assert_allclose(
        result.position.reshape(expected_value.shape),
        portfolio.assets().to_numpy(),
        rtol=1e-12,
        atol=0,
    )
    np.testing.assert_allclose(
        result.returns.reshape(expected_value.shape),
        portfolio.returns().to_numpy(),
        rtol=1e-9,
        atol=1e-15,
    )

    records = portfolio.trades.records
    trades = result.trades
    counts = np.atleast_1d(trades.count)
    columns = counts.shape[0]

    def column_of(field, column):
        array = getattr(trades, field)
        return array.reshape(array.shape[0], columns)[:, column]

    assert counts.sum() == len(records)
    for column in range(columns):
        expected = records[records["col"] == column]
        count = int(counts[column])
        assert count == len(expected), f"column {column}"
        np.testing.assert_array_equal(
            column_of("entry_index", column)[:count], expected["entry_idx"]
        )
        np.testing.assert_array_equal(
            column_of("exit_index", column)[:count], expected["exit_idx"]
        )
        np.testing.assert_array_equal(
            column_of("is_open", column)[:count], expected["status"] == 0
        )
        for theirs, ours in TRADE_FIELDS:
            np.testing.assert_allclose(
                column_of(ours, column)[:count],
                expected[theirs],
                rtol=1e-12,
                atol=1e-12,
                err_msg=f"{ours}, column {column}",
            )
        assert np.all(column_of("entry_index", column)[count:] == -1)
        assert np.all(np.isnan(column_of("pnl", column)[count:]))


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
def test_random_panel_matches_vectorbt(settings):
    close, entries, exits = random_panel(seed=7, bars=250, columns=12)
    assert_matches_vectorbt(close, entries, exits, **settings)


def test_dense_signals_with_conflicts_match_vectorbt():
    # At 50 % density a quarter of the bars carry both an entry and an exit.
    close, entries, exits = random_panel(seed=11, bars=200, columns=6, density=0.5)
    assert (entries & exits).sum() > 200
    assert_matches_vectorbt(close, entries, exits, fees=0.002)


@pytest.mark.parametrize("settings", [{}, {"fees": 0.001, "slippage": 0.0005}], ids=str)
def test_sp500_moving_average_cross_matches_vectorbt(sp500_close, settings):
    close = pd.Series(sp500_close)
    fast = close.rolling(20).mean()
    slow = close.rolling(50).mean()
    above = fast > slow
    was_above = above.shift(1, fill_value=False)
    entries = (above & ~was_above).to_numpy()
    exits = (~above & was_above & slow.notna()).to_numpy()
    assert entries.sum() > 20 and exits.sum() > 20
    # As one column [T, 1]: vectorbt compiles a separate kernel for 1-D input (5 s).
    assert_matches_vectorbt(
        sp500_close[:, None], entries[:, None], exits[:, None], **settings
    )


def test_same_bar_entry_and_exit_are_both_ignored():
    close = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0])
    entries = np.array([True, False, True, True, False, True, False])
    exits = np.array([True, False, False, True, True, True, False])
    # bar 0: conflict while flat -> nothing; bar 2: buy; bar 3: conflict while long
    # -> nothing; bar 4: sell; bar 5: conflict while flat -> nothing.
    result = from_signals(close, entries, exits)
    np.testing.assert_array_equal(result.order_size != 0, [0, 0, 1, 0, 1, 0, 0])
    assert int(result.trades.count) == 1
    np.testing.assert_allclose(result.value[-1], 100.0 * 14.0 / 12.0, rtol=1e-15)
    assert_matches_vectorbt(close[:, None], entries[:, None], exits[:, None])


def test_orders_below_min_size_are_rejected_like_vectorbt():
    # vectorbt rejects orders of fewer than 1e-8 units (its default min_size): the
    # buy at bar 0 (9.996e-9 units) is rejected, the one at bar 2 (1.0008e-8) fills.
    close = np.array([82.7, 82.0, 82.6, 83.0, 83.5])
    entries = np.array([True, False, True, False, False])
    exits = np.array([False, True, False, True, False])
    result = from_signals(close, entries, exits, fees=0.001, init_cash=8.2752e-7)
    np.testing.assert_array_equal(result.order_size != 0, [0, 0, 1, 1, 0])
    assert_matches_vectorbt(
        close[:, None],
        entries[:, None],
        exits[:, None],
        fees=0.001,
        init_cash=8.2752e-7,
    )


def test_nan_close_places_no_order_like_vectorbt():
    close, entries, exits = random_panel(seed=5, bars=120, columns=3, density=0.3)
    close[10:14, 0] = np.nan
    close[40, 1] = np.nan
    entries[10:14, 0] = True
    exits[40, 1] = True
    portfolio = vbt.Portfolio.from_signals(close, entries, exits, freq="1D")
    result = from_signals(close, entries, exits)
    np.testing.assert_allclose(
        result.value, portfolio.value().to_numpy(), rtol=1e-9, equal_nan=True
    )
    np.testing.assert_array_equal(
        result.trades.count, portfolio.trades.count().to_numpy()
    )
