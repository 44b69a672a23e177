"""walk_forward_sweep: each fold's choice is the training sweep's best, and the
out-of-sample returns are that choice's backtest returns on the test bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuroflux.backtest import walk_forward_splits
from neuroflux.data import load_sample
from neuroflux.research import run_backtest, run_sweep, walk_forward_sweep

GRID = {"fast": [5, 10, 20], "slow": [50, 100]}
OPTIONS = {"commission": 0.001, "fill": "next_open"}


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_sample("goog")


@pytest.fixture(scope="module")
def walk(goog):
    return walk_forward_sweep(
        goog,
        "sma_cross",
        GRID,
        params={"direction": "long_only"},
        train_size=800,
        test_size=600,
        **OPTIONS,
    )


def test_folds_follow_the_splits_and_count_the_trials(goog, walk):
    splits = walk_forward_splits(len(goog), train_size=800, test_size=600)
    assert len(walk.folds) == len(splits) == 2
    assert walk.trials == 6
    for (_, fold), split in zip(walk.folds.iterrows(), splits, strict=True):
        assert fold["train_start"] == goog.index[split.train[0]]
        assert fold["test_end"] == goog.index[split.test[-1]]
    stitched = np.concatenate([goog.index[split.test] for split in splits])
    assert walk.returns.index.equals(pd.DatetimeIndex(stitched, name="timestamp"))


def test_each_fold_keeps_the_training_best_and_scores_it_on_its_test_bars(goog, walk):
    split = walk_forward_splits(len(goog), train_size=800, test_size=600)[1]
    train = goog.iloc[split.train[0] : split.train[-1] + 1]
    table = run_sweep(
        train,
        "sma_cross",
        GRID,
        params={"direction": "long_only"},
        progress=False,
        **OPTIONS,
    )
    best = table.loc[table["sharpe_ratio"].idxmax()]
    fold = walk.folds.loc[1]
    assert (fold["fast"], fold["slow"]) == (best["fast"], best["slow"])
    assert fold["in_sample_sharpe_ratio"] == pytest.approx(best["sharpe_ratio"])
    chosen = {"fast": int(best["fast"]), "slow": int(best["slow"])}
    run = run_backtest(
        goog, "sma_cross", {**chosen, "direction": "long_only"}, **OPTIONS
    )
    expected = run.to_frame()["returns"].iloc[split.test]
    pd.testing.assert_series_equal(
        walk.returns.loc[expected.index], expected, check_names=False
    )
    growth = 100 * ((1 + expected).prod() - 1)
    assert fold["test_return_pct"] == pytest.approx(growth)


def test_an_unknown_selection_statistic_is_an_error(goog):
    with pytest.raises(ValueError, match="select must be a statistic"):
        walk_forward_sweep(
            goog, "sma_cross", GRID, train_size=800, test_size=600, select="sharp"
        )
