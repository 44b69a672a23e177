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

The best rule strategy is chosen on the training period only
(:func:`~neuroflux.research.agent_rules.best_rule`). The recipe of each kind lives
in :mod:`neuroflux.research.agent_kinds`, rule selection in
:mod:`neuroflux.research.agent_rules`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pandas as pd
from flax import serialization

from neuroflux import __version__
from neuroflux.agents import flux
from neuroflux.backtest import Bars, SimulationConfig, SimulationParams, simulate
from neuroflux.research.agent_kinds import KINDS, stack, unstack
from neuroflux.research.agent_rules import RuleChoice, best_rules
from neuroflux.research.backtests import BacktestRun, _checked_frame
from neuroflux.strategies.steps import STEP_STRATEGIES, Bar, StepStrategy, run_steps

__all__ = [
    "AGENT_KINDS",
    "TrainedAgent",
    "agent_bars",
    "agent_decision",
    "agent_positions",
    "backtest_agent",
    "backtest_positions",
    "flux_frame",
    "load_agent",
    "out_of_sample_start",
    "rule_positions",
    "save_agent",
    "train_agent",
]

AGENT_KINDS = ("ppo", "neural", "evolution", "swarm", "flux")


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
        return KINDS[self.kind].step(self.settings)


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
    if kind not in KINDS:
        raise ValueError(f"unknown agent kind {kind!r}; expected one of {AGENT_KINDS}")
    frame = _checked_frame(data)
    train = frame[frame.index < out_of_sample_start(frame, test_start)]
    seeds = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    if kind == "flux":
        seeds = seeds[:1]  # nothing in it is random: one seed is the whole story
    if kind in ("swarm", "flux") and rules is None:
        rules = best_rules(train, commission=commission)
    settings = KINDS[kind].settings(options, rules or {}, commission)
    keys = jnp.stack([jax.random.key(seed) for seed in seeds])
    params, history = KINDS[kind].train(keys, agent_bars(train), settings)
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
    return agent.step, unstack(agent.params, len(agent.seeds))[seed_index]


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
    params = stack([choice.make_params()])
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
    if kind not in KINDS:
        raise ValueError(
            f"{description_file}: unknown agent kind {kind!r}; "
            f"expected one of {AGENT_KINDS}"
        )
    seeds = tuple(description["seeds"])
    settings = description["settings"]
    template = stack([KINDS[kind].init(settings, jax.random.key(0))] * len(seeds))
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
