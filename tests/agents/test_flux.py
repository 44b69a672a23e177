"""The flux estimator: NumPy references, properties, step parity on S&P 500 bars."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neuroflux  # noqa: F401  (64-bit mode)
from neuroflux.agents.flux import (
    FluxAdaptedParams,
    FluxConfig,
    FluxParams,
    flux_adapted_positions,
    flux_components,
    make_flux_adapted_step,
    make_flux_step,
    market_flux,
)
from neuroflux.data import load_sample
from neuroflux.research.agents import agent_bars
from neuroflux.strategies import make_params
from neuroflux.strategies.steps import STEP_STRATEGIES, Bar, run_steps

SMALL = FluxConfig(
    volatility_window=5, regime_window=12, trend_window=6, volume_window=7
)


@functools.cache
def sp500_bars() -> Bar:
    return agent_bars(load_sample("sp500"))


def random_bars(seed: int, length: int) -> Bar:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, length)))
    volume = rng.lognormal(10, 0.5, length)
    return Bar.from_arrays(close, volume=volume)


def reference_components(close, volume, config: FluxConfig) -> dict[str, np.ndarray]:
    """Loops over bars, straight from the module docstring's formulas."""
    length = close.shape[0]
    returns = np.full(length, np.nan)
    returns[1:] = np.diff(np.log(close))
    volatility = np.full(length, np.nan)
    for t in range(config.volatility_window, length):
        volatility[t] = np.std(
            returns[t - config.volatility_window + 1 : t + 1], ddof=1
        )
    regime, trend, surprise = (np.full(length, np.nan) for _ in range(3))
    for t in range(length):
        start = t - config.regime_window + 1
        if start >= 0 and not np.isnan(volatility[start : t + 1]).any():
            regime[t] = np.mean(volatility[start : t + 1] <= volatility[t])
        n = config.trend_window
        if t >= n:
            path = np.abs(np.diff(close[t - n : t + 1])).sum()
            trend[t] = 0.0 if path == 0 else abs(close[t] - close[t - n]) / path
        v = config.volume_window
        if t >= v - 1:
            window = np.log1p(volume[t - v + 1 : t + 1])
            spread = window.std()
            z = 0.0 if spread == 0 else (window[-1] - window.mean()) / spread
            surprise[t] = 1 - np.exp(-max(z, 0.0))
    return {
        "volatility_regime": regime,
        "trend_strength": trend,
        "volume_surprise": surprise,
    }


def test_config_validation_and_warmup():
    config = FluxConfig()
    assert config.memory == 270 and config.warmup == 269
    assert SMALL.memory == 17 and SMALL.warmup == 16
    with pytest.raises(ValueError, match="volatility_window must be an integer >= 2"):
        FluxConfig(volatility_window=1)
    with pytest.raises(TypeError, match="regime_window"):
        FluxConfig(regime_window=2.5)
    with pytest.raises(TypeError):
        FluxConfig(20)  # keyword-only
    with pytest.raises(ValueError, match="trend_weight must be >= 0"):
        market_flux(random_bars(0, 30), SMALL, FluxParams(trend_weight=-1.0))
    with pytest.raises(ValueError, match="must not all be 0"):
        make_flux_step(SMALL).init(FluxParams(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"bars\.volume must have the shape"):
        flux_components(Bar(*(jnp.ones(5),) * 4, volume=jnp.ones(4)), SMALL)


def test_components_match_numpy_reference():
    bars = random_bars(1, 120)
    got = flux_components(bars, SMALL)
    expected = reference_components(
        np.asarray(bars.close), np.asarray(bars.volume), SMALL
    )
    for name, values in expected.items():
        np.testing.assert_allclose(got[name], values, rtol=1e-12, atol=1e-14)
    params = FluxParams(regime_weight=2.0, trend_weight=1.0, volume_weight=0.5)
    combined = (
        2.0 * expected["volatility_regime"]
        + 1.0 * (1 - expected["trend_strength"])
        + 0.5 * expected["volume_surprise"]
    ) / 3.5
    np.testing.assert_allclose(market_flux(bars, SMALL, params), combined, rtol=1e-12)
    assert np.isnan(combined[: SMALL.warmup]).all()
    assert np.isfinite(combined[SMALL.warmup :]).all()


def test_flat_market_conventions():
    """Constant prices: no trend (0), ties rank at the top, equal volumes surprise 0."""
    bars = Bar.from_arrays(np.full(40, 50.0), volume=np.full(40, 1e6))
    components = flux_components(bars, SMALL)
    np.testing.assert_array_equal(components["trend_strength"][SMALL.warmup :], 0.0)
    np.testing.assert_array_equal(components["volume_surprise"][SMALL.warmup :], 0.0)
    np.testing.assert_array_equal(components["volatility_regime"][SMALL.warmup :], 1.0)
    np.testing.assert_allclose(market_flux(bars, SMALL)[SMALL.warmup :], 2 / 3)


def test_straight_line_and_volume_spike():
    close = np.linspace(100.0, 140.0, 40)
    volume = np.full(40, 1e6)
    volume[30] = 1e8
    components = flux_components(Bar.from_arrays(close, volume=volume), SMALL)
    np.testing.assert_allclose(components["trend_strength"][SMALL.trend_window :], 1.0)
    assert components["volume_surprise"][30] > 0.8
    assert components["volume_surprise"][31] == 0.0  # spike in window: below mean


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    weights=st.tuples(*(st.floats(0.0, 5.0),) * 3).filter(lambda w: sum(w) > 1e-3),
    scale=st.floats(1e-4, 0.2),
)
def test_flux_in_unit_interval(seed, weights, scale):
    rng = np.random.default_rng(seed)
    close = np.exp(np.cumsum(rng.normal(0, scale, 60)))
    volume = rng.integers(0, 5, 60) * 10.0 ** rng.integers(0, 6)
    values = np.asarray(
        _jitted_flux(Bar.from_arrays(close, volume=volume), FluxParams(*weights))
    )
    defined = values[SMALL.warmup :]
    assert np.isnan(values[: SMALL.warmup]).all()
    assert np.isfinite(defined).all()
    assert (defined >= 0).all() and (defined <= 1 + 1e-15).all()


