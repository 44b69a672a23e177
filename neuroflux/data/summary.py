"""One-line-per-market summaries of OHLCV data: coverage, returns and stylized facts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuroflux.data.samples import list_samples, load_sample


def summarize_bars(bars: pd.DataFrame, *, periods_per_year: float = 252.0) -> dict:
    """Coverage and return statistics of one OHLCV frame.

    Returns:
        dict with ``rows first last first_close last_close total_return
        annual_volatility excess_kurtosis abs_return_autocorrelation`` (lag 1 of |r|,
        positive under volatility clustering).
    """
    close = bars["close"].to_numpy()
    log_returns = np.diff(np.log(close))
    absolute = np.abs(log_returns - log_returns.mean())
    return {
        "rows": len(bars),
        "first": bars.index[0].date().isoformat(),
        "last": bars.index[-1].date().isoformat(),
        "first_close": close[0],
        "last_close": close[-1],
        "total_return": close[-1] / close[0] - 1,
        "annual_volatility": log_returns.std(ddof=1) * np.sqrt(periods_per_year),
        "excess_kurtosis": pd.Series(log_returns).kurt(),
        "abs_return_autocorrelation": np.corrcoef(absolute[1:], absolute[:-1])[0, 1],
    }


def summarize_samples() -> pd.DataFrame:
    """`summarize_bars` of every single-asset embedded sample, one row each."""
    names = list_samples().query("kind == 'single'").index
    rows = {name: summarize_bars(load_sample(name)) for name in names}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("sample")
