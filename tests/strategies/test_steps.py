"""Step strategies: bit-for-bit parity with the signal functions, and a live replay.

Parity is exact (``assert_array_equal``) on real S&P 500 and AAPL data, for grids of
parameters run under ``jit`` and ``vmap``; the replay calls the jitted ``step`` from
Python one bar at a time, as the live runner will.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neuroflux import features
from neuroflux.data import load_sample
from neuroflux.strategies import Direction, registry, reversion, steps, trend

DIRECTIONS = [Direction.LONG_SHORT, Direction.LONG_ONLY]

# Several parameter sets per strategy, as arrays: one vmap runs them all.
GRIDS = {
    "sma_cross": trend.SmaCrossParams(
        fast=np.array([3, 10, 20, 50, 5, 30]), slow=np.array([4, 50, 100, 200, 5, 7])
    ),
    "ema_cross": trend.EmaCrossParams(
        fast=np.array([3, 10, 12, 50, 1, 40]), slow=np.array([4, 50, 26, 200, 7, 9])
    ),
    "rsi_reversion": reversion.RsiReversionParams(
        period=np.array([2, 14, 5, 30, 1, 14]),
        lower=np.array([30.0, 30.0, 20.0, 45.0, 40.0, 50.0]),
        upper=np.array([70.0, 70.0, 80.0, 55.0, 60.0, 50.0]),
    ),
}


@functools.cache
def sample_bars(name: str) -> steps.Bar:
    frame = load_sample(name)
    return steps.Bar.from_arrays(
        **{field: frame[field].to_numpy() for field in steps._BAR_FIELDS}
    )


def test_bar_from_arrays():
    close = np.array([1.0, 2.0, 3.0])
    bars = steps.Bar.from_arrays(close, volume=np.array([5, 6, 7]))
    np.testing.assert_array_equal(bars.close, close)
    np.testing.assert_array_equal(bars.volume, [5.0, 6.0, 7.0])
    assert bars.volume.dtype == jnp.float64
    assert np.isnan(bars.open).all() and bars.high.shape == (3,)
    single = steps.Bar.from_arrays(101.5, open=100.0, high=102.0, low=99.0, volume=1)
    assert single.close.shape == () and float(single.high) == 102.0
    with pytest.raises(ValueError, match="'high' has shape"):
        steps.Bar.from_arrays(close, high=np.ones(2))
    with pytest.raises(ValueError, match="unknown bar fields"):
        steps.Bar.from_arrays(close, adj_close=close)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("sample", ["sp500", "aapl"])
@pytest.mark.parametrize("name", list(GRIDS))
def test_step_actions_equal_signal_positions(name, sample, direction):
    bars = sample_bars(sample)
    grid = GRIDS[name].replace(direction=direction)
    strategy = steps.STEP_STRATEGIES[name]
    run = jax.vmap(functools.partial(steps.run_steps, strategy), in_axes=(0, None))
    _, actions = jax.jit(run)(grid, bars)
    signal = registry.get_strategy(name).signal
    positions = jax.jit(jax.vmap(signal, in_axes=(None, 0)))(bars.close, grid)
    assert actions.shape == positions.shape == (6, bars.close.shape[0])
    np.testing.assert_array_equal(actions, positions)
    assert np.unique(actions).size > 1  # every parameter set trades somewhere
    if direction is Direction.LONG_ONLY:
        assert actions.min() == 0


@pytest.mark.parametrize("name", list(steps.STEP_STRATEGIES))
def test_live_replay_bar_by_bar_equals_backtest(name):
    """The runner's loop: a Bar from plain floats per bar, the jitted step.

    Same actions and final state as ``run_steps``, and the signal function's positions,
    for the registry's default parameters looked up by name.
    """
    frame = load_sample("sp500").iloc[:1000]
    bars = jax.tree.map(lambda field: field[:1000], sample_bars("sp500"))
    params = registry.make_params(name)
    strategy = steps.STEP_STRATEGIES[name]
    final, actions = jax.jit(steps.run_steps, static_argnums=0)(strategy, params, bars)
    positions = jax.jit(registry.get_strategy(name).signal)(bars.close, params)
    np.testing.assert_array_equal(actions, positions)
    assert np.unique(actions).size == 3

    step = jax.jit(strategy.step)
    state, replayed = strategy.init(params), []
    for row in frame.itertuples():
        bar = steps.Bar.from_arrays(
            row.close, open=row.open, high=row.high, low=row.low, volume=row.volume
        )
        state, action = step(state, bar, params)
        replayed.append(float(action))

    np.testing.assert_array_equal(replayed, actions)
    jax.tree.map(np.testing.assert_array_equal, state, final)


def test_final_states_hold_the_indicators():
    bars = sample_bars("aapl")
    close, length = bars.close, bars.close.shape[0]

    run = jax.jit(steps.run_steps, static_argnums=0)
    sma_state, _ = run(
        steps.make_sma_cross_step(max_window=64), trend.SmaCrossParams(5, 20), bars
    )
    assert int(sma_state.count) == length
    last = np.arange(length - 64, length)
    np.testing.assert_array_equal(sma_state.closes[last % 64], close[last])

    ema_state, _ = run(
        steps.STEP_STRATEGIES["ema_cross"], trend.EmaCrossParams(12, 26), bars
    )
    expected = [jax.jit(features.ema)(close, span)[-1] for span in (12, 26)]
    np.testing.assert_array_equal(ema_state.averages, expected)

    rsi_state, _ = run(
        steps.STEP_STRATEGIES["rsi_reversion"], reversion.RsiReversionParams(), bars
    )
    assert float(rsi_state.previous_close) == float(close[-1])
    change = jnp.diff(close)
    moves = jnp.stack([jnp.maximum(change, 0), jnp.maximum(-change, 0)], axis=1)
    smooth = jax.vmap(features.wilder_average, in_axes=(1, None), out_axes=1)
    expected = jax.jit(smooth)(moves, 14)[-1]
    np.testing.assert_array_equal(rsi_state.averages, expected)


def test_window_bounds():
    strategy = steps.make_sma_cross_step(max_window=30)
    for fast, slow in [(5, 31), (0, 10)]:
        with pytest.raises(ValueError, match="max_window=30"):
            strategy.init(trend.SmaCrossParams(fast=fast, slow=slow))
    with pytest.raises(ValueError, match="fast must be an integer"):
        strategy.init(trend.SmaCrossParams(fast=2.5, slow=10))

    # A traced window beyond the buffer cannot raise: that parameter set stays flat.
    grid = trend.SmaCrossParams(fast=np.array([5, 5]), slow=np.array([30, 31]))
    run = jax.vmap(functools.partial(steps.run_steps, strategy), in_axes=(0, None))
    _, actions = jax.jit(run)(grid, sample_bars("sp500"))
    assert np.abs(actions[0]).sum() > 0
    np.testing.assert_array_equal(actions[1], 0)


def test_step_strategies_are_named_as_in_the_registry():
    assert set(steps.STEP_STRATEGIES) <= set(registry.STRATEGIES)
    with pytest.raises(TypeError):
        steps.STEP_STRATEGIES["new"] = steps.make_ema_cross_step()  # read-only


def test_fused_multiply_add_rounds_once():
    rng = np.random.default_rng(7)
    a = np.concatenate([rng.uniform(0.5, 1.0, 2000), rng.normal(0, 1e3, 2000)])
    b = np.concatenate([rng.uniform(10, 3000, 2000), rng.normal(0, 1, 2000)])
    c = np.concatenate([rng.uniform(1, 300, 2000), rng.normal(0, 1e3, 2000)])
    c[:100] = -a[:100] * b[:100]  # heavy cancellation
    got = jax.jit(steps._fused_multiply_add)(a, b, c)
    exact = [
        float(Fraction(x) * Fraction(y) + Fraction(z))
        for x, y, z in zip(a, b, c, strict=True)
    ]
    np.testing.assert_array_equal(got, exact)


@pytest.mark.parametrize("name", ["sma_cross", "ema_cross"])
def test_waiting_for_the_first_cross_is_refused_by_the_steps(name):
    with pytest.raises(ValueError, match="wait_for_cross"):
        steps.STEP_STRATEGIES[name].init(
            registry.make_params(name, wait_for_cross=True)
        )


@pytest.mark.parametrize("name", sorted(steps.STEP_STRATEGIES))
def test_states_keep_their_types_so_a_live_step_compiles_once(name):
    """The state after a jitted step has init's exact types (weak types included):
    otherwise a live runner's second bar compiles the step again."""
    strategy = steps.STEP_STRATEGIES[name]
    params = registry.make_params(name)
    state = strategy.init(params)
    bar = steps.Bar(*(np.float64(x) for x in (100.0, 101.0, 99.0, 100.5, 1e6)))
    after, _ = jax.jit(strategy.step)(state, bar, params)
    assert jax.tree.map(lambda x: x.aval, after) == jax.tree.map(
        lambda x: x.aval, state
    )
