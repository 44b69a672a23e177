"""run_sweep: rows equal single backtests; sampling; static parameters; grid syntax."""

from __future__ import annotations

import pandas as pd
import pytest

from neuroflux.backtest import STATISTICS
from neuroflux.data import load_sample
from neuroflux.research import parse_grid_values, run_backtest, run_sweep

OPTIONS = {"compat": "backtesting.py", "commission": 0.002}


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_sample("goog")


def test_rows_equal_single_backtests_across_chunks_and_static_values(goog):
    grid = {"fast": [5, 10, 20], "slow": [30, 60], "wait_for_cross": [True, False]}
    table = run_sweep(goog, "sma_cross", grid, chunk_size=4, progress=False, **OPTIONS)
    assert list(table.columns) == [*grid, *STATISTICS]
    assert len(table) == 12 and table["trades"].dtype == "int64"
    for row in (table.iloc[2], table.iloc[11]):
        params = {name: row[name] for name in grid}
        expected = run_backtest(goog, "sma_cross", params, **OPTIONS).stats()
        for name in STATISTICS:
            assert row[name] == pytest.approx(expected[name], rel=1e-12, nan_ok=True)


def test_sample_draws_distinct_rows_of_the_product(goog):
    grid = {"fast": list(range(5, 30)), "slow": list(range(30, 90, 5))}
    table = run_sweep(goog, "sma_cross", grid, sample=6, seed=3, progress=False)
    assert len(table) == 6
    assert not table[["fast", "slow"]].duplicated().any()
    again = run_sweep(goog, "sma_cross", grid, sample=6, seed=3, progress=False)
    pd.testing.assert_frame_equal(table, again)


def test_bad_grids_are_errors(goog):
    with pytest.raises(ValueError, match="unknown parameter of sma_cross 'fsat'"):
        run_sweep(goog, "sma_cross", {"fsat": [1]})
    with pytest.raises(ValueError, match="no values"):
        run_sweep(goog, "sma_cross", {"fast": []})


def test_grid_syntax():
    assert parse_grid_values("sma_cross", "fast", "5:50:5") == list(range(5, 51, 5))
    assert parse_grid_values("sma_cross", "slow", "20,30,50") == [20, 30, 50]
    assert parse_grid_values("sma_cross", "fast", "3:5") == [3, 4, 5]
    assert parse_grid_values("bollinger_breakout", "num_std", "0.5:2:0.5") == [
        0.5,
        1.0,
        1.5,
        2.0,
    ]
    assert parse_grid_values("sma_cross", "wait_for_cross", "true,false") == [
        True,
        False,
    ]
    with pytest.raises(ValueError, match="step must be positive"):
        parse_grid_values("sma_cross", "fast", "5:50:0")
    with pytest.raises(ValueError, match="empty range"):
        parse_grid_values("sma_cross", "fast", "50:5")
    with pytest.raises(ValueError, match="expected an integer"):
        parse_grid_values("sma_cross", "fast", "5:6:0.5")
