"""Agents on an OHLCV frame: train on one period, backtest on the next, save, load.

``train_agent("ppo", load_sample("sp500"), test_start="2011-01-01", seeds=5)`` trains
one agent per seed on the bars before ``test_start`` and returns a
:class:`TrainedAgent`. :func:`backtest_agent` drives the agent's step function over
the bars with ``lax.scan`` (the live runner's decision path) and hands the target
positions of the test period to :func:`neuroflux.backtest.simulate`, so an agent
yields the same :class:`~neuroflux.research.BacktestRun` (result, statistics, trades)
as any strategy. :func:`save_agent` and :func:`load_agent` keep the parameters in an
orbax checkpoint and the settings in ``agent.json``.

Kinds (:data:`AGENT_KINDS`):

* ``ppo``: PPO on :class:`~neuroflux.envs.TradingEnv` (:mod:`neuroflux.agents.ppo`);
* ``neural``: a policy network trained on the differentiable backtest's net Sharpe
  (:mod:`neuroflux.agents.neural`);
* ``evolution``: the same network evolved by an evolution strategy
  (:mod:`neuroflux.agents.evolution`);
* ``swarm``: the best rule strategies and a neural policy fused by
  :mod:`neuroflux.agents.swarm`;
* ``flux``: the best rule strategy with its position sized by the flux estimator
  (:mod:`neuroflux.agents.flux`).

The best rule strategy is chosen on the training period only (:func:`best_rule`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pandas as pd
from flax import serialization

from neuroflux import __version__, envs, strategies
from neuroflux.agents import evolution, flux, neural, ppo, swarm
from neuroflux.backtest import Bars, SimulationConfig, SimulationParams, simulate
from neuroflux.envs import EnvConfig, Market, TradingEnv
from neuroflux.research.backtests import BacktestRun, _checked_frame
from neuroflux.research.sweeps import run_sweep
from neuroflux.strategies.steps import STEP_STRATEGIES, Bar, StepStrategy, run_steps

__all__ = [
    "AGENT_KINDS",
    "RULE_GRIDS",
    "RuleChoice",
    "TrainedAgent",
    "agent_bars",
    "agent_decision",
    "agent_positions",
    "backtest_agent",
    "backtest_positions",
    "best_rule",
    "best_rules",
    "flux_frame",
    "load_agent",
    "out_of_sample_start",
    "rule_positions",
    "save_agent",
    "train_agent",
]

AGENT_KINDS = ("ppo", "neural", "evolution", "swarm", "flux")
_DIRECTIONS = ["long_short", "long_only"]
RULE_GRIDS: Mapping[str, Mapping[str, list]] = {
    "sma_cross": {
        "fast": [5, 10, 20, 50],
        "slow": [20, 50, 100, 200],
        "direction": _DIRECTIONS,
    },
    "ema_cross": {
        "fast": [5, 10, 20, 50],
        "slow": [20, 50, 100, 200],
        "direction": _DIRECTIONS,
    },
    "rsi_reversion": {
        "period": [7, 14, 21],
        "lower": [20.0, 30.0, 40.0],
        "upper": [60.0, 70.0, 80.0],
        "direction": _DIRECTIONS,
    },
}


def agent_bars(frame: pd.DataFrame) -> Bar:
    """The :class:`Bar` series [T] of a validated OHLCV frame (volume required)."""
    missing = frame["volume"].isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"column 'volume' is missing at {int(missing.sum())} bar(s) (first: "
            f"{frame.index[missing][0]}); the agents' volume feature needs it"
        )
    return Bar.from_arrays(
        frame["close"].to_numpy(np.float64),
        **{
            name: frame[name].to_numpy(np.float64)
            for name in ("open", "high", "low", "volume")
        },
    )


@dataclasses.dataclass(frozen=True)
class RuleChoice:
    """The rule strategy with the best training Sharpe ratio, and what was tried.

    Attributes:
        strategy: Registry name.
        params: Its parameter overrides (JSON-able).
        sharpe_ratio: Its Sharpe ratio on the training period.
        trials: Every combination tried (one row each, with its statistics).
    """

    strategy: str
    params: Mapping[str, Any]
    sharpe_ratio: float
    trials: pd.DataFrame

    def make_params(self) -> Any:
        return strategies.make_params(self.strategy, **self.params)


def best_rules(
    train: pd.DataFrame, *, commission: float = 0.001
) -> dict[str, RuleChoice]:
    """The best parameters of each rule in :data:`RULE_GRIDS` on the training bars.

    Each grid is swept with :func:`~neuroflux.research.run_sweep` (fast windows below
    slow ones) and the combination with the highest Sharpe ratio is kept.
    """
    choices = {}
    for name, grid in RULE_GRIDS.items():
        trials = run_sweep(train, name, grid, commission=commission, progress=False)
        if "slow" in grid:
            trials = trials[trials["fast"] < trials["slow"]].reset_index(drop=True)
        best = trials.loc[trials["sharpe_ratio"].idxmax()]
        params = {field: _plain(best[field]) for field in grid}
        choices[name] = RuleChoice(name, params, float(best["sharpe_ratio"]), trials)
    return choices


def best_rule(choices: Mapping[str, RuleChoice]) -> RuleChoice:
    """The rule with the highest training Sharpe ratio among :func:`best_rules`."""
    return max(choices.values(), key=lambda choice: choice.sharpe_ratio)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return getattr(value, "value", value)  # a Direction enum -> its string


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedAgent:
    """Agents of one kind, one per seed, and how they were made.

    Attributes:
        kind: One of :data:`AGENT_KINDS`.
        settings: JSON-able settings that rebuild the step function (configs, the
            rule strategy and its parameters, the fusion rule).
        params: One parameter pytree per seed, stacked along a leading axis.
        seeds: The seeds.
        train_start: First training bar.
        train_end: Last training bar.
        history: Training curve per seed (one column each; empty where the kind has
            none).
    """

    kind: str
    settings: Mapping[str, Any]
    params: Any
    seeds: tuple[int, ...]
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    history: pd.DataFrame

    @functools.cached_property
    def step(self) -> StepStrategy:
        """The step strategy every seed's parameters run in."""
        return _KINDS[self.kind].step(self.settings)


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


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _unstack(tree: Any, count: int) -> list[Any]:
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
    members = [(*rules, policy) for policy in _unstack(layers, len(keys))]
    return _stack([swarm.SwarmParams(members=m) for m in members]), history


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
    return _stack([_flux_params(settings)] * len(keys)), np.empty((0, len(keys)))


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


