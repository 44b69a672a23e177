"""One ``neuroflux dashboard`` server for the dashboard tests, over real report runs.

The server is the real command in its own process, on a free loopback port, with a
reports folder holding two runs of a small notebook (different parameters) and one
failed run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from neuroflux.dashboards import PASSWORD_VARIABLE
from neuroflux.reporting import build_index, run_notebook

NEUROFLUX = Path(sys.executable).with_name("neuroflux")
LIVE_TOKEN_VARIABLE = "NEUROFLUX_API_TOKEN"
# The token the dashboards send to a live session's API (test_live_monitor.py).
LIVE_API_TOKEN = "monitor-test-token-5f2a"
SERVER_START_SECONDS = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen) -> None:
    """Return once ``url`` answers 200; fail with the server's output otherwise."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the server exited {process.returncode}:\n{process.stdout.read()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    process.kill()
    pytest.fail(
        f"{url} did not answer in {SERVER_START_SECONDS} s:\n{process.stdout.read()}"
    )


@pytest.fixture(scope="session")
def dashboard_reports(tmp_path_factory, write_notebook):
    """A report root with two ok runs and one failed run of a small notebook."""
    notebooks = tmp_path_factory.mktemp("dashboard-notebooks")
    root = tmp_path_factory.mktemp("dashboard-reports")
    write_notebook(
        notebooks / "moving_average.ipynb",
        "import numpy as np\n"
        "from IPython.display import display\n"
        "from neuroflux.reporting import METRICS_MIMETYPE\n"
        "prices = 100 + np.cumsum(np.sin(np.arange(200) / 7))\n"
        "average = np.convolve(prices, np.ones(window) / window, mode='valid')\n"
        "if window > 100:\n"
        "    raise ValueError(f'window {window} too long')\n"
        "print(f'last average {average[-1]:.4f}')",
        "display({METRICS_MIMETYPE: {'last_average': float(average[-1])}}, raw=True)",
        parameters="window: int = 5  # bars averaged",
    )
    for window in (5, 20, 500):
        run_notebook(
            "moving_average",
            {"window": window},
            notebooks_dir=notebooks,
            reports_dir=root,
        )
    build_index(root)
    return root


@pytest.fixture(scope="session")
def neuroflux_server():
    """``neuroflux_server(command, *args, env=...) -> (process, port)``.

    Runs ``neuroflux COMMAND --port P ARGS`` on a free port in its own process (output
    in ``process.stdout``); every one still running is stopped at the end. ``env``
    defaults to this environment without ``NEUROFLUX_DASHBOARD_PASSWORD``.
    """
    processes = []

    def start(command: str, *args: str, env: dict | None = None):
        if env is None:
            env = {k: v for k, v in os.environ.items() if k != PASSWORD_VARIABLE}
        port = free_port()
        process = subprocess.Popen(
            [str(NEUROFLUX), command, "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        processes.append(process)
        return process, port

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="session")
def dashboard(neuroflux_server):
    """``neuroflux dashboard ARGS``: ``dashboard(*args, password=None)``."""

    def start(*args: str, password: str | None = None):
        env = {k: v for k, v in os.environ.items() if k != PASSWORD_VARIABLE}
        env[LIVE_TOKEN_VARIABLE] = LIVE_API_TOKEN  # for the live monitor's API
        if password is not None:
            env[PASSWORD_VARIABLE] = password
        return neuroflux_server("dashboard", *args, env=env)

    return start


@pytest.fixture(scope="session")
def wait_until_serving():
    return _wait_until_serving


@pytest.fixture(scope="session")
def dashboard_url(dashboard, dashboard_reports):
    """Base URL of a running ``neuroflux dashboard`` (loopback, no login)."""
    process, port = dashboard("--reports-dir", str(dashboard_reports))
    base = f"http://127.0.0.1:{port}"
    _wait_until_serving(f"{base}/explorer", process)
    return base


@pytest.fixture(scope="session")
def live_api_token():
    """The live API token every ``dashboard`` server has in its environment."""
    return LIVE_API_TOKEN
