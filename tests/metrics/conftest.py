"""Shared data for the metric tests: seeded return series with and without NaNs."""

from __future__ import annotations

import numpy as np
import pytest

import neuroflux  # noqa: F401  (turns on 64-bit mode before any array is made)

LENGTH = 500


def _panel(seed: int, with_nans: bool) -> np.ndarray:
    """12 daily-like return series [12, LENGTH]: rising, falling and flat drifts,
    calm and volatile, normal and fat-tailed."""
    rng = np.random.default_rng(seed)
    drifts = np.repeat([0.001, -0.001, 0.0], 4)
    scales = np.tile([0.005, 0.01, 0.02, 0.04], 3)
    shocks = np.where(
        np.arange(12)[:, None] % 2 == 0,
        rng.standard_normal((12, LENGTH)),
        rng.standard_t(3, (12, LENGTH)) / np.sqrt(3),
    )
    panel = np.clip(drifts[:, None] + scales[:, None] * shocks, -0.9, None)
    if with_nans:
        panel[rng.random(panel.shape) < 0.05] = np.nan
        panel[:, 0] = np.nan  # a leading NaN, as after pct_change
    return panel


@pytest.fixture(scope="session")
def panel() -> np.ndarray:
    """Finite return series [12, 500]."""
    return _panel(20240601, with_nans=False)


@pytest.fixture(scope="session")
def panel_with_nans() -> np.ndarray:
    """Return series [12, 500] with about 5 % NaNs, one of them leading."""
    return _panel(20240602, with_nans=True)


@pytest.fixture(scope="session")
def factor_panel() -> np.ndarray:
    """Benchmark series [12, 500], correlated with ``panel`` only by chance."""
    rng = np.random.default_rng(20240603)
    return rng.normal(0.0004, 0.012, (12, LENGTH))
