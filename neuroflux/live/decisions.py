"""The decision step of a live cycle: every agent's pure step, their health, consensus.

Each agent is a :class:`~neuroflux.strategies.steps.StepStrategy` with its params, the
very function the backtest drives with ``lax.scan``; here it is jitted once and called
bar by bar, one state per symbol. A step that raises (or returns a non-finite target)
leaves the agent's state as it was, counts as an error and, after
``max_errors`` consecutive ones, isolates the agent: it takes no further part in the
consensus, and the cycle goes on with the others.

Consensus is the mean target of the agents that are not isolated (one agent: its
target, bit for bit). With every agent isolated the consensus is ``None``: the runner
then places no order for the symbol.

Health per agent: the last decision latency, errors, isolation and signal rate (the
fraction of decisions that changed the agent's target), reported in every cycle event.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import serialization

from neuroflux.live.orders import BarEvent
from neuroflux.strategies.steps import Bar, StepStrategy

__all__ = ["Agent", "AgentHealth", "Decisions"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Agent:
    """A named step strategy and its parameters."""

    name: str
    strategy: StepStrategy
    params: Any


@dataclasses.dataclass(kw_only=True)
class AgentHealth:
    """What the cycle saw of one agent."""

    latency_ms: float = 0.0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str = ""
    isolated: bool = False
    decisions: int = 0
    changes: int = 0

    @property
    def signal_rate(self) -> float:
        return self.changes / self.decisions if self.decisions else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "ok": self.consecutive_errors == 0,
            "error": self.last_error,
            "errors": self.errors,
            "isolated": self.isolated,
            "signal_rate": self.signal_rate,
        }


def _bar(event: BarEvent) -> Bar:
    # numpy scalars go into the jitted step as they are: no device round trip per field
    return Bar(
        open=np.float64(event.open),
        high=np.float64(event.high),
        low=np.float64(event.low),
        close=np.float64(event.close),
        volume=np.float64(event.volume),
    )


class Decisions:
    """The agents' states over ``symbols`` and their health."""

    def __init__(
        self, agents: Sequence[Agent], symbols: Sequence[str], *, max_errors: int = 3
    ) -> None:
        names = [agent.name for agent in agents]
        if not agents or len(set(names)) != len(names):
            raise ValueError(f"agents need distinct names, at least one; got {names}")
        self.agents = tuple(agents)
        self.symbols = tuple(symbols)
        self.max_errors = max_errors
        self._steps = {agent.name: jax.jit(agent.strategy.step) for agent in agents}
        self.states = {
            agent.name: {s: agent.strategy.init(agent.params) for s in symbols}
            for agent in agents
        }
        self.targets = {agent.name: dict.fromkeys(symbols, 0.0) for agent in agents}
        self.health = {agent.name: AgentHealth() for agent in agents}

    def decide(self, bars: Mapping[str, BarEvent]) -> dict[str, float | None]:
        """Steps every active agent on every symbol's bar; the consensus targets."""
        for agent in self.agents:
            health = self.health[agent.name]
            if health.isolated:
                continue
            started = time.perf_counter()
            try:
                targets = self._step(agent, bars)
            except Exception as error:  # an agent's failure is its own, not the cycle's
                health.errors += 1
                health.consecutive_errors += 1
                health.last_error = f"{type(error).__name__}: {error}"
                health.isolated = health.consecutive_errors >= self.max_errors
                continue
            finally:
                health.latency_ms = (time.perf_counter() - started) * 1e3
            health.consecutive_errors, health.last_error = 0, ""
            health.decisions += 1
            previous = self.targets[agent.name]
            health.changes += any(targets[s] != previous[s] for s in targets)
            self.targets[agent.name] = targets
        return self.consensus()

    def _step(self, agent: Agent, bars: Mapping[str, BarEvent]) -> dict[str, float]:
        states, targets = {}, {}
        for symbol, event in bars.items():
            state, target = self._steps[agent.name](
                self.states[agent.name][symbol], _bar(event), agent.params
            )
            target = float(target)
            if not math.isfinite(target):
                raise ValueError(f"target {target} for {symbol} at bar {event.time}")
            states[symbol], targets[symbol] = state, target
        self.states[agent.name].update(states)  # only once every symbol succeeded
        return targets

    def consensus(self) -> dict[str, float | None]:
        active = [a.name for a in self.agents if not self.health[a.name].isolated]
        if not active:
            return dict.fromkeys(self.symbols)
        if len(active) == 1:
            return dict(self.targets[active[0]])
        return {
            s: float(np.mean([self.targets[name][s] for name in active]))
            for s in self.symbols
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "states": serialization.to_state_dict(self.states),
            "targets": self.targets,
            "health": {n: dataclasses.asdict(h) for n, h in self.health.items()},
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Restores what :meth:`state_dict` returned (after a restart)."""
        self.states = serialization.from_state_dict(self.states, saved["states"])
        self.targets = {
            name: {s: float(v) for s, v in targets.items()}
            for name, targets in saved["targets"].items()
        }
        self.health = {n: AgentHealth(**h) for n, h in saved["health"].items()}
