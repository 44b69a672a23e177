"""The live monitor against a real paper session, in a real browser.

A strategy is promoted into a temporary store, ``neuroflux live run`` replays synthetic
bars through the paper exchange with its API on a free port and a token, and the
shared ``neuroflux dashboard`` of these tests (the token in its environment) serves
``/live?api=...``. One page, watched while the session trades.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from neuroflux.dashboards.live_monitor import TOKEN_VARIABLE, token_for

NEUROFLUX = Path(sys.executable).with_name("neuroflux")

BARS_PER_SECOND = 50  # 2,000 synthetic daily bars: about 40 s of trading
EQUITY_POINTS = """() => Array.from(Bokeh.documents[0].all_models)
    .find(model => model.name === 'nf-live-equity').data.equity.length"""


def test_the_token_only_goes_to_loopback_or_the_configured_api(monkeypatch):
    token = "a-token"
    monkeypatch.setenv(TOKEN_VARIABLE, token)
    monkeypatch.setenv("NEUROFLUX_LIVE_API", "https://live.example.org:8765")
    assert token_for("http://127.0.0.1:9000") == token
    assert token_for("http://localhost:9000") == token
    assert token_for("https://live.example.org:8765") == token
    assert token_for("http://attacker.example.com") is None
    monkeypatch.delenv(TOKEN_VARIABLE)
    assert token_for("http://127.0.0.1:9000") is None


@pytest.fixture(scope="module")
def live_api(tmp_path_factory, wait_until_serving, live_api_token):
    """URL of the API of a paper session that trades for about 20 s."""
    root = tmp_path_factory.mktemp("live-monitor")
    env = {
        **os.environ,
        "NEUROFLUX_STRATEGIES_DIR": str(root / "strategies"),
        "NEUROFLUX_LIVE_DIR": str(root / "live"),
        TOKEN_VARIABLE: live_api_token,
    }
    config = root / "sma.yaml"
    config.write_text(
        "strategy: sma_cross\nparams: {fast: 5, slow: 20, direction: long_short}\n"
    )
    subprocess.run(
        [NEUROFLUX, "promote", config, "--symbol", "BTC/USDT", "--timeframe", "1d"],
        env=env,
        check=True,
        capture_output=True,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        api_port = probe.getsockname()[1]
    session = subprocess.Popen(
        [
            NEUROFLUX, "live", "run", "sma", "--paper", "--data", "synthetic",
            "--speed", str(86_400 * BARS_PER_SECOND), "--api-port", str(api_port),
            "--journal", str(root / "journal.sqlite"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_until_serving(f"{api}/health", session)
        yield api
    finally:
        session.terminate()
        session.communicate(timeout=20)


def test_the_monitor_streams_a_running_session(
    dashboard_url, live_api, live_api_token, open_page
):
    opened = open_page(f"{dashboard_url}/live?api={live_api}")
    page = opened.page
    status = page.locator(".nf-live-status")
    status.get_by_text("live", exact=True).wait_for(timeout=20_000)
    # The pane's content lives in its shadow root: read it through a locator.
    summary = status.locator("table").first.inner_text()
    assert "sma@v1" in summary and "paper, running" in summary
    assert status.locator(".nf-breaker").inner_text() == "NORMAL"
    cycles = status.locator("tr.nf-cycles td")

    first_cycles, first_points = int(cycles.inner_text()), page.evaluate(EQUITY_POINTS)
    page.wait_for_function(f"({EQUITY_POINTS})() > {first_points + 50}", timeout=5_000)
    assert int(cycles.inner_text()) >= first_cycles + 50
    equity = page.locator(".nf-live-analytics tr.nf-equity-value td").inner_text()
    assert float(equity.replace(",", "")) > 0

    tables = page.locator(".tabulator")
    tables.nth(0).get_by_text("BTC/USDT").wait_for(timeout=5_000)  # positions
    orders = tables.nth(2).locator(".tabulator-row")
    orders.first.wait_for(timeout=5_000)
    assert orders.first.get_by_text("closed").count() == 1
    assert live_api_token not in page.content()
    opened.screenshot("live-monitor")  # its dark theme: tests/dashboards/test_pages.py
    assert opened.errors == [], opened.errors
    assert opened.blocked == []