_KINDS: Mapping[str, _Kind] = {
    "ppo": _Kind(_ppo_settings, _ppo_train, _ppo_step, _ppo_init),
    "neural": _Kind(_neural_settings, _neural_train, _neural_step, _neural_init),
    "evolution": _Kind(
        _evolution_settings, _evolution_train, _evolution_step, _evolution_init
    ),
    "swarm": _Kind(_swarm_settings, _swarm_train, _swarm_step, _swarm_init),
    "flux": _Kind(_flux_settings, _flux_train, _flux_step, _flux_init),
}


def out_of_sample_start(
    frame: pd.DataFrame, test_start: str | pd.Timestamp
) -> pd.Timestamp:
    """``test_start`` as a UTC timestamp that leaves training and test bars."""
    start = pd.Timestamp(test_start)
    if start.tzinfo is None:
        start = start.tz_localize("UTC")
    before = int((frame.index < start).sum())
    if before == 0 or before == len(frame):
        raise ValueError(
            f"test_start={start.date()} leaves no training or no test bars in "
            f"{frame.index[0].date()} .. {frame.index[-1].date()}"
        )
    return start


def train_agent(
    kind: str,
    data: pd.DataFrame,
    *,
    test_start: str | pd.Timestamp,
    seeds: int | Sequence[int] = 5,
    commission: float = 0.001,
    rules: Mapping[str, RuleChoice] | None = None,
    **options: Any,
) -> TrainedAgent:
    """Train one agent per seed on the bars before ``test_start``.

    Args:
        kind: One of :data:`AGENT_KINDS`.
        data: One asset's OHLCV frame (volume included).
        test_start: First bar that training must not see.
        seeds: A number of seeds (0, 1, ...) or the seeds themselves (the flux
            agent, which has nothing random, keeps the first only).
        commission: Proportional cost per unit traded, used in training.
        rules: The best rule strategies of the training period (:func:`best_rules`);
            chosen here when omitted and the kind needs them.
        **options: Settings of the kind: ``env`` and ``ppo`` (ppo), ``neural``
            (neural, swarm), ``evolution``, ``fusion`` (swarm), ``flux`` and
            ``size_weight`` (flux): dicts of config fields, or values.

    Returns:
        The :class:`TrainedAgent`.

    Raises:
        ValueError: Unknown kind or setting, no training or test bars, missing volume.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown agent kind {kind!r}; expected one of {AGENT_KINDS}")
    frame = _checked_frame(data)
    train = frame[frame.index < out_of_sample_start(frame, test_start)]
    seeds = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    if kind == "flux":
        seeds = seeds[:1]  # nothing in it is random: one seed is the whole story
    if kind in ("swarm", "flux") and rules is None:
        rules = best_rules(train, commission=commission)
    settings = _KINDS[kind].settings(options, rules or {}, commission)
    keys = jnp.stack([jax.random.key(seed) for seed in seeds])
    params, history = _KINDS[kind].train(keys, agent_bars(train), settings)
    return TrainedAgent(
        kind=kind,
        settings=json.loads(json.dumps(settings)),
        params=params,
        seeds=seeds,
        train_start=train.index[0],
        train_end=train.index[-1],
        history=pd.DataFrame(history, columns=[f"seed_{s}" for s in seeds]),
    )


def agent_decision(
    agent: TrainedAgent, seed_index: int = 0
) -> tuple[StepStrategy, Any]:
    """The step strategy of ``agent`` and the parameters of its ``seed_index``-th seed.

    What a live runner drives bar by bar: ``step(state, bar, params)`` gives the same
    actions as :func:`agent_positions`'s column of that seed.

    Raises:
        IndexError: ``seed_index`` is not in ``0 .. len(agent.seeds) - 1``.
    """
    if not 0 <= seed_index < len(agent.seeds):
        raise IndexError(
            f"seed_index {seed_index} out of range: the agent has {len(agent.seeds)} "
            f"seed(s) {list(agent.seeds)}"
        )
    return agent.step, _unstack(agent.params, len(agent.seeds))[seed_index]


@functools.partial(jax.jit, static_argnums=0)
def _decisions(step: StepStrategy, params: Any, bars: Bar) -> jax.Array:
    return jax.vmap(lambda p: run_steps(step, p, bars)[1])(params)


def flux_frame(
    data: pd.DataFrame, config: flux.FluxConfig | None = None
) -> pd.DataFrame:
    """The flux estimator's components and flux at every bar of ``data`` ([T, 4])."""
    frame = _checked_frame(data)
    config = config or flux.FluxConfig()
    bars = agent_bars(frame)
    columns = dict(flux.flux_components(bars, config))
    columns["flux"] = flux.market_flux(bars, config)
    return pd.DataFrame(
        {name: np.asarray(values) for name, values in columns.items()},
        index=frame.index,
    )


