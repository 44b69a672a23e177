"""Agents against buy-and-hold and the best rule strategy, out of sample, after costs.

:func:`compare_agents` chooses the best rule strategy of each family on the training
period (:func:`~neuroflux.research.agent_rules.best_rules`), trains every agent kind
over several seeds on the same period, and backtests everything on the test period with
the same costs. The table reports per-seed means and standard deviations of the test
statistics, the probabilistic Sharpe ratio (PSR, against 0) and the deflated Sharpe
ratio (DSR), averaged over the seeds that traded, and whether each agent beat the
baselines; the verdict says it in words.

DSR: the number of trials is every configuration this comparison tried (each rule
combination swept on the training period, plus one per agent kind), and the variance
of the trials' Sharpe ratios is that of the rule combinations' training Sharpe ratios
(per bar). Seeds of one agent are averaged, not selected, so they are not trials.

The flux agent is the best rule strategy sized by the flux estimator, so its baseline
"without flux" is the ``best_rule`` row; it has nothing random, hence one seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from neuroflux import metrics
from neuroflux.research import agent_rules
from neuroflux.research import agents as agent_runs
from neuroflux.research.backtests import BacktestRun, _checked_frame

__all__ = ["AgentComparison", "compare_agents"]

BUY_AND_HOLD = "buy_and_hold"
BEST_RULE = "best_rule"


@dataclasses.dataclass(frozen=True)
class AgentComparison:
    """The out-of-sample comparison.

    Attributes:
        table: One row per agent kind and baseline: Sharpe ratio, total return, max
            drawdown and trades (mean and std over seeds), PSR, DSR, seeds, and
            whether the mean Sharpe ratio beats each baseline.
        runs: Name -> one :class:`~neuroflux.research.BacktestRun` per seed (one for
            a baseline).
        equity: Per test bar, each row's equity over initial cash (mean over seeds).
        agents: The trained agents by kind.
        rules: The best rule of each family on the training period.
        best_rule: The best of them: the ``best_rule`` row, and the flux agent's
            inner strategy.
        verdict: The result in words.
    """

    table: pd.DataFrame
    runs: Mapping[str, list[BacktestRun]]
    equity: pd.DataFrame
    agents: Mapping[str, agent_runs.TrainedAgent]
    rules: Mapping[str, agent_rules.RuleChoice]
    best_rule: agent_rules.RuleChoice
    verdict: str

    def rules_table(self) -> pd.DataFrame:
        """The best parameters of each rule family and their training Sharpe ratio."""
        return pd.DataFrame(
            {
                name: {
                    "params": dict(choice.params),
                    "training_sharpe_ratio": choice.sharpe_ratio,
                    "combinations": len(choice.trials),
                }
                for name, choice in self.rules.items()
            }
        ).T

    def training_history(self) -> pd.DataFrame:
        """Training curves in long form: ``kind``, ``seed``, ``update``, ``value``."""
        frames = [
            agent.history.rename_axis("update")
            .reset_index()
            .melt(id_vars="update", var_name="seed", value_name="value")
            .assign(kind=kind)
            for kind, agent in self.agents.items()
            if len(agent.history)
        ]
        return pd.concat(frames, ignore_index=True)

    def positions(self, seed: int = 0) -> pd.DataFrame:
        """Each agent's target positions over the test period, for one seed index."""
        return pd.DataFrame(
            {
                kind: np.asarray(runs[seed].result.target)
                for kind, runs in self.runs.items()
                if kind in self.agents
            },
            index=self.equity.index,
        )


def _row(runs: list[BacktestRun], trials: int, trial_variance: float) -> dict:
    stats = pd.DataFrame([run.stats() for run in runs]).astype(float)
    returns = [np.asarray(run.result.returns) for run in runs]
    psr = [float(metrics.probabilistic_sharpe_ratio(r)) for r in returns]
    dsr = [
        float(metrics.deflated_sharpe_ratio(r, trials, trial_variance)) for r in returns
    ]
    row = {}
    for name in ("sharpe_ratio", "return_pct", "max_drawdown_pct", "trades"):
        row[f"{name}_mean"] = stats[name].mean()
        row[f"{name}_std"] = stats[name].std(ddof=1) if len(runs) > 1 else 0.0
    # A seed that never trades has no Sharpe ratio to test: it is left out.
    row["psr"] = float(np.nanmean(psr)) if np.isfinite(psr).any() else np.nan
    row["dsr"] = float(np.nanmean(dsr)) if np.isfinite(dsr).any() else np.nan
    row["seeds"] = len(runs)
    return row


