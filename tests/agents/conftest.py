"""Markets shared by the agents' tests."""

from __future__ import annotations

import numpy as np
import pytest

from neuroflux.strategies.steps import Bar


@pytest.fixture(scope="session")
def planted_bars() -> Bar:
    """2,000 bars whose next log return is ``0.005 sign(last return)`` plus noise."""
    rng = np.random.default_rng(0)
    length = 2000
    returns = np.empty(length)
    returns[0] = rng.normal(0.0, 0.01)
    for t in range(1, length):
        returns[t] = 0.005 * np.sign(returns[t - 1]) + rng.normal(0.0, 0.01)
    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 1e-3, length))
    wick = np.exp(np.abs(rng.normal(0.0, 3e-3, (2, length))))
    high = np.maximum(open_, close) * wick[0]
    low = np.minimum(open_, close) / wick[1]
    volume = rng.lognormal(10.0, 0.5, length)
    return Bar.from_arrays(close, open=open_, high=high, low=low, volume=volume)