@jax.jit
def _jitted_flux(bars: Bar, params: FluxParams) -> jax.Array:
    return market_flux(bars, SMALL, params)


def test_jit_and_vmap_agree_with_eager():
    batch = [random_bars(seed, 80) for seed in (2, 3, 4)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *batch)
    params = FluxParams(
        regime_weight=jnp.array([1.0, 0.0, 3.0]),
        trend_weight=jnp.ones(3),
        volume_weight=jnp.array([1.0, 2.0, 0.0]),
    )
    mapped = jax.vmap(_jitted_flux)(stacked, params)
    for index, bars in enumerate(batch):
        one = jax.tree.map(lambda x, i=index: x[i], params)
        eager = market_flux(bars, SMALL, one)
        np.testing.assert_allclose(mapped[index], eager, rtol=1e-13, atol=1e-15)


def test_step_matches_vectorized_on_sp500():
    bars = sp500_bars()
    params = FluxParams(regime_weight=1.0, trend_weight=2.0, volume_weight=0.5)
    expected = jax.jit(market_flux, static_argnums=1)(bars, FluxConfig(), params)
    final, stepped = jax.jit(run_steps, static_argnums=0)(
        make_flux_step(FluxConfig()), params, bars
    )
    assert final.closes.shape == (270,)  # finite memory
    assert np.isnan(expected[:269]).all() and np.isfinite(expected[269:]).all()
    np.testing.assert_allclose(stepped, expected, rtol=0, atol=1e-12)


def test_step_called_bar_by_bar_like_a_live_runner():
    bars = random_bars(5, 40)
    strategy = make_flux_step(SMALL)
    step = jax.jit(strategy.step)
    state, values = strategy.init(FluxParams()), []
    for index in range(40):
        bar = jax.tree.map(lambda x, i=index: x[i], bars)
        state, value = step(state, bar, FluxParams())
        values.append(float(value))
    np.testing.assert_allclose(values, market_flux(bars, SMALL), rtol=0, atol=1e-12)


def test_adapted_positions_reference_and_validation():
    positions = np.array([1.0, -1.0, 0.5, 0.0, 1.0])
    values = np.array([np.nan, 0.2, 1.0, 0.7, 0.0])
    got = flux_adapted_positions(positions, values, 0.5, levels=1000)
    np.testing.assert_allclose(got, [1.0, -0.9, 0.25, 0.0, 1.0])
    # the default rounds flux to quarters: 0.2 -> 0.25, 0.7 -> 0.75
    got = flux_adapted_positions(positions, values, 0.5)
    np.testing.assert_allclose(got, [1.0, -0.875, 0.25, 0.0, 1.0])
    with pytest.raises(ValueError, match="size_weight must be in"):
        flux_adapted_positions(positions, values, 1.5)
    with pytest.raises(ValueError, match="flux must have the shape"):
        flux_adapted_positions(positions, values[:3])


def test_adapted_step_equals_vectorized_scaling_on_sp500():
    bars = sp500_bars()
    inner = STEP_STRATEGIES["sma_cross"]
    sma = make_params("sma_cross")
    params = FluxAdaptedParams(inner=sma, size_weight=0.8)
    run = jax.jit(run_steps, static_argnums=0)
    _, adapted = run(make_flux_adapted_step(inner), params, bars)
    _, plain = run(inner, sma, bars)
    values = market_flux(bars, FluxConfig())
    expected = flux_adapted_positions(plain, values, 0.8)
    np.testing.assert_allclose(adapted, expected, rtol=0, atol=1e-12)
    # unscaled during the warm-up, damped (never flipped) afterwards
    np.testing.assert_array_equal(adapted[:269], plain[:269])
    assert (np.abs(adapted[269:]) <= np.abs(plain[269:])).all()
    assert (np.sign(adapted) == np.sign(plain)).all()
    # rounded flux trades far less often than raw flux
    raw = flux_adapted_positions(plain, values, 0.8, levels=10**6)
    changes = np.count_nonzero(np.diff(np.asarray(adapted)))
    assert changes < 0.5 * np.count_nonzero(np.diff(np.asarray(raw)))
    with pytest.raises(ValueError, match="size_weight"):
        make_flux_adapted_step(inner).init(FluxAdaptedParams(inner=sma, size_weight=-1))
