"""PPO: GAE and losses against NumPy, determinism and vmap over seeds, learning on a
planted market (discrete and continuous), and the greedy step function against the
environment it was trained in."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import neuroflux  # noqa: F401  (float64)
from neuroflux.agents import ppo
from neuroflux.data import load_sample
from neuroflux.envs.trading import EnvConfig, Market, TradingEnv
from neuroflux.research.agents import agent_bars
from neuroflux.strategies.steps import Bar, run_steps

PLANTED_BARS = 800
TRAIN_STOP = 600
SMALL = ppo.PPOConfig(
    num_envs=16, num_steps=32, total_timesteps=20_480, learning_rate=1e-3
)


def _planted_market(seed: int = 0) -> Market:
    """Random features [T, 1, 8]; the next return is 1% times the sign of feature 0."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((PLANTED_BARS, 1, 8)).astype(np.float32)
    returns = np.full((PLANTED_BARS, 1), np.nan)
    returns[1:, 0] = 0.01 * np.sign(features[:-1, 0, 0])
    return Market(jnp.asarray(features), jnp.asarray(returns))


def _planted_env(actions: str, episode_length: int = 64) -> TradingEnv:
    return TradingEnv(
        EnvConfig(window=1, episode_length=episode_length, actions=actions)
    )


def _greedy_rewards(params, env, env_params, start, steps):
    """Rewards [steps] of the greedy policy run through ``env.step`` from ``start``."""
    state = env.state_at(start, env_params)
    discrete = env.config.actions == "discrete"

    def body(carry, key):
        observation, state = carry
        target = ppo.ppo_decide(params, observation)
        action = (target + 1).astype(jnp.int32) if discrete else target
        observation, state, reward, _, _ = env.step(key, state, action, env_params)
        return (observation, state), (reward, target)

    keys = jax.random.split(jax.random.key(0), steps)
    _, (rewards, targets) = jax.lax.scan(
        body, (env.observe(state, env_params), state), keys
    )
    return rewards, targets


def _gae_reference(rewards, values, dones, last_value, gamma, lam):
    advantages = np.zeros_like(rewards)
    advantage = np.zeros_like(last_value)
    for t in reversed(range(len(rewards))):
        next_value = last_value if t == len(rewards) - 1 else values[t + 1]
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * alive * next_value - values[t]
        advantage = delta + gamma * lam * alive * advantage
        advantages[t] = advantage
    return advantages, advantages + values


