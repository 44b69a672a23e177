"""Observation features against NumPy, their scale invariance, and observer parity.

The reference recomputes every feature of :mod:`neuroflux.envs.observations` from its
formula with NumPy sliding windows (two-pass ``np.std``) on real S&P 500 bars. The
observer, pushed bar by bar as a live step function would be, must hand the agent the
very float32 vectors :meth:`TradingEnv.observe` gives along the same path.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import neuroflux  # noqa: F401  (64-bit mode before any array is made)
from neuroflux.data import load_sample
from neuroflux.envs import (
    FEATURE_NAMES,
    LOOKBACK,
    EnvConfig,
    Market,
    TradingEnv,
    bar_features,
    observation,
    observer_act,
    observer_init,
    observer_push,
    window_features,
)
from neuroflux.strategies.steps import Bar

NUM_FEATURES = len(FEATURE_NAMES)


@functools.cache
def sp500_frame():
    return load_sample("sp500")


def frame_bars(frame, rows: slice = slice(None)) -> Bar:
    """A :class:`Bar` of the frame's columns ([T] or, for a panel, [T, A])."""
    return Bar(
        **{
            field: jnp.asarray(frame[field].to_numpy(np.float64)[rows])
            for field in ("open", "high", "low", "close", "volume")
        }
    )


def reference_features(bars: Bar) -> np.ndarray:
    """[T, F] features from their formulas with NumPy; NaN for the first 20 bars."""
    close, high, low, open_, volume = (
        np.asarray(x) for x in (bars.close, bars.high, bars.low, bars.open, bars.volume)
    )
    returns = np.diff(np.log(close))
    # windows[k] holds the 20 returns of bars k+1 .. k+20: those of bar t = k + 20.
    windows = sliding_window_view(returns, LOOKBACK - 1)
    scale = windows.std(axis=1, ddof=1)
    recent = windows[:, -5:].std(axis=1, ddof=1)
    log_volume = sliding_window_view(np.log1p(volume[1:]), LOOKBACK - 1)
    spread = log_volume.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        surprise = (log_volume[:, -1] - log_volume.mean(axis=1)) / spread
    unvarying = (log_volume == log_volume[:, :1]).all(axis=1)
    surprise = np.where(unvarying, 0.0, surprise)
    last = slice(LOOKBACK - 1, None)
    mean_close = sliding_window_view(close[1:], LOOKBACK - 1).mean(axis=1)
    values = np.stack(
        [
            windows[:, -1] / scale,
            windows[:, -5:].sum(axis=1) / (scale * np.sqrt(5.0)),
            windows.sum(axis=1) / (scale * np.sqrt(20.0)),
            np.log(recent / scale),
            np.log(high[last] / low[last]) / scale,
            np.log(close[last] / open_[last]) / scale,
            (close[last] / mean_close - 1) / scale,
            surprise,
        ],
        axis=1,
    )
    return np.concatenate([np.full((LOOKBACK - 1, NUM_FEATURES), np.nan), values])


def test_bar_features_match_numpy_on_sp500():
    bars = frame_bars(sp500_frame())
    ours = np.asarray(jax.jit(bar_features)(bars))
    expected = reference_features(bars)
    assert ours.shape == (5031, NUM_FEATURES)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


def test_warm_up_is_exactly_lookback_minus_one_nan_rows():
    features = np.asarray(bar_features(frame_bars(sp500_frame(), slice(0, 300))))
    assert np.isnan(features[: LOOKBACK - 1]).all()
    assert np.isfinite(features[LOOKBACK - 1 :]).all()


def test_window_features_is_the_last_row_of_bar_features():
    bars = frame_bars(sp500_frame(), slice(1000, 1000 + LOOKBACK))
    expected = reference_features(bars)[-1]
    np.testing.assert_allclose(
        np.asarray(jax.jit(window_features)(bars)), expected, rtol=1e-12, atol=1e-12
    )


def test_equal_volumes_give_no_surprise_and_too_few_bars_fail():
    bars = frame_bars(sp500_frame(), slice(0, LOOKBACK))
    # Zero volume (an index without volumes) and equal non-zero volumes, whose
    # rounded mean differs from each of them by an ulp.
    surprise = FEATURE_NAMES.index("volume_surprise")
    for volume in (0.0, 1e6, 12345.678):
        flat = bars.replace(volume=jnp.full(LOOKBACK, volume))
        assert float(window_features(flat)[surprise]) == 0
    with pytest.raises(ValueError, match="at least 21 bars; got 20"):
        bar_features(frame_bars(sp500_frame(), slice(0, LOOKBACK - 1)))


