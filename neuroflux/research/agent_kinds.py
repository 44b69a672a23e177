"""How each agent kind is trained, run and restored: the per-kind recipes.

:data:`KINDS` maps every kind of :data:`~neuroflux.research.agents.AGENT_KINDS` to its
recipe: ``settings`` (JSON-able settings from the options and the chosen rules),
``train`` (one parameter pytree per seed), ``step`` (the step strategy the
parameters run in) and ``init`` (the template a checkpoint restores into).
:func:`stack` and :func:`unstack` move between per-seed pytrees and one pytree
stacked along a leading seed axis.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from neuroflux import envs, strategies
from neuroflux.agents import evolution, flux, neural, ppo, swarm
from neuroflux.envs import EnvConfig, Market, TradingEnv
from neuroflux.research.agent_rules import best_rule
from neuroflux.strategies.steps import STEP_STRATEGIES, StepStrategy

__all__ = ["KINDS", "stack", "unstack"]


def _config(cls: type, values: Mapping[str, Any] | None) -> Any:
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = set(values or {}) - fields
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} settings {sorted(unknown)}; "
            f"expected {sorted(fields)}"
        )
    values = {
        name: tuple(value) if isinstance(value, list) else value
        for name, value in (values or {}).items()
    }
    return cls(**values)


def _asdict(config: Any) -> dict[str, Any]:
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in dataclasses.asdict(config).items()
    }


def stack(trees: Sequence[Any]) -> Any:
    """One pytree with the ``trees`` (one per seed) stacked along a leading axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree: Any, count: int) -> list[Any]:
    """The ``count`` per-seed pytrees of a :func:`stack`-ed ``tree``."""
    return [jax.tree.map(lambda leaf, i=i: leaf[i], tree) for i in range(count)]


# Each kind: settings(options, rules) -> JSON-able settings; train(keys [S], bars,
# settings) -> (params stacked over S, history [steps, S]); step(settings); init(
# settings, key) -> one seed's parameters (the template a checkpoint restores into).


def _env_and_ppo(settings: Mapping[str, Any]) -> tuple[TradingEnv, ppo.PPOConfig]:
    env = TradingEnv(_config(EnvConfig, settings["env"]))
    return env, _config(ppo.PPOConfig, settings["ppo"])


def _ppo_settings(options, rules, commission) -> dict[str, Any]:
    del rules
    return {
        "env": _asdict(_config(EnvConfig, options.get("env"))),
        "ppo": _asdict(_config(ppo.PPOConfig, options.get("ppo"))),
        "fee": commission,
    }


def _ppo_train(keys, bars, settings):
    env, config = _env_and_ppo(settings)
    params = env.make_params(Market.from_bars(bars), fee=settings["fee"])
    train = jax.jit(jax.vmap(ppo.make_train(config, env), in_axes=(0, None)))
    result = train(keys, params)
    return result.params, np.asarray(result.metrics["episode_return"]).T


def _ppo_step(settings):
    env, _ = _env_and_ppo(settings)
    return ppo.make_ppo_step(env.config)


def _ppo_init(settings, key):
    env, config = _env_and_ppo(settings)
    length = env.config.first_bar + 2
    features = jnp.zeros((length, 1, len(envs.FEATURE_NAMES)), jnp.float32)
    market = Market(features=features, returns=jnp.zeros((length, 1)))
    return ppo.init_ppo_params(key, config, env, env.make_params(market))


def _neural_settings(options, rules, commission) -> dict[str, Any]:
    del rules
    values = {"fees": commission, **(options.get("neural") or {})}
    return {"neural": _asdict(_config(neural.NeuralPolicyConfig, values))}


def _fit_on_features(fit, keys, bars, config):
    """``fit(key, close, features, config=)`` for every seed in one jitted vmap."""
    run = jax.jit(
        jax.vmap(functools.partial(fit, config=config), in_axes=(0, None, None))
    )
    layers, history = run(keys, bars.close, envs.bar_features(bars))
    return layers, np.asarray(history).T


def _neural_train(keys, bars, settings):
    config = _config(neural.NeuralPolicyConfig, settings["neural"])
    return _fit_on_features(neural.train_neural_policy, keys, bars, config)


