"""Agents on real bars: training over seeds, the step function as the one decision
path (bar by bar equals the scan), out-of-sample backtests, checkpoints, errors."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

from neuroflux.backtest import (
    Bars,
    SimulationConfig,
    SimulationParams,
    simulate,
)
from neuroflux.data import load_sample
from neuroflux.research import run_backtest
from neuroflux.research.agent_comparison import compare_agents
from neuroflux.research.agent_rules import best_rule, best_rules
from neuroflux.research.agents import (
    AGENT_KINDS,
    agent_bars,
    agent_positions,
    backtest_agent,
    load_agent,
    save_agent,
    train_agent,
)

TEST_START = "2013-01-01"
# Small settings: the point here is the plumbing, not the agents' quality.
OPTIONS = {
    "ppo": {
        "env": {"window": 4, "episode_length": 64},
        "ppo": {"num_envs": 8, "num_steps": 32, "total_timesteps": 2048},
    },
    "neural": {"neural": {"window": 4, "hidden_sizes": [8], "steps": 20}},
    "evolution": {
        "evolution": {
            "window": 4,
            "hidden_sizes": [8],
            "population": 8,
            "generations": 5,
        }
    },
    "swarm": {"neural": {"window": 4, "hidden_sizes": [8], "steps": 20}},
    "flux": {"flux": {"regime_window": 60}},
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return load_sample("sp500").loc["2010-01-01":"2014-06-30"]


@pytest.fixture(scope="module")
def rules(frame):
    return best_rules(frame.loc[:"2012-12-31"], commission=0.001)


@pytest.fixture(scope="module")
def trained(frame, rules):
    return {
        kind: train_agent(
            kind,
            frame,
            test_start=TEST_START,
            seeds=2,
            rules=rules,
            **OPTIONS[kind],
        )
        for kind in AGENT_KINDS
    }


def test_best_rules_are_the_sweeps_best_and_reproduce(frame, rules):
    train = frame.loc[:"2012-12-31"]
    for name, choice in rules.items():
        assert choice.sharpe_ratio == choice.trials["sharpe_ratio"].max()
        rerun = run_backtest(train, name, choice.params, commission=0.001)
        assert rerun.stats()["sharpe_ratio"] == pytest.approx(choice.sharpe_ratio)
    chosen = best_rule(rules)
    assert chosen.sharpe_ratio == max(choice.sharpe_ratio for choice in rules.values())


@pytest.mark.parametrize("kind", AGENT_KINDS)
def test_step_function_bar_by_bar_equals_the_backtest_scan(kind, frame, trained):
    """The live runner's path (one jitted step per bar) gives the scan's actions."""
    agent = trained[kind]
    window = frame.iloc[:160]
    scanned = agent_positions(agent, window).iloc[:, -1].to_numpy()
    params = jax.tree.map(lambda leaf: leaf[-1], agent.params)
    step = jax.jit(agent.step.step)
    state = agent.step.init(params)
    bars = agent_bars(window)
    live = []
    for t in range(len(window)):
        state, action = step(state, jax.tree.map(lambda x, t=t: x[t], bars), params)
        live.append(float(action))
    np.testing.assert_array_equal(np.asarray(live), scanned)
    assert np.all(np.abs(scanned) <= 1)


@pytest.mark.parametrize("kind", AGENT_KINDS)
def test_out_of_sample_backtest_is_the_engines_result(kind, frame, trained):
    agent = trained[kind]
    runs = backtest_agent(agent, frame, start=TEST_START, commission=0.001)
    assert len(runs) == len(agent.seeds) == (1 if kind == "flux" else 2)
    positions = agent_positions(agent, frame)
    test = frame.index >= pd.Timestamp(TEST_START, tz="UTC")
    for run, column in zip(runs, positions, strict=True):
        assert run.index[0] == frame.index[test][0]
        expected = simulate(
            Bars(
                *(
                    frame.loc[test, c].to_numpy()
                    for c in ("open", "high", "low", "close")
                )
            ),
            positions.loc[test, column].to_numpy(),
            SimulationParams(fees=0.001),
            SimulationConfig(),
        )
        np.testing.assert_allclose(run.result.value, expected.value, rtol=1e-12)
        stats = run.stats()
        assert np.isfinite(stats["sharpe_ratio"]) or stats["trades"] == 0


def test_training_sees_no_test_bar(frame, trained):
    for agent in trained.values():
        assert agent.train_end < pd.Timestamp(TEST_START, tz="UTC")
        assert agent.train_start == frame.index[0]


def test_saved_agent_decides_identically(tmp_path, frame, trained):
    for kind, agent in trained.items():
        path = save_agent(agent, tmp_path / kind)
        loaded = load_agent(path)
        assert loaded.kind == kind and loaded.seeds == agent.seeds
        assert loaded.settings == agent.settings
        pd.testing.assert_frame_equal(
            agent_positions(loaded, frame), agent_positions(agent, frame)
        )
    with pytest.raises(FileExistsError, match="already exists"):
        save_agent(trained["flux"], tmp_path / "flux")
    with pytest.raises(FileNotFoundError, match=r"agent\.json"):
        load_agent(tmp_path)


def test_bad_requests_are_named(frame, trained, rules):
    with pytest.raises(ValueError, match="unknown agent kind 'dqn'"):
        train_agent("dqn", frame, test_start=TEST_START)
    with pytest.raises(ValueError, match="unknown PPOConfig settings \\['epochs'\\]"):
        train_agent("ppo", frame, test_start=TEST_START, ppo={"epochs": 3})
    with pytest.raises(ValueError, match="no training or no test bars"):
        train_agent("flux", frame, test_start="2030-01-01", rules=rules)
    with pytest.raises(ValueError, match="inside the training period"):
        backtest_agent(trained["flux"], frame, start="2012-06-01")
    holes = frame.copy()
    holes.iloc[5, holes.columns.get_loc("volume")] = np.nan
    with pytest.raises(ValueError, match="column 'volume' is missing at 1 bar"):
        agent_bars(holes)


def test_comparison_table_and_verdict_agree(frame):
    comparison = compare_agents(
        frame,
        test_start=TEST_START,
        kinds=("neural", "flux"),
        seeds=2,
        options={kind: OPTIONS[kind] for kind in ("neural", "flux")},
    )
    table = comparison.table
    assert list(table.index) == ["buy_and_hold", "best_rule", "neural", "flux"]
    assert comparison.best_rule.strategy in comparison.rules
    for name, runs in comparison.runs.items():
        sharpes = [run.stats()["sharpe_ratio"] for run in runs]
        assert table.loc[name, "sharpe_ratio_mean"] == pytest.approx(np.mean(sharpes))
        assert table.loc[name, "seeds"] == len(runs)
        assert 0 <= table.loc[name, "psr"] <= 1 and table.loc[name, "dsr"] <= 1
    hold = table.loc["buy_and_hold", "sharpe_ratio_mean"]
    assert (table["beats_buy_and_hold"] == (table["sharpe_ratio_mean"] > hold)).all()
    # the best-rule row is the chosen rule's own backtest over the test bars
    rule = comparison.runs["best_rule"][0]
    rerun = run_backtest(
        frame, comparison.best_rule.strategy, comparison.best_rule.params,
        commission=0.001,
    )  # fmt: skip
    test = rerun.to_frame().index >= pd.Timestamp(TEST_START, tz="UTC")
    np.testing.assert_array_equal(
        np.asarray(rule.result.target), rerun.to_frame()["target"].to_numpy()[test]
    )
    for kind in ("neural", "flux"):
        row = table.loc[kind]
        assert f"{kind}: Sharpe {row['sharpe_ratio_mean']:.2f}" in comparison.verdict
    assert comparison.equity.index.equals(rule.index)
    assert comparison.positions().columns.tolist() == ["neural", "flux"]
    assert set(comparison.training_history()["kind"]) == {"neural"}