_scaled_features = jax.jit(
    lambda bars, factor: bar_features(
        bars.replace(
            open=bars.open * factor,
            high=bars.high * factor,
            low=bars.low * factor,
            close=bars.close * factor,
        )
    )
)


@settings(max_examples=25, deadline=None)
@given(factor=st.floats(1e-3, 1e4, allow_nan=False))
def test_features_do_not_depend_on_the_price_scale(factor):
    bars = frame_bars(sp500_frame(), slice(2000, 2300))
    base = np.asarray(_scaled_features(bars, 1.0))
    scaled = np.asarray(_scaled_features(bars, factor))
    np.testing.assert_allclose(scaled, base, rtol=1e-12, atol=1e-12)


def test_prices_times_seven_leave_features_unchanged():
    bars = frame_bars(sp500_frame(), slice(0, 600))
    np.testing.assert_allclose(
        np.asarray(_scaled_features(bars, 7.0)),
        np.asarray(_scaled_features(bars, 1.0)),
        rtol=1e-12,
        atol=1e-12,
    )


def _observer_and_env_observations(bars: Bar, targets: np.ndarray, window: int):
    """Observations along one path from the observer and from the env.

    ``bars`` has [T, A] fields; ``targets`` [T, A] are the positions chosen at each
    bar's close from ``config.first_bar`` on. Returns two [N, D] arrays.
    """
    num_assets = targets.shape[1]
    env = TradingEnv(
        EnvConfig(window=window, episode_length=10_000, actions="continuous")
    )
    params = env.make_params(Market.from_bars(bars), fee=0.0)
    first = env.config.first_bar
    length = bars.close.shape[0]

    def observer_path(state, inputs):
        bar, target, act = inputs
        state = observer_push(state, bar)
        seen = observation(state.features, state.position, state.position_pnl)
        state = jax.lax.cond(act, lambda s: observer_act(s, target), lambda s: s, state)
        return state, seen

    acting = jnp.arange(length) >= first
    _, from_observer = jax.jit(
        lambda: jax.lax.scan(
            observer_path,
            observer_init(num_assets, window),
            (bars, jnp.asarray(targets), acting),
        )
    )()

    start = env.state_at(first, params)

    def env_path(state, target):
        seen = env.observe(state, params)
        _, state, _, done, _ = env.step(jax.random.key(0), state, target, params)
        return state, (seen, done)

    _, (from_env, done) = jax.jit(
        lambda: jax.lax.scan(env_path, start, jnp.asarray(targets[first:-1]))
    )()
    assert not bool(jnp.any(done[:-1]))  # the last step reaches stop - 1
    return np.asarray(from_observer[first:-1]), np.asarray(from_env)


@pytest.mark.parametrize("window", [1, 4])
def test_observer_sees_what_the_env_shows_single_asset(window):
    bars = frame_bars(sp500_frame(), slice(3000, 3160))
    bars = jax.tree.map(lambda x: x[:, None], bars)
    rng = np.random.default_rng(window)
    # Runs of equal positions, so the position P&L both accrues and restarts.
    targets = np.repeat(rng.uniform(-1, 1, (40, 1)), 4, axis=0)
    targets[::7] = 0.0
    from_observer, from_env = _observer_and_env_observations(bars, targets, window)
    assert from_env.dtype == np.float32
    assert from_env.shape == (160 - (LOOKBACK + window - 2) - 1, window * 8 + 2)
    np.testing.assert_array_equal(from_observer, from_env)


def test_observer_sees_what_the_env_shows_for_a_panel_of_two():
    frame = load_sample("us_indices")
    bars = frame_bars(frame, slice(1500, 1700))
    assert bars.close.shape == (200, 2)
    rng = np.random.default_rng(7)
    targets = np.repeat(rng.integers(-1, 2, (50, 2)).astype(float), 4, axis=0)
    from_observer, from_env = _observer_and_env_observations(bars, targets, 3)
    assert from_env.shape[1] == 3 * 2 * 8 + 4
    assert np.any(from_env[:, -2:] != 0)
    np.testing.assert_array_equal(from_observer, from_env)


def test_observer_state_keeps_its_types_so_a_live_step_compiles_once():
    state = observer_init(1, 8)
    bar = Bar(*(jnp.full(1, x) for x in (100.0, 101.0, 99.0, 100.5, 1e6)))
    after = jax.jit(observer_push)(state, bar)
    assert jax.tree.map(lambda x: x.aval, after) == jax.tree.map(
        lambda x: x.aval, state
    )
