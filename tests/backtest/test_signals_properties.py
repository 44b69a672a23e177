"""Invariants of from_signals on arbitrary prices and signals (hypothesis)."""

from __future__ import annotations

import jax
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neuroflux import backtest

BARS = 40  # one shape, so that each property compiles once
simulate_signals = jax.jit(backtest.simulate_signals)

closes = arrays(
    np.float64,
    BARS,
    elements=st.floats(0.01, 10_000.0, allow_nan=False, allow_infinity=False),
)
signals = arrays(np.bool_, BARS)
proportional_fees = st.floats(0.0, 0.1)
fixed_fees = st.floats(0.0, 5.0)
slippages = st.floats(0.0, 0.05)
init_cash = st.floats(1.0, 1e6)

PROPERTY = settings(max_examples=30, deadline=None)


@PROPERTY
@given(closes, signals, fixed_fees, slippages, init_cash)
def test_never_entering_keeps_equity_at_init_cash(
    close, exits, fixed_fee, slippage, cash
):
    entries = np.zeros(BARS, bool)
    result = simulate_signals(
        close, entries, exits, fixed_fees=fixed_fee, slippage=slippage, init_cash=cash
    )
    np.testing.assert_array_equal(result.value, cash)
    np.testing.assert_array_equal(result.position, 0.0)
    np.testing.assert_array_equal(result.returns, 0.0)
    assert int(result.trades.count) == 0


@PROPERTY
@given(closes, signals, signals, proportional_fees, slippages)
def test_fees_and_slippage_never_raise_final_equity(
    close, entries, exits, fees, slippage
):
    free = simulate_signals(close, entries, exits)
    costly = simulate_signals(close, entries, exits, fees=fees, slippage=slippage)
    # Proportional costs change sizes, never which orders fill.
    np.testing.assert_array_equal(costly.order_size != 0, free.order_size != 0)
    assert float(costly.value[-1]) <= float(free.value[-1]) * (1 + 1e-12)


@PROPERTY
@given(closes, signals, signals, proportional_fees, fixed_fees, slippages, init_cash)
def test_equity_is_cash_plus_holdings_and_nothing_goes_negative(
    close, entries, exits, fees, fixed_fee, slippage, cash
):
    result = jax.device_get(
        simulate_signals(
            close,
            entries,
            exits,
            fees=fees,
            fixed_fees=fixed_fee,
            slippage=slippage,
            init_cash=cash,
        )
    )
    np.testing.assert_array_equal(result.value, result.cash + result.position * close)
    assert np.all(result.cash >= 0)
    assert np.all(result.position >= 0)
    # All in: every buy spends all the cash.
    np.testing.assert_array_equal(result.cash[result.order_size > 0], 0.0)


@PROPERTY
@given(closes, signals, signals, proportional_fees, fixed_fees, slippages)
def test_trade_pnl_adds_up_to_the_equity_change(
    close, entries, exits, fees, fixed_fee, slippage
):
    result = jax.device_get(
        simulate_signals(
            close, entries, exits, fees=fees, fixed_fees=fixed_fee, slippage=slippage
        )
    )
    trades = result.trades
    count = int(trades.count)
    assert count == np.count_nonzero(result.order_size > 0)
    closed = ~trades.is_open[:count]
    assert np.all(
        trades.entry_index[:count][closed] < trades.exit_index[:count][closed]
    )
    assert np.all(trades.exit_index[:count][~closed] == BARS - 1)
    total_pnl = np.sum(trades.pnl[:count])
    np.testing.assert_allclose(
        total_pnl, result.value[-1] - 100.0, rtol=1e-9, atol=1e-9
    )
    flat_before = np.concatenate([[True], result.position[:-1] == 0])
    idle = flat_before & (result.order_size == 0)
    np.testing.assert_array_equal(result.returns[idle], 0.0)
