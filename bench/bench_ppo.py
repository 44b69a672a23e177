"""PPO training wall-clock: neuroflux's pure-JAX PPO against stable-baselines3.

Run with ``python bench/bench_ppo.py [--timesteps T] [--sb3-timesteps T_SB3]`` after
``bash scripts/setup.sh bench`` (stable-baselines3 and torch are benchmark-only
dependencies); a few minutes on a 2-core CPU. It prints the machine, then a Markdown
table of wall-clock seconds and env-steps per second, and the speedup ``SB3 seconds /
JAX seconds`` for the same number of environment steps (above 1: JAX is faster).

Both sides train on the same environment with the same hyperparameters:

* environment: :class:`neuroflux.envs.TradingEnv` over the S&P 500 daily bars from
  arch, 1999-2014 (``EnvConfig(window=16, episode_length=256, actions="discrete")``,
  fee 0.1%); SB3 sees it through the gymnasium wrapper
  :class:`neuroflux.research.trading_gym.TradingGymEnv` (one jitted single-env step per
  call), 8 of them in a ``DummyVecEnv``;
* PPO: 8 environments x 128 steps per rollout, 4 epochs of 4 minibatches (SB3
  ``batch_size`` 256), gamma 0.99, GAE lambda 0.95, clip 0.2 for the ratio and the
  value (SB3 ``clip_range_vf=0.2``), entropy 0.01, value 0.5, gradient norm 0.5, Adam
  (eps 1e-5) at 3e-4 annealed linearly to 0, separate tanh MLPs 64x64 for actor and
  critic; T = 131,072 steps (128 updates) by default.

neuroflux: ``jax.jit(make_train(config, env))``; the first call (compilation and a
run) is reported apart, the run time is a second call with another key, to
``block_until_ready``. Extra rows: 64 environments (same T, 16 updates) and 5 seeds
under ``jax.vmap`` (5 T steps in all). SB3: ``PPO.learn(T)`` on CPU with
``torch.set_num_threads(2)``; model construction is excluded, and every wrapper's
jitted step is compiled before the clock starts. The time SB3 spends stepping the
environments is estimated from 1,000 random steps of the ``DummyVecEnv`` alone.

Known differences: SB3 bootstraps the value at time-limit truncations, neuroflux
treats every episode end as terminal (as purejaxrl does); SB3 initialises with
orthogonal weights. The returns printed (mean log equity of the training episodes
that ended in the last eighth of training) show that both learn at a comparable level;
they are not a correctness proof. Target (the issue): >= 20x SB3.
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import stable_baselines3
import torch
from _machine import describe_machine
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from neuroflux.agents.ppo import PPOConfig, make_train
from neuroflux.data import load_sample
from neuroflux.envs import EnvConfig, EnvParams, Market, TradingEnv
from neuroflux.research.trading_gym import TradingGymEnv
from neuroflux.strategies.steps import Bar

ENV_CONFIG = EnvConfig(window=16, episode_length=256, actions="discrete")
NUM_ENVS, NUM_STEPS, EPOCHS, MINIBATCHES = 8, 128, 4, 4
SEEDS = 5
VEC_STEPS = 1000
TAIL = 8  # returns are averaged over the last 1/TAIL of training


def make_config(timesteps: int, num_envs: int = NUM_ENVS) -> PPOConfig:
    return PPOConfig(
        num_envs=num_envs,
        num_steps=NUM_STEPS,
        total_timesteps=timesteps,
        update_epochs=EPOCHS,
        num_minibatches=MINIBATCHES,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        entropy_coef=0.01,
        value_coef=0.5,
        max_grad_norm=0.5,
        learning_rate=3e-4,
        anneal_lr=True,
        hidden_sizes=(64, 64),
    )


def tail_return(episode_returns: np.ndarray) -> float:
    """Mean over the last 1/TAIL of the updates of ``episode_returns`` [..., U]."""
    updates = episode_returns.shape[-1]
    return float(np.nanmean(episode_returns[..., updates - max(updates // TAIL, 1) :]))


def time_jax(
    env: TradingEnv, params: EnvParams, config: PPOConfig, seeds: int | None
) -> tuple[float, float, float]:
    """(first call seconds, run seconds, final return) of jitted (vmapped) train."""
    train = make_train(config, env)
    if seeds is None:
        run = jax.jit(train)

        def keys(seed):
            return jax.random.key(seed)
    else:
        run = jax.jit(jax.vmap(train, in_axes=(0, None)))

        def keys(seed):
            return jax.random.split(jax.random.key(seed), seeds)

    begin = time.perf_counter()
    jax.block_until_ready(run(keys(0), params))
    first = time.perf_counter() - begin
    begin = time.perf_counter()
    result = jax.block_until_ready(run(keys(1), params))
    seconds = time.perf_counter() - begin
    return first, seconds, tail_return(np.asarray(result.metrics["episode_return"]))


class _EpisodeReturns(BaseCallback):
    """Records ``(timestep, log_equity)`` of every training episode that ends."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done:
                self.ends.append((self.num_timesteps, info["log_equity"]))
        return True


def make_vec_env(env: TradingEnv, params: EnvParams) -> DummyVecEnv:
    """8 wrappers, each one's jitted reset and step compiled before any timing."""
    vec_env = DummyVecEnv([lambda: TradingGymEnv(env, params)] * NUM_ENVS)
    vec_env.seed(0)
    vec_env.reset()
    vec_env.step(np.ones(NUM_ENVS, np.int64))
    vec_env.reset()
    return vec_env