def rule_positions(frame: pd.DataFrame, choice: RuleChoice) -> pd.Series:
    """The rule's target positions at every bar, from its step function."""
    params = _stack([choice.make_params()])
    actions = _decisions(STEP_STRATEGIES[choice.strategy], params, agent_bars(frame))
    return pd.Series(np.asarray(actions)[0], index=frame.index)


def agent_positions(agent: TrainedAgent, data: pd.DataFrame) -> pd.DataFrame:
    """Each seed's target positions at every bar, from its step function.

    Returns:
        [T, seeds] frame indexed like ``data``; flat until the agent's warm-up is over.
    """
    frame = _checked_frame(data)
    actions = _decisions(agent.step, agent.params, agent_bars(frame))
    return pd.DataFrame(
        np.asarray(actions).T,
        index=frame.index,
        columns=[f"seed_{s}" for s in agent.seeds],
    )


def backtest_positions(
    frame: pd.DataFrame,
    positions: pd.Series,
    name: str,
    *,
    start: pd.Timestamp,
    commission: float,
    slippage: float = 0.0,
    periods_per_year: float = 252.0,
) -> BacktestRun:
    """Backtest target positions on the bars from ``start`` (close fills)."""
    test = frame.index >= start
    bars = Bars(
        *(
            jnp.asarray(frame.loc[test, c].to_numpy(np.float64))
            for c in ("open", "high", "low", "close")
        )
    )
    params = SimulationParams(fees=float(commission), slippage=float(slippage))
    config = SimulationConfig()
    target = jnp.asarray(positions.to_numpy(np.float64)[test])
    return BacktestRun(
        index=frame.index[test],
        bars=bars,
        strategy=name,
        params=None,
        simulation_params=params,
        config=config,
        result=_simulate(bars, target, params, config),
        periods_per_year=float(periods_per_year),
    )


