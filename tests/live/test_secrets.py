"""Canary secrets: keys and the API token go in, and must come out nowhere.

The exchange keys (``NEUROFLUX_BINANCE_API_KEY``/``_SECRET``) and the API token
(``NEUROFLUX_API_TOKEN``) are canaries, read from the environment only. Two real
sessions run with them set: one trading through the ccxt adapter on the loopback
Binance (``tests/live/exchange_fixtures.py``), one ``neuroflux live run --paper``
serving its API. Then everything they wrote or said is scanned: journal and paper
SQLite bytes, every file under the scratch folders, structlog and stdlib logs, the
command's stdout and stderr, and the bodies of ``/api/*`` and ``/metrics``. The
positive controls (the server saw the key; the API refused a request without the
token) show the secrets were really in use. Finally the committed notebooks and the
generated reports are scanned for the canary pattern and for anything shaped like a
key assignment.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import pytest
import structlog
from exchange_fixtures import (
    CANARY_KEY,
    CANARY_SECRET,
    binance_exchange,
    trading_server,
)
from typer.testing import CliRunner

from neuroflux.cli import app
from neuroflux.live.decisions import Agent
from neuroflux.live.feeds import ReplayFeed
from neuroflux.live.journal import Journal
from neuroflux.live.runner import Runner
from neuroflux.live.runner_config import RunnerConfig
from neuroflux.live.sessions import configure_json_logs
from neuroflux.strategies.positions import Direction
from neuroflux.strategies.steps import STEP_STRATEGIES
from neuroflux.strategies.trend import SmaCrossParams

__all__ = ["trading_server"]  # the fixture, imported so that pytest finds it

CANARY_TOKEN = "NF-CANARY-TOKEN-5e0a7c93d1f24b86"
CANARIES = (CANARY_KEY, CANARY_SECRET, CANARY_TOKEN)
LOGGERS = ("ccxt", "aiohttp", "asyncio", "urllib3", "neuroflux")
REPOSITORY = Path(__file__).resolve().parents[2]
KEY_ASSIGNMENT = re.compile(
    rb"NEUROFLUX_\w*_API_(?:KEY|SECRET)\s*[=:]\s*[\"']?([^\s\"'\\,}]+)"
)


def _leaks(blob: bytes | str, where: str) -> list[str]:
    """Every canary-shaped string in ``blob`` (all three canaries start alike)."""
    data = blob.encode() if isinstance(blob, str) else blob
    return [f"{where}: {m.group(0)!r}" for m in re.finditer(rb"NF-CANARY[\w-]*", data)]


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, io.StringIO]]:
    """structlog as a live session configures it, and every stdlib record."""
    structured, standard = io.StringIO(), io.StringIO()
    configure_json_logs()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(structured))
    handler = logging.StreamHandler(standard)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    # Debug records of the libraries that see requests and keys (not jax's, which
    # are many and irrelevant); everything else at the root's own level.
    chatty = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in chatty]
    for logger in chatty:
        logger.setLevel(logging.DEBUG)
    try:
        yield {"structlog": structured, "logging": standard}
    finally:
        root.removeHandler(handler)
        for logger, level in zip(chatty, levels, strict=True):
            logger.setLevel(level)
        structlog.reset_defaults()


def _ccxt_session(server, monkeypatch, folder: Path) -> dict[str, object]:
    """An sma session on the loopback Binance's own 1m candles; what it reported."""
    server.set_balances({"USDT": "100000"})
    now = server.current_ms()
    rows = server.candles("BTCUSDT", "1m", now - 80 * 60_000, now - 60_000)
    frame = pd.DataFrame(
        [row[1:] for row in rows],
        index=pd.to_datetime([row[0] for row in rows], unit="ms", utc=True),
        columns=["open", "high", "low", "close", "volume"],
    )
    exchange = binance_exchange(server, monkeypatch)
    (folder / "ccxt").mkdir()
    params = SmaCrossParams(fast=3, slow=8, direction=Direction.LONG_ONLY)
    runner = Runner(
        RunnerConfig(
            session="canary", symbols=("BTC/USDT",), fees=0.001, timeframe_ms=60_000
        ),
        [Agent(name="sma", strategy=STEP_STRATEGIES["sma_cross"], params=params)],
        feed=ReplayFeed({"BTC/USDT": frame}, timeframe="1m"),
        exchange=exchange,
        journal=Journal(folder / "ccxt" / "journal.sqlite"),
    )

    async def run() -> dict[str, object]:
        try:
            summary = await runner.run()
            shown = f"{exchange!r} {runner.status()} {runner.orders()}"
            return {"summary": summary, "repr": shown}
        finally:
            await exchange.close()
            runner.journal.close()

    return asyncio.run(run())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _http(port: int, path: str, token: str | None, body: bytes | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _paper_session_with_api(folder: Path, monkeypatch) -> dict[str, object]:
    """``neuroflux live run --paper --api-port`` in a thread; the API read meanwhile."""
    config = folder / "sma.yaml"
    config.write_text("strategy: sma_cross\nparams: {fast: 5, slow: 20}\n")
    cli = CliRunner()
    promoted = cli.invoke(
        app,
        ["promote", str(config), "--symbol", "SP500/USD", "--timeframe", "1d",
         "--name", "canary"],
    )  # fmt: skip
    assert promoted.exit_code == 0, promoted.output
    port = _free_port()
    arguments = [
        "live", "run", "canary", "--paper", "--data", "synthetic",
        "--speed", str(86_400 / 0.02), "--api-port", str(port), "--json",
    ]  # fmt: skip
    outcome: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: outcome.update(result=cli.invoke(app, arguments))
    )
    thread.start()
    replies: dict[str, bytes] = {}
    orders: list[dict] = []  # until orders of two bars are journaled
    deadline = time.monotonic() + 60
    while len({o["bar_time"] for o in orders}) < 2:
        assert time.monotonic() < deadline and thread.is_alive(), (
            f"/api/orders still {orders} after 60 s",
            outcome.get("result") and outcome["result"].output,
        )
        try:
            status, body = _http(port, "/api/orders", CANARY_TOKEN)
        except OSError:
            time.sleep(0.1)
            continue
        if status == 200:
            orders = json.loads(body)
        time.sleep(0.1)
    refused, _ = _http(port, "/api/status", None)
    for path in (
        "/health", "/metrics", "/api/status", "/api/positions", "/api/orders",
        "/api/analytics", "/openapi.json",
    ):  # fmt: skip
        status, replies[path] = _http(port, path, CANARY_TOKEN)
        assert status == 200, (path, replies[path])
    # The real runner's orders, newest first.
    bar_times = [order["bar_time"] for order in json.loads(replies["/api/orders"])]
    assert len(set(bar_times)) >= 2 and bar_times == sorted(bar_times, reverse=True)
    stop = json.dumps({"flatten": True}).encode()
    status, replies["/api/stop"] = _http(port, "/api/stop", CANARY_TOKEN, stop)
    assert status == 202, replies["/api/stop"]
    thread.join(timeout=60)
    assert not thread.is_alive()
    result = outcome["result"]
    assert result.exit_code == 0, result.output
    return {"refused": refused, "replies": replies, "result": result}


