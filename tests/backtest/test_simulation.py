"""simulate: next-open fills against vectorbt, stop rules on hand-made bars, invariants
with hypothesis, and the same numbers under jit and vmap."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import vectorbt as vbt
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroflux import backtest, strategies
from neuroflux.backtest import Bars, SimulationConfig, SimulationParams

simulate = jax.jit(backtest.simulate, static_argnums=3)
NEXT_OPEN = SimulationConfig(fill="next_open")


def random_bars(seed: int, count: int) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, count)))
    open_ = close * np.exp(rng.normal(0.0, 0.005, count))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, count))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, count))
    return Bars(*(jnp.asarray(x) for x in (open_, high, low, close)))


def test_next_open_fills_equal_vectorbt_orders_at_the_next_open():
    bars = random_bars(seed=3, count=400)
    targets = strategies.sma_cross(
        bars.close, strategies.make_params("sma_cross", fast=5, slow=20)
    )
    signals = strategies.positions_to_signals(targets)

    def shifted(flags):
        return np.concatenate([[False], np.asarray(flags)[:-1]])

    costs = dict(fees=0.002, slippage=0.001, init_cash=1_000.0)
    peer = vbt.Portfolio.from_signals(
        np.asarray(bars.close),
        shifted(signals.long_entries),
        shifted(signals.long_exits),
        short_entries=shifted(signals.short_entries),
        short_exits=shifted(signals.short_exits),
        price=np.asarray(bars.open),
        **costs,
    )
    result = simulate(bars, targets, SimulationParams(**costs), NEXT_OPEN)
    np.testing.assert_allclose(result.value, peer.value(), rtol=1e-9, atol=0)
    assert int(result.trades.count) == peer.positions.count()


def hand_bars(rows) -> Bars:
    """Bars from (open, high, low, close) rows."""
    return Bars(*(jnp.asarray(column, float) for column in zip(*rows, strict=True)))


LONG_THEN_HOLD = [1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("rows", "params", "exit_bar", "exit_price"),
    [
        # stop-loss at 95 touched inside bar 2
        (
            [
                (100, 100, 100, 100),
                (100, 101, 97, 98),
                (98, 99, 94, 96),
                (96, 97, 95, 96),
            ],
            SimulationParams(init_cash=100.0, stop_loss=0.05),
            2,
            95.0,
        ),
        # a gap below the stop fills at the open
        (
            [
                (100, 100, 100, 100),
                (90, 91, 88, 89),
                (89, 90, 88, 89),
                (89, 90, 88, 89),
            ],
            SimulationParams(init_cash=100.0, stop_loss=0.05),
            1,
            90.0,
        ),
        # take-profit at 110
        (
            [
                (100, 100, 100, 100),
                (104, 108, 103, 107),
                (107, 112, 106, 111),
                (111, 112, 110, 111),
            ],
            SimulationParams(init_cash=100.0, take_profit=0.10),
            2,
            110.0,
        ),
        # trailing stop: peak 120 on bar 2, exit at 108 on bar 3
        (
            [
                (100, 100, 100, 100),
                (105, 115, 104, 114),
                (114, 120, 113, 118),
                (118, 119, 107, 109),
            ],
            SimulationParams(init_cash=100.0, trailing_stop=0.10),
            3,
            108.0,
        ),
    ],
)
def test_stops_exit_at_their_level_or_the_gapped_open(
    rows, params, exit_bar, exit_price
):
    result = simulate(hand_bars(rows), jnp.asarray(LONG_THEN_HOLD), params, None)
    trades = result.trades
    assert int(trades.count) == 1 and not bool(trades.is_open[0])
    assert int(trades.entry_index[0]) == 0 and int(trades.exit_index[0]) == exit_bar
    assert float(trades.exit_price[0]) == pytest.approx(exit_price)
    # flat after the stop and not re-entered while the target stays long
    assert np.all(np.asarray(result.units)[exit_bar:] == 0)
    assert float(result.value[-1]) == pytest.approx(exit_price)


def test_short_stop_loss_mirrors_the_long_one():
    rows = [(100, 100, 100, 100), (101, 104, 100, 103), (103, 106, 102, 105)]
    params = SimulationParams(init_cash=100.0, stop_loss=0.05)
    result = simulate(hand_bars(rows), jnp.asarray([-1.0, -1.0, -1.0]), params, None)
    assert int(result.trades.exit_index[0]) == 2
    assert float(result.trades.exit_price[0]) == pytest.approx(105.0)
    assert float(result.trades.pnl[0]) == pytest.approx(-5.0)


def test_a_new_target_re_enters_after_a_stop():
    rows = [(100, 100, 100, 100), (99, 99, 90, 92), (92, 93, 91, 92), (92, 93, 91, 93)]
    params = SimulationParams(init_cash=100.0, stop_loss=0.05)
    result = simulate(hand_bars(rows), jnp.asarray([1.0, 1.0, 0.0, 1.0]), params, None)
    assert np.asarray(result.units).tolist()[:3] == [1.0, 0.0, 0.0]
    assert float(result.units[3]) > 0
    assert int(result.trades.count) == 2


def test_whole_units_round_toward_zero_and_pay_fixed_fees():
    bars = Bars.from_close(jnp.asarray([30.0, 31.0, 29.0, 33.0]))
    params = SimulationParams(init_cash=100.0, fixed_fees=1.0)
    config = SimulationConfig(units="whole")
    result = simulate(bars, jnp.asarray([1.0, 1.0, -1.0, 0.0]), params, config)
    # 99 // 30 = 3 units; closed at 29 (cash 100 - 90 - 1 + 87 - 1 = 95), then
    # short (95 - 1) // 29 = 3 units (cash 181), covered at 33 (cash 181 - 99 - 1).
    np.testing.assert_array_equal(result.units, [3.0, 3.0, -3.0, 0.0])
    np.testing.assert_allclose(result.value, [99.0, 102.0, 94.0, 81.0])
    np.testing.assert_allclose(result.trades.pnl[:2], [-5.0, -14.0])


targets_strategy = st.lists(
    st.sampled_from([-1.0, -0.5, 0.0, 0.25, 1.0]), min_size=30, max_size=30
)


@settings(max_examples=25, deadline=None)
@given(
    targets=targets_strategy,
    seed=st.integers(0, 1_000),
    fill=st.sampled_from(["close", "next_open"]),
)
def test_equity_is_cash_plus_position_value_on_every_bar(targets, seed, fill):
    bars = random_bars(seed, 30)
    config = SimulationConfig(fill=fill, units="fractional")
    result = simulate(bars, jnp.asarray(targets), SimulationParams(fees=0.001), config)
    np.testing.assert_allclose(
        result.value, result.cash + result.units * bars.close, rtol=1e-12
    )
    assert float(result.stats()["max_drawdown_pct"]) <= 0.0
    assert float(jnp.sum(result.fees)) == pytest.approx(
        float(jnp.nansum(result.trades.fees)), rel=1e-9
    )


@settings(max_examples=25, deadline=None)
@given(
    targets=targets_strategy,
    seed=st.integers(0, 1_000),
    fees=st.floats(0.0, 0.01),
    slippage=st.floats(0.0, 0.01),
    fill=st.sampled_from(["close", "next_open"]),
)
def test_costs_never_increase_final_equity(targets, seed, fees, slippage, fill):
    bars = random_bars(seed, 30)
    config = SimulationConfig(fill=fill)
    free = simulate(bars, jnp.asarray(targets), SimulationParams(), config)
    costly = simulate(
        bars,
        jnp.asarray(targets),
        SimulationParams(fees=fees, slippage=slippage, fixed_fees=fees),
        config,
    )
    assert float(costly.value[-1]) <= float(free.value[-1]) * (1 + 1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1_000), fill=st.sampled_from(["close", "next_open"]))
def test_a_flat_target_keeps_equity_constant(seed, fill):
    bars = random_bars(seed, 30)
    params = SimulationParams(fees=0.01, fixed_fees=1.0, stop_loss=0.01)
    result = simulate(bars, jnp.zeros(30), params, SimulationConfig(fill=fill))
    np.testing.assert_array_equal(result.value, np.full(30, params.init_cash))
    assert int(result.trades.count) == 0


def test_vmap_over_targets_and_costs_equals_one_by_one():
    bars = random_bars(seed=5, count=120)
    grid = strategies.make_params(
        "ema_cross", fast=jnp.asarray([3, 5, 8]), slow=jnp.asarray([20, 30, 40])
    )
    targets = jax.vmap(strategies.ema_cross, in_axes=(None, 0))(bars.close, grid)
    params = jax.tree.map(
        lambda x: jnp.broadcast_to(jnp.asarray(x, float), (3,)),
        SimulationParams(fees=jnp.asarray([0.0, 0.001, 0.002]), stop_loss=0.05),
    )
    batched = jax.vmap(backtest.simulate, in_axes=(None, 0, 0, None))(
        bars, targets, params, NEXT_OPEN
    )
    for index in range(3):
        one = backtest.simulate(
            bars,
            targets[index],
            jax.tree.map(lambda x, i=index: x[i], params),
            NEXT_OPEN,
        )
        for got, expected in zip(
            jax.tree.leaves(jax.tree.map(lambda x, i=index: x[i], batched)),
            jax.tree.leaves(one),
            strict=True,
        ):
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_config_errors_name_the_field_and_the_choices():
    with pytest.raises(ValueError, match="fill must be one of"):
        SimulationConfig(fill="open")
    with pytest.raises(ValueError, match="whole units"):
        SimulationConfig(sizing="backtesting.py")
    config = dataclasses.replace(SimulationConfig.backtesting_py(), close_at_end=True)
    assert hash(config)  # usable as a static jit argument


def test_a_step_strategy_driven_by_scan_backtests_like_its_signal_function():
    bars = random_bars(seed=11, count=300)
    params = strategies.make_params("sma_cross", fast=5, slow=25)
    step_bars = strategies.Bar.from_arrays(
        bars.close, open=bars.open, high=bars.high, low=bars.low
    )
    _, actions = strategies.run_steps(
        strategies.STEP_STRATEGIES["sma_cross"], params, step_bars
    )
    from_steps = simulate(bars, actions, SimulationParams(fees=0.001), NEXT_OPEN)
    from_signal = simulate(
        bars,
        strategies.sma_cross(bars.close, params),
        SimulationParams(fees=0.001),
        NEXT_OPEN,
    )
    assert int(from_steps.trades.count) > 5
    for got, expected in zip(
        jax.tree.leaves(from_steps), jax.tree.leaves(from_signal), strict=True
    ):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fixed_fees", [0.0, 1.0])
def test_rebalance_orders_replay_the_simulated_account(fixed_fees):
    """Orders from rebalance_orders, filled one by one outside the scan, give the
    cash and units simulate holds after every bar (close fills, costs, reversals)."""
    bars = random_bars(seed=5, count=300)
    targets = np.asarray(
        strategies.sma_cross(
            bars.close,
            strategies.make_params(
                "sma_cross", fast=5, slow=20, direction="long_short"
            ),
        )
    )
    targets = np.where(np.arange(300) % 37 == 0, 0.5 * targets, targets)
    params = SimulationParams(fees=0.001, slippage=0.0005, fixed_fees=fixed_fees)
    result = simulate(bars, targets, params, SimulationConfig())
    orders = jax.jit(backtest.rebalance_orders, static_argnums=6)
    cash, units, traded = params.init_cash, 0.0, 0.0
    closes = np.asarray(bars.close)
    for t, (target, price) in enumerate(zip(targets, closes, strict=True)):
        for amount in orders(cash, units, traded, target, price, params, None):
            amount = float(amount)
            if amount != 0:
                fill = price * (1 + params.slippage * np.sign(amount))
                cash -= amount * fill + abs(amount) * fill * params.fees + fixed_fees
                units += amount
        traded = target
        np.testing.assert_allclose(
            [cash, units], [result.cash[t], result.units[t]], rtol=1e-12, atol=1e-9
        )
