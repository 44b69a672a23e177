"""sweep against a Python loop over simulate; grid construction; under jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neuroflux import backtest, strategies
from neuroflux.backtest import Bars, SimulationConfig, SimulationParams, sweeps


def random_bars(seed: int = 7, bars: int = 250) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, bars)))
    open_ = close * np.exp(rng.normal(0.0, 0.005, bars))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, bars))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, bars))
    return Bars(*(jnp.asarray(x) for x in (open_, high, low, close)))


def test_grid_is_the_cartesian_product_in_itertools_order():
    grid = sweeps.grid(strategies.SmaCrossParams, fast=[5, 10], slow=[20, 30, 50])
    np.testing.assert_array_equal(grid.fast, [5, 5, 5, 10, 10, 10])
    np.testing.assert_array_equal(grid.slow, [20, 30, 50, 20, 30, 50])
    assert grid.fast.dtype == jnp.int64
    assert sweeps.grid_size(fast=[5, 10], slow=[20, 30, 50]) == 6
    bands = sweeps.grid(strategies.BollingerBreakoutParams, num_std=[1, 2])
    assert bands.num_std.dtype == jnp.float64
    np.testing.assert_array_equal(bands.window, [20, 20])  # the default, repeated


def test_from_columns_and_random_grid():
    defaults = strategies.SmaCrossParams(wait_for_cross=True)
    columns = sweeps.from_columns(defaults, fast=[5, 7], slow=[20, 40])
    np.testing.assert_array_equal(columns.slow, [20, 40])
    assert columns.wait_for_cross is True
    values = {"fast": list(range(2, 30)), "slow": list(range(30, 90))}
    sampled = sweeps.random_grid(jax.random.key(3), defaults, 25, **values)
    pairs = set(zip(sampled.fast.tolist(), sampled.slow.tolist(), strict=True))
    assert len(pairs) == 25
    full = sweeps.grid(defaults, **values)
    assert pairs <= set(zip(full.fast.tolist(), full.slow.tolist(), strict=True))
    whole = sweeps.random_grid(jax.random.key(3), defaults, 10**6, fast=[1, 2])
    np.testing.assert_array_equal(whole.fast, [1, 2])


def test_static_and_unknown_fields_are_errors():
    with pytest.raises(ValueError, match="static"):
        sweeps.grid(strategies.SmaCrossParams, wait_for_cross=[True, False])
    with pytest.raises(ValueError, match="no field 'fsat'"):
        sweeps.grid(strategies.SmaCrossParams, fsat=[1])
    with pytest.raises(ValueError, match="different lengths"):
        sweeps.from_columns(strategies.SmaCrossParams, fast=[1, 2], slow=[3])


@pytest.mark.parametrize(
    ("params", "config"),
    [
        (SimulationParams(fees=0.001, fixed_fees=1.0), SimulationConfig()),
        (SimulationParams(fees=0.002), SimulationConfig.backtesting_py()),
        (
            SimulationParams(fees=0.001, stop_loss=0.03, take_profit=0.06),
            SimulationConfig(fill="next_open"),
        ),
    ],
)
def test_sweep_equals_a_loop_over_simulate(params, config):
    bars = random_bars()
    defaults = strategies.SmaCrossParams(wait_for_cross=True)
    grid = sweeps.grid(defaults, fast=[3, 8], slow=[15, 40])
    stats = sweeps.sweep(bars, strategies.sma_cross, grid, params, config)
    assert set(stats) == set(backtest.STATISTICS)

    @jax.jit
    def loop_stats(one):
        target = strategies.sma_cross(bars.close, one)
        return backtest.simulate(bars, target, params, config).stats()

    for i in (0, 3):
        one = defaults.replace(fast=grid.fast[i], slow=grid.slow[i])
        expected = loop_stats(one)
        for name, value in expected.items():
            np.testing.assert_allclose(stats[name][i], value, rtol=1e-12, err_msg=name)


def test_sweep_under_jit_with_traced_costs():
    bars = random_bars(seed=11)
    grid = sweeps.grid(strategies.EmaCrossParams, fast=[4, 9], slow=[21, 35])

    @jax.jit
    def final_equity(bars, grid, fees):
        params = SimulationParams(fees=fees)
        return sweeps.sweep(bars, strategies.ema_cross, grid, params)["equity_final"]

    traced = final_equity(bars, grid, 0.001)
    plain = sweeps.sweep(
        bars, strategies.ema_cross, grid, SimulationParams(fees=0.001)
    )["equity_final"]
    np.testing.assert_allclose(traced, plain, rtol=1e-12)
    assert traced.shape == (4,)
