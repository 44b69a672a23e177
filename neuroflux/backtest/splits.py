"""Walk-forward splits of a time axis into training and test windows.

Layout of fold ``k`` (0-based), bars numbered ``0 .. n_bars - 1``::

    test_start = train_size + purge + k * step
    test       = [test_start, test_start + test_size)
    train span = [test_start - purge - train_size, test_start - purge)   rolling
               = [0, test_start - purge)                                 expanding
    train      = train span minus every embargoed bar of the earlier folds,
                 embargoed(j) = [test_end(j), test_end(j) + embargo) for j < k

* ``purge`` bars just before each test window are left out of its training set:
  samples whose labels look ahead (a ``h``-bar forward return labelled at ``t`` uses
  prices up to ``t + h``) would otherwise overlap the test window; use ``purge >= h``.
* ``embargo`` bars right after each test window may not be trained on by any later
  fold: features built on trailing windows there still carry information from the test
  window. Embargoed bars are dropped from later training spans, so a training set can
  hold fewer than ``train_size`` bars (never more in rolling mode); with
  ``embargo = 0`` a rolling training set has exactly ``train_size`` bars. A fold left
  with no training bar at all is an error, not an empty set.
* Folds are made while the whole test window fits; trailing bars that cannot fill one
  are in no test window. The first training set is the first ``train_size`` bars in
  both modes; an expanding one grows by ``step`` bars per fold (less the embargoed
  ones).
* ``step`` defaults to ``test_size`` (test windows tile the axis); ``step < test_size``
  makes test windows overlap, ``step > test_size`` leaves gaps.

Every training index is below ``test_start - purge`` of its fold, so training and test
never overlap. Index arrays are sorted ``int64``.

References:
    Marcos López de Prado, "Advances in Financial Machine Learning", 2018, ch. 7
    (purging and embargo) and ch. 12 (walk-forward).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from neuroflux._arrays import as_count

__all__ = ["Split", "walk_forward_splits"]


class Split(NamedTuple):
    """One fold: sorted ``int64`` bar indices."""

    train: np.ndarray
    test: np.ndarray


def walk_forward_splits(
    n_bars: int,
    *,
    train_size: int,
    test_size: int,
    step: int | None = None,
    purge: int = 0,
    embargo: int = 0,
    expanding: bool = False,
) -> list[Split]:
    """Walk-forward (train, test) index windows over ``n_bars`` bars.

    The layout is in the module notes.

    Args:
        n_bars: Length of the time axis.
        train_size: Bars in the (first) training span, >= 1.
        test_size: Bars in each test window, >= 1.
        step: Bars between consecutive test starts, >= 1; ``None`` means
            ``test_size``.
        purge: Bars left out between each training span and its test window, >= 0.
        embargo: Bars after each test window that later folds may not train on, >= 0.
        expanding: Training spans start at bar 0 and grow (else they roll with a
            fixed length ``train_size``).

    Returns:
        List of :class:`Split` ``(train, test)``, in time order; at least one.

    Raises:
        TypeError: A size is not an integer (or ``expanding`` not a bool).
        ValueError: A size is out of range, or ``n_bars`` is too short for one fold
            (``train_size + purge + test_size`` bars), or the embargo empties a
            training set; the message names the field.
    """
    n_bars = as_count(n_bars, "n_bars", 1)
    train_size = as_count(train_size, "train_size", 1)
    test_size = as_count(test_size, "test_size", 1)
    step = test_size if step is None else as_count(step, "step", 1)
    purge = as_count(purge, "purge", 0)
    embargo = as_count(embargo, "embargo", 0)
    if not isinstance(expanding, bool):
        raise TypeError(f"expanding must be a bool; got {expanding!r}")
    needed = train_size + purge + test_size
    if needed > n_bars:
        raise ValueError(
            f"n_bars={n_bars} is too short for one fold: train_size + purge + "
            f"test_size = {train_size} + {purge} + {test_size} = {needed} bars"
        )

    folds = (n_bars - needed) // step + 1
    embargoed = np.zeros(n_bars, dtype=bool)
    splits = []
    for fold in range(folds):
        test_start = train_size + purge + fold * step
        test_end = test_start + test_size
        train_end = test_start - purge
        train_start = 0 if expanding else train_end - train_size
        span = np.arange(train_start, train_end, dtype=np.int64)
        train = span[~embargoed[train_start:train_end]]
        if train.size == 0:
            raise ValueError(
                f"embargo={embargo} leaves fold {fold} no training bars: its "
                f"training span [{train_start}, {train_end}) lies in the embargo "
                "after earlier test windows; use a smaller embargo, a larger "
                "train_size or expanding=True"
            )
        test = np.arange(test_start, test_end, dtype=np.int64)
        splits.append(Split(train, test))
        embargoed[test_end : test_end + embargo] = True
    return splits
