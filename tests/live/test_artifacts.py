"""Promotion to versioned, checksummed artifacts, and the decision they give back.

The report run folders here are written by ``_report_run`` in the format
:func:`neuroflux.reporting.runs.run_notebook` writes (``run.json`` from its
``RunRecord.to_json``, ``parameters.json``, ``metrics.json`` and the notebook), with
the real notebook of the repository standing in for its executed copy: executing it
would take most of a minute, and promotion reads only its ``parameters`` cell.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from neuroflux import strategies
from neuroflux.data import load_sample
from neuroflux.live.artifacts import (
    ArtifactTampered,
    list_artifacts,
    load_artifact,
    promote,
)
from neuroflux.reporting import runs
from neuroflux.research.agent_rules import RuleChoice
from neuroflux.research.agents import (
    agent_bars,
    agent_positions,
    load_agent,
    save_agent,
    train_agent,
)

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
MARKET = {"symbols": ["BTC/USDT"], "timeframe": "1d"}
TEST_START = "2011-01-01"  # the agent trains before, is measured after
run_steps = jax.jit(strategies.run_steps, static_argnums=0)


def _report_run(root: Path, notebook: str, parameters: dict, status: str = "ok"):
    """A run folder as ``run_notebook`` leaves it (see the module docstring)."""
    run_id = "20261124T063755Z-0478b4"
    folder = root / notebook / run_id
    folder.mkdir(parents=True)
    shutil.copy(NOTEBOOKS / f"{notebook}.ipynb", folder / "notebook.ipynb")
    (folder / "parameters.json").write_text(runs._dumps(parameters))
    (folder / "metrics.json").write_text(runs._dumps({"sharpe_ratio": 0.115}))
    record = runs.RunRecord(
        notebook=notebook,
        run_id=run_id,
        parameters=parameters,
        status=status,
        error=None if status == "ok" else "cell 3: ValueError: boom",
        started="2026-11-24T06:37:55+00:00",
        finished="2026-11-24T06:38:36+00:00",
        seconds=40.5,
        neuroflux_version="0.1.0",
        folder=folder,
    )
    (folder / "run.json").write_text(runs._dumps(record.to_json()))
    return folder


@pytest.fixture(scope="module")
def frame():
    # aapl comes from bokeh_sampledata, already imported with panel; the sp500 sample
    # would import arch (seconds) for nothing this file needs.
    return load_sample("aapl")


@pytest.fixture(scope="module")
def agent_folder(tmp_path_factory, frame):
    # The flux agent fits nothing: with its rule given, training is instant.
    rule = RuleChoice("ema_cross", {"fast": 10, "slow": 50}, 0.0, pd.DataFrame())
    agent = train_agent(
        "flux", frame, test_start=TEST_START, seeds=1, rules={"ema_cross": rule}
    )
    return save_agent(agent, tmp_path_factory.mktemp("agents") / "tiny_flux")


def test_config_promotes_to_versions_whose_decision_is_the_backtest(tmp_path, frame):
    config = tmp_path / "trend.yaml"
    config.write_text(
        "strategy: sma_cross\n"
        "params: {fast: 10, slow: 50, direction: long_short}\n"
        "data: aapl\n"
    )
    store = tmp_path / "store"
    first = promote(config, **MARKET, risk={"max_position": 1}, store=store)
    second = promote(config, **MARKET, name="trend", fees=0.002, store=store)
    assert (first.name, first.version, second.version) == ("trend", 1, 2)
    assert sorted(path.name for path in (store / "trend").iterdir()) == ["v1", "v2"]
    latest = load_artifact("trend", store=store)
    assert latest.version == 2 and latest.costs == {"fees": 0.002, "slippage": 0.0}
    assert load_artifact("trend", 1, store=store).risk == {"max_position": 1}
    assert latest.kind == "rule" and latest.strategy == "sma_cross"
    assert latest.parameters["direction"] == "long_short"
    assert latest.provenance["data"] == "sample:aapl"
    assert len(latest.provenance["data_hash"]) == 64
    assert latest.provenance["metrics"]["trades"] > 0
    with pytest.raises(FileNotFoundError, match="versions: 1, 2"):
        load_artifact("trend", 3, store=store)

    decision = latest.decision()
    assert decision.name == "trend-v2"
    bars = agent_bars(frame)
    _, actions = run_steps(decision.strategy, decision.params, bars)
    params = strategies.make_params("sma_cross", fast=10, slow=50)
    params = params.replace(direction=strategies.Direction.LONG_SHORT)
    expected = jax.jit(strategies.sma_cross)(bars.close, params)
    np.testing.assert_array_equal(np.asarray(actions), np.asarray(expected))
    assert set(np.unique(np.asarray(actions))) == {-1.0, 0.0, 1.0}

    [summary] = list_artifacts(store)
    assert (summary.name, summary.latest_version, summary.versions) == (
        "trend",
        2,
        (1, 2),
    )
    assert summary.intact and summary.symbols == ("BTC/USDT",)


def test_agent_folder_promotes_with_weights_and_replays_its_positions(
    tmp_path, frame, agent_folder
):
    store = tmp_path / "store"
    artifact = promote(agent_folder, **MARKET, data="aapl", store=store)
    assert (artifact.name, artifact.kind, artifact.version) == ("tiny_flux", "flux", 1)
    assert (artifact.folder / "weights" / "agent.json").is_file()
    assert artifact.parameters["seeds"] == [0]
    metrics = artifact.provenance["metrics"]
    assert np.isfinite(metrics["sharpe_ratio_seed_0"])
    first_test_bar = frame.index[frame.index >= TEST_START][0]
    assert metrics["out_of_sample_start"] == first_test_bar.isoformat()

    decision = load_artifact("tiny_flux", store=store).decision(0)
    assert decision.name == "tiny_flux-v1-seed0"
    _, actions = run_steps(decision.strategy, decision.params, agent_bars(frame))
    positions = agent_positions(load_agent(agent_folder), frame)["seed_0"]
    np.testing.assert_array_equal(np.asarray(actions), positions.to_numpy())
    assert np.unique(np.round(np.asarray(actions), 6)).size > 2  # sized, not just +-1
    load_artifact("tiny_flux", store=store)  # loading the weights changed nothing
    with pytest.raises(IndexError, match=r"1 seed\(s\) \[0\]"):
        artifact.decision(1)


def test_any_tampering_is_named_and_refused(tmp_path, agent_folder):
    store = tmp_path / "store"
    promote(agent_folder, **MARKET, store=store)
    weights = sorted(
        path.relative_to(store / "tiny_flux" / "v1").as_posix()
        for path in (store / "tiny_flux" / "v1" / "weights").rglob("*")
        if path.is_file() and path.stat().st_size > 0
    )

    def tampered(change):
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(store, copy)
        change(copy / "tiny_flux" / "v1")
        with pytest.raises(ArtifactTampered) as error:
            load_artifact("tiny_flux", store=copy)
        assert str(copy / "tiny_flux" / "v1") in str(error.value)
        [summary] = list_artifacts(copy)
        assert not summary.intact and summary.problem == str(error.value)
        return str(error.value)

    def flip_last_byte(path):
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        path.write_bytes(bytes(data))

    for relative in (weights[-1], "artifact.json"):
        message = tampered(lambda folder, r=relative: flip_last_byte(folder / r))
        assert f"{relative} changed" in message
    message = tampered(
        lambda folder: (folder / "weights" / "extra.bin").write_text("x")
    )
    assert "weights/extra.bin added" in message
    message = tampered(lambda folder: (folder / weights[0]).unlink())
    assert f"{weights[0]} removed" in message
    message = tampered(lambda folder: (folder / "checksum.sha256").unlink())
    assert "checksum.sha256 is missing" in message
    document = store / "tiny_flux" / "v1" / "artifact.json"
    risky = json.loads(document.read_text()) | {"risk": {"max_position": 9}}
    message = tampered(
        lambda folder: (folder / "artifact.json").write_text(json.dumps(risky))
    )
    assert "artifact.json changed" in message
    load_artifact("tiny_flux", store=store)  # the original is intact


def test_report_run_of_one_strategy_promotes_and_others_are_refused(tmp_path):
    reports, store = tmp_path / "reports", tmp_path / "store"
    folder = _report_run(
        reports,
        "02_strategy_backtest",
        {"strategy": "ema_cross", "params": {"fast": 12, "slow": 26}, "data": "aapl"},
    )
    artifact = promote(folder, **MARKET, store=store)
    assert (artifact.name, artifact.strategy) == ("ema_cross", "ema_cross")
    assert artifact.parameters["fast"] == 12
    # params replaces the notebook's whole dict: the registry's default direction
    assert artifact.parameters["direction"] == "long_short"
    provenance = artifact.provenance
    assert provenance["run_id"] == folder.name and provenance["source"] == "report"
    assert provenance["data"] == "sample:aapl"  # the run's, not the notebook's
    assert provenance["metrics"] == {"sharpe_ratio": 0.115}
    assert provenance["evaluated_with"]["fill"] == "next_open"

    defaults = _report_run(reports / "defaults", "02_strategy_backtest", {})
    # the notebook's own run; data given here spares loading its default sp500
    artifact = promote(defaults, **MARKET, data="aapl", store=store)
    assert (artifact.name, artifact.version) == ("sma_cross", 1)
    assert artifact.parameters["fast"] == 10
    assert artifact.parameters["direction"] == "long_only"
    other = _report_run(reports, "04_ab_experiment", {})
    with pytest.raises(ValueError, match=r"does not describe one strategy.*promotable"):
        promote(other, **MARKET, store=store)
    failed = _report_run(tmp_path / "failed", "02_strategy_backtest", {}, "failed")
    with pytest.raises(ValueError, match=r"the run failed.*boom"):
        promote(failed, **MARKET, store=store)
    with pytest.raises(ValueError, match="is not promotable: a promotable source is"):
        promote(reports, **MARKET, store=store)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("strategy: sma_cros\n", r"key 'strategy': unknown strategy 'sma_cros'"),
        ("strategy: macd_cross\n", r"key 'strategy': 'macd_cross' has no step"),
        (
            "strategy: sma_cross\nparams: {fast: ten}\n",
            r"'params.fast': expected an int",
        ),
        ("strategy: sma_cross\nparams: {speed: 3}\n", r"'params.speed': unknown param"),
        ("strategy: sma_cross\nparams: {slow: 300}\n", r"'params': slow must be"),
        ("strategy: sma_cross\ndata: nowhere.csv\n", r"key 'data': 'nowhere.csv'"),
        ("strategy: sma_cross\nfees: 1\n", r"unknown key 'fees'"),
        ("- sma_cross\n", r"expected a mapping"),
    ],
)
def test_bad_configs_name_the_file_and_key(tmp_path, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        promote(config, **MARKET, store=tmp_path / "store")
    assert str(config) in str(error.value)
    assert not (tmp_path / "store" / "bad").exists() or not any(
        path.name.startswith("v") for path in (tmp_path / "store" / "bad").iterdir()
    )


def test_bad_market_and_risk_are_named(tmp_path):
    config = tmp_path / "ok.json"
    config.write_text(json.dumps({"strategy": "rsi_reversion"}))
    store = tmp_path / "store"
    cases = [
        ({"symbols": [], "timeframe": "1d"}, "symbols: expected a list"),
        ({"symbols": ["A/B"], "timeframe": "daily"}, "timeframe 'daily'"),
        ({**MARKET, "risk": {"max_position": "big"}}, "risk.max_position: expected"),
        ({**MARKET, "name": "../escape"}, "name '../escape'"),
        ({**MARKET, "fees": -0.1}, r"fees: expected a fraction in \[0, 1\), got -0.1"),
    ]
    for arguments, message in cases:
        with pytest.raises(ValueError, match=message):
            promote(config, **arguments, store=store)
    artifact = promote(config, **MARKET, store=store)
    assert artifact.provenance["data"] is None and artifact.provenance["metrics"] == {}


@pytest.mark.parametrize(
    ("risk", "message"),
    [
        ({"max_positon": 1}, r"risk: unknown RiskLimits field\(s\) \['max_positon'\]"),
        ({"max_drawdown": 5}, r"risk: RiskLimits.max_drawdown is a fraction"),
        ({"max_stale_bars": 0.5}, r"risk: RiskLimits.max_stale_bars must be an int"),
    ],
)
def test_risk_limits_the_runner_refuses_are_refused_at_promotion(
    tmp_path, risk, message
):
    config = tmp_path / "ok.json"
    config.write_text(json.dumps({"strategy": "rsi_reversion"}))
    with pytest.raises(ValueError, match=message):
        promote(config, **MARKET, risk=risk, store=tmp_path / "store")
    assert not (tmp_path / "store").exists()  # refused before any version is built


@pytest.mark.parametrize("symbols", [["BTCUSDT"], ["BTC/USDT", "ETH/EUR"], ["BTC/"]])
def test_symbols_the_runner_refuses_are_refused_at_promotion(tmp_path, symbols):
    config = tmp_path / "ok.json"
    config.write_text(json.dumps({"strategy": "rsi_reversion"}))
    with pytest.raises(ValueError, match=r"symbols must be BASE/QUOTE with one quote"):
        promote(config, symbols=symbols, timeframe="1d", store=tmp_path / "store")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("run.json", '{"status": "o', "expected a JSON document; Unterminated"),
        ("parameters.json", "", "expected a JSON document; Expecting value"),
        ("parameters.json", '["ema_cross"]', "expected a JSON object.*got list"),
        ("metrics.json", "{", "expected a JSON document"),
    ],
)
def test_unreadable_report_run_files_are_named(tmp_path, file, text, message):
    folder = _report_run(tmp_path / "reports", "02_strategy_backtest", {})
    (folder / file).write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        promote(folder, **MARKET, data="aapl", store=tmp_path / "store")
    assert str(error.value).startswith(f"{folder / file}: ")
