"""run_backtest on real data: its frames, a vectorbt replay of its orders, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuroflux import backtest, strategies
from neuroflux.data import DataValidationError, load_sample
from neuroflux.research import load_data, parse_param, run_backtest

LONG_SHORT = {"fast": 10, "slow": 30}
COSTS = {"commission": 0.001, "fixed_fees": 1.0, "slippage": 0.0005}


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_sample("goog")


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_vectorbt_replay_has_our_equity(goog, fill):
    run = run_backtest(goog, "sma_cross", LONG_SHORT, fill=fill, **COSTS)
    trades = run.trades()
    assert set(trades["direction"]) == {"long", "short"}
    value = run.to_frame()["value"]
    portfolio = run.to_vectorbt()
    np.testing.assert_allclose(portfolio.value(), value, rtol=1e-9, atol=0)
    orders = portfolio.orders.records_readable
    assert len(orders) == int((run.orders()["size"] != 0).sum())
    expected_price = goog["close"] if fill == "close" else goog["open"]
    one_order = run.to_frame()["units"].diff().abs() > 0
    # An order that only opens or closes fills at the bar's price, slippage applied.
    fill_price = run.orders()["price"][one_order]
    ratio = fill_price / expected_price[one_order]
    assert np.all(np.isclose(ratio, 1.0005) | np.isclose(ratio, 0.9995))


def test_frames_and_stats_agree_with_the_pure_result(goog):
    run = run_backtest(
        goog,
        "sma_cross",
        {**LONG_SHORT, "wait_for_cross": True},
        compat="backtesting.py",
        commission=0.002,
    )
    params = strategies.make_params("sma_cross", **LONG_SHORT, wait_for_cross=True)
    bars = backtest.Bars(
        *(goog[c].to_numpy() for c in ("open", "high", "low", "close"))
    )
    result = backtest.simulate(
        bars,
        strategies.sma_cross(bars.close, params),
        backtest.SimulationParams(fees=0.002),
        backtest.SimulationConfig.backtesting_py(),
    )
    np.testing.assert_allclose(run.to_frame()["value"], result.value, rtol=1e-12)
    stats = run.stats()
    assert list(stats.index) == list(backtest.STATISTICS)
    assert stats["trades"] == 65 and isinstance(stats["trades"], int)
    assert stats["equity_final"] == pytest.approx(float(result.value[-1]), rel=1e-12)
    frame = run.to_frame()
    assert list(frame.columns) == [
        "close",
        "target",
        "units",
        "cash",
        "value",
        "returns",
        "fees",
    ]
    assert frame.index.equals(goog.index)
    trades = run.trades()
    assert len(trades) == 66 and trades["is_open"].tolist() == [False] * 65 + [True]
    first = trades.iloc[0]
    entry = int(result.trades.entry_index[0])
    assert first["entry_time"] == goog.index[entry]
    assert first["duration"] == first["exit_time"] - first["entry_time"]
    assert first["pnl"] == pytest.approx(float(result.trades.pnl[0]), rel=1e-12)
    assert trades["size"].eq(trades["size"].round()).all()  # whole units


def test_bad_input_gets_clear_errors(goog):
    with pytest.raises(ValueError, match=r"unknown strategy 'sma_crss'.*sma_cross"):
        run_backtest(goog, "sma_crss")
    with pytest.raises(ValueError, match="unknown parameter of sma_cross 'fsat'"):
        run_backtest(goog, "sma_cross", {"fsat": 3})
    with pytest.raises(ValueError, match=r"us_stocks is a panel.*goog"):
        run_backtest(load_sample("us_stocks"), "sma_cross")
    broken = goog.copy()
    broken.iloc[5, broken.columns.get_loc("close")] = np.nan
    with pytest.raises(DataValidationError, match=r"row 6, 2004-08-26.*'close'"):
        run_backtest(broken, "sma_cross")
    with pytest.raises(KeyError, match="unknown sample 'nope'"):
        load_data("sample:nope")
    with pytest.raises(ValueError, match="compat must be one of"):
        run_backtest(goog, "sma_cross", compat="vectorbt")


def test_parse_param_uses_the_field_types():
    assert parse_param("sma_cross", "fast", "12") == 12
    assert parse_param("sma_cross", "wait_for_cross", "True") is True
    assert parse_param("bollinger_breakout", "num_std", "1.5") == 1.5
    assert parse_param("sma_cross", "direction", "long_only") == "long_only"
    with pytest.raises(ValueError, match="'fast' of sma_cross: expected an integer"):
        parse_param("sma_cross", "fast", "ten")
    with pytest.raises(ValueError, match="Valid: direction, fast, slow"):
        parse_param("sma_cross", "speed", "1")
