"""Step functions of agents that decide from the environment's observation.

:func:`make_policy_step` wraps a pure ``decide(params, observation) -> target [A]`` in
a :class:`~neuroflux.strategies.steps.StepStrategy`: each bar goes through an
:class:`~neuroflux.envs.ObserverState` (feature window, position, position P&L), so the
agent sees in a backtest and in the live runner exactly what it saw in
:class:`~neuroflux.envs.TradingEnv` during training. The position is flat until the
observation window is filled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from neuroflux._arrays import as_count
from neuroflux.envs import observations
from neuroflux.strategies.steps import Bar, StepStrategy

__all__ = ["Decide", "make_policy_step"]

Decide = Callable[[Any, jax.Array], jax.Array]


def make_policy_step(
    decide: Decide, *, window: int, num_assets: int = 1
) -> StepStrategy:
    """A step strategy that acts on the observation of the last ``window`` bars.

    Args:
        decide: ``decide(params, observation) -> target positions [A]`` in [-1, 1]
            (pure; the observation is :func:`neuroflux.envs.observation`'s vector).
        window: Feature rows in the observation (static, as in ``EnvConfig``).
        num_assets: A (static). Bars carry scalars when A = 1 (the action is then a
            scalar too) and [A] arrays otherwise.

    Returns:
        ``StepStrategy(init, step)``; ``init(params)`` ignores its argument.
    """
    window = as_count(window, "window", 1)
    num_assets = as_count(num_assets, "num_assets", 1)

    def init(params: Any) -> observations.ObserverState:
        del params
        return observations.observer_init(num_assets, window)

    def step(state: observations.ObserverState, bar: Bar, params: Any):
        scalar = jnp.ndim(bar.close) == 0
        bar = jax.tree.map(lambda x: jnp.reshape(x, (num_assets,)), bar)
        state = observations.observer_push(state, bar)
        seen = observations.observation(
            state.features, state.position, state.position_pnl
        )
        target = jnp.asarray(decide(params, seen), state.position.dtype)
        target = jnp.where(state.ready, target, 0.0)
        state = observations.observer_act(state, target)
        return state, target[0] if scalar else target

    return StepStrategy(init, step)
