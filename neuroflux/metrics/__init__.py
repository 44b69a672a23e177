"""Performance and risk statistics: pure JAX functions over a returns series [T].

Every function takes one series of simple (non-cumulative) returns [T] (or, in
:mod:`~neuroflux.metrics.trades`, one array of per-trade P&L [N] with an optional
padding mask) and returns scalars. All work under ``jax.jit`` and ``jax.vmap``:
``jax.vmap(sharpe_ratio)(returns)`` over [N, T] gives N Sharpe ratios, and
``jax.jit(jax.vmap(...))`` is the fast path (eagerly, JAX dispatches op by op).

Conventions follow empyrical-reloaded 0.7 and match it to rounding (float64): the
same formulas, ``periods_per_year`` in place of ``annualization`` (default 252), a
per-period ``risk_free``, the same NaN handling (NaNs are ignored by means and
standard deviations, count as 0 when compounding, are dropped by quantiles, except
that ``value_at_risk`` is NaN if any return is NaN, as ``np.percentile``) and NaN for
series too short to define a statistic. See each module for details.

Modules: :mod:`~neuroflux.metrics.returns` (total and annual return, volatility),
:mod:`~neuroflux.metrics.ratios` (Sharpe, Sortino, Calmar, omega, tail ratio,
stability, alpha/beta), :mod:`~neuroflux.metrics.drawdowns`,
:mod:`~neuroflux.metrics.tails` (VaR, CVaR), :mod:`~neuroflux.metrics.trades` (win
rate, profit factor, expectancy, SQN, Kelly),
:mod:`~neuroflux.metrics.sharpe_tests` (probabilistic and deflated Sharpe ratios) and
:mod:`~neuroflux.metrics.bootstrap` (paired block-bootstrap interval of a Sharpe
difference).
"""

from neuroflux.metrics.bootstrap import (
    sharpe_difference_bootstrap,
    stationary_bootstrap_indices,
)
from neuroflux.metrics.drawdowns import (
    drawdown_series,
    max_drawdown,
    max_drawdown_duration,
)
from neuroflux.metrics.ratios import (
    alpha_beta,
    calmar_ratio,
    downside_risk,
    omega_ratio,
    sharpe_ratio,
    sortino_ratio,
    stability,
    tail_ratio,
)
from neuroflux.metrics.returns import (
    annual_return,
    annual_volatility,
    cumulative_returns,
    total_return,
)
from neuroflux.metrics.sharpe_tests import (
    deflated_sharpe_ratio,
    expected_maximum_sharpe_ratio,
    probabilistic_sharpe_ratio,
    probabilistic_sharpe_ratio_from_moments,
    sharpe_moments,
)
from neuroflux.metrics.tails import conditional_value_at_risk, value_at_risk
from neuroflux.metrics.trades import (
    expectancy,
    kelly_fraction,
    profit_factor,
    sqn,
    win_rate,
)

__all__ = [
    "alpha_beta",
    "annual_return",
    "annual_volatility",
    "calmar_ratio",
    "conditional_value_at_risk",
    "cumulative_returns",
    "deflated_sharpe_ratio",
    "downside_risk",
    "drawdown_series",
    "expectancy",
    "expected_maximum_sharpe_ratio",
    "kelly_fraction",
    "max_drawdown",
    "max_drawdown_duration",
    "omega_ratio",
    "probabilistic_sharpe_ratio",
    "probabilistic_sharpe_ratio_from_moments",
    "profit_factor",
    "sharpe_difference_bootstrap",
    "sharpe_moments",
    "sharpe_ratio",
    "sortino_ratio",
    "sqn",
    "stability",
    "stationary_bootstrap_indices",
    "tail_ratio",
    "total_return",
    "value_at_risk",
    "win_rate",
]
