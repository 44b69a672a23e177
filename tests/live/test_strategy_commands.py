"""`neuroflux promote` and `neuroflux strategies list|show` through typer's CliRunner.

The commands are mounted with :func:`neuroflux.live.commands.register` on an app of
their own, as :mod:`neuroflux.cli` mounts them; the store is a real folder
(``NEUROFLUX_STRATEGIES_DIR``).
"""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from neuroflux.live.commands import register

runner = CliRunner()
MARKET = ["--symbol", "BTC/USDT", "--symbol", "ETH/USDT", "--timeframe", "4h"]


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _main() -> None:
        """Test app."""

    register(app)
    return app


@pytest.fixture
def store(tmp_path, monkeypatch):
    folder = tmp_path / "store"
    monkeypatch.setenv("NEUROFLUX_STRATEGIES_DIR", str(folder))
    return folder


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "trend.yaml"
    path.write_text("strategy: ema_cross\nparams: {fast: 12, slow: 26}\n")
    return path


def test_promote_list_and_show(store, config):
    app = _app()
    risk = ["--risk", "max_position=0.5", "--risk", "max_stale_bars=20"]
    first = runner.invoke(app, ["promote", str(config), *MARKET, *risk, "--json"])
    assert first.exit_code == 0, first.output
    document = json.loads(first.stdout)
    assert (document["name"], document["version"]) == ("trend", 1)
    assert document["risk"] == {"max_position": 0.5, "max_stale_bars": 20}
    assert document["symbols"] == ["BTC/USDT", "ETH/USDT"]
    assert document["checksum"]["status"] == "ok"
    assert document["folder"] == str(store / "trend" / "v1")

    second = runner.invoke(app, ["promote", str(config), *MARKET, "--fees", "0.002"])
    assert second.exit_code == 0, second.output
    assert f"promoted trend v2 (rule: ema_cross) to {store / 'trend' / 'v2'}" in (
        second.stdout.replace("\n", "")
    )

    listed = runner.invoke(app, ["strategies", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)["artifacts"]
    assert (row["name"], row["latest_version"], row["versions"]) == ("trend", 2, [1, 2])
    assert row["intact"] and row["strategy"] == "ema_cross"
    table = runner.invoke(app, ["strategies", "list"])
    assert "trend" in table.stdout and "v2 of 2" in table.stdout
    assert "ok" in table.stdout

    shown = runner.invoke(app, ["strategies", "show", "trend", "--version", "1"])
    assert shown.exit_code == 0, shown.output
    assert "trend v1" in shown.stdout and "provenance" in shown.stdout
    [checksum] = [line for line in shown.stdout.splitlines() if "checksum" in line]
    assert checksum.startswith("checksum: ok, sha256 ") and len(checksum) == 85
    shown = runner.invoke(app, ["strategies", "show", "trend", "--json"])
    document = json.loads(shown.stdout)
    assert document["version"] == 2 and document["costs"]["fees"] == 0.002
    assert document["provenance"]["source"] == "config"
    assert document["provenance"]["config"] == str(config.resolve())


def test_tampered_missing_and_bad_input_exit_cleanly(store, config, tmp_path):
    app = _app()
    assert runner.invoke(app, ["promote", str(config), *MARKET]).exit_code == 0
    document = store / "trend" / "v1" / "artifact.json"
    document.write_text(document.read_text().replace('"4h"', '"1m"'))

    shown = runner.invoke(app, ["strategies", "show", "trend", "--json"])
    assert shown.exit_code == 2
    verdict = json.loads(shown.stdout)["checksum"]
    assert (
        verdict["status"] == "tampered"
        and "artifact.json changed" in (verdict["problem"])
    )
    assert "checksum: TAMPERED" in shown.stderr and "Traceback" not in shown.output
    listed = runner.invoke(app, ["strategies", "list"])
    assert listed.exit_code == 0
    assert f"TAMPERED: artifact {store / 'trend' / 'v1'} does not match" in (
        listed.stdout.replace("\n", "")
    )

    missing = runner.invoke(app, ["strategies", "show", "nothing"])
    assert missing.exit_code == 1
    assert "no artifact 'nothing'" in missing.stderr and "trend" in missing.stderr

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"strategy": "sma_cross", "params": {"fast": 2.5}}))
    refused = runner.invoke(app, ["promote", str(bad), *MARKET])
    assert refused.exit_code == 2
    assert f"error: {bad}: key 'params.fast': expected an integer" in refused.stderr
    risky = runner.invoke(app, ["promote", str(config), *MARKET, "--risk", "big"])
    assert risky.exit_code == 2 and "NAME=NUMBER" in risky.output
    typo = ["--risk", "max_positon=1"]
    misspelt = runner.invoke(app, ["promote", str(config), *MARKET, *typo])
    assert misspelt.exit_code == 2 and "['max_positon']" in misspelt.stderr
    one_quote = ["--symbol", "BTC/USDT", "--symbol", "ETH/EUR", "--timeframe", "4h"]
    mixed = runner.invoke(app, ["promote", str(config), *one_quote])
    assert mixed.exit_code == 2 and "one quote asset" in mixed.stderr
    nowhere = runner.invoke(app, ["promote", str(tmp_path / "no.yaml"), *MARKET])
    assert nowhere.exit_code == 1 and "a promotable source is" in nowhere.stderr
    assert not (store / "bad").exists()
