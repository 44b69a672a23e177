"""Shared data for the strategy tests: real S&P 500 closes."""

from __future__ import annotations

import numpy as np
import pytest

import neuroflux  # noqa: F401  (turns on 64-bit mode before any array is made)


@pytest.fixture(scope="session")
def close() -> np.ndarray:
    """S&P 500 daily closes 1999-2018 shipped with arch (5031 bars)."""
    from arch.data import sp500

    return sp500.load()["Close"].to_numpy(np.float64)
