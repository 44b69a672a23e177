"""simulate_portfolio: vectorbt 1.2.0's Portfolio.from_orders run in the test, rules,
jit/vmap and invariants (hypothesis)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neuroflux import metrics
from neuroflux.backtest import portfolio

simulate = jax.jit(portfolio.simulate_portfolio)


def costs(assets: int, fees=0.0, fixed_fees=0.0, slippage=0.0) -> dict:
    """Per-asset cost arrays: one argument type, so vectorbt compiles once."""
    return {
        name: np.broadcast_to(np.asarray(value, float), (assets,)).copy()
        for name, value in (
            ("fees", fees),
            ("fixed_fees", fixed_fees),
            ("slippage", slippage),
        )
    }


def assert_matches_vectorbt(close, weights, result, init_cash, **settings) -> None:
    """vectorbt given our weights on our rebalance bars and NaN elsewhere."""
    vbt = pytest.importorskip("vectorbt")
    result = jax.device_get(result)
    size = np.where(result.rebalanced[:, None], weights, np.nan)
    theirs = vbt.Portfolio.from_orders(
        close,
        size,
        size_type="targetpercent",
        group_by=True,
        cash_sharing=True,
        call_seq="auto",
        init_cash=init_cash,
        freq="1D",
        **settings,
    )
    np.testing.assert_allclose(
        result.value, theirs.value().to_numpy(), rtol=1e-9, atol=0
    )
    # vectorbt's cash() re-adds the order cash flows: ~1e-15 of the money moved.
    np.testing.assert_allclose(
        result.cash, theirs.cash().to_numpy(), rtol=1e-9, atol=1e-12 * init_cash
    )
    np.testing.assert_allclose(
        result.returns, theirs.returns().to_numpy(), rtol=1e-9, atol=1e-14
    )
    units = theirs.assets().to_numpy()
    np.testing.assert_allclose(
        result.units, units, rtol=1e-9, atol=1e-12 * np.abs(units).max()
    )
    records = theirs.orders.records
    size_traded = np.zeros_like(result.order_size)
    fees_paid = np.zeros_like(result.order_fees)
    sign = np.where(records["side"] == 0, 1.0, -1.0)
    size_traded[records["idx"], records["col"]] = sign * records["size"]
    fees_paid[records["idx"], records["col"]] = records["fees"]
    np.testing.assert_array_equal(result.order_size != 0, size_traded != 0)
    np.testing.assert_allclose(result.order_size, size_traded, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.order_fees, fees_paid, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def stocks_close() -> np.ndarray:
    """Adjusted daily closes of AAPL, IBM, MSFT and GOOG, 2004-2012 [2148, 4]."""
    from neuroflux.data import load_sample

    close = load_sample("us_stocks")["close"]
    assert list(close.columns) == ["aapl", "ibm", "msft", "goog"]
    return close.to_numpy(np.float64)


def random_close(seed: int, bars: int, assets: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.03, (bars, assets))
    return 50.0 * np.exp(np.cumsum(steps, axis=0))


def long_only_weights(seed: int, bars: int, assets: int) -> np.ndarray:
    """Random targets summing to 1 (every other row) or less."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(assets), bars)
    weights[1::2] *= rng.uniform(0.3, 1.0, (bars // 2, 1))
    return weights


@pytest.mark.parametrize(
    "cost",
    [{}, {"fees": 0.001, "fixed_fees": 2.0, "slippage": 0.0005}],
    ids=["free", "costly"],
)
def test_stocks_monthly_rebalance_matches_vectorbt(stocks_close, cost):
    bars, assets = stocks_close.shape
    weights = long_only_weights(0, bars, assets)
    schedule = portfolio.periodic_schedule(bars, 21)
    cost = costs(assets, **cost)
    result = simulate(
        stocks_close, weights, schedule=schedule, init_cash=10_000.0, **cost
    )
    np.testing.assert_array_equal(result.rebalanced, schedule)
    assert_matches_vectorbt(stocks_close, weights, result, 10_000.0, **cost)


def test_stocks_drift_rebalance_matches_vectorbt(stocks_close):
    bars, assets = stocks_close.shape
    weights = np.full((bars, assets), 0.25)
    cost = costs(assets, fees=[0.001, 0.002, 0.0, 0.003], slippage=0.001)
    result = simulate(
        stocks_close,
        weights,
        schedule=np.arange(bars) == 0,
        drift_threshold=0.05,
        init_cash=1_000.0,
        **cost,
    )
    assert 5 < int(result.rebalanced.sum()) < bars // 10
    assert_matches_vectorbt(stocks_close, weights, result, 1_000.0, **cost)


@pytest.mark.parametrize(
    "cost",
    [
        {"fees": 0.002, "slippage": 0.001},
        {"fees": [0.0, 0.001, 0.002, 0.003, 0.004, 0.01], "fixed_fees": 0.5},
        {"fixed_fees": 30.0},  # fees that the smaller orders cannot cover: rejected
    ],
    ids=["proportional", "per-asset", "large-fixed"],
)
def test_random_long_short_with_leverage_matches_vectorbt(cost):
    bars, assets = 300, 6
    close = random_close(1, bars, assets)
    rng = np.random.default_rng(2)
    # Gross exposure up to 3, net long often above 1: buys are cut to the cash left.
    weights = rng.uniform(-0.5, 0.6, (bars, assets))
    cost = costs(assets, **cost)
    result = simulate(
        close,
        weights,
        schedule=rng.random(bars) < 0.3,
        drift_threshold=0.2,
        init_cash=1_000.0,
        **cost,
    )
    units = np.asarray(result.units)
    assert (units < 0).any() and (units > 0).any()
    assert float(result.cash.min()) >= 0.0
    assert_matches_vectorbt(close, weights, result, 1_000.0, **cost)


def test_full_investment_with_fees_cuts_the_last_buy_like_vectorbt():
    bars, assets = 200, 5
    close = random_close(3, bars, assets)
    weights = np.random.default_rng(4).dirichlet(np.ones(assets), bars)
    cost = costs(assets, fees=0.005, slippage=0.002)
    result = simulate(
        close,
        weights,
        schedule=portfolio.periodic_schedule(bars, 5, offset=2),
        init_cash=50.0,
        **cost,
    )
    rebalanced = np.asarray(result.rebalanced)
    assert not rebalanced[:2].any()
    np.testing.assert_array_equal(result.value[:2], 50.0)
    # All the cash is spent: the buy last in line is cut to what is left.
    np.testing.assert_array_equal(result.cash[rebalanced], 0.0)
    assert_matches_vectorbt(close, weights, result, 50.0, **cost)


def test_rebalance_rule_schedule_or_drift_and_turnover():
    bars, assets = 120, 3
    close = random_close(5, bars, assets)
    weights = np.tile([0.5, 0.3, 0.2], (bars, 1))
    schedule = portfolio.periodic_schedule(bars, 40)
    result = jax.device_get(
        simulate(close, weights, schedule=schedule, drift_threshold=0.03, fees=0.001)
    )
    cash_before = np.concatenate([[100.0], result.cash[:-1]])
    units_before = np.concatenate([np.zeros((1, assets)), result.units[:-1]])
    value_before = cash_before + (units_before * close).sum(axis=1)
    held = units_before * close / value_before[:, None]
    drift = np.abs(held - weights).max(axis=1)
    np.testing.assert_array_equal(
        result.rebalanced, np.asarray(schedule) | (drift > 0.03)
    )
    assert result.rebalanced.sum() > np.asarray(schedule).sum()
    np.testing.assert_array_equal(result.order_size[~result.rebalanced], 0.0)
    traded = (np.abs(result.order_size) * close).sum(axis=1)
    np.testing.assert_allclose(result.turnover, traded / value_before, rtol=1e-12)
    assert result.turnover[0] == pytest.approx(1.0, rel=1e-3)  # buying in from cash


def test_periodic_schedule():
    np.testing.assert_array_equal(
        portfolio.periodic_schedule(7, 3), [1, 0, 0, 1, 0, 0, 1]
    )
    np.testing.assert_array_equal(
        portfolio.periodic_schedule(7, 2, offset=3), [0, 0, 0, 1, 0, 1, 0]
    )


def test_shapes_that_do_not_fit_are_named():
    close = np.ones((5, 3))
    with pytest.raises(ValueError, match=r"close must have shape \[T, A\]"):
        portfolio.simulate_portfolio(close[:, 0], np.ones(5))
    with pytest.raises(ValueError, match="weights of shape"):
        portfolio.simulate_portfolio(close, np.ones((5, 2)))
    with pytest.raises(ValueError, match="fees of shape"):
        portfolio.simulate_portfolio(close, np.ones(3) / 3, fees=[0.1, 0.2])


def test_vmap_over_weight_schemes_periods_and_fees_equals_single_runs():
    bars, assets = 60, 4
    close = random_close(6, bars, assets)
    schemes = np.stack(
        [
            long_only_weights(7, bars, assets),
            np.full((bars, assets), 0.25),
            np.tile([0.6, -0.2, 0.4, 0.1], (bars, 1)),
        ]
    )
    periods = jnp.array([1, 5, 20])
    fees = jnp.array([0.0, 0.001, 0.01])

    def run(weights, every, fee):
        schedule = portfolio.periodic_schedule(bars, every)
        return portfolio.simulate_portfolio(
            close, weights, schedule=schedule, fees=fee, drift_threshold=0.1
        )

    batched = jax.device_get(jax.jit(jax.vmap(run))(schemes, periods, fees))
    single = jax.jit(run)
    for i in range(3):
        expected = jax.device_get(single(schemes[i], periods[i], fees[i]))
        for name in ("cash", "units", "value", "order_size", "order_fees"):
            np.testing.assert_allclose(
                getattr(batched, name)[i],
                getattr(expected, name),
                rtol=1e-12,
                atol=1e-12,
            )
        np.testing.assert_array_equal(batched.rebalanced[i], expected.rebalanced)
    assert len(np.unique(batched.rebalanced.sum(axis=1))) == 3


# Properties on small panels of one shape, so that each compiles once.
BARS, ASSETS = 12, 3
PROPERTY = settings(max_examples=25, deadline=None)
closes = arrays(np.float64, (BARS, ASSETS), elements=st.floats(1.0, 100.0))
signed_weights = arrays(np.float64, (BARS, ASSETS), elements=st.floats(-1.0, 1.0))
positive_weights = arrays(np.float64, (BARS, ASSETS), elements=st.floats(0.0, 1.0))
masks = arrays(np.bool_, BARS)
proportional_fees = st.floats(0.0, 0.05)
slippages = st.floats(0.0, 0.05)
init_cash = st.floats(100.0, 1e6)


def at_most_fully_invested(weights: np.ndarray) -> np.ndarray:
    return weights / np.maximum(weights.sum(axis=1, keepdims=True), 1.0)


@PROPERTY
@given(closes, signed_weights, slippages, init_cash)
def test_no_fees_and_no_rebalance_after_the_first_bar_keeps_units(
    close, weights, slippage, cash
):
    result = simulate(
        close,
        weights,
        schedule=np.arange(BARS) == 0,
        slippage=slippage,
        init_cash=cash,
    )
    np.testing.assert_array_equal(
        result.units, np.broadcast_to(result.units[0], (BARS, ASSETS))
    )
    np.testing.assert_array_equal(result.order_size[1:], 0.0)
    np.testing.assert_array_equal(result.cash, result.cash[0])


@PROPERTY
@given(closes, positive_weights, masks, proportional_fees, slippages)
def test_costs_never_raise_value(close, weights, schedule, fees, slippage):
    # Long only, at most fully invested, rebalanced on a schedule: holdings with costs
    # are at most those without, scaled to the smaller value.
    weights = at_most_fully_invested(weights)
    free = simulate(close, weights, schedule=schedule, min_size=0.0)
    costly = simulate(
        close, weights, schedule=schedule, fees=fees, slippage=slippage, min_size=0.0
    )
    assert np.all(np.asarray(costly.value) <= np.asarray(free.value) * (1 + 1e-12))


@PROPERTY
@given(
    closes,
    signed_weights,
    masks,
    st.floats(0.0, 0.5),
    proportional_fees,
    st.floats(0.0, 5.0),
    slippages,
)
def test_value_is_cash_plus_holdings_and_cash_never_negative(
    close, weights, schedule, drift, fees, fixed_fees, slippage
):
    result = jax.device_get(
        simulate(
            close,
            weights,
            schedule=schedule,
            drift_threshold=drift,
            fees=fees,
            fixed_fees=fixed_fees,
            slippage=slippage,
        )
    )
    np.testing.assert_array_equal(result.asset_value, result.units * close)
    np.testing.assert_allclose(
        result.value,
        result.cash + (result.units * close).sum(axis=1),
        rtol=1e-12,
        atol=1e-12,
    )
    assert np.all(result.cash >= 0.0)
    assert np.all(result.order_fees >= 0.0)
    np.testing.assert_array_equal(result.order_size[~result.rebalanced], 0.0)


@PROPERTY
@given(closes, positive_weights, masks, proportional_fees, st.floats(0.0, 0.5))
def test_drawdown_of_value_is_never_positive(close, weights, schedule, fees, drift):
    weights = at_most_fully_invested(weights)
    result = simulate(
        close, weights, schedule=schedule, drift_threshold=drift, fees=fees
    )
    drawdown = np.asarray(metrics.drawdown_series(result.returns))
    assert np.all(drawdown <= 0.0)
    value = np.asarray(result.value)
    peak = np.maximum.accumulate(np.maximum(value, 100.0))
    np.testing.assert_allclose(drawdown, value / peak - 1, rtol=0, atol=1e-12)


@settings(max_examples=3, deadline=None)
@given(closes, signed_weights, masks, proportional_fees)
def test_jit_and_vmap_equal_eager(close, weights, schedule, fees):
    eager = portfolio.simulate_portfolio(
        close, weights, schedule=schedule, fees=fees, drift_threshold=0.1
    )
    jitted = simulate(close, weights, schedule=schedule, fees=fees, drift_threshold=0.1)
    batched = jax.vmap(
        lambda w: simulate(close, w, schedule=schedule, fees=fees, drift_threshold=0.1)
    )(np.stack([weights, -weights]))
    for name in ("cash", "units", "value", "returns", "order_size", "order_fees"):
        expected = np.asarray(getattr(eager, name))
        np.testing.assert_allclose(
            getattr(jitted, name), expected, rtol=1e-12, atol=1e-12
        )
        np.testing.assert_allclose(
            getattr(batched, name)[0], expected, rtol=1e-12, atol=1e-12
        )
