"""`neuroflux agents train` and `agents evaluate`, through typer's CliRunner."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from neuroflux.cli import app
from neuroflux.data import load_sample
from neuroflux.research.agents import backtest_agent, load_agent

runner = CliRunner()
DATA = ["--data", "sample:sp500"]


def test_train_then_evaluate_out_of_sample(tmp_path):
    out = tmp_path / "neural"
    trained = runner.invoke(
        app,
        [
            "agents", "train", "neural", *DATA, "--test-start", "2016-01-01",
            "--seeds", "2", "--out", str(out), "--set", "neural.steps=10",
            "--set", "neural.window=4", "--set", "neural.hidden_sizes=[4]", "--json",
        ],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["path"] == str(out) and summary["seeds"] == [0, 1]
    assert summary["train_end"].startswith("2015-12-31")
    assert summary["settings"]["neural"]["steps"] == 10

    evaluated = runner.invoke(app, ["agents", "evaluate", str(out), *DATA, "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["test_start"].startswith("2016-01-04")
    runs = backtest_agent(
        load_agent(out), load_sample("sp500"), start="2016-01-04", commission=0.001
    )
    sharpes = [float(run.stats()["sharpe_ratio"]) for run in runs]
    assert [report["runs"][run.strategy]["sharpe_ratio"] for run in runs] == sharpes
    assert report["sharpe_ratio_mean"] == np.mean(sharpes)
    assert "buy_and_hold" in report["runs"]

    table = runner.invoke(app, ["agents", "evaluate", str(out), *DATA])
    assert table.exit_code == 0, table.output
    assert "mean Sharpe over 2 seed(s)" in table.stdout


def test_agent_errors_name_the_problem(tmp_path):
    unknown = runner.invoke(
        app, ["agents", "train", "dqn", *DATA, "--test-start", "2016-01-01"]
    )
    assert unknown.exit_code != 0
    assert "unknown agent kind 'dqn'" in str(unknown.exception or unknown.output)
    bad_setting = runner.invoke(
        app,
        ["agents", "train", "neural", *DATA, "--test-start", "2016-01-01",
         "--set", "steps"],
    )  # fmt: skip
    assert bad_setting.exit_code != 0
    assert "expected NAME=VALUE" in bad_setting.output
    missing = runner.invoke(app, ["agents", "evaluate", str(tmp_path), *DATA])
    assert "not an agent directory" in str(missing.exception or missing.output)
