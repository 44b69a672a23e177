"""Shared data for the feature tests: real daily bars and seeded random series."""

from __future__ import annotations

import numpy as np
import pytest

import neuroflux  # noqa: F401  (turns on 64-bit mode before any array is made)


@pytest.fixture(scope="session")
def sp500() -> dict[str, np.ndarray]:
    """S&P 500 daily bars 1999-2018 shipped with arch (5031 rows)."""
    from arch.data import sp500

    frame = sp500.load()
    return {name.lower(): frame[name].to_numpy(np.float64) for name in frame.columns}


@pytest.fixture(scope="session")
def aapl() -> dict[str, np.ndarray]:
    """AAPL daily bars shipped with bokeh_sampledata (3270 rows)."""
    from bokeh_sampledata.stocks import AAPL

    return {
        name: np.asarray(AAPL[name], np.float64)
        for name in ("open", "high", "low", "close")
    }


@pytest.fixture(scope="session")
def random_walk() -> dict[str, np.ndarray]:
    """Seeded bars: a geometric walk for prices and a zero-crossing additive walk."""
    rng = np.random.default_rng(20240601)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 3000)))
    spread = close * rng.uniform(0, 0.02, (2, 3000))
    walk = np.cumsum(rng.normal(0, 1, 3000))
    return {
        "close": close,
        "high": close + spread[0],
        "low": close - spread[1],
        "centred": walk - walk.mean(),
    }


@pytest.fixture(scope="session", params=["sp500", "aapl", "random_walk"])
def bars(request) -> dict[str, np.ndarray]:
    """Each data set in turn: keys close, high, low (and more)."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session", params=["sp500", "aapl", "random_walk", "centred"])
def series(request) -> np.ndarray:
    """Each test series: three price series and one that crosses zero."""
    if request.param == "centred":
        return request.getfixturevalue("random_walk")["centred"]
    return request.getfixturevalue(request.param)["close"]


@pytest.fixture(scope="session")
def panel(sp500, aapl, random_walk) -> np.ndarray:
    """[T, 3] panel of the three close series over their common length."""
    columns = (sp500["close"], aapl["close"], random_walk["close"])
    length = min(len(c) for c in columns)
    return np.stack([c[-length:] for c in columns], axis=1)
