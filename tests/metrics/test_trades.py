"""Trade statistics against hand-computed NumPy references; padding with a mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuroflux import metrics

PNL = np.array([120.0, -40.0, 0.0, 75.0, -60.0, 30.0, -10.0, 200.0])
# By hand: 4 wins (425 in all), 3 losses (110 in all), one flat trade, 8 trades.
HAND = {
    "win_rate": 4 / 8,
    "profit_factor": 425 / 110,
    "expectancy": 315 / 8,
    "kelly_fraction": 0.5 - 0.5 / ((425 / 4) / (110 / 3)),
}


def _reference(pnl: np.ndarray) -> dict[str, float]:
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    rate = wins.size / pnl.size
    payoff = wins.mean() / -losses.mean()
    return {
        "win_rate": rate,
        "profit_factor": wins.sum() / -losses.sum(),
        "expectancy": pnl.mean(),
        "sqn": np.sqrt(pnl.size) * pnl.mean() / pnl.std(ddof=1),
        "kelly_fraction": rate - (1 - rate) / payoff,
    }


def test_hand_computed_values():
    for name, expected in HAND.items():
        np.testing.assert_allclose(getattr(metrics, name)(PNL), expected, rtol=1e-14)
    np.testing.assert_allclose(
        metrics.sqn(PNL), np.sqrt(8) * PNL.mean() / PNL.std(ddof=1), rtol=1e-14
    )


@pytest.mark.parametrize("seed", range(5))
def test_match_numpy_reference(seed):
    pnl = np.random.default_rng(seed).normal(0.05, 1.0, 200)
    for name, expected in _reference(pnl).items():
        np.testing.assert_allclose(getattr(metrics, name)(pnl), expected, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    pnl=hnp.arrays(np.float64, 32, elements=st.floats(-100, 100, width=32)),
    size=st.integers(0, 32),
    padding=st.floats(-1e6, 1e6),
)
def test_masked_padding_equals_unpadded(pnl, size, padding):
    mask = np.arange(32) < size
    padded = np.where(mask, pnl, padding)
    for name in ("win_rate", "profit_factor", "expectancy", "sqn", "kelly_fraction"):
        function = getattr(metrics, name)
        np.testing.assert_allclose(
            function(padded, mask), function(pnl[:size]), rtol=1e-12, atol=1e-12
        )


def test_edge_cases():
    assert np.isnan(metrics.win_rate(np.zeros(3), np.zeros(3, bool)))
    assert metrics.profit_factor(np.array([1.0, 2.0])) == np.inf
    assert np.isnan(metrics.profit_factor(np.zeros(2)))
    assert np.isnan(metrics.sqn(np.array([1.0])))
    assert np.isnan(metrics.kelly_fraction(np.array([1.0, 2.0])))
    assert metrics.kelly_fraction(np.array([1.0, -1.0])) == 0.0
