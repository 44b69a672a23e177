"""Environment steps per second: vmapped JAX TradingEnv against Python environments.

Run with ``python bench/bench_envs.py``; it prints the machine, then a Markdown table
of env-steps per second and the ratios ``JAX / gym-anytrading`` and ``JAX / NumPy``
(above 1: the JAX environment is faster), all measured in the same run on the same
data (S&P 500 daily bars from arch, 5031 bars):

* JAX: :class:`neuroflux.envs.TradingEnv` (window 16, episodes of 256 steps, discrete
  actions, fee 0.1%) with 1, 64 and 4096 environments under ``jax.vmap``; one jitted
  ``lax.scan`` of 1000 steps per call, random actions drawn inside the scan, and every
  observation summed so none is optimised away. Compile time is reported apart; the
  rate is the best of several calls after it;
* JAX, one jitted ``step`` per Python call (the dispatch-bound case), and the
  gymnasium wrapper :class:`neuroflux.research.trading_gym.TradingGymEnv`;
* NumPy: :class:`numpy_trading_env.NumpyTradingEnv`, the same environment in plain
  NumPy, one step per call;
* gym-anytrading's ``StocksEnv`` on the same closes, ``window_size=16`` and
  ``frame_bound=(first observable bar, T)``, random actions, reset at its episode end.

Targets (the issue): >= 100x gym-anytrading and >= 10 M env-steps/s with 4096
environments on 2 CPU cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import metadata

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from _machine import describe_machine
from gym_anytrading.envs import StocksEnv
from numpy_trading_env import NumpyTradingEnv

from neuroflux.data import load_sample
from neuroflux.envs import EnvConfig, EnvParams, Market, TradingEnv
from neuroflux.research.trading_gym import TradingGymEnv
from neuroflux.strategies.steps import Bar

SCAN_STEPS = 1000
BATCHES = (1, 64, 4096)
PYTHON_STEPS = 20_000
CONFIG = EnvConfig(window=16, episode_length=256, actions="discrete")


def make_rollout(env: TradingEnv, num_envs: int) -> Callable:
    """``rollout(key, params) -> total``: ``SCAN_STEPS`` steps of ``num_envs`` envs."""

    def rollout(key: jax.Array, params: EnvParams) -> jax.Array:
        key, reset_key = jax.random.split(key)
        reset_keys = jax.random.split(reset_key, num_envs)
        _, states = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
        step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
        shape = (num_envs, params.market.num_assets)

        def body(carry, _):
            states, key, total = carry
            key, action_key, step_key = jax.random.split(key, 3)
            actions = jax.random.randint(action_key, shape, 0, 3)
            step_keys = jax.random.split(step_key, num_envs)
            obs, states, reward, _, _ = step(step_keys, states, actions, params)
            return (states, key, total + jnp.sum(reward) + jnp.sum(obs)), None

        start = (states, key, jnp.zeros(()))
        (_, _, total), _ = jax.lax.scan(body, start, None, length=SCAN_STEPS)
        return total

    return rollout


def best_rate(run: Callable[[], object], steps: int, budget: float = 2.0) -> float:
    """Best steps per second of ``run()`` (which takes ``steps``), 3+ repeats."""
    rates: list[float] = []
    started = time.perf_counter()
    while len(rates) < 3 or (
        time.perf_counter() - started < budget and len(rates) < 20
    ):
        begin = time.perf_counter()
        jax.block_until_ready(run())
        rates.append(steps / (time.perf_counter() - begin))
    return max(rates)


def jax_rates(
    env: TradingEnv, params: EnvParams
) -> list[tuple[str, int, float, float]]:
    """(case, envs, compile seconds, steps/s) for each vmapped batch size."""
    results = []
    key = jax.random.key(0)
    for num_envs in BATCHES:
        begin = time.perf_counter()
        compiled = jax.jit(make_rollout(env, num_envs)).lower(key, params).compile()
        compile_seconds = time.perf_counter() - begin
        rate = best_rate(
            lambda compiled=compiled: compiled(key, params), num_envs * SCAN_STEPS
        )
        results.append(("JAX vmap + scan", num_envs, compile_seconds, rate))
    return results


def jax_python_loop_rate(env: TradingEnv, params: EnvParams) -> float:
    step = jax.jit(env.step)
    _, state = jax.jit(env.reset)(jax.random.key(1), params)
    # Sliced once here: indexing a device array in the loop would cost more than a step.
    keys = list(jax.random.split(jax.random.key(2), 2000))
    actions = list(jax.random.randint(jax.random.key(3), (2000, 1), 0, 3))
    jax.block_until_ready(step(keys[0], state, actions[0], params))

    def run():
        current = state
        for key, action in zip(keys, actions, strict=True):
            obs, current, *_ = step(key, current, action, params)
        return obs

    return best_rate(run, 2000)


def gym_wrapper_rate(env: TradingEnv, params: EnvParams) -> float:
    gym_env = TradingGymEnv(env, params)
    gym_env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 3, 2000)

    def run():
        for action in actions:
            _, _, terminated, truncated, _ = gym_env.step(int(action))
            if terminated or truncated:
                gym_env.reset()

    run()
    return best_rate(run, len(actions))


def numpy_rate(market: Market, params: EnvParams) -> float:
    numpy_env = NumpyTradingEnv(
        np.asarray(market.features),
        np.asarray(market.returns),
        window=CONFIG.window,
        episode_length=CONFIG.episode_length,
        start=int(params.start),
        stop=int(params.stop),
        fee=0.001,
    )
    actions = np.random.default_rng(0).integers(0, 3, (PYTHON_STEPS, 1))

    def run():
        for action in actions:
            numpy_env.step(action)

    return best_rate(run, PYTHON_STEPS)


def anytrading_rate(frame, first_bar: int) -> float:
    data = frame.rename(columns=str.capitalize).reset_index(drop=True)
    peer = StocksEnv(
        df=data, window_size=CONFIG.window, frame_bound=(first_bar, len(data))
    )
    peer.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, PYTHON_STEPS)

    def run():
        for action in actions:
            _, _, terminated, truncated, _ = peer.step(int(action))
            if terminated or truncated:
                peer.reset()

    return best_rate(run, PYTHON_STEPS)


def main() -> None:
    frame = load_sample("sp500")
    bars = Bar(**{f: jnp.asarray(frame[f].to_numpy()) for f in frame.columns})
    market = Market.from_bars(bars)
    env = TradingEnv(CONFIG)
    params = env.make_params(market, fee=0.001)
    print(
        describe_machine(
            gymnasium=gymnasium.__version__,
            gym_anytrading=metadata.version("gym-anytrading"),
        )
    )
    print(
        f"S&P 500 daily bars from arch: T = {market.num_bars}; window 16, episodes of "
        f"256 steps, discrete actions; {SCAN_STEPS} steps per JAX call\n",
        flush=True,
    )
    peer = anytrading_rate(frame, CONFIG.first_bar)
    baseline = numpy_rate(market, params)
    rows = [
        ("gym-anytrading StocksEnv", 1, None, peer),
        ("NumPy env (bench/numpy_trading_env.py)", 1, None, baseline),
        ("TradingGymEnv (gymnasium wrapper)", 1, None, gym_wrapper_rate(env, params)),
        ("JAX jitted step, Python loop", 1, None, jax_python_loop_rate(env, params)),
        *jax_rates(env, params),
    ]
    print(
        "| environment | envs | compile (s) | env-steps/s | JAX / gym-anytrading "
        "| JAX / NumPy |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, num_envs, compile_seconds, rate in rows:
        compiled = "" if compile_seconds is None else f"{compile_seconds:.2f}"
        jax_row = name.startswith(("JAX", "TradingGymEnv"))
        versus_peer = f"{rate / peer:,.3g}" if jax_row else ""
        versus_numpy = f"{rate / baseline:,.3g}" if jax_row else ""
        print(
            f"| {name} | {num_envs} | {compiled} | {rate:,.0f} | {versus_peer} "
            f"| {versus_numpy} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
