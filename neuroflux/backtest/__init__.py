"""Backtests as pure JAX functions over a time axis [T] (or a panel [T, N]).

:func:`simulate` trades toward target positions (fills at the close or the next open,
fees, slippage, whole or fractional units, long and short, stops) and returns a
:class:`Result` whose ``stats()`` are :func:`backtest_stats`; a backtesting.py-
compatible sizing reproduces its trades (:mod:`neuroflux.backtest.simulation`).
:func:`from_signals` simulates long-only entry/exit signals filled at the close with
vectorbt's ``Portfolio.from_signals`` arithmetic; :func:`simulate_signals` is its
one-series kernel. :func:`walk_forward_splits` gives train/test index windows with
purge and embargo.
"""

from neuroflux.backtest.signals import (
    SignalsResult,
    SignalsState,
    Trades,
    from_signals,
    simulate_signals,
)
from neuroflux.backtest.simulation import (
    Bars,
    Result,
    SimulationConfig,
    SimulationParams,
    TradeLog,
    simulate,
)
from neuroflux.backtest.splits import Split, walk_forward_splits
from neuroflux.backtest.statistics import STATISTICS, backtest_stats

__all__ = [
    "STATISTICS",
    "Bars",
    "Result",
    "SignalsResult",
    "SignalsState",
    "SimulationConfig",
    "SimulationParams",
    "Split",
    "TradeLog",
    "Trades",
    "backtest_stats",
    "from_signals",
    "simulate",
    "simulate_signals",
    "walk_forward_splits",
]
