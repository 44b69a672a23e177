"""The summary statistics of a backtest, as one pure function of its result.

Return and risk figures follow :mod:`neuroflux.metrics` (empyrical's conventions:
arithmetic mean of bar returns for Sharpe and Sortino, geometric annual return);
trade figures use the closed trades only, as backtesting.py does. Percentages are in
percent. backtesting.py annualises its Sharpe ratio differently (geometric mean return
over a compounded volatility), so the two Sharpe ratios are not comparable.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from neuroflux import metrics

__all__ = ["STATISTICS", "backtest_stats"]

STATISTICS = {
    "equity_final": "equity at the last bar",
    "return_pct": "total return, %",
    "annual_return_pct": "compound annual growth rate, %",
    "annual_volatility_pct": "annualised standard deviation of bar returns, %",
    "sharpe_ratio": "annualised Sharpe ratio (risk-free 0)",
    "sortino_ratio": "annualised Sortino ratio",
    "calmar_ratio": "annual return over the absolute max drawdown",
    "max_drawdown_pct": "largest peak-to-trough fall of equity, % (<= 0)",
    "max_drawdown_bars": "longest run of bars below a previous equity peak",
    "exposure_pct": "share of bars holding a position, %",
    "fees_paid": "sum of all fees",
    "trades": "number of closed trades",
    "win_rate_pct": "closed trades with positive P&L, %",
    "best_trade_pct": "best closed-trade return, %",
    "worst_trade_pct": "worst closed-trade return, %",
    "avg_trade_pct": "mean closed-trade return, %",
    "profit_factor": "gross profit over gross loss of closed trades",
    "sqn": "system quality number of closed-trade P&L",
    "kelly_fraction": "Kelly fraction from closed-trade P&L",
}


def backtest_stats(result, periods_per_year: ArrayLike = 252) -> dict[str, jnp.ndarray]:
    """Statistics of a :class:`~neuroflux.backtest.simulation.Result` ([T] series).

    Args:
        result: The backtest result of one series (vmap for many).
        periods_per_year: Bars per year, for annualisation.

    Returns:
        A dict of scalars keyed as :data:`STATISTICS`.
    """
    returns = result.returns
    trades = result.trade_records
    closed = trades.closed
    trade_returns = trades.returns
    hundred = jnp.asarray(100.0, returns.dtype)

    def over_trades(reduce, values):
        picked = jnp.where(closed, values, jnp.nan)
        return jnp.where(jnp.any(closed), reduce(picked), jnp.nan)

    return {
        "equity_final": result.value[-1],
        "return_pct": hundred * metrics.total_return(returns),
        "annual_return_pct": hundred * metrics.annual_return(returns, periods_per_year),
        "annual_volatility_pct": hundred
        * metrics.annual_volatility(returns, periods_per_year),
        "sharpe_ratio": metrics.sharpe_ratio(
            returns, periods_per_year=periods_per_year
        ),
        "sortino_ratio": metrics.sortino_ratio(
            returns, periods_per_year=periods_per_year
        ),
        "calmar_ratio": metrics.calmar_ratio(returns, periods_per_year),
        "max_drawdown_pct": hundred * metrics.max_drawdown(returns),
        "max_drawdown_bars": metrics.max_drawdown_duration(returns),
        "exposure_pct": hundred * jnp.mean(result.units != 0),
        "fees_paid": jnp.sum(result.fees),
        "trades": jnp.sum(closed),
        "win_rate_pct": hundred * metrics.win_rate(trades.pnl, closed),
        "best_trade_pct": hundred * over_trades(jnp.nanmax, trade_returns),
        "worst_trade_pct": hundred * over_trades(jnp.nanmin, trade_returns),
        "avg_trade_pct": hundred * over_trades(jnp.nanmean, trade_returns),
        "profit_factor": metrics.profit_factor(trades.pnl, closed),
        "sqn": metrics.sqn(trades.pnl, closed),
        "kelly_fraction": metrics.kelly_fraction(trades.pnl, closed),
    }