@functools.partial(jax.jit, static_argnums=3)
def _simulate(bars, target, params, config):
    return simulate(bars, target, params, config)


def backtest_agent(
    agent: TrainedAgent,
    data: pd.DataFrame,
    *,
    start: str | pd.Timestamp,
    commission: float = 0.001,
    slippage: float = 0.0,
    periods_per_year: float = 252.0,
) -> list[BacktestRun]:
    """One backtest per seed of the agent's decisions on the bars from ``start``.

    The step function runs over every bar of ``data`` (so its window is filled when
    the test period begins); the positions from ``start`` on are simulated with
    :func:`neuroflux.backtest.simulate` (fills at the close, ``commission`` and
    ``slippage`` per order).

    Raises:
        ValueError: ``start`` leaves no bars, or it lies inside the training period.
    """
    frame = _checked_frame(data)
    start = out_of_sample_start(frame, start)
    if start <= agent.train_end:
        raise ValueError(
            f"start={start.date()} is inside the training period (to "
            f"{agent.train_end.date()}): that would not be out of sample"
        )
    positions = agent_positions(agent, frame)
    return [
        backtest_positions(
            frame,
            positions[column],
            f"{agent.kind} ({column.replace('_', ' ')})",
            start=start,
            commission=commission,
            slippage=slippage,
            periods_per_year=periods_per_year,
        )
        for column in positions
    ]


def save_agent(agent: TrainedAgent, path: str | pathlib.Path) -> pathlib.Path:
    """Write ``path/params`` (orbax) and ``path/agent.json`` (kind, settings, seeds).

    Raises:
        FileExistsError: ``path`` exists.
    """
    path = pathlib.Path(path).absolute()
    if path.exists():
        raise FileExistsError(f"agent directory {path} already exists")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path / "params", serialization.to_state_dict(agent.params))
        checkpointer.wait_until_finished()
    description = {
        "kind": agent.kind,
        "settings": agent.settings,
        "seeds": list(agent.seeds),
        "train_start": agent.train_start.isoformat(),
        "train_end": agent.train_end.isoformat(),
        "neuroflux_version": __version__,
        "history": agent.history.to_dict(orient="list"),
    }
    (path / "agent.json").write_text(json.dumps(description, indent=2))
    return path


def load_agent(path: str | pathlib.Path) -> TrainedAgent:
    """The agent saved by :func:`save_agent`; its decisions are identical.

    Raises:
        FileNotFoundError: No ``agent.json`` under ``path``.
        ValueError: An unknown kind in it.
    """
    path = pathlib.Path(path).absolute()
    description_file = path / "agent.json"
    if not description_file.exists():
        raise FileNotFoundError(
            f"{description_file}: not an agent directory (no agent.json)"
        )
    description = json.loads(description_file.read_text())
    kind = description["kind"]
    if kind not in _KINDS:
        raise ValueError(
            f"{description_file}: unknown agent kind {kind!r}; "
            f"expected one of {AGENT_KINDS}"
        )
    seeds = tuple(description["seeds"])
    settings = description["settings"]
    template = _stack([_KINDS[kind].init(settings, jax.random.key(0))] * len(seeds))
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(
            path / "params", serialization.to_state_dict(template)
        )
    return TrainedAgent(
        kind=kind,
        settings=settings,
        params=serialization.from_state_dict(template, restored),
        seeds=seeds,
        train_start=pd.Timestamp(description["train_start"]),
        train_end=pd.Timestamp(description["train_end"]),
        history=pd.DataFrame(description["history"]),
    )
