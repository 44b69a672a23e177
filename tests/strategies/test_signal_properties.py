"""Grids under vmap equal single calls; positions are NaN-free and in their set."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroflux import strategies
from neuroflux.strategies import STRATEGIES, Direction


def test_sma_cross_grid_under_vmap_equals_single_calls(close):
    fast, slow = np.meshgrid(np.arange(2, 12), np.arange(20, 201, 20), indexing="ij")
    grid = strategies.SmaCrossParams(
        fast=jnp.asarray(fast.ravel()), slow=jnp.asarray(slow.ravel())
    )
    batched = jax.jit(jax.vmap(strategies.sma_cross, in_axes=(None, 0)))(close, grid)
    assert batched.shape == (100, len(close))
    single = jax.jit(strategies.sma_cross)
    for i, (f, s) in enumerate(zip(fast.ravel(), slow.ravel(), strict=True)):
        params = strategies.SmaCrossParams(fast=int(f), slow=int(s))
        np.testing.assert_array_equal(batched[i], single(close, params))


@pytest.mark.parametrize("name", ["rsi_reversion", "bollinger_breakout"])
def test_stateful_grid_under_vmap_equals_single_calls(close, name):
    strategy = STRATEGIES[name]
    if name == "rsi_reversion":
        values = {"period": [2, 14, 30], "lower": [20.0, 30.0, 45.0]}
    else:
        values = {"window": [5, 20, 50], "num_std": [1.0, 2.0, 2.5]}
    grid = strategy.default_params.replace(
        **{key: jnp.asarray(v) for key, v in values.items()}
    )
    # vmap with in_axes=0 maps every leaf: broadcast the fixed ones.
    grid = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (3,)), grid)
    batched = jax.jit(jax.vmap(strategy.signal, in_axes=(None, 0)))(close, grid)
    for i in range(3):
        params = strategy.default_params.replace(
            **{key: v[i] for key, v in values.items()}
        )
        np.testing.assert_array_equal(
            batched[i], jax.jit(strategy.signal)(close, params)
        )


def test_vmap_over_assets(close):
    panel = np.stack([close, close[::-1]], axis=1)
    params = strategies.EmaCrossParams()
    over_assets = jax.vmap(strategies.ema_cross, in_axes=(1, None), out_axes=1)
    both = jax.jit(over_assets)(panel, params)
    np.testing.assert_array_equal(both[:, 1], strategies.ema_cross(close[::-1], params))


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_positions_are_finite_and_in_declared_set(close, name, direction):
    strategy = STRATEGIES[name]
    params = strategy.default_params.replace(direction=direction)
    positions = np.asarray(jax.jit(strategy.signal)(close[:1500], params))
    assert positions.shape == (1500,) and np.isfinite(positions).all()
    allowed = {0.0, 1.0} if direction is Direction.LONG_ONLY else {-1.0, 0.0, 1.0}
    assert set(np.unique(positions)) <= allowed
    assert (positions == 1).any()  # every default strategy goes long on this data
    if direction is Direction.LONG_SHORT and name != "buy_and_hold":
        assert (positions == -1).any()


def test_warm_up_is_flat(close):
    sma_cross = jax.jit(strategies.sma_cross)
    positions = np.asarray(sma_cross(close, strategies.SmaCrossParams(fast=5, slow=60)))
    assert (positions[:59] == 0).all() and positions[59] != 0
    rsi_reversion = jax.jit(strategies.rsi_reversion)
    short = rsi_reversion(close[:14], strategies.RsiReversionParams())
    assert (np.asarray(short) == 0).all()


def test_a_panel_is_rejected_with_a_hint(close):
    with pytest.raises(ValueError, match=r"close must be a series of shape \[T\]"):
        strategies.sma_cross(np.stack([close, close], 1), strategies.SmaCrossParams())


def reference_signals(positions):
    previous, out = 0, {k: [] for k in strategies.Signals._fields}
    for p in positions:
        side = int(np.sign(p))
        out["long_entries"].append(side == 1 and previous != 1)
        out["long_exits"].append(previous == 1 and side != 1)
        out["short_entries"].append(side == -1 and previous != -1)
        out["short_exits"].append(previous == -1 and side != -1)
        previous = side
    return out


_positions_to_signals = jax.jit(strategies.positions_to_signals)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([-1.0, -0.5, 0.0, 0.25, 1.0]), min_size=1, max_size=40))
def test_positions_to_signals_matches_loop(positions):
    signals = _positions_to_signals(np.asarray(positions))
    expected = reference_signals(positions)
    for field in strategies.Signals._fields:
        np.testing.assert_array_equal(getattr(signals, field), expected[field])


def test_positions_to_signals_example():
    signals = strategies.positions_to_signals(jnp.array([1.0, 1, -1, 0, 0, 1]))
    np.testing.assert_array_equal(signals.long_entries, [1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(signals.long_exits, [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(signals.short_entries, [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(signals.short_exits, [0, 0, 0, 1, 0, 0])


_hysteresis = jax.jit(strategies.hysteresis_positions, static_argnames="direction")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(*[st.booleans()] * 5), min_size=1, max_size=30),
    st.sampled_from(list(Direction)),
)
def test_hysteresis_matches_loop(rows, direction):
    flags = np.array(rows).T
    position, expected = 0, []
    for enter_long, exit_long, enter_short, exit_short, ready in rows:
        if not ready:
            position = 0
        elif enter_long:
            position = 1
        elif enter_short and direction is Direction.LONG_SHORT:
            position = -1
        elif (position == 1 and exit_long) or (position == -1 and exit_short):
            position = 0
        expected.append(position)
    np.testing.assert_array_equal(_hysteresis(*flags, direction=direction), expected)


def test_direction_parse():
    assert Direction.parse("long_only") is Direction.LONG_ONLY
    assert Direction.parse("LONG_SHORT") is Direction.LONG_SHORT
    with pytest.raises(ValueError, match="'long_only', 'long_short'"):
        Direction.parse("sideways")
