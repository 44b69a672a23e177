"""from_signals under jax.jit and jax.vmap: a panel equals its columns one by one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_panel

from neuroflux import backtest

from_signals = jax.jit(backtest.from_signals)
SETTINGS = {"fees": 0.002, "fixed_fees": 0.25, "slippage": 0.001, "init_cash": 1000.0}


def assert_trees_equal(actual, expected) -> None:
    jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
        actual,
        expected,
    )


def column(
    result: backtest.SignalsResult, index: int, axis: int = -1
) -> backtest.SignalsResult:
    return jax.tree.map(lambda leaf: jnp.take(leaf, index, axis=axis), result)


def test_panel_equals_columns_one_by_one():
    close, entries, exits = random_panel(seed=21, bars=160, columns=5)
    panel = from_signals(close, entries, exits, **SETTINGS)
    assert panel.value.shape == (160, 5)
    assert panel.trades.pnl.shape == (80, 5)
    assert panel.trades.count.shape == (5,)
    one = jax.jit(backtest.simulate_signals)
    for index in range(5):
        single = one(close[:, index], entries[:, index], exits[:, index], **SETTINGS)
        assert_trees_equal(column(panel, index), single)


def test_one_series_equals_a_one_column_panel():
    close, entries, exits = random_panel(seed=21, bars=160, columns=1)
    panel = from_signals(close, entries, exits, **SETTINGS)
    series = from_signals(close[:, 0], entries[:, 0], exits[:, 0], **SETTINGS)
    assert series.value.shape == (160,)
    assert series.trades.count.shape == ()
    assert_trees_equal(column(panel, 0), series)


def test_vmap_over_fee_levels_is_a_parameter_sweep():
    close, entries, exits = random_panel(seed=21, bars=160, columns=1)
    arguments = (close[:, 0], entries[:, 0], exits[:, 0])
    fee_levels = jnp.array([0.0, 0.001, 0.01, 0.05])

    def run(fees):
        return backtest.simulate_signals(*arguments, fees=fees)

    swept = jax.jit(jax.vmap(run))(fee_levels)
    one = jax.jit(run)
    for index, fees in enumerate(fee_levels):
        assert_trees_equal(column(swept, index, axis=0), one(fees))
    final = np.asarray(swept.value[:, -1])
    assert np.all(np.diff(final) < 0)  # more fees, less equity (same trades)


def test_per_column_parameters_broadcast():
    close, entries, exits = random_panel(seed=21, bars=160, columns=3)
    fees = np.array([0.0, 0.003, 0.03])
    panel = from_signals(close, entries, exits, fees=fees)
    for index in range(3):
        single = from_signals(
            close[:, index], entries[:, index], exits[:, index], fees=fees[index]
        )
        assert_trees_equal(column(panel, index), single)


def test_signals_broadcast_over_columns():
    close, entries, exits = random_panel(seed=21, bars=160, columns=4)
    panel = from_signals(close, entries[:, :1], exits[:, :1])
    tiled = from_signals(
        close, np.repeat(entries[:, :1], 4, 1), np.repeat(exits[:, :1], 4, 1)
    )
    assert_trees_equal(panel, tiled)


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"direction": "shortonly"}, ValueError, "direction must be 'longonly'"),
        ({"entries": np.ones(5)}, TypeError, "entries must be boolean"),
        ({"exits": np.zeros((5, 2), bool)}, ValueError, "exits of shape"),
        ({"close": np.ones((5, 2, 2))}, ValueError, r"shape \[T\] or \[T, N\]"),
    ],
)
def test_bad_arguments_are_named(arguments, error, match):
    call = {
        "close": np.ones(5),
        "entries": np.zeros(5, bool),
        "exits": np.zeros(5, bool),
    } | arguments
    with pytest.raises(error, match=match):
        backtest.from_signals(
            call.pop("close"), call.pop("entries"), call.pop("exits"), **call
        )
