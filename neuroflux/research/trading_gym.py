"""A gymnasium view of :class:`~neuroflux.envs.TradingEnv`, for stable-baselines3 & co.

:class:`TradingGymEnv` wraps one pure environment and its :class:`EnvParams` in the
``gymnasium.Env`` API: ``reset(seed=None, options=None) -> (obs, info)`` and
``step(action) -> (obs, reward, terminated, truncated, info)``, with float32 NumPy
observations and Python-float rewards.

Episode ends. The pure ``step`` restarts a finished episode itself and returns the new
episode's observation, which gymnasium forbids (the agent must see the last
observation, and ``reset`` belongs to the caller). So the wrapper calls the pure
``transition`` (a step without the restart) and splits its ``done`` the gymnasium way:

* ``terminated``: the bar reached is the period's last (``time >= stop - 1``): the
  data has ended, there is no next state;
* ``truncated``: ``episode_length`` steps were taken before that (a time limit).

Rewards are therefore exactly the pure env's for the same states and actions. Keys:
``reset(seed=s)`` starts the key chain at ``jax.random.key(s)``; a later
``reset()`` goes on with the chain, and a first ``reset()`` without a seed draws one
from gymnasium's ``np_random``. ``reset`` and ``step`` are jitted once per instance.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from neuroflux.envs import EnvParams, TradingEnv

__all__ = ["TradingGymEnv"]


class TradingGymEnv(gymnasium.Env):
    """:class:`TradingEnv` and its parameters as a ``gymnasium.Env``.

    Spaces: ``observation_space`` is ``Box(-inf, inf, (D,), float32)`` with ``D =
    env.observation_size(params)``; ``action_space`` is ``Discrete(3)`` (short, flat,
    long) for one asset with discrete actions, ``MultiDiscrete([3] * A)`` for a panel,
    and ``Box(-1, 1, (A,), float32)`` target positions for continuous actions.

    Args:
        env: The pure environment (its config fixes window, episode length, actions).
        params: Its :class:`EnvParams` (market, period, costs), from ``make_params``.

    ``info`` holds ``time`` (the bar reached), ``net`` (the step's net return) and
    ``log_equity`` (the episode's summed log return).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, env: TradingEnv, params: EnvParams) -> None:
        if not isinstance(env, TradingEnv):
            raise TypeError(f"env must be a TradingEnv; got {type(env).__name__}")
        if not isinstance(params, EnvParams):
            raise TypeError(f"params must be EnvParams; got {type(params).__name__}")
        self.env = env
        self.params = params
        num_assets = env.num_assets(params)
        self.num_assets = num_assets
        self.episode_length = env.config.episode_length
        self.stop = int(params.stop)
        size = env.observation_size(params)
        self.observation_space = gymnasium.spaces.Box(
            -np.inf, np.inf, (size,), np.float32
        )
        if env.config.actions == "continuous":
            self.action_space = gymnasium.spaces.Box(
                -1.0, 1.0, (num_assets,), np.float32
            )
        elif num_assets == 1:
            self.action_space = gymnasium.spaces.Discrete(3)
        else:
            self.action_space = gymnasium.spaces.MultiDiscrete([3] * num_assets)

        self._reset_jit = jax.jit(env.reset)
        self._step_jit = jax.jit(self._transition)
        self._key: jax.Array | None = None
        self._state = None
        self._finished = True

    def _transition(self, state, action, params):
        state, reward, done, info = self.env.transition(state, action, params)
        return self.env.observe(state, params), state, reward, done, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A new episode at a random bar of the period (``options`` is unused)."""
        super().reset(seed=seed, options=options)
        if seed is not None:
            self._key = jax.random.key(seed)
        elif self._key is None:
            self._key = jax.random.key(int(self.np_random.integers(2**63 - 1)))
        self._key, reset_key = jax.random.split(self._key)
        obs, self._state = self._reset_jit(reset_key, self.params)
        self._finished = False
        return np.asarray(obs, np.float32), {"time": int(self._state.time)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One bar: ``(obs, reward, terminated, truncated, info)``."""
        if self._finished:
            raise RuntimeError("the episode has ended (or not begun): call reset()")
        action = np.asarray(action).reshape(self.num_assets)
        if self.env.config.actions == "discrete":
            if not np.all(np.isin(action, (0, 1, 2))):
                raise ValueError(
                    f"discrete actions must be in {{0, 1, 2}} per asset; got {action}"
                )
            action = action.astype(np.int32)
        else:
            action = action.astype(np.float64)
        obs, self._state, reward, _, info = self._step_jit(
            self._state, jnp.asarray(action), self.params
        )
        time = int(self._state.time)
        terminated = time >= self.stop - 1
        truncated = not terminated and int(self._state.steps) >= self.episode_length
        self._finished = terminated or truncated
        details = {
            "time": time,
            "net": float(info["net"]),
            "log_equity": float(info["log_equity"]),
        }
        return (
            np.asarray(obs, np.float32),
            float(reward),
            terminated,
            truncated,
            details,
        )
