"""The `neuroflux` command, run as a user runs it: a real process."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from neuroflux.data import load_sample
from neuroflux.data.summary import summarize_bars
from neuroflux.doctor import LOCK_FILE, locked_versions, run_checks

NEUROFLUX = Path(sys.executable).with_name("neuroflux")


def neuroflux(*args: str, env: dict | None = None, cwd=None):
    return subprocess.run(
        [NEUROFLUX, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["doctor"],
        ["data"],
        ["data", "samples"],
        ["data", "summary"],
        ["data", "validate"],
        ["data", "fetch"],
    ],
)
def test_every_command_has_help(command):
    result = neuroflux(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: neuroflux" in result.stdout


def test_validate_names_row_and_column_and_exits_2(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01T00:00:00Z,10,11,9,10.5,100\n"
        "2024-01-02T00:00:00Z,10.5,10.6,10,11,200\n"
    )
    result = neuroflux("data", "validate", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "line 3 (row 2), 2024-01-02T00:00:00+00:00, column 'high'" in result.stderr
    assert str(path) in result.stderr


def test_validate_summarizes_a_valid_file(tmp_path):
    bars = load_sample("ibm").iloc[:30]
    bars.to_parquet(tmp_path / "ibm.parquet")
    result = neuroflux("data", "validate", str(tmp_path / "ibm.parquet"))
    assert result.returncode == 0, result.stderr
    assert "valid:" in result.stdout and "30 bars" in result.stdout


def test_errors_are_one_line_unless_debug(tmp_path):
    missing = str(tmp_path / "missing.csv")
    plain = neuroflux("data", "validate", missing)
    assert plain.returncode == 1
    assert plain.stderr.strip().count("\n") == 0
    assert plain.stderr.startswith("error: FileNotFoundError")
    debug = neuroflux("--debug", "data", "validate", missing)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_samples_lists_sources():
    result = neuroflux("data", "samples")
    assert result.returncode == 0
    assert "sp500" in result.stdout and "public domain" in result.stdout


def test_summary_writes_the_table(tmp_path):
    output = tmp_path / "summary.csv"
    result = neuroflux("data", "summary", "--output", str(output))
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(output, index_col="sample")
    assert list(table.index) == ["sp500", "nasdaq", "aapl", "ibm", "msft", "goog"]
    expected = summarize_bars(load_sample("msft"))
    assert table.loc["msft", "rows"] == 3270
    assert table.loc["msft", "annual_volatility"] == pytest.approx(
        expected["annual_volatility"], rel=1e-12
    )


def test_summary_statistics_match_numpy():
    bars = load_sample("sp500")
    summary = summarize_bars(bars)
    returns = pd.Series(bars["close"]).pipe(lambda c: (c / c.shift()).apply("log"))
    assert summary["annual_volatility"] == pytest.approx(
        returns.std() * 252**0.5, rel=1e-12
    )
    assert summary["excess_kurtosis"] == pytest.approx(returns.kurt(), rel=1e-12)
    assert summary["abs_return_autocorrelation"] > 0.1  # volatility clusters


def test_doctor_passes_here_and_fails_on_an_unwritable_folder(tmp_path):
    ok = neuroflux("doctor", env={"NEUROFLUX_CACHE_DIR": str(tmp_path / "cache")})
    assert ok.returncode == 0, ok.stdout
    assert "x64" in ok.stdout and "cpu" in ok.stdout
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bad = neuroflux("doctor", env={"NEUROFLUX_REPORTS_DIR": str(blocker / "reports")})
    assert bad.returncode == 1
    assert "fail" in bad.stdout


def test_doctor_finds_packages_that_differ_from_the_lock(tmp_path):
    pins = locked_versions(LOCK_FILE)
    assert pins["jax"] and pins["pandas"]
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        LOCK_FILE.read_text().replace(f"pandas=={pins['pandas']}", "pandas==0.0.1")
    )
    packages = {check.name: check for check in run_checks(lock)}["packages"]
    assert packages.status == "fail"
    assert "pandas" in packages.detail and "lock: 0.0.1" in packages.detail


def test_unreadable_file_is_a_data_error_in_one_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("timestamp,open,high,low,close,volume\n1,2,3\n")
    result = neuroflux("data", "validate", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "line 2: expected 6 fields like the header, found 3" in result.stderr
