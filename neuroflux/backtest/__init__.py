"""Backtests as pure JAX functions over a time axis [T] (or a panel [T, N]).

:func:`simulate` trades toward target positions (fills at the close or the next open,
fees, slippage, whole or fractional units, long and short, stops) and returns a
:class:`Result` whose ``stats()`` are :func:`backtest_stats`; a backtesting.py-
compatible sizing reproduces its trades (:mod:`neuroflux.backtest.simulation`).
:func:`from_signals` simulates long-only entry/exit signals filled at the close with
vectorbt's ``Portfolio.from_signals`` arithmetic; :func:`simulate_signals` is its
one-series kernel. :func:`simulate_portfolio` rebalances target weights of many assets
with shared cash (vectorbt's ``from_orders`` with cash sharing). The differentiable
mode (:func:`sharpe_objective` over :func:`smooth_positions` and
:func:`portfolio_returns`) has gradients with respect to strategy parameters.
:func:`sweep` backtests a :func:`grid` of strategy parameters in one vmapped call.
:func:`walk_forward_splits` gives train/test index windows with purge and embargo.
"""

from neuroflux.backtest.differentiable import (
    SmoothCompositeConfig,
    SmoothCompositeParams,
    portfolio_returns,
    sharpe_objective,
    smooth_positions,
    smooth_score,
)
from neuroflux.backtest.portfolio import (
    PortfolioResult,
    PortfolioState,
    periodic_schedule,
    simulate_portfolio,
)
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
    rebalance_orders,
    simulate,
)
from neuroflux.backtest.splits import Split, walk_forward_splits
from neuroflux.backtest.statistics import STATISTICS, backtest_stats
from neuroflux.backtest.sweeps import from_columns, grid, random_grid, sweep

__all__ = [
    "STATISTICS",
    "Bars",
    "PortfolioResult",
    "PortfolioState",
    "Result",
    "SignalsResult",
    "SignalsState",
    "SimulationConfig",
    "SimulationParams",
    "SmoothCompositeConfig",
    "SmoothCompositeParams",
    "Split",
    "TradeLog",
    "Trades",
    "backtest_stats",
    "from_columns",
    "from_signals",
    "grid",
    "periodic_schedule",
    "portfolio_returns",
    "random_grid",
    "rebalance_orders",
    "sharpe_objective",
    "simulate",
    "simulate_portfolio",
    "simulate_signals",
    "smooth_positions",
    "smooth_score",
    "sweep",
    "walk_forward_splits",
]
