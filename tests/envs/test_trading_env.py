"""TradingEnv against a NumPy reference loop, its invariants, and its errors.

The reference steps one environment in plain NumPy from the same :class:`Market`
arrays: positions, turnover costs, the log-return reward less the risk penalty, the
position P&L, the done rule and the observation layout. Only the restart bar after an
episode ends comes from JAX's random numbers, so there the test checks that the new
observation is the one ``reset`` gives with the step's key.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neuroflux  # noqa: F401  (64-bit mode before any array is made)
from neuroflux.data import load_sample
from neuroflux.envs import EnvConfig, Market, TradingEnv
from neuroflux.strategies.steps import Bar

FIELDS = ("open", "high", "low", "close", "volume")


@functools.cache
def sp500_market() -> Market:
    frame = load_sample("sp500").iloc[:800]
    return Market.from_bars(
        Bar(**{f: jnp.asarray(frame[f].to_numpy()) for f in FIELDS})
    )


@functools.cache
def stocks_market() -> Market:
    """AAPL, IBM and MSFT on their common dates: a [T, 3] panel."""
    frame = load_sample("us_stocks").iloc[:600]
    symbols = ["aapl", "ibm", "msft"]
    return Market.from_bars(
        Bar(**{f: jnp.asarray(frame[f][symbols].to_numpy()) for f in FIELDS})
    )


def reference_step(market, config, params, state, action):
    """One NumPy step in float64: (stepped state, reward, net, done), no restart.

    The environment computes in float32, hence the tolerances of the comparisons.
    """
    features = np.asarray(market.features)
    returns = np.asarray(market.returns)
    num_assets = returns.shape[1]
    action = np.asarray(action, np.float64).reshape(num_assets)
    if config.actions == "discrete":
        target = action - 1.0
    else:
        target = np.clip(action.astype(np.float32), -1.0, 1.0).astype(np.float64)
    time = state["time"] + 1
    asset_return = returns[time]
    turnover = np.abs(target - state["position"]).sum() / num_assets
    net = (target * asset_return).sum() / num_assets
    net -= (params["fee"] + params["slippage"]) * turnover
    reward = np.log1p(net) - params["risk_penalty"] * net**2
    pnl = np.where(target != state["position"], 0.0, state["pnl"])
    stepped = {
        "time": time,
        "steps": state["steps"] + 1,
        "position": target,
        "pnl": pnl + np.log1p(target * asset_return),
        "log_equity": state["log_equity"] + np.log1p(net),
    }
    done = stepped["steps"] >= config.episode_length or time >= params["stop"] - 1
    window = features[time - config.window + 1 : time + 1]
    obs = np.concatenate([window.ravel(), target, stepped["pnl"]]).astype(np.float32)
    return stepped, reward, net, done, obs


def rollout(env, params, key, actions):
    """``reset`` then ``step`` over actions [N, A] in one jitted scan."""

    @jax.jit
    def run(key, actions, params):
        reset_key, key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)
        keys = jax.random.split(key, actions.shape[0])

        def body(state, inputs):
            step_key, action = inputs
            obs, next_state, reward, done, info = env.step(
                step_key, state, action, params
            )
            return next_state, (obs, next_state, reward, done, info, step_key)

        return obs, state, jax.lax.scan(body, state, (keys, actions))[1]

    return run(key, actions, params)


CASES = [
    ("sp500", "discrete", dict(fee=0.001, slippage=0.0005, risk_penalty=0.0), 40, None),
    (
        "sp500",
        "continuous",
        dict(fee=0.002, slippage=0.001, risk_penalty=3.0),
        25,
        None,
    ),
    ("stocks", "discrete", dict(fee=0.0005, slippage=0.0, risk_penalty=1.0), 30, None),
    ("stocks", "continuous", dict(fee=0.001, slippage=0.002, risk_penalty=0.5), 64, 90),
]


@pytest.mark.parametrize(("data", "actions", "costs", "length", "stop"), CASES)
def test_step_matches_numpy_reference(data, actions, costs, length, stop):
    market = sp500_market() if data == "sp500" else stocks_market()
    env = TradingEnv(EnvConfig(window=5, episode_length=length, actions=actions))
    start = env.config.first_bar + (10 if stop else 0)
    if stop is not None:
        # A period shorter than an episode: episodes end at the period's last bar.
        stop = start + stop
    params = env.make_params(market, start=start, stop=stop, **costs)
    num_steps, num_assets = 150, market.num_assets
    rng = np.random.default_rng(len(data) + length)
    if actions == "discrete":
        chosen = rng.integers(0, 3, (num_steps, num_assets))
    else:
        chosen = rng.uniform(-1.5, 1.5, (num_steps, num_assets))
    obs0, state0, (obs, states, rewards, dones, info, keys) = rollout(
        env, params, jax.random.key(3), jnp.asarray(chosen)
    )
    obs, states, rewards, dones, info = jax.tree.map(
        np.asarray, (obs, states, rewards, dones, info)
    )
    reset = jax.jit(env.reset)
    reference_params = {**costs, "stop": int(params.stop)}
    zeros = np.zeros(num_assets)
    state = {
        "time": int(state0.time),
        "steps": 0,
        "position": zeros,
        "pnl": zeros,
        "log_equity": 0.0,
    }
    assert params.start <= state["time"] < params.stop - 1
    features = np.asarray(market.features)
    window = features[state["time"] - 4 : state["time"] + 1].ravel()
    np.testing.assert_array_equal(
        np.asarray(obs0), np.concatenate([window, zeros, zeros]).astype(np.float32)
    )
    restarts = 0
    for index, action in enumerate(chosen):
        stepped, reward, net, done, expected_obs = reference_step(
            market, env.config, reference_params, state, action
        )
        np.testing.assert_allclose(float(rewards[index]), reward, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(float(info["net"][index]), net, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(
            float(info["log_equity"][index]),
            stepped["log_equity"],
            rtol=1e-5,
            atol=1e-7,
        )
        assert bool(dones[index]) == done
        if done:
            restarts += 1
            new_obs, new_state = reset(keys[index], params)
            np.testing.assert_array_equal(np.asarray(obs[index]), np.asarray(new_obs))
            assert int(states.time[index]) == int(new_state.time)
            assert int(states.steps[index]) == 0
            assert not np.any(np.asarray(states.position[index]))
            state = {
                "time": int(new_state.time),
                "steps": 0,
                "position": zeros,
                "pnl": zeros,
                "log_equity": 0.0,
            }
        else:
            np.testing.assert_allclose(
                np.asarray(obs[index]), expected_obs, rtol=1e-6, atol=1e-7
            )
            assert int(states.time[index]) == stepped["time"]
            np.testing.assert_array_equal(
                np.asarray(states.position[index]), stepped["position"]
            )
            np.testing.assert_allclose(
                np.asarray(states.position_pnl[index]),
                stepped["pnl"],
                rtol=1e-5,
                atol=1e-7,
            )
            state = stepped
    assert restarts >= 2


_rollout_cache: dict = {}


def cached_rollout(env, params, key, actions):
    run = _rollout_cache.get(env)
    if run is None:
        run = jax.jit(lambda key, actions, params: rollout(env, params, key, actions))
        _rollout_cache[env] = run
    return run(key, actions, params)


ENV = TradingEnv(EnvConfig(window=4, episode_length=32, actions="continuous"))
costs = st.floats(0.0, 0.05)


@settings(max_examples=20, deadline=None)
@given(
    fee=costs,
    slippage=costs,
    risk_penalty=st.floats(0.0, 10.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_flat_actions_earn_exactly_nothing(fee, slippage, risk_penalty, seed):
    params = ENV.make_params(
        sp500_market(), fee=fee, slippage=slippage, risk_penalty=risk_penalty
    )
    *_, (_, states, rewards, _, info, _) = cached_rollout(
        ENV, params, jax.random.key(seed), jnp.zeros((100, 1))
    )
    assert np.all(np.asarray(rewards) == 0.0)
    assert np.all(np.asarray(info["log_equity"]) == 0.0)
    assert np.all(np.asarray(states.position_pnl) == 0.0)


@settings(max_examples=20, deadline=None)
@given(fee=st.floats(1e-6, 0.05), slippage=costs, seed=st.integers(0, 2**32 - 1))
def test_fees_never_raise_the_reward(fee, slippage, seed):
    market = sp500_market()
    actions = jax.random.uniform(jax.random.key(seed), (100, 1), minval=-1, maxval=1)
    free = ENV.make_params(market, fee=0.0, slippage=0.0)
    costly = ENV.make_params(market, fee=fee, slippage=slippage)
    key = jax.random.key(seed + 1)
    *_, (_, free_states, free_rewards, _, _, _) = cached_rollout(
        ENV, free, key, actions
    )
    *_, (_, states, rewards, _, _, _) = cached_rollout(ENV, costly, key, actions)
    np.testing.assert_array_equal(np.asarray(states.time), np.asarray(free_states.time))
    assert np.all(np.asarray(rewards) <= np.asarray(free_rewards))
    assert np.any(np.asarray(rewards) < np.asarray(free_rewards))


_reset_many = jax.jit(
    jax.vmap(lambda key, params: ENV.reset(key, params)[1].time, in_axes=(0, None))
)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_reset_times_stay_in_the_period(data):
    market = sp500_market()
    first = ENV.config.first_bar
    start = data.draw(st.integers(first, market.num_bars - 2), label="start")
    stop = data.draw(st.integers(start + 2, market.num_bars), label="stop")
    params = ENV.make_params(market, start=start, stop=stop)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    times = np.asarray(_reset_many(jax.random.split(jax.random.key(seed), 512), params))
    assert times.min() >= start
    assert times.max() < stop - 1
    if stop - start <= 4:
        # Few bars: 512 draws reach every one of them.
        assert set(times.tolist()) == set(range(start, stop - 1))


def test_vmap_of_64_envs_equals_64_separate_calls():
    env = TradingEnv(EnvConfig(window=6, episode_length=3, actions="discrete"))
    params = env.make_params(stocks_market(), fee=0.001, slippage=0.0005)
    keys = jax.random.split(jax.random.key(11), 64)
    reset_keys, step_keys = keys, jax.random.split(jax.random.key(12), 64)
    actions = jax.random.randint(jax.random.key(13), (64, 3), 0, 3)
    reset = jax.jit(env.reset)
    step = jax.jit(env.step)

    def reset_and_step(reset_key, step_key, action):
        _, state = env.reset(reset_key, params)
        # Three steps: the third ends the episode and restarts it.
        for _ in range(3):
            outputs = env.step(step_key, state, action, params)
            state = outputs[1]
        return outputs

    batched = jax.jit(jax.vmap(reset_and_step))(reset_keys, step_keys, actions)
    for index in range(64):
        _, state = reset(reset_keys[index], params)
        for _ in range(3):
            single = step(step_keys[index], state, actions[index], params)
            state = single[1]
        for ours, theirs in zip(
            [leaf[index] for leaf in jax.tree.leaves(batched)],
            jax.tree.leaves(single),
            strict=True,
        ):
            np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-14)
    assert bool(jnp.all(batched[3]))


def test_make_params_refuses_the_warm_up_and_short_periods():
    env = TradingEnv(EnvConfig(window=8))
    market = sp500_market()
    assert env.config.first_bar == 27
    with pytest.raises(ValueError, match="start=26 is inside the features' warm-up"):
        env.make_params(market, start=26)
    with pytest.raises(ValueError, match=r"\[start=100, stop=101\) must hold"):
        env.make_params(market, start=100, stop=101)
    with pytest.raises(ValueError, match="stop=801"):
        env.make_params(market, stop=801)
    params = env.make_params(market, start=100, stop=102)
    assert env.observation_size(params) == 8 * 8 + 2


def test_make_params_names_the_first_bar_with_undefined_features():
    frame = load_sample("sp500").iloc[:400]
    prices = {f: frame[f].to_numpy().copy() for f in FIELDS}
    for field in ("open", "high", "low", "close"):
        # Bars 200 .. 240 do not move: from bar 205 on the last 5 returns are 0
        # (the volatility ratio is log 0) and from bar 220 on all 20 are.
        prices[field][200:241] = prices["close"][200]
    prices["volume"][300] = np.nan
    market = Market.from_bars(Bar(**{f: jnp.asarray(v) for f, v in prices.items()}))
    env = TradingEnv(EnvConfig(window=4))
    with pytest.raises(ValueError, match="features at bar 205 are not finite"):
        env.make_params(market)
    with pytest.raises(ValueError, match="features at bar 300 are not finite"):
        env.make_params(market, start=250)
    # The window reaches 3 bars back: a period starting at 244 still sees bar 241 ok.
    env.make_params(market, start=244, stop=300)
    with pytest.raises(ValueError, match="features at bar 240 are not finite"):
        env.make_params(market, start=243, stop=300)