def test_canary_secrets_appear_nowhere(
    trading_server, monkeypatch, tmp_path, captured_logs
):
    monkeypatch.setenv("NEUROFLUX_API_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("NEUROFLUX_STRATEGIES_DIR", str(tmp_path / "strategies"))
    monkeypatch.setenv("NEUROFLUX_LIVE_DIR", str(tmp_path / "live"))
    ccxt_run = _ccxt_session(trading_server, monkeypatch, tmp_path)
    paper_run = _paper_session_with_api(tmp_path, monkeypatch)

    # Positive controls: the secrets were in use.
    assert CANARY_KEY in trading_server.api_keys
    # The secret signed: Binance's HMAC-SHA256 of the query string (or form body)
    # before its trailing signature, the urlencoded parameters in order.
    signed = [r for r in trading_server.requests if "signature" in r.params]
    assert any(r.path == "/api/v3/order" and r.method == "POST" for r in signed)
    for request in signed:
        message, _, signature = (request.body or request.query).rpartition(
            "&signature="
        )
        unsigned = [(k, v) for k, v in request.params.items() if k != "signature"]
        assert message == urlencode(unsigned), request
        expected = hmac.new(CANARY_SECRET.encode(), message.encode(), hashlib.sha256)
        assert signature == request.params["signature"] == expected.hexdigest()
    assert ccxt_run["summary"].orders > 0
    assert paper_run["refused"] == 401
    result = paper_run["result"]
    assert json.loads(result.stdout.strip().splitlines()[-1])["stopped_by"] == (
        "stop --flatten"
    )

    leaks = _leaks(str(ccxt_run["repr"]), "runner and exchange reprs")
    for path, body in paper_run["replies"].items():
        leaks += _leaks(body, f"API {path}")
    leaks += _leaks(result.stdout, "live run stdout")
    leaks += _leaks(result.stderr, "live run stderr")
    for name, stream in captured_logs.items():
        leaks += _leaks(stream.getvalue(), f"{name} log")
    scanned = 0
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file():
            scanned += 1
            leaks += _leaks(path.read_bytes(), str(path.relative_to(tmp_path)))
    assert leaks == []
    names = {p.name for p in tmp_path.rglob("*")}
    assert {"journal.sqlite", "paper.sqlite"} <= names and scanned >= 5
    assert "reconciled" in captured_logs["structlog"].getvalue()  # logs were seen
    assert "order" in result.stderr  # the command's own JSON logs were seen


def test_committed_notebooks_and_reports_hold_no_keys():
    files = sorted((REPOSITORY / "notebooks").glob("*.ipynb"))
    files += sorted(p for p in (REPOSITORY / "reports").rglob("*") if p.is_file())
    assert files, "no notebooks or reports found to scan"
    leaks = []
    for path in files:
        data = path.read_bytes()
        where = str(path.relative_to(REPOSITORY))
        if b"NF-CANARY" in data:
            leaks.append(f"{where}: NF-CANARY")
        leaks += [
            f"{where}: {m.group(0)[:60]!r}" for m in KEY_ASSIGNMENT.finditer(data)
        ]
    assert leaks == []