def test_gae_matches_numpy_loop_with_episode_ends():
    rng = np.random.default_rng(1)
    steps, envs = 12, 5
    rewards = rng.normal(size=(steps, envs))
    values = rng.normal(size=(steps, envs))
    dones = rng.random((steps, envs)) < 0.25
    dones[5, :] = [True, False, True, False, False]
    last_value = rng.normal(size=envs)
    gae = jax.jit(ppo.generalized_advantages, static_argnums=(4, 5))
    advantages, targets = gae(rewards, values, dones, last_value, 0.97, 0.9)
    expected = _gae_reference(rewards, values, dones, last_value, 0.97, 0.9)
    np.testing.assert_allclose(advantages, expected[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(targets, expected[1], rtol=1e-12, atol=1e-12)
    # An episode end cuts the future off: at t=5 env 0 sees only its own delta.
    assert advantages[5, 0] == pytest.approx(rewards[5, 0] - values[5, 0])


def test_clipped_losses_match_numpy_formula():
    rng = np.random.default_rng(2)
    size, clip = 256, 0.2
    old_log_prob = rng.normal(size=size)
    log_prob = old_log_prob + rng.normal(scale=0.3, size=size)
    advantages = rng.normal(size=size)
    old_value = rng.normal(size=size)
    value = old_value + rng.normal(scale=0.4, size=size)
    targets = rng.normal(size=size)
    losses = jax.jit(ppo.clipped_losses, static_argnums=6)(
        log_prob, old_log_prob, advantages, value, old_value, targets, clip
    )

    ratio = np.exp(log_prob - old_log_prob)
    assert 0.2 < np.mean(np.abs(ratio - 1) > clip) < 0.8  # both branches are used
    normal = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy = -np.mean(
        np.minimum(ratio * normal, np.clip(ratio, 1 - clip, 1 + clip) * normal)
    )
    clipped_value = old_value + np.clip(value - old_value, -clip, clip)
    value_loss = 0.5 * np.mean(
        np.maximum((value - targets) ** 2, (clipped_value - targets) ** 2)
    )
    kl = np.mean(ratio - 1 - np.log(ratio))
    np.testing.assert_allclose(losses, [policy, value_loss, kl], rtol=1e-10)


@jax.jit
def _policy_outputs(params, observation, key):
    action, log_prob = ppo._sample(params, observation, key)
    _, entropy = ppo._log_prob_entropy(params, observation, action)
    return action, log_prob, entropy, ppo.ppo_decide(params, observation)


def test_log_probabilities_and_entropies_match_scipy():
    rng = np.random.default_rng(3)
    observation = jnp.asarray(rng.normal(size=(7, 5)), jnp.float32)
    keys = jax.random.split(jax.random.key(3), 2)
    # Two assets: 6 logits (discrete) or 2 means (continuous).
    for outputs, discrete in ((6, True), (2, False)):
        params = ppo.PPOParams(
            actor=ppo.networks.init_mlp(keys[0], (5, 8, outputs), output_scale=2.0),
            critic=ppo.networks.init_mlp(keys[1], (5, 8, 1)),
            log_std=jnp.asarray([-0.5, 0.3], jnp.float32),
        )
        action, log_prob, entropy, decided = _policy_outputs(
            params, observation, keys[1]
        )
        hidden, last = [jax.tree.map(np.asarray, layer) for layer in params.actor]
        inputs = np.asarray(observation, float)
        head = np.tanh(inputs @ hidden["w"] + hidden["b"]) @ last["w"] + last["b"]
        if discrete:
            logits = head.reshape(7, 2, 3)
            probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
            chosen = np.take_along_axis(
                probabilities, np.asarray(action)[..., None], -1
            )
            expected = np.log(chosen[..., 0]).sum(-1)
            expected_entropy = stats.entropy(probabilities, axis=-1).sum(-1)
            greedy = probabilities.argmax(-1) - 1.0
        else:
            scale = np.exp([-0.5, 0.3])
            distribution = stats.norm(head, scale)
            expected = distribution.logpdf(np.asarray(action)).sum(-1)
            expected_entropy = distribution.entropy().sum(-1)
            greedy = np.clip(head, -1, 1)
        np.testing.assert_allclose(log_prob, expected, rtol=2e-5, atol=1e-5)
        np.testing.assert_allclose(entropy, expected_entropy, rtol=2e-5)
        np.testing.assert_allclose(decided, greedy, rtol=2e-5, atol=1e-6)


def test_config_checks_name_the_field():
    with pytest.raises(ValueError, match="num_minibatches"):
        ppo.PPOConfig(num_envs=3, num_steps=3, num_minibatches=4)
    with pytest.raises(ValueError, match="total_timesteps"):
        ppo.PPOConfig(num_envs=64, num_steps=64, total_timesteps=100)
    with pytest.raises(ValueError, match="gamma"):
        ppo.PPOConfig(gamma=1.5)
    with pytest.raises(TypeError, match="num_envs"):
        ppo.PPOConfig(num_envs=2.0)
    assert SMALL.num_updates == 40


@pytest.fixture(scope="module")
def planted():
    """The market, its held-out period (for either action kind), steps and signs."""
    market = _planted_market()
    evaluation = _planted_env("discrete", episode_length=10_000)
    held_out = evaluation.make_params(market, start=TRAIN_STOP, stop=PLANTED_BARS)
    steps = PLANTED_BARS - 1 - TRAIN_STOP
    signs = np.sign(np.asarray(market.features[TRAIN_STOP : TRAIN_STOP + steps, 0, 0]))
    return market, held_out, steps, signs


@pytest.fixture(scope="module")
def discrete_training(planted):
    """``(train, env_params, seeds [3], result)``: SMALL vmapped over three seeds."""
    market = planted[0]
    env = _planted_env("discrete")
    env_params = env.make_params(market, start=20, stop=TRAIN_STOP)
    train = ppo.make_train(SMALL, env)
    seeds = jax.random.split(jax.random.key(7), 3)
    result = jax.jit(jax.vmap(train, in_axes=(0, None)))(seeds, env_params)
    return train, env_params, seeds, result


def test_train_is_deterministic_and_vmaps_over_seeds(discrete_training):
    train, env_params, seeds, batched = discrete_training
    single = jax.jit(train)
    first, again = single(seeds[0], env_params), single(seeds[0], env_params)
    for name, values in first.metrics.items():
        assert values.shape == (SMALL.num_updates,), name
        np.testing.assert_array_equal(values, again.metrics[name], err_msg=name)
    assert np.isfinite(first.metrics["episode_return"][4:]).all()

    separate = [first] + [single(seed, env_params) for seed in seeds[1:]]
    for name, values in batched.metrics.items():
        assert values.shape == (3, SMALL.num_updates), name
        expected = np.stack([result.metrics[name] for result in separate])
        np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-5)
    for leaf, *expected in zip(
        jax.tree.leaves(batched.params),
        *(jax.tree.leaves(result.params) for result in separate),
        strict=True,
    ):
        np.testing.assert_allclose(leaf, np.stack(expected), rtol=1e-4, atol=1e-5)


def test_discrete_ppo_learns_the_planted_signal(planted, discrete_training):
    _, held_out, steps, signs = planted
    result = discrete_training[3]
    evaluation = _planted_env("discrete", episode_length=10_000)
    rewards, _ = jax.vmap(
        lambda params: _greedy_rewards(params, evaluation, held_out, TRAIN_STOP, steps)
    )(result.params)
    template = jax.tree.map(lambda x: x[0], result.params)

    def linear_policy(weights, bias):
        layer = {"w": jnp.zeros((10, 3)).at[0].set(weights), "b": bias}
        return template.replace(actor=[layer])

    # Long when feature 0 is positive, short otherwise; and always flat.
    oracle = linear_policy(jnp.array([-1.0, 0.0, 1.0]), jnp.zeros(3))
    flat = linear_policy(jnp.zeros(3), jnp.array([0.0, 1.0, 0.0]))
    oracle_rewards, oracle_targets = _greedy_rewards(
        oracle, evaluation, held_out, TRAIN_STOP, steps
    )
    np.testing.assert_array_equal(oracle_targets[:, 0], signs)
    flat_rewards, _ = _greedy_rewards(flat, evaluation, held_out, TRAIN_STOP, steps)
    assert float(flat_rewards.mean()) == 0.0
    oracle_mean = float(oracle_rewards.mean())
    assert oracle_mean > 0.008
    # Every seed's greedy policy, on bars it never trained on.
    assert np.all(rewards.mean(axis=1) > 0.5 * oracle_mean)
    # Training reward rises from random play (about minus the costs) toward it.
    reward = np.asarray(result.metrics["reward"])
    assert np.all(reward[:, :4].mean(axis=1) < 0.002)
    assert np.all(reward[:, -8:].mean(axis=1) > 0.004)
    assert np.all(np.diff(np.asarray(result.metrics["learning_rate"])) < 0)


def test_continuous_ppo_improves_its_reward(planted):
    market, held_out, steps, _ = planted
    env = _planted_env("continuous")
    env_params = env.make_params(market, start=20, stop=TRAIN_STOP)
    config = ppo.PPOConfig(
        num_envs=16, num_steps=32, total_timesteps=12_288, learning_rate=1e-3
    )
    result = jax.jit(ppo.make_train(config, env))(jax.random.key(1), env_params)
    reward = np.asarray(result.metrics["reward"])
    assert reward[-4:].mean() > reward[:4].mean() + 0.002
    evaluation = _planted_env("continuous", episode_length=10_000)
    rewards, targets = _greedy_rewards(
        result.params, evaluation, held_out, TRAIN_STOP, steps
    )
    assert float(rewards.mean()) > 0.003
    assert np.all(np.abs(targets) <= 1)


@pytest.mark.parametrize("actions", ["discrete", "continuous"])
def test_ppo_step_repeats_the_environment_decisions(actions):
    bars = agent_bars(load_sample("sp500").iloc[:400])
    env = TradingEnv(EnvConfig(window=16, episode_length=10_000, actions=actions))
    env_params = env.make_params(Market.from_bars(bars))
    params = ppo.init_ppo_params(
        jax.random.key(5), ppo.PPOConfig(hidden_sizes=(16,)), env, env_params
    )
    # A sharp random policy: positions change often, so a lag or a wrong P&L shows.
    params = params.replace(
        actor=[params.actor[0], jax.tree.map(lambda x: 300.0 * x, params.actor[1])]
    )
    first = env.config.first_bar
    steps = bars.close.shape[0] - 1 - first
    _, expected = _greedy_rewards(params, env, env_params, first, steps)

    strategy = ppo.make_ppo_step(env.config)
    _, actions_taken = jax.jit(run_steps, static_argnums=0)(strategy, params, bars)
    assert actions_taken.shape == bars.close.shape
    np.testing.assert_array_equal(actions_taken[:first], 0.0)
    np.testing.assert_array_equal(actions_taken[first:-1], expected[:, 0])
    taken = np.asarray(expected)
    assert {-1.0, 1.0} <= set(taken.ravel())
    if actions == "discrete":
        assert 0.0 in taken
    else:
        assert np.any(np.abs(taken) < 1)  # some unclipped means, compared exactly


def test_ppo_step_refuses_params_of_the_other_action_kind():
    env = TradingEnv(EnvConfig(window=1, actions="continuous"))
    env_params = env.make_params(_planted_market(), start=20, stop=100)
    config = ppo.PPOConfig(hidden_sizes=(4,))
    params = ppo.init_ppo_params(jax.random.key(0), config, env, env_params)
    strategy = ppo.make_ppo_step(EnvConfig(window=1, actions="discrete"))
    bars = Bar.from_arrays(jnp.linspace(100.0, 120.0, 30), volume=jnp.ones(30))
    with pytest.raises(ValueError, match="continuous actor"):
        jax.eval_shape(lambda params: run_steps(strategy, params, bars), params)