def vec_env_rate(vec_env: DummyVecEnv) -> float:
    """Env-steps/s of ``VEC_STEPS`` random steps of the ``DummyVecEnv`` alone."""
    actions = np.random.default_rng(0).integers(0, 3, (VEC_STEPS, NUM_ENVS))
    vec_env.reset()
    begin = time.perf_counter()
    for action in actions:
        vec_env.step(action)
    return VEC_STEPS * NUM_ENVS / (time.perf_counter() - begin)


def time_sb3(
    env: TradingEnv, params: EnvParams, timesteps: int
) -> tuple[float, float, float]:
    """(learn seconds, final return, DummyVecEnv env-steps/s) of SB3's PPO."""
    torch.set_num_threads(2)
    vec_env = make_vec_env(env, params)
    model = PPO(
        "MlpPolicy",
        vec_env,
        learning_rate=lambda remaining: 3e-4 * remaining,
        n_steps=NUM_STEPS,
        batch_size=NUM_ENVS * NUM_STEPS // MINIBATCHES,
        n_epochs=EPOCHS,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        clip_range_vf=0.2,
        normalize_advantage=True,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs={
            "net_arch": {"pi": [64, 64], "vf": [64, 64]},
            "activation_fn": torch.nn.Tanh,
        },
        device="cpu",
        seed=0,
        verbose=0,
    )
    callback = _EpisodeReturns()
    begin = time.perf_counter()
    model.learn(timesteps, callback=callback)
    seconds = time.perf_counter() - begin
    late = timesteps - timesteps // TAIL
    returns = [value for step, value in callback.ends if step > late]
    final = float(np.mean(returns)) if returns else float("nan")
    return seconds, final, vec_env_rate(vec_env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=131_072)
    parser.add_argument(
        "--sb3-timesteps",
        type=int,
        default=None,
        help="SB3's timesteps when it is too slow at --timesteps (default: the same)",
    )
    args = parser.parse_args()
    timesteps = args.timesteps
    sb3_timesteps = args.sb3_timesteps or timesteps

    frame = load_sample("sp500")
    frame = frame[frame.index.year <= 2014]
    bars = Bar(**{f: jnp.asarray(frame[f].to_numpy()) for f in frame.columns})
    env = TradingEnv(ENV_CONFIG)
    params = env.make_params(Market.from_bars(bars), fee=0.001)
    print(
        describe_machine(
            stable_baselines3=stable_baselines3.__version__,
            torch=torch.__version__,
            gymnasium=gymnasium.__version__,
        )
    )
    print(
        f"S&P 500 daily bars 1999-2014 ({len(frame)} bars); window 16, episodes of "
        f"256 steps, discrete actions, fee 0.1%; PPO {NUM_ENVS} envs x {NUM_STEPS} "
        f"steps, {EPOCHS} epochs x {MINIBATCHES} minibatches, tanh MLP 64x64; "
        f"T = {timesteps:,} (SB3: {sb3_timesteps:,})\n",
        flush=True,
    )

    jax_rows = []
    cases = (
        ("neuroflux PPO (jit, vmap seeds)", NUM_ENVS, SEEDS),
        ("neuroflux PPO (jit)", NUM_ENVS, None),
        ("neuroflux PPO (jit)", 64, None),
    )
    for name, num_envs, seeds in cases:
        config = make_config(timesteps, num_envs)
        first, seconds, final = time_jax(env, params, config, seeds)
        steps = config.num_updates * num_envs * NUM_STEPS * (seeds or 1)
        jax_rows.append((name, num_envs, seeds or 1, first, seconds, steps, final))
        print(f"{name}, {num_envs} envs: {seconds:.2f} s", file=sys.stderr, flush=True)

    sb3_seconds, sb3_return, vec_rate = time_sb3(env, params, sb3_timesteps)
    sb3_rate = sb3_timesteps / sb3_seconds
    print(f"SB3: {sb3_seconds:.1f} s", file=sys.stderr, flush=True)
    env_share = sb3_timesteps / vec_rate / sb3_seconds
    rows = [
        (
            "stable-baselines3 PPO (torch CPU)",
            NUM_ENVS,
            1,
            None,
            sb3_seconds,
            sb3_timesteps,
            sb3_return,
        ),
        *jax_rows,
    ]
    print(
        "| trainer | envs | seeds | first call (s) | run (s) | env-steps | "
        "env-steps/s | speedup vs SB3 | final return |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, num_envs, seeds, first, seconds, steps, final in rows:
        rate = steps / seconds
        first_text = "" if first is None else f"{first:.1f}"
        speedup = "" if first is None else f"{rate / sb3_rate:,.1f}x"
        print(
            f"| {name} | {num_envs} | {seeds} | {first_text} | {seconds:.2f} | "
            f"{steps:,} | {rate:,.0f} | {speedup} | {final:+.4f} |"
        )
    # SB3's rate were its environments free: what the learner alone costs.
    learner_rate = sb3_rate / max(1.0 - env_share, 1e-9)
    jax_rate = rows[2][5] / rows[2][4]
    print(
        f"\nSB3's DummyVecEnv of {NUM_ENVS} TradingGymEnv alone ({VEC_STEPS} random "
        f"steps): {vec_rate:,.0f} env-steps/s, so about {env_share:.0%} of SB3's "
        f"learn() time is environment stepping; without it SB3 would run at about "
        f"{learner_rate:,.0f} env-steps/s (JAX with {NUM_ENVS} envs: "
        f"{jax_rate / learner_rate:,.1f}x that).\nSpeedup = JAX env-steps/s / SB3 "
        f"env-steps/s (= SB3 seconds / JAX seconds for the same steps); "
        f"first call = compilation + one run. Final return: mean log equity of the "
        f"training episodes ending in the last 1/{TAIL} of training.",
        flush=True,
    )


if __name__ == "__main__":
    main()
