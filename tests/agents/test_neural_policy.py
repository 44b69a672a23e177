"""The neural policy: vectorised positions equal the step function, the net Sharpe
objective against NumPy, training, walk-forward, and a planted market."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neuroflux  # noqa: F401  (64-bit mode before any array is made)
from neuroflux.agents import networks, neural
from neuroflux.backtest import splits
from neuroflux.data import load_sample
from neuroflux.envs import observations
from neuroflux.strategies.steps import Bar, run_steps

SMALL = neural.NeuralPolicyConfig(window=4, hidden_sizes=(8,), steps=30)


@pytest.fixture(scope="module")
def sp500_bars() -> Bar:
    frame = load_sample("sp500")
    return Bar.from_arrays(
        frame.close.values,
        open=frame.open.values,
        high=frame.high.values,
        low=frame.low.values,
        volume=frame.volume.values,
    )


def _head(bars: Bar, length: int) -> Bar:
    return jax.tree.map(lambda x: x[:length], bars)


def numpy_positions(layers, features: np.ndarray, window: int) -> np.ndarray:
    """Float64 reference of the policy over every bar."""
    weights = [
        (np.asarray(la["w"], float), np.asarray(la["b"], float)) for la in layers
    ]
    positions = np.zeros(len(features))
    for t in range(window - 1, len(features)):
        x = features[t - window + 1 : t + 1].ravel()
        if not np.all(np.isfinite(x)):
            continue
        for w, b in weights[:-1]:
            x = np.tanh(x @ w + b)
        positions[t] = np.tanh(x @ weights[-1][0] + weights[-1][1])[0]
    return positions


def _nudge(layers, layer: int, name: str, index: tuple, delta: float):
    """A copy of ``layers`` with one entry moved by ``delta``."""
    moved = [dict(entry) for entry in layers]
    moved[layer][name] = moved[layer][name].at[index].add(delta)
    return moved


def numpy_sharpe(close, positions, fees, smoothing, periods=252.0, floor=1e-8):
    asset = np.concatenate([[0.0], close[1:] / close[:-1] - 1])
    held = np.concatenate([[0.0], positions[:-1]])
    trade = positions - held
    turnover = np.sqrt(trade**2 + smoothing**2) - smoothing
    returns = held * asset - fees * turnover
    volatility = np.sqrt(np.var(returns, ddof=1) + floor**2)
    return np.sqrt(periods) * returns.mean() / volatility


def test_positions_equal_the_step_function(sp500_bars):
    bars = _head(sp500_bars, 500)
    config = neural.NeuralPolicyConfig(window=16, hidden_sizes=(32,))
    layers = neural.init_neural_policy(jax.random.key(3), 16, (32,))
    layers[-1]["w"] = layers[-1]["w"] * 10  # positions well away from 0
    run = jax.jit(functools.partial(run_steps, neural.make_neural_step(config)))
    _, actions = run(layers, bars)
    features = observations.bar_features(bars)
    positions = neural.policy_positions(layers, features, config.window)
    assert positions.dtype == jnp.float32
    np.testing.assert_allclose(actions, positions, atol=1e-6, rtol=0)
    ready = 20 + config.window - 1
    assert np.all(np.asarray(positions[:ready]) == 0)
    assert np.all(np.abs(np.asarray(positions[ready:])) > 0)
    assert np.all(np.abs(np.asarray(positions)) < 1)
    jitted = jax.jit(neural.policy_positions, static_argnums=2)
    np.testing.assert_allclose(jitted(layers, features, 16), positions, atol=1e-7)


def test_net_sharpe_matches_numpy_and_finite_differences(sp500_bars):
    bars = _head(sp500_bars, 400)
    features = observations.bar_features(bars)
    config = dataclasses.replace(SMALL, fees=0.002)
    layers = neural.init_neural_policy(jax.random.key(1), config.window, (8,))
    layers[-1]["w"] = layers[-1]["w"] * 5
    close = np.asarray(bars.close)
    expected = numpy_sharpe(
        close,
        numpy_positions(layers, np.asarray(features), config.window),
        config.fees,
        config.turnover_smoothing,
    )
    value = neural.net_sharpe(layers, bars.close, features, config)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    jitted = jax.jit(neural.net_sharpe, static_argnames="config")
    np.testing.assert_allclose(jitted(layers, bars.close, features, config), value)

    wide = jax.tree.map(lambda x: x.astype(jnp.float64), layers)
    np.testing.assert_allclose(
        neural.net_sharpe(wide, bars.close, features, config), expected, rtol=1e-10
    )
    objective = jax.jit(functools.partial(neural.net_sharpe, config=config))
    gradient = jax.grad(objective)(wide, bars.close, features)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(gradient))
    step = 1e-6
    for layer, name, index in ((0, "w", (5, 2)), (1, "w", (3, 0)), (0, "b", (4,))):
        up = objective(_nudge(wide, layer, name, index, step), bars.close, features)
        down = objective(_nudge(wide, layer, name, index, -step), bars.close, features)
        numeric = (up - down) / (2 * step)
        assert abs(float(numeric)) > 1e-3  # a weight that matters
        np.testing.assert_allclose(gradient[layer][name][index], numeric, rtol=1e-4)


def test_training_raises_sharpe_deterministically_and_vmaps_over_seeds(sp500_bars):
    bars = _head(sp500_bars, 500)
    features = observations.bar_features(bars)
    layers, history = neural.train_neural_policy(
        jax.random.key(0), bars.close, features, SMALL
    )
    assert history.shape == (SMALL.steps,)
    assert float(history[-1]) > float(history[0]) + 0.5
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(layers))
    trained = neural.net_sharpe(layers, bars.close, features, SMALL)
    assert float(trained) >= float(history[-1])
    again, history_again = neural.train_neural_policy(
        jax.random.key(0), bars.close, features, SMALL
    )
    np.testing.assert_array_equal(history, history_again)
    for leaf, other in zip(
        jax.tree.leaves(layers), jax.tree.leaves(again), strict=True
    ):
        np.testing.assert_array_equal(leaf, other)

    keys = jax.random.split(jax.random.key(7), 2)
    batched = jax.vmap(neural.train_neural_policy, in_axes=(0, None, None, None))
    layers_both, history_both = batched(keys, bars.close, features, SMALL)
    for seed in range(2):
        alone, history_alone = neural.train_neural_policy(
            keys[seed], bars.close, features, SMALL
        )
        np.testing.assert_allclose(history_both[seed], history_alone, rtol=1e-4)
        for leaf, other in zip(
            jax.tree.leaves(layers_both), jax.tree.leaves(alone), strict=True
        ):
            np.testing.assert_allclose(leaf[seed], other, rtol=1e-3, atol=1e-5)


def test_planted_market_is_learned_out_of_sample(planted_bars):
    bars = planted_bars
    # A small network: with 64 inputs and 1500 bars the policy overfits (in-sample
    # Sharpe 11, out-of-sample about 1.4), with 16 it generalises (about 4.7).
    config = neural.NeuralPolicyConfig(
        window=2, hidden_sizes=(8,), steps=100, learning_rate=1e-2
    )
    (fold,) = splits.walk_forward_splits(2000, train_size=1500, test_size=500)
    positions, train_sharpe = neural.walk_forward_neural(
        jax.random.key(0), bars, [fold], config
    )
    test = fold.test
    close = np.asarray(bars.close)[test]
    outside = np.setdiff1d(np.arange(2000), test)
    assert np.all(np.isnan(np.asarray(positions)[outside]))
    sharpe = numpy_sharpe(close, np.asarray(positions)[test], config.fees, 0.0)
    assert float(train_sharpe[0]) > 3
    assert sharpe > 2


def test_walk_forward_on_sp500(sp500_bars):
    bars = _head(sp500_bars, 400)
    folds = splits.walk_forward_splits(400, train_size=200, test_size=100)
    assert len(folds) == 2
    positions, train_sharpe = neural.walk_forward_neural(
        jax.random.key(0), bars, folds, SMALL
    )
    positions = np.asarray(positions)
    assert positions.shape == (400,) and train_sharpe.shape == (2,)
    assert np.all(np.isfinite(np.asarray(train_sharpe)))
    assert np.all(np.isnan(positions[:200]))
    inside = positions[200:]
    assert np.all(np.isfinite(inside)) and np.all(np.abs(inside) < 1)
    assert np.any(inside != 0)
    # The second fold trades with the policy trained on bars 100 .. 299.
    layers, _ = neural.train_neural_policy(
        jax.random.split(jax.random.key(0), 2)[1],
        bars.close[100:300],
        observations.bar_features(bars)[100:300],
        SMALL,
    )
    expected = neural.policy_positions(
        layers, observations.bar_features(bars), SMALL.window
    )
    np.testing.assert_allclose(positions[300:], expected[300:], atol=1e-6)


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="window"):
        neural.NeuralPolicyConfig(window=0)
    with pytest.raises(ValueError, match="fees"):
        neural.NeuralPolicyConfig(fees=-0.1)
    with pytest.raises(TypeError, match="hidden_sizes"):
        neural.NeuralPolicyConfig(hidden_sizes=[32])
    layers = networks.init_mlp(jax.random.key(0), [4 * 8, 1])
    with pytest.raises(ValueError, match=r"features must have shape \[T, 8\]"):
        neural.policy_positions(layers, jnp.zeros((10, 3)), 4)
    with pytest.raises(ValueError, match="one per close"):
        neural.net_sharpe(layers, jnp.ones(9), jnp.zeros((10, 8)), SMALL)
