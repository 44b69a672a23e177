"""Rule selection for the agents: the best rule strategies of a training period.

:data:`RULE_GRIDS` holds the parameter grid of each rule strategy; :func:`best_rules`
sweeps them on the training bars and keeps each rule's best combination as a
:class:`RuleChoice`; :func:`best_rule` picks the best of those. The swarm agent fuses
the chosen rules and the flux agent sizes the best one
(:mod:`neuroflux.research.agent_kinds`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from neuroflux import strategies
from neuroflux.research.sweeps import run_sweep

__all__ = ["RULE_GRIDS", "RuleChoice", "best_rule", "best_rules"]

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
