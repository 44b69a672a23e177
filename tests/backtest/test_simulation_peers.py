"""simulate against the peers, each run inside the test: backtesting.py 0.6.6 on its
GOOG data with its SmaCross example, and vectorbt 1.2.0 on all-in signal strategies."""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import vectorbt as vbt
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

from neuroflux import backtest, strategies
from neuroflux.backtest import Bars, SimulationConfig, SimulationParams
from neuroflux.data import load_sample

simulate = jax.jit(backtest.simulate, static_argnums=3)


class SmaCross(Strategy):
    """backtesting.py's README example (orders are exclusive)."""

    fast = 10
    slow = 30

    def init(self):
        self.sma1 = self.I(SMA, self.data.Close, self.fast)
        self.sma2 = self.I(SMA, self.data.Close, self.slow)

    def next(self):
        if crossover(self.sma1, self.sma2):
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.sell()


class SmaCrossClosing(SmaCross):
    """The SmaCross of backtesting.py's own test suite: close, then open."""

    def next(self):
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


def run_backtesting_py(strategy, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its progress bar and open-trade warnings
        return Backtest(GOOG, strategy, **options).run()


def goog_bars() -> Bars:
    return Bars(*(jnp.asarray(GOOG[c].to_numpy()) for c in GOOG.columns[:4]))


def sma_cross_targets(close) -> jnp.ndarray:
    params = strategies.make_params("sma_cross", fast=10, slow=30, wait_for_cross=True)
    return strategies.sma_cross(close, params)


def assert_same_trades(result, peer_trades):
    trades = result.trades
    closed = np.asarray(trades.closed)
    assert closed.sum() == len(peer_trades)
    picked = {
        name: np.asarray(getattr(trades, name))[closed]
        for name in ("entry_index", "exit_index", "entry_price", "exit_price", "pnl")
    }
    signed_size = np.asarray(trades.size * trades.direction)[closed]
    np.testing.assert_array_equal(picked["entry_index"], peer_trades.EntryBar)
    np.testing.assert_array_equal(picked["exit_index"], peer_trades.ExitBar)
    np.testing.assert_array_equal(signed_size, peer_trades.Size)
    np.testing.assert_allclose(
        picked["entry_price"], peer_trades.EntryPrice, rtol=1e-12
    )
    np.testing.assert_allclose(picked["exit_price"], peer_trades.ExitPrice, rtol=1e-12)
    np.testing.assert_allclose(
        picked["pnl"], peer_trades.PnL, rtol=1e-9, atol=1e-9 * 10_000
    )
    np.testing.assert_allclose(
        np.asarray(trades.returns)[closed], peer_trades.ReturnPct, rtol=1e-9, atol=1e-12
    )


def test_backtesting_py_readme_example_with_commission_and_exclusive_orders():
    peer = run_backtesting_py(SmaCross, commission=0.002, exclusive_orders=True)
    bars = goog_bars()
    result = simulate(
        bars,
        sma_cross_targets(bars.close),
        SimulationParams(init_cash=10_000.0, fees=0.002),
        SimulationConfig.backtesting_py(),
    )
    assert peer["# Trades"] == 65
    assert_same_trades(result, peer._trades)
    assert int(result.trades.count) == 66 and bool(result.trades.is_open[65])
    np.testing.assert_allclose(
        result.value, peer._equity_curve.Equity, rtol=1e-9, atol=0
    )
    assert float(result.value[-1]) == pytest.approx(peer["Equity Final [$]"], rel=1e-9)


def test_backtesting_py_test_suite_smacross_with_finalized_trades():
    peer = run_backtesting_py(SmaCrossClosing, finalize_trades=True)
    bars = goog_bars()
    config = dataclasses.replace(SimulationConfig.backtesting_py(), close_at_end=True)
    result = simulate(
        bars,
        sma_cross_targets(bars.close),
        SimulationParams(init_cash=10_000.0),
        config,
    )
    # The golden numbers of backtesting.py's test_compute_stats, and its own run.
    assert peer["# Trades"] == 66
    assert peer["Equity Final [$]"] == pytest.approx(51422.99, abs=1e-6)
    assert_same_trades(result, peer._trades)
    np.testing.assert_allclose(
        result.value, peer._equity_curve.Equity, rtol=1e-9, atol=0
    )
    stats = result.stats()
    assert float(stats["win_rate_pct"]) == pytest.approx(
        peer["Win Rate [%]"], rel=1e-12
    )
    assert float(stats["sqn"]) == pytest.approx(peer["SQN"], rel=1e-9)
    assert float(stats["kelly_fraction"]) == pytest.approx(
        peer["Kelly Criterion"], rel=1e-9
    )
    assert float(stats["max_drawdown_pct"]) == pytest.approx(
        peer["Max. Drawdown [%]"], rel=1e-9
    )
    assert float(stats["best_trade_pct"]) == pytest.approx(
        peer["Best Trade [%]"], rel=1e-9
    )


@pytest.mark.parametrize("direction", ["long_only", "long_short"])
def test_all_in_signals_at_the_close_equal_vectorbt(direction):
    close = load_sample("aapl")["close"].to_numpy()
    params = strategies.make_params("sma_cross", fast=10, slow=40, direction=direction)
    targets = strategies.sma_cross(jnp.asarray(close), params)
    signals = strategies.positions_to_signals(targets)
    costs = dict(fees=0.001, slippage=0.0005, init_cash=10_000.0)
    peer = vbt.Portfolio.from_signals(
        close,
        np.asarray(signals.long_entries),
        np.asarray(signals.long_exits),
        short_entries=np.asarray(signals.short_entries),
        short_exits=np.asarray(signals.short_exits),
        **costs,
    )
    result = simulate(
        Bars.from_close(close), targets, SimulationParams(**costs), SimulationConfig()
    )
    np.testing.assert_allclose(result.value, peer.value(), rtol=1e-9, atol=0)
    assert int(result.trades.count) == peer.positions.count()
