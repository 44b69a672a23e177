"""The pandas-facing layer of backtests and sweeps, for notebooks and the CLI.

:func:`run_backtest` backtests a registered strategy on an OHLCV frame and returns a
:class:`BacktestRun` (statistics, per-bar frame, trades, a vectorbt replay);
:func:`run_sweep` tabulates the statistics of a parameter grid, computed by the pure,
vmapped :func:`neuroflux.backtest.sweeps.sweep`. :func:`load_data` reads
``sample:NAME`` or a file; :func:`parse_param` and :func:`parse_grid_values` read
command-line values. :func:`walk_forward_sweep` chooses parameters on each training
window and stitches the out-of-sample returns of the test windows.
"""

from neuroflux.research.backtests import (
    BacktestRun,
    load_data,
    make_simulation,
    parse_param,
    run_backtest,
)
from neuroflux.research.sweeps import parse_grid_values, run_sweep
from neuroflux.research.walk_forward import WalkForward, walk_forward_sweep

__all__ = [
    "BacktestRun",
    "WalkForward",
    "load_data",
    "make_simulation",
    "parse_grid_values",
    "parse_param",
    "run_backtest",
    "run_sweep",
    "walk_forward_sweep",
]
