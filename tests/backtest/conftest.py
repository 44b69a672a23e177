"""Shared data for the backtest tests: seeded random panels and real daily closes."""

from __future__ import annotations

import numpy as np
import pytest

import neuroflux  # noqa: F401  (turns on 64-bit mode before any array is made)


def random_panel(
    seed: int, bars: int, columns: int, density: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geometric random-walk closes [T, N] and independent entry/exit signals."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, (bars, columns)), axis=0))
    entries = rng.random((bars, columns)) < density
    exits = rng.random((bars, columns)) < density
    return close, entries, exits


@pytest.fixture(scope="session")
def sp500_close() -> np.ndarray:
    """S&P 500 daily closes 1999-2018 shipped with arch (5031 rows)."""
    from arch.data import sp500

    return sp500.load()["Close"].to_numpy(np.float64)
