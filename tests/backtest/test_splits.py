"""Walk-forward splits: layout, purge, embargo and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroflux.backtest.splits import walk_forward_splits


@st.composite
def layouts(draw):
    train_size = draw(st.integers(1, 40))
    test_size = draw(st.integers(1, 20))
    purge = draw(st.integers(0, 10))
    step = draw(st.one_of(st.none(), st.integers(1, 25)))
    embargo = draw(st.integers(0, 10))
    expanding = draw(st.booleans())
    n_bars = draw(st.integers(train_size + purge + test_size, 200))
    return {
        "n_bars": n_bars,
        "train_size": train_size,
        "test_size": test_size,
        "step": step,
        "purge": purge,
        "embargo": embargo,
        "expanding": expanding,
    }


@settings(max_examples=300, deadline=None)
@given(layouts())
def test_walk_forward_properties(layout):
    n_bars, train_size, test_size = (
        layout["n_bars"],
        layout["train_size"],
        layout["test_size"],
    )
    step = layout["step"] or test_size
    purge, embargo = layout["purge"], layout["embargo"]

    # The layout written out: spans, test windows and embargoed bars, fold by fold.
    folds, embargoed_before, embargoed = [], [], set()
    start = train_size + purge
    while start + test_size <= n_bars:
        span_start = 0 if layout["expanding"] else start - purge - train_size
        folds.append((set(range(span_start, start - purge)) - embargoed, start))
        embargoed_before.append(set(embargoed))
        embargoed |= set(range(start + test_size, start + test_size + embargo))
        start += step
    if any(not train for train, _ in folds):
        with pytest.raises(ValueError, match=f"embargo={embargo} leaves fold"):
            walk_forward_splits(**layout)
        return
    splits = walk_forward_splits(**layout)

    # As many folds as whole test windows fit, the last one ending within n_bars.
    assert len(splits) == (n_bars - train_size - purge - test_size) // step + 1
    assert splits[-1].test[-1] < n_bars
    assert splits[-1].test[-1] + step >= n_bars  # no room left for another fold

    assert len(splits) == len(folds)
    previous_size = 0
    for k, (train, test) in enumerate(splits):
        assert train.dtype == test.dtype == np.int64
        start = train_size + purge + k * step
        np.testing.assert_array_equal(test, np.arange(start, start + test_size))
        assert np.all(np.diff(train) > 0) and len(train) > 0
        assert set(train.tolist()) == folds[k][0]
        assert not set(train.tolist()) & set(test.tolist())
        assert np.all(train < test[0] - purge)  # purge respected
        assert not set(train.tolist()) & embargoed_before[k]  # embargo respected
        if layout["expanding"]:
            assert train[0] == 0
            # Grows by step bars a fold, less embargoed ones (all among the new).
            grown = len(train) - previous_size
            assert (0 <= grown <= step) if k else len(train) == train_size
            if embargo == 0 and k:
                assert grown == step
            previous_size = len(train)
        else:
            assert len(train) <= train_size
            if embargo == 0:
                assert len(train) == train_size
        if k == 0:
            np.testing.assert_array_equal(train, np.arange(train_size))

    starts = [split.test[0] for split in splits]
    assert starts == sorted(starts)


def test_rolling_example_with_purge_and_embargo():
    splits = walk_forward_splits(30, train_size=10, test_size=5, purge=2, embargo=3)
    assert [(s.train.tolist(), s.test.tolist()) for s in splits] == [
        (list(range(0, 10)), list(range(12, 17))),
        (list(range(5, 15)), list(range(17, 22))),
        # bars 17..19 follow the first test window: embargoed.
        (list(range(10, 17)), list(range(22, 27))),
    ]


def test_expanding_grows_by_step():
    splits = walk_forward_splits(50, train_size=10, test_size=5, step=5, expanding=True)
    assert [len(s.train) for s in splits] == [10, 15, 20, 25, 30, 35, 40, 45]
    assert all(s.train[0] == 0 for s in splits)
    rolling = walk_forward_splits(50, train_size=10, test_size=5)
    assert [len(s.train) for s in rolling] == [10] * 8


def test_step_defaults_to_test_size_and_may_overlap():
    tiled = walk_forward_splits(40, train_size=10, test_size=10)
    assert [s.test[0] for s in tiled] == [10, 20, 30]
    overlapping = walk_forward_splits(40, train_size=10, test_size=10, step=5)
    assert [s.test[0] for s in overlapping] == [10, 15, 20, 25, 30]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"n_bars": 0}, ValueError, "n_bars must be an integer >= 1"),
        ({"train_size": 0}, ValueError, "train_size must be an integer >= 1"),
        ({"test_size": 2.5}, TypeError, "test_size must be an integer"),
        ({"step": 0}, ValueError, "step must be an integer >= 1"),
        ({"purge": -1}, ValueError, "purge must be an integer >= 0"),
        ({"embargo": True}, TypeError, "embargo must be an integer >= 0"),
        ({"expanding": 1}, TypeError, "expanding must be a bool"),
        ({"n_bars": 14}, ValueError, r"n_bars=14 is too short.*= 15 bars"),
    ],
)
def test_arguments_are_checked(arguments, error, message):
    layout = {"n_bars": 100, "train_size": 10, "test_size": 3, "purge": 2}
    with pytest.raises(error, match=message):
        walk_forward_splits(**{**layout, **arguments})


def test_an_embargo_that_empties_a_training_set_is_an_error():
    with pytest.raises(ValueError, match=r"embargo=5 leaves fold 2 .*\[2, 3\)"):
        walk_forward_splits(10, train_size=1, test_size=1, embargo=5)
    splits = walk_forward_splits(
        10, train_size=1, test_size=1, embargo=5, expanding=True
    )
    assert [s.train.tolist() for s in splits][:3] == [[0], [0, 1], [0, 1]]


def test_numpy_integers_are_accepted():
    splits = walk_forward_splits(np.int64(20), train_size=np.int32(10), test_size=5)
    assert len(splits) == 2