def _verdict(
    table: pd.DataFrame, kinds: Sequence[str], best_rule: agent_rules.RuleChoice
) -> str:
    hold = table.loc[BUY_AND_HOLD, "sharpe_ratio_mean"]
    rule = table.loc[BEST_RULE, "sharpe_ratio_mean"]
    lines = [
        f"Out of sample, buy-and-hold has Sharpe {hold:.2f} and the best rule "
        f"strategy of the training period ({best_rule.strategy} "
        f"{dict(best_rule.params)}) {rule:.2f}."
    ]
    for kind in kinds:
        row = table.loc[kind]
        beaten = [
            name
            for name, value in ((BUY_AND_HOLD, hold), (BEST_RULE, rule))
            if row["sharpe_ratio_mean"] > value
        ]
        if len(beaten) == 2:
            outcome = "beats both baselines"
        elif beaten:
            outcome = f"beats {beaten[0]} only"
        else:
            outcome = "beats neither baseline"
        lines.append(
            f"{kind}: Sharpe {row['sharpe_ratio_mean']:.2f} ± "
            f"{row['sharpe_ratio_std']:.2f} over {int(row['seeds'])} seed(s), "
            f"{outcome} (PSR {row['psr']:.2f}, DSR {row['dsr']:.2f})."
            + (" It is the best rule sized by flux." if kind == "flux" else "")
        )
    return "\n".join(lines)


def compare_agents(
    data: pd.DataFrame,
    *,
    test_start: str | pd.Timestamp,
    kinds: Sequence[str] = agent_runs.AGENT_KINDS,
    seeds: int | Sequence[int] = 5,
    commission: float = 0.001,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    periods_per_year: float = 252.0,
) -> AgentComparison:
    """Train each agent kind on the bars before ``test_start``; test all after it.

    Args:
        data: One asset's OHLCV frame (volume included).
        test_start: First out-of-sample bar.
        kinds: Agent kinds to train (:data:`~neuroflux.research.agents.AGENT_KINDS`).
        seeds: Seeds per agent kind.
        commission: Proportional cost per order, in training and in the backtests.
        options: Kind -> settings of :func:`~neuroflux.research.agents.train_agent`.
        periods_per_year: Bars per year, for annualised statistics.

    Returns:
        The :class:`AgentComparison`.
    """
    unknown = set(kinds) - set(agent_runs.AGENT_KINDS)
    if unknown:
        raise ValueError(
            f"unknown agent kinds {sorted(unknown)}; expected {agent_runs.AGENT_KINDS}"
        )
    frame = _checked_frame(data)
    start = agent_runs.out_of_sample_start(frame, test_start)
    rules = agent_rules.best_rules(frame[frame.index < start], commission=commission)
    chosen = agent_rules.best_rule(rules)
    trials = pd.concat([choice.trials for choice in rules.values()])
    trial_count = len(trials) + len(kinds)
    trial_variance = float(np.var(trials["sharpe_ratio"] / np.sqrt(periods_per_year)))
    backtest = dict(
        start=start, commission=commission, periods_per_year=periods_per_year
    )
    runs = {
        BUY_AND_HOLD: [
            agent_runs.backtest_positions(
                frame, pd.Series(1.0, index=frame.index), BUY_AND_HOLD, **backtest
            )
        ],
        BEST_RULE: [
            agent_runs.backtest_positions(
                frame, agent_runs.rule_positions(frame, chosen), BEST_RULE, **backtest
            )
        ],
    }
    trained = {}
    for kind in kinds:
        trained[kind] = agent_runs.train_agent(
            kind,
            frame,
            test_start=start,
            seeds=seeds,
            commission=commission,
            rules=rules,
            **dict((options or {}).get(kind, {})),
        )
        runs[kind] = agent_runs.backtest_agent(
            trained[kind],
            frame,
            start=start,
            commission=commission,
            periods_per_year=periods_per_year,
        )
    table = pd.DataFrame(
        {name: _row(group, trial_count, trial_variance) for name, group in runs.items()}
    ).T
    for name in (BUY_AND_HOLD, BEST_RULE):
        table[f"beats_{name}"] = (
            table["sharpe_ratio_mean"] > table.loc[name, "sharpe_ratio_mean"]
        )
    equity = pd.DataFrame(
        {
            name: np.mean(
                [np.asarray(run.result.value) / 10_000.0 for run in group], axis=0
            )
            for name, group in runs.items()
        },
        index=runs[BUY_AND_HOLD][0].index,
    )
    return AgentComparison(
        table=table,
        runs=runs,
        equity=equity,
        agents=trained,
        rules=rules,
        best_rule=chosen,
        verdict=_verdict(table, kinds, chosen),
    )
