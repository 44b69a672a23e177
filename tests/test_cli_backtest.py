"""`neuroflux backtest` and `neuroflux sweep`, through typer's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from neuroflux import backtest, strategies
from neuroflux.cli import app
from neuroflux.data import load_sample

runner = CliRunner()
GOOG = ["--data", "sample:goog", "--strategy", "sma_cross"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_backtest_json_matches_simulate():
    result = invoke(
        "backtest", *GOOG, "--param", "fast=10", "--param", "slow=30",
        "--param", "wait_for_cross=true", "--compat", "backtesting.py",
        "--commission", "0.002", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    frame = load_sample("goog")
    bars = backtest.Bars(
        *(frame[c].to_numpy() for c in ("open", "high", "low", "close"))
    )
    params = strategies.make_params("sma_cross", fast=10, slow=30, wait_for_cross=True)
    expected = backtest.simulate(
        bars,
        strategies.sma_cross(bars.close, params),
        backtest.SimulationParams(fees=0.002),
        backtest.SimulationConfig.backtesting_py(),
    )
    assert document["trades"] == int(expected.trades.closed.sum()) == 65
    assert document["equity_final"] == pytest.approx(
        float(expected.value[-1]), rel=1e-12
    )
    for key in ("return_pct", "max_drawdown_pct", "sharpe_ratio", "sortino_ratio"):
        assert isinstance(document[key], float)
    assert set(backtest.STATISTICS) <= set(document)
    assert document["params"] == {
        "fast": 10, "slow": 30, "direction": "long_short", "wait_for_cross": True
    }  # fmt: skip


def test_backtest_table_and_its_errors():
    table = invoke("backtest", *GOOG, "--param", "fast=10", "--trades", "2")
    assert table.exit_code == 0, table.output
    assert "equity_final" in table.stdout and "last 2 trades" in table.stdout
    unknown = invoke("backtest", "--data", "sample:goog", "--strategy", "sma_crss")
    assert "Did you mean 'sma_cross'" in str(unknown.exception)
    param = invoke("backtest", *GOOG, "--param", "fsat=3")
    assert "Valid: direction, fast, slow, wait_for_cross" in str(param.exception)
    typed = invoke("backtest", *GOOG, "--param", "fast=ten")
    assert "expected an integer" in str(typed.exception)
    panel = invoke("backtest", "--data", "sample:us_stocks", "--strategy", "sma_cross")
    assert "us_stocks is a panel" in str(panel.exception)
    missing = invoke("backtest", "--data", "nowhere.csv", "--strategy", "sma_cross")
    assert isinstance(missing.exception, FileNotFoundError)
    sample = invoke("backtest", "--data", "sample:nope", "--strategy", "sma_cross")
    assert "unknown sample 'nope'" in str(sample.exception)
    clash = invoke("backtest", *GOOG, "--compat", "backtesting.py", "--fill", "close")
    assert clash.exit_code == 2 and "drop --fill close" in clash.output


def test_sweep_prints_the_best_rows_and_writes_the_table(tmp_path):
    output = tmp_path / "sweep.csv"
    args = ["sweep", *GOOG, "--grid", "fast=5:15:5", "--grid", "slow=30,50"]
    result = invoke(*args, "--top", "2", "--output", str(output), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    table = pd.read_csv(output, index_col="combination")
    assert document["combinations"] == len(table) == 6
    best = table.sort_values("sharpe_ratio", ascending=False).head(2)
    assert [row["combination"] for row in document["rows"]] == list(best.index)
    assert document["rows"][0]["sharpe_ratio"] == pytest.approx(
        best["sharpe_ratio"].iloc[0], rel=1e-12
    )
    assert np.array_equal(table["fast"], [5, 5, 10, 10, 15, 15])
    printed = invoke(*args, "--sort", "return_pct", "--top", "3")
    assert printed.exit_code == 0 and "best 3 of 6 by return_pct" in printed.stdout
    wrong = invoke(*args, "--sort", "sharpe")
    assert wrong.exit_code == 2 and "unknown statistic 'sharpe'" in wrong.output
