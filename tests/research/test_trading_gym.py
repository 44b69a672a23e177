"""The gymnasium wrapper: gymnasium's own checker, the pure env's rewards, seeding."""

from __future__ import annotations

import functools

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import neuroflux  # noqa: F401  (64-bit mode before any array is made)
from neuroflux.data import load_sample
from neuroflux.envs import EnvConfig, Market, TradingEnv
from neuroflux.research.trading_gym import TradingGymEnv
from neuroflux.strategies.steps import Bar

FIELDS = ("open", "high", "low", "close", "volume")


@functools.cache
def market(name: str) -> Market:
    frame = load_sample(name).iloc[:500]
    # A panel's frame[field] is a [T, A] frame, a single asset's a [T] series.
    return Market.from_bars(
        Bar(**{f: jnp.asarray(frame[f].to_numpy()) for f in FIELDS})
    )


def make(name: str = "sp500", **config) -> TradingGymEnv:
    env = TradingEnv(EnvConfig(window=4, **config))
    return TradingGymEnv(env, env.make_params(market(name), fee=0.001, slippage=0.001))


@pytest.mark.parametrize(
    ("name", "actions", "space"),
    [
        ("sp500", "discrete", gymnasium.spaces.Discrete(3)),
        ("us_indices", "discrete", gymnasium.spaces.MultiDiscrete([3, 3])),
        ("us_indices", "continuous", gymnasium.spaces.Box(-1, 1, (2,), np.float32)),
    ],
)
def test_spaces_and_gymnasium_checker(name, actions, space):
    gym_env = make(name, actions=actions, episode_length=20)
    assert gym_env.action_space == space
    assets = 1 if name == "sp500" else 2
    assert gym_env.observation_space.shape == (4 * 8 * assets + 2 * assets,)
    assert gym_env.observation_space.dtype == np.float32
    check_env(gym_env, skip_render_check=True)
    obs, info = gym_env.reset(seed=0)
    assert obs.dtype == np.float32 and obs in gym_env.observation_space
    assert isinstance(info["time"], int)


def test_rewards_equal_the_pure_env_and_episodes_end_the_gymnasium_way():
    gym_env = make(episode_length=25)
    env, params = gym_env.env, gym_env.params
    step = jax.jit(env.step)
    rng = np.random.default_rng(0)
    truncations = 0
    for episode in range(4):
        obs, info = gym_env.reset(seed=episode)
        _, state = env.reset(jax.random.split(jax.random.key(episode))[1], params)
        assert info["time"] == int(state.time)
        np.testing.assert_array_equal(obs, np.asarray(env.observe(state, params)))
        terminated = truncated = False
        while not (terminated or truncated):
            action = int(rng.integers(0, 3))
            obs, reward, terminated, truncated, info = gym_env.step(action)
            pure_obs, state, pure_reward, done, _ = step(
                jax.random.key(0), state, jnp.asarray([action]), params
            )
            assert reward == float(pure_reward)
            assert isinstance(reward, float)
            assert (terminated or truncated) == bool(done)
            if not done:
                np.testing.assert_array_equal(obs, np.asarray(pure_obs))
        truncations += truncated
        assert info["time"] < int(params.stop)
    assert truncations >= 1
    with pytest.raises(RuntimeError, match="call reset"):
        gym_env.step(1)


def test_terminated_at_the_end_of_the_data_with_the_last_observation():
    env = TradingEnv(EnvConfig(window=4, episode_length=10_000, actions="continuous"))
    params = env.make_params(market("sp500"), start=400, stop=420, fee=0.0)
    gym_env = TradingGymEnv(env, params)
    obs, info = gym_env.reset(seed=5)
    steps = 0
    terminated = truncated = False
    while not (terminated or truncated):
        obs, _, terminated, truncated, info = gym_env.step(np.array([0.5]))
        steps += 1
    assert terminated and not truncated
    assert info["time"] == 419
    # The last observation is that of bar 419, holding the position of 0.5.
    features = np.asarray(params.market.features)[416:420].ravel()
    np.testing.assert_array_equal(obs[:-2], features)
    assert obs[-2] == np.float32(0.5)
    assert steps == 419 - (info["time"] - steps)


def test_seeding_reproduces_episodes_and_unseeded_resets_differ():
    first, second = make(episode_length=15), make(episode_length=15)
    actions = [2, 0, 1, 2, 2, 0, 1, 1, 0, 2, 2, 2, 0, 0, 1]

    def episode(gym_env, seed):
        obs, info = gym_env.reset(seed=seed)
        rewards = []
        for action in actions:
            _, reward, terminated, truncated, _ = gym_env.step(action)
            rewards.append(reward)
            if terminated or truncated:
                break
        return info["time"], obs, rewards

    a, b = episode(first, 42), episode(second, 42)
    assert a[0] == b[0] and a[2] == b[2]
    np.testing.assert_array_equal(a[1], b[1])
    starts = {first.reset()[1]["time"] for _ in range(20)}
    assert len(starts) > 10


def test_bad_actions_are_refused():
    gym_env = make(episode_length=5)
    gym_env.reset(seed=0)
    with pytest.raises(ValueError, match=r"discrete actions must be in \{0, 1, 2\}"):
        gym_env.step(3)
    with pytest.raises(TypeError, match="params must be EnvParams"):
        TradingGymEnv(gym_env.env, None)
