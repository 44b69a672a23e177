"""Trading environments as pure functions (the gymnax contract, written here).

:class:`TradingEnv` has ``reset(key, params)`` and ``step(key, state, action, params)``
over explicit :class:`EnvState` and :class:`EnvParams` pytrees, so thousands of
environments run in one ``jax.vmap``. Observations are the scale-free features of
:mod:`neuroflux.envs.observations`, which an :class:`ObserverState` also computes bar
by bar for a live step function, with the same arithmetic.
"""

from neuroflux.envs.observations import (
    FEATURE_NAMES,
    LOOKBACK,
    ObserverState,
    bar_features,
    observation,
    observer_act,
    observer_init,
    observer_push,
    window_features,
)
from neuroflux.envs.trading import (
    ACTIONS,
    EnvConfig,
    EnvParams,
    EnvState,
    Market,
    TradingEnv,
)

__all__ = [
    "ACTIONS",
    "FEATURE_NAMES",
    "LOOKBACK",
    "EnvConfig",
    "EnvParams",
    "EnvState",
    "Market",
    "ObserverState",
    "TradingEnv",
    "bar_features",
    "observation",
    "observer_act",
    "observer_init",
    "observer_push",
    "window_features",
]