def _neural_step(settings):
    return neural.make_neural_step(
        _config(neural.NeuralPolicyConfig, settings["neural"])
    )


def _neural_init(settings, key):
    config = _config(neural.NeuralPolicyConfig, settings["neural"])
    return neural.init_neural_policy(key, config.window, config.hidden_sizes)


def _evolution_settings(options, rules, commission) -> dict[str, Any]:
    del rules
    values = {"fees": commission, **(options.get("evolution") or {})}
    return {"evolution": _asdict(_config(evolution.EvolutionConfig, values))}


def _evolution_train(keys, bars, settings):
    config = _config(evolution.EvolutionConfig, settings["evolution"])
    return _fit_on_features(evolution.evolve, keys, bars, config)


def _evolution_step(settings):
    config = _config(evolution.EvolutionConfig, settings["evolution"])
    return neural.make_neural_step(evolution.fitness_config(config))


def _evolution_init(settings, key):
    config = _config(evolution.EvolutionConfig, settings["evolution"])
    return neural.init_neural_policy(key, config.window, config.hidden_sizes)


def _swarm_settings(options, rules, commission) -> dict[str, Any]:
    fusion = options.get("fusion", "confidence")
    if fusion not in swarm.FUSIONS:
        raise ValueError(f"fusion must be one of {swarm.FUSIONS}; got {fusion!r}")
    return {
        "rules": {name: dict(choice.params) for name, choice in rules.items()},
        "fusion": fusion,
        **_neural_settings(options, rules, commission),
    }


def _swarm_rule_params(settings) -> tuple[Any, ...]:
    return tuple(
        strategies.make_params(name, **params)
        for name, params in settings["rules"].items()
    )


def _swarm_train(keys, bars, settings):
    layers, history = _neural_train(keys, bars, settings)
    rules = _swarm_rule_params(settings)
    members = [(*rules, policy) for policy in unstack(layers, len(keys))]
    return stack([swarm.SwarmParams(members=m) for m in members]), history


def _swarm_step(settings):
    members = tuple(STEP_STRATEGIES[name] for name in settings["rules"])
    return swarm.make_swarm_step((*members, _neural_step(settings)), settings["fusion"])


def _swarm_init(settings, key):
    return swarm.SwarmParams(
        members=(*_swarm_rule_params(settings), _neural_init(settings, key))
    )


def _flux_settings(options, rules, commission) -> dict[str, Any]:
    del commission
    choice = best_rule(rules)
    return {
        "rule": choice.strategy,
        "rule_params": dict(choice.params),
        "flux": _asdict(_config(flux.FluxConfig, options.get("flux"))),
        "size_weight": float(options.get("size_weight", 0.5)),
    }


def _flux_params(settings) -> Any:
    return flux.FluxAdaptedParams(
        inner=strategies.make_params(settings["rule"], **settings["rule_params"]),
        flux=flux.FluxParams(),
        size_weight=settings["size_weight"],
    )


def _flux_train(keys, bars, settings):
    del bars  # nothing is fitted: the rule was chosen on the training bars
    return stack([_flux_params(settings)] * len(keys)), np.empty((0, len(keys)))


def _flux_step(settings):
    config = _config(flux.FluxConfig, settings["flux"])
    return flux.make_flux_adapted_step(STEP_STRATEGIES[settings["rule"]], config)


def _flux_init(settings, key):
    del key
    return _flux_params(settings)


@dataclasses.dataclass(frozen=True)
class _Kind:
    settings: Callable[..., dict[str, Any]]
    train: Callable[..., tuple[Any, np.ndarray]]
    step: Callable[[Mapping[str, Any]], StepStrategy]
    init: Callable[[Mapping[str, Any], jax.Array], Any]


KINDS: Mapping[str, _Kind] = {
    "ppo": _Kind(_ppo_settings, _ppo_train, _ppo_step, _ppo_init),
    "neural": _Kind(_neural_settings, _neural_train, _neural_step, _neural_init),
    "evolution": _Kind(
        _evolution_settings, _evolution_train, _evolution_step, _evolution_init
    ),
    "swarm": _Kind(_swarm_settings, _swarm_train, _swarm_step, _swarm_init),
    "flux": _Kind(_flux_settings, _flux_train, _flux_step, _flux_init),
}
