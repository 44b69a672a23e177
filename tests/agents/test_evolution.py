"""OpenAI-ES over the neural policy: shaping and the update against NumPy, determinism,
and a planted market found out of sample."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import flatten_util

import neuroflux  # noqa: F401  (64-bit mode before any array is made)
from neuroflux.agents import evolution, neural
from neuroflux.data import load_sample
from neuroflux.envs import observations
from neuroflux.research.agents import agent_bars
from neuroflux.strategies.steps import Bar

TINY = evolution.EvolutionConfig(
    population=4, generations=2, sigma=0.05, window=2, hidden_sizes=(3,)
)


@pytest.fixture(scope="module")
def sp500_slice() -> tuple[jax.Array, jax.Array]:
    bars = agent_bars(load_sample("sp500").iloc[:300])
    return bars.close, observations.bar_features(bars)


def exact_sharpe(close: np.ndarray, positions: np.ndarray, fees: float) -> float:
    asset = np.concatenate([[0.0], close[1:] / close[:-1] - 1])
    held = np.concatenate([[0.0], positions[:-1]])
    returns = held * asset - fees * np.abs(positions - held)
    return float(np.sqrt(252.0) * returns.mean() / returns.std(ddof=1))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.floats(-10, 10, allow_nan=False).map(lambda x: round(x, 1)),
        min_size=2,
        max_size=20,
    )
)
def test_centred_ranks_match_scipy(values):
    # Ordinal ranks break ties by position, as the stable sort does.
    expected = (scipy.stats.rankdata(values, method="ordinal") - 1) / (
        len(values) - 1
    ) - 0.5
    shaped = evolution.centred_ranks(jnp.asarray(values))
    np.testing.assert_allclose(shaped, expected, atol=1e-12)
    assert abs(float(jnp.sum(shaped))) < 1e-9


def test_search_gradient_and_noise_against_numpy():
    noise = evolution.antithetic_noise(jax.random.key(0), 6, 5)
    np.testing.assert_array_equal(noise[3:], -noise[:3])
    fitness = np.array([0.3, -1.0, 2.0, 0.1, 5.0, -0.2])
    ranks = np.argsort(np.argsort(fitness)) / 5 - 0.5
    expected = sum(ranks[i] * np.asarray(noise[i]) for i in range(6)) / (6 * 0.1)
    np.testing.assert_allclose(
        evolution.search_gradient(noise, fitness, 0.1), expected, rtol=1e-6
    )
    # A linear fitness a . eps: the estimate points uphill, whatever its scale.
    slope = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    for scale in (1e-3, 1e3):
        uphill = evolution.search_gradient(noise, scale * (noise @ slope), 0.1)
        assert float(uphill @ slope) > 0


def numpy_evolve(key, close, features, config):
    """Reference OpenAI-ES with NumPy Adam (optax's defaults), member by member."""
    scoring = evolution.fitness_config(config)
    init_key, loop_key = jax.random.split(key)
    layers = neural.init_neural_policy(init_key, config.window, config.hidden_sizes)
    theta, unravel = flatten_util.ravel_pytree(layers)
    theta = np.asarray(theta, np.float64)
    first = np.zeros_like(theta)
    second = np.zeros_like(theta)
    history = []
    keys = jax.random.split(loop_key, config.generations)
    for count, generation_key in enumerate(keys, start=1):
        half = np.asarray(
            jax.random.normal(
                generation_key, (config.population // 2, theta.size), jnp.float32
            )
        )
        noise = np.concatenate([half, -half]).astype(np.float64)

        def fitness(vector):
            return float(
                neural.net_sharpe(
                    unravel(jnp.asarray(vector, jnp.float32)), close, features, scoring
                )
            )

        history.append(fitness(theta))
        scores = np.array([fitness(theta + config.sigma * eps) for eps in noise])
        ranks = np.argsort(np.argsort(scores)) / (config.population - 1) - 0.5
        gradient = ranks @ noise / (config.population * config.sigma)
        first = 0.9 * first + 0.1 * -gradient
        second = 0.999 * second + 0.001 * gradient**2
        corrected = first / (1 - 0.9**count)
        scale = np.sqrt(second / (1 - 0.999**count)) + 1e-8
        theta = theta - config.learning_rate * corrected / scale
    return theta, np.array(history)


def test_generations_match_a_numpy_reference(sp500_slice):
    close, features = sp500_slice
    layers, history = evolution.evolve(jax.random.key(4), close, features, TINY)
    theta, _ = flatten_util.ravel_pytree(layers)
    expected_theta, expected_history = numpy_evolve(
        jax.random.key(4), close, features, TINY
    )
    np.testing.assert_allclose(history, expected_history, rtol=1e-5)
    np.testing.assert_allclose(theta, expected_theta, rtol=1e-5, atol=1e-6)


def test_evolve_is_deterministic_and_seeds_differ(sp500_slice):
    close, features = sp500_slice
    config = dataclasses.replace(TINY, population=8, generations=5)
    first, history = evolution.evolve(jax.random.key(1), close, features, config)
    again, history_again = evolution.evolve(jax.random.key(1), close, features, config)
    other, _ = evolution.evolve(jax.random.key(2), close, features, config)
    np.testing.assert_array_equal(history, history_again)
    for leaf, same, different in zip(
        jax.tree.leaves(first),
        jax.tree.leaves(again),
        jax.tree.leaves(other),
        strict=True,
    ):
        np.testing.assert_array_equal(leaf, same)
        assert leaf.dtype == jnp.float32
        assert not np.array_equal(leaf, different)
    step = neural.make_neural_step(
        neural.NeuralPolicyConfig(window=config.window, hidden_sizes=(3,))
    )
    state = step.init(first)
    bar = Bar.from_arrays(100.0, open=100.0, high=101.0, low=99.0, volume=1.0)
    _, action = step.step(state, bar, first)
    assert float(action) == 0.0  # usable by the step function (flat in warm-up)


def test_planted_market_is_found_out_of_sample(planted_bars):
    bars = planted_bars
    features = observations.bar_features(bars)
    config = evolution.EvolutionConfig(
        population=32, generations=30, window=4, hidden_sizes=(16,)
    )
    layers, history = evolution.evolve(
        jax.random.key(0), bars.close[:1500], features[:1500], config
    )
    assert float(history[-1]) > float(history[0]) + 3
    positions = np.asarray(neural.policy_positions(layers, features, config.window))
    sharpe = exact_sharpe(np.asarray(bars.close)[1500:], positions[1500:], config.fees)
    assert sharpe > 2


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="population must be even"):
        evolution.EvolutionConfig(population=5)
    with pytest.raises(ValueError, match="sigma"):
        evolution.EvolutionConfig(sigma=0.0)
    with pytest.raises(ValueError, match="window"):
        evolution.EvolutionConfig(window=0)
    with pytest.raises(ValueError, match="at least 2"):
        evolution.centred_ranks(jnp.ones(1))
