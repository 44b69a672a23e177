"""The per-bar curves every tear sheet draws: equity, drawdown, rolling Sharpe ratio."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuroflux.research import BacktestRun

__all__ = ["ROLLING_WINDOW", "chart_series"]

ROLLING_WINDOW = 126  # bars in the rolling Sharpe ratio (half a year of days)


def chart_series(
    run: BacktestRun, window: int = ROLLING_WINDOW
) -> dict[str, np.ndarray]:
    """Equity, drawdown (fraction) and rolling Sharpe ratio of ``run``, per bar.

    The Sharpe ratio is annualised with the run's periods per year and NaN for the
    first ``window - 1`` bars.
    """
    value = np.asarray(run.result.value)
    returns = pd.Series(np.asarray(run.result.returns))
    rolling = returns.rolling(window)
    sharpe = rolling.mean() / rolling.std() * np.sqrt(run.periods_per_year)
    return {
        "equity": value,
        "drawdown": value / np.maximum.accumulate(value) - 1.0,
        "rolling_sharpe": sharpe.to_numpy(),
    }
