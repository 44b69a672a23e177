"""The planted-signal panel (neuroflux.forecasting.synthetic): the evaluation recovers
the planted information coefficient.

(Named apart from tests/data/test_synthetic.py: test modules need unique basenames.)
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import neuroflux  # noqa: F401  (turns on 64-bit mode before any array is made)
from neuroflux.forecasting import metrics, synthetic, windows

N_TIMES, N_ASSETS = 1000, 500  # std of a mean IC ~ 1 / sqrt(5e5) = 0.0014


@pytest.mark.parametrize("ic", [0.05, -0.1])
def test_planted_ic_is_recovered(ic):
    panel = synthetic.planted_signal_panel(jax.random.key(11), N_TIMES, N_ASSETS, ic)
    assert panel.features.shape == (N_TIMES, N_ASSETS, 3)
    assert panel.returns.shape == (N_TIMES, N_ASSETS)
    signal = panel.features[..., 0]
    # +-0.01 is 7 standard deviations of the mean IC.
    mean_ic = float(np.mean(metrics.information_coefficient(signal, panel.returns)))
    assert abs(mean_ic - ic) < 0.01
    rank_ic = metrics.rank_information_coefficient(signal, panel.returns)
    expected_rank_ic = 6 / np.pi * np.arcsin(ic / 2)
    assert abs(float(np.mean(rank_ic)) - expected_rank_ic) < 0.01
    # ICIR of a planted IC: mean / std with std ~ (1 - ic**2) / sqrt(A - 1).
    expected_icir = ic * np.sqrt(N_ASSETS - 1) / (1 - ic**2)
    icir = float(metrics.icir(metrics.information_coefficient(signal, panel.returns)))
    assert abs(icir - expected_icir) < 0.15 * abs(expected_icir)
    for noise in (1, 2):
        noise_ic = metrics.information_coefficient(
            panel.features[..., noise], panel.returns
        )
        assert abs(float(np.mean(noise_ic))) < 0.01


def test_planted_ic_survives_the_window_pipeline():
    """Windows of lookback 1 over the panel keep the signal aligned with its target."""
    panel = synthetic.planted_signal_panel(jax.random.key(5), 200, 300, 0.2)
    X, y, times, assets = windows.make_panel_windows(panel.features, panel.returns, 1)
    assert X.shape == (200 * 300, 1, 3)
    pred = np.full((200, 300), np.nan)
    actual = np.full((200, 300), np.nan)
    pred[times, assets], actual[times, assets] = X[:, -1, 0], y
    np.testing.assert_array_equal(actual, panel.returns)
    assert (
        abs(float(np.mean(metrics.information_coefficient(pred, actual))) - 0.2) < 0.01
    )


def test_panel_is_deterministic_in_its_key():
    first = synthetic.planted_signal_panel(jax.random.key(1), 10, 4, 0.3)
    again = synthetic.planted_signal_panel(jax.random.key(1), 10, 4, 0.3)
    other = synthetic.planted_signal_panel(jax.random.key(2), 10, 4, 0.3)
    np.testing.assert_array_equal(first.returns, again.returns)
    assert not np.array_equal(first.returns, other.returns)
    assert first.returns.dtype == np.float64


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("n_times", 0),
        ("n_assets", 1),
        ("ic", 1.5),
        ("n_noise_features", -1),
        ("volatility", 0.0),
    ],
)
def test_bad_arguments_name_themselves(argument, value):
    arguments = {"n_times": 10, "n_assets": 5, "ic": 0.1}
    arguments[argument] = value
    with pytest.raises(ValueError, match=argument):
        synthetic.planted_signal_panel(jax.random.key(0), **arguments)
