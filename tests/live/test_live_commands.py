"""``neuroflux live run|stop|audit`` as a user runs them: the real command, real files.

One session runs in-process through typer's CliRunner (summary, then the audit chain
before and after a row is edited behind the journal's back). The kill switch needs a
session that is really running elsewhere: ``neuroflux live run --speed`` in a
subprocess (the venv's ``neuroflux`` script) paced at 50 ms a bar, serving its API,
which ``neuroflux live stop --flatten`` then stops through the journal. The subprocess
starts in a module fixture that the first test also requests, so that its ~10 s of
imports overlap the in-process test instead of adding to it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from neuroflux.cli import app
from neuroflux.live.journal import Journal

NAME = "sma"
CONFIG = "strategy: sma_cross\nparams: {fast: 10, slow: 50, direction: long_short}\n"
BAR_SECONDS = 0.05
cli = CliRunner()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A strategy store with ``sma`` promoted and a live dir.

    In memory (/dev/shm) where there is one: the journal's fsync per cycle on a
    shared CI disk would dominate the run, and the disk is not what is tested here.
    """
    memory = Path("/dev/shm")
    if memory.is_dir() and os.access(memory, os.W_OK):
        root = Path(tempfile.mkdtemp(prefix="neuroflux-commands-", dir=memory))
    else:
        root = tmp_path_factory.mktemp("live-commands")
    environment = {
        "NEUROFLUX_STRATEGIES_DIR": str(root / "strategies"),
        "NEUROFLUX_LIVE_DIR": str(root / "live"),
    }
    patch = pytest.MonkeyPatch()
    for key, value in environment.items():
        patch.setenv(key, value)
    config = root / "sma.yaml"
    config.write_text(CONFIG)
    promoted = cli.invoke(
        app,
        [
            "promote", str(config), "--symbol", "SP500/USD", "--timeframe", "1d",
            "--name", NAME, "--slippage", "0.0005", "--json",
        ],
    )  # fmt: skip
    assert promoted.exit_code == 0, promoted.output
    yield {"root": root, "environment": environment}
    patch.undo()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def live_process(workspace: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``neuroflux live run sma --paper --speed ... --api-port P --json`` running."""
    port = _free_port()
    journal = workspace["root"] / "paced" / "journal.sqlite"
    speed = 86_400 / BAR_SECONDS
    command = [
        str(Path(sys.executable).with_name("neuroflux")),
        "live", "run", NAME, "--paper", "--data", "synthetic",
        "--speed", str(speed), "--journal", str(journal),
        "--api-port", str(port), "--json",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        env={**os.environ, **workspace["environment"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield {
        "process": process,
        "port": port,
        "journal": journal,
        "root": workspace["root"],
    }
    if process.poll() is None:  # a failed test left it running
        process.kill()
        process.communicate()


@pytest.fixture(autouse=True)
def _structlog_restored() -> Iterator[None]:
    # `live run` points structlog at the stderr CliRunner captured; undo that.
    yield
    structlog.reset_defaults()


def test_run_summary_then_audit_detects_a_tampered_order(workspace, live_process):
    journal = workspace["root"] / "in-process" / "journal.sqlite"
    arguments = ["live", "run", NAME, "--paper", "--data", "synthetic"]
    result = cli.invoke(app, [*arguments, "--journal", str(journal), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["cycles"] == 2000 and summary["stopped_by"] == "feed ended"
    assert summary["orders"] > 10 and summary["breaker"] == "NORMAL"
    with Journal(journal, create=False) as session:
        assert len(session.orders()) == summary["orders"]
        assert session.last_cycle().equity == pytest.approx(summary["equity"])

    verified = cli.invoke(app, ["live", "audit", "verify", str(journal), "--json"])
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.stdout)
    assert report["ok"] and report["problems"] == [] and report["records"] > 2000

    with sqlite3.connect(journal) as database:
        triggers = database.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = "
            "'orders'"
        ).fetchall()
        for (trigger,) in triggers:
            database.execute(f'DROP TRIGGER "{trigger}"')
        changed = database.execute(
            "UPDATE orders SET amount = amount * 2 WHERE rowid = "
            "(SELECT MIN(rowid) FROM orders)"
        ).rowcount
    assert changed == 1
    tampered = cli.invoke(app, ["live", "audit", "verify", str(journal), "--json"])
    assert tampered.exit_code == 1, tampered.output
    report = json.loads(tampered.stdout)
    assert not report["ok"] and any("orders" in p for p in report["problems"])


def test_each_version_runs_in_a_journal_of_its_own(workspace):
    """Default journals: one per version; ``live stop`` reaches the newest run."""
    live = workspace["root"] / "live" / NAME
    config = workspace["root"] / "sma.yaml"
    promoted = cli.invoke(
        app, ["promote", str(config), "--symbol", "SP500/USD", "--timeframe", "1d",
              "--name", NAME, "--json"],
    )  # fmt: skip
    assert promoted.exit_code == 0, promoted.output
    version = json.loads(promoted.stdout)["version"]
    assert version >= 2
    arguments = ["live", "run", NAME, "--paper", "--data", "synthetic", "--json"]
    for run in (version - 1, version):  # the older version, then the new one
        result = cli.invoke(app, [*arguments, "--version", str(run)])
        assert result.exit_code == 0, result.output
        assert (live / f"v{run}" / "journal.sqlite").exists()

    stopped = cli.invoke(app, ["live", "stop", NAME])
    assert stopped.exit_code == 0, stopped.output
    with Journal(live / f"v{version}" / "journal.sqlite", create=False) as newest:
        assert [c.command for c in newest.pending_commands()] == ["stop"]
    with Journal(live / f"v{version - 1}" / "journal.sqlite", create=False) as older:
        assert older.pending_commands() == []
    missing = cli.invoke(app, ["live", "stop", "never-ran"])
    assert missing.exit_code == 1 and "no session of never-ran" in missing.output


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        assert reply.status == 200
        return json.loads(reply.read())


def test_kill_switch_flattens_and_stops_a_running_session(live_process):
    process, port = live_process["process"], live_process["port"]
    deadline = time.monotonic() + 90
    health = status = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            health = _get(port, "/health")
            positions = _get(port, "/api/positions")
        except OSError:  # still importing, or not listening yet
            time.sleep(0.2)
            continue
        if positions and positions[0]["units"] != 0:
            status = _get(port, "/api/status")
            break
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()
    assert health is not None and status is not None, "no position within 90 s"
    assert status["running"] is True and status["session"].startswith(f"{NAME}@v")
    assert status["symbols"] == ["SP500/USD"] and status["cycles"] > 0

    stopped_at = time.monotonic()
    stop = cli.invoke(
        app,
        ["live", "stop", NAME, "--flatten", "--journal", str(live_process["journal"])],
    )
    assert stop.exit_code == 0, stop.output
    stdout, stderr = process.communicate(timeout=30)  # it exits by itself
    waited = time.monotonic() - stopped_at
    assert process.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["stopped_by"] == "stop --flatten"
    assert summary["cycles"] < 2000  # stopped before the feed ended
    with Journal(live_process["journal"], create=False) as session:
        flattened = session.events("flattened")
        last = session.last_cycle()
        assert session.pending_commands() == []  # the stop was taken and done
    assert flattened[-1].data == {"reason": "stop", "positions": {"SP500/USD": 0.0}}
    with sqlite3.connect(live_process["journal"].with_name("paper.sqlite")) as paper:
        (units,) = paper.execute(
            "SELECT amount FROM balances WHERE asset = 'SP500'"
        ).fetchone()
    assert units == 0.0
    assert last is not None and summary["last_bar_time"] == last.bar_time
    print(f"\nstopped {waited:.2f}s after `live stop --flatten`, {summary}")

    # Resumed, the session takes the strategy's position again at its first bar.
    version = status["session"].rpartition("@v")[2]
    resume = ["live", "run", NAME, "--data", "synthetic", "--json"]
    journal = ["--journal", str(live_process["journal"])]
    config = str(live_process["root"] / "sma.yaml")
    other_name = ["promote", config, "--symbol", "SP500/USD", "--timeframe", "1d"]
    assert cli.invoke(app, [*other_name, "--name", "other"]).exit_code == 0
    other = cli.invoke(app, ["live", "run", "other", "--data", "synthetic", *journal])
    assert other.exit_code == 2, other.output
    assert f"is the journal of session {status['session']}" in other.output
    resumed = cli.invoke(app, [*resume, *journal, "--version", version])
    assert resumed.exit_code == 0, resumed.output
    with Journal(live_process["journal"], create=False) as session:
        cycles = [c.bar_time for c in session.cycles() if c.bar_time > last.bar_time]
        orders = [o for o in session.orders() if o.bar_time > last.bar_time + 1]
    assert orders and orders[0].bar_time == cycles[0]
