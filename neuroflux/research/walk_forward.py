"""Walk-forward optimisation: choose parameters on each training window, score them on
the test window that follows, and stitch the out-of-sample returns.

For each fold of :func:`neuroflux.backtest.walk_forward_splits` the grid is swept on
the training span only (:func:`~neuroflux.research.run_sweep`) and the combination with
the best ``select`` statistic is kept. That combination is then backtested over the
whole history and its returns on the fold's test window are the out-of-sample returns:
the rule runs as it would have live, with indicators warmed up and any position it
held at the start of the window, but nothing after the training span chose it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from neuroflux import metrics
from neuroflux.backtest import walk_forward_splits
from neuroflux.research.backtests import run_backtest
from neuroflux.research.sweeps import run_sweep

__all__ = ["WalkForward", "walk_forward_sweep"]


@dataclasses.dataclass(frozen=True)
class WalkForward:
    """The folds of a walk-forward optimisation and its out-of-sample returns.

    Attributes:
        folds: One row per fold: the train and test timestamps, the chosen parameters,
            their in-sample ``select`` statistic and the out-of-sample Sharpe ratio
            and return of the test window.
        returns: The test windows' bar returns, stitched in time order (with
            ``step < test_size`` the windows overlap and so do their bars).
        trials: Combinations tried per fold (for a deflated Sharpe ratio).
    """

    folds: pd.DataFrame
    returns: pd.Series
    trials: int


def walk_forward_sweep(
    data: pd.DataFrame,
    strategy: str,
    grid: Mapping[str, Sequence[Any]],
    *,
    train_size: int,
    test_size: int,
    step: int | None = None,
    purge: int = 0,
    expanding: bool = False,
    select: str = "sharpe_ratio",
    params: Mapping[str, Any] | None = None,
    periods_per_year: float = 252.0,
    **options: Any,
) -> WalkForward:
    """Walk-forward optimisation of ``strategy`` over ``grid``; see the module notes.

    Args:
        data: One asset's OHLCV frame.
        strategy: Registered strategy name.
        grid: Parameter name -> values to sweep (every combination).
        train_size, test_size, step, purge, expanding: The folds, as
            :func:`~neuroflux.backtest.walk_forward_splits` (no embargo: a backtest
            trains on contiguous bars).
        select: The statistic maximised on each training window.
        params: Fixed parameters (static ones such as ``direction``).
        periods_per_year: Bars per year, for the statistics.
        **options: Simulation options of :func:`~neuroflux.research.run_backtest`.

    Raises:
        ValueError: An unknown ``select`` statistic, or folds that do not fit.
    """
    splits = walk_forward_splits(
        len(data),
        train_size=train_size,
        test_size=test_size,
        step=step,
        purge=purge,
        expanding=expanding,
    )
    rows, pieces = [], []
    for fold, split in enumerate(splits):
        train = data.iloc[split.train[0] : split.train[-1] + 1]
        table = run_sweep(
            train,
            strategy,
            grid,
            params=params,
            progress=False,
            periods_per_year=periods_per_year,
            **options,
        )
        if select not in table.columns:
            raise ValueError(f"select must be a statistic; got {select!r}")
        best = table[select].idxmax()
        # Column by column: a row of the table would turn integer windows into floats.
        chosen = {**(params or {}), **{name: table[name][best].item() for name in grid}}
        run = run_backtest(
            data, strategy, chosen, periods_per_year=periods_per_year, **options
        )
        test_returns = run.to_frame()["returns"].iloc[split.test]
        pieces.append(test_returns)
        growth = (1 + test_returns).prod() - 1
        rows.append(
            {
                "fold": fold,
                "train_start": train.index[0],
                "train_end": train.index[-1],
                "test_start": test_returns.index[0],
                "test_end": test_returns.index[-1],
                **{name: chosen[name] for name in grid},
                f"in_sample_{select}": float(table[select][best]),
                "test_sharpe_ratio": float(
                    metrics.sharpe_ratio(
                        test_returns.to_numpy(), periods_per_year=periods_per_year
                    )
                ),
                "test_return_pct": 100 * float(growth),
            }
        )
    return WalkForward(
        folds=pd.DataFrame(rows).set_index("fold"),
        returns=pd.concat(pieces),
        trials=len(table),
    )
