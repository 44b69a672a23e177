"""Differentiable backtest: smooth positions and costs, a Sharpe objective to ascend.

The exact backtests trade discrete positions, so their P&L is a step function of the
strategy's thresholds and weights and its gradient is zero almost everywhere. This
module replaces each discontinuity with a smooth stand-in, so that ``jax.grad`` of a
Sharpe ratio with respect to the parameters is finite and informative (and neural
policies can later be trained through :func:`portfolio_returns`):

* The neuro composite score (:func:`~neuroflux.strategies.composite.neuro_score`)
  has differentiable weights; the windows stay static integers in
  :class:`SmoothCompositeConfig`.
* The entry band becomes soft: :func:`smooth_positions` is
  ``(tanh((s - threshold) / temperature) + tanh((s + threshold) / temperature)) / 2``
  in (-1, 1) (long/short). As ``temperature -> 0`` it tends to 1 above ``threshold``,
  -1 below ``-threshold`` and 0 between: the composite's positions with
  ``exit == entry``. Hysteresis is path-dependent and has no smooth stand-in here.
* :func:`portfolio_returns` holds the positions as fractions of equity, rebalanced at
  every close, and charges ``fees * |change of position|`` with a smooth ``|x|``.

Warm-up bars (score NaN) are flat, and every ``where`` that masks them keeps NaNs
out of the gradients as well as the values.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct
from jax.typing import ArrayLike

from neuroflux._arrays import as_series
from neuroflux.strategies import composite
from neuroflux.strategies.positions import Direction

__all__ = [
    "SmoothCompositeConfig",
    "SmoothCompositeParams",
    "portfolio_returns",
    "sharpe_objective",
    "smooth_positions",
    "smooth_score",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SmoothCompositeConfig:
    """Static settings of the differentiable composite (a hashable jit argument).

    Attributes:
        rsi_period, trend_window, macd_fast, macd_slow, macd_signal: Integer windows,
            as in :class:`~neuroflux.strategies.composite.NeuroCompositeParams`.
        normalize_macd: Divide ``MACD - signal`` by the close. On by default, unlike
            the composite: in price units the MACD term swamps the others and
            saturates the soft thresholds, which leaves no gradient.
        direction: Long/short, or long-only (positions in (0, 1)).
        temperature: Width of the soft threshold, in score units (> 0).
        fees: Proportional cost per unit of position traded.
        turnover_smoothing: ``eps`` of the smooth ``|x| = sqrt(x^2 + eps^2) - eps``.
        periods_per_year: Bars in a year, to annualise the Sharpe ratio.
        volatility_floor: ``eps`` in the Sharpe denominator ``sqrt(var + eps^2)``, so
            that a flat strategy has a finite objective and gradient.
    """

    rsi_period: int = 14
    trend_window: int = 20
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    normalize_macd: bool = True
    direction: Direction = Direction.LONG_SHORT
    temperature: float = 0.05
    fees: float = 0.001
    turnover_smoothing: float = 1e-4
    periods_per_year: float = 252.0
    volatility_floor: float = 1e-8


@struct.dataclass
class SmoothCompositeParams:
    """The differentiable parameters: a pytree of floats (scalars, or [N] to vmap).

    Attributes:
        rsi_weight: Weight of ``(RSI - 50) / 50``.
        trend_weight: Weight of ``(close - SMA) / SMA``.
        macd_weight: Weight of ``MACD - signal``.
        flux_weight: Damping: the score is multiplied by ``1 - flux_weight * flux``.
        threshold: Half-width of the flat band of :func:`smooth_positions`.
    """

    rsi_weight: ArrayLike = 0.3
    trend_weight: ArrayLike = 0.4
    macd_weight: ArrayLike = 0.3
    flux_weight: ArrayLike = 0.2
    threshold: ArrayLike = 0.1


def smooth_score(
    close: ArrayLike,
    params: SmoothCompositeParams,
    config: SmoothCompositeConfig,
    flux: ArrayLike | None = None,
) -> jnp.ndarray:
    """The neuro composite score [T], with gradients for the weights.

    Equal to :func:`~neuroflux.strategies.composite.neuro_score` with the same
    weights and windows. The indicators are masked before they are weighted: a NaN
    warm-up value times a weight would make the weight's gradient NaN.

    Args:
        close: Prices [T].
        params: :class:`SmoothCompositeParams` (only the weights are used).
        config: :class:`SmoothCompositeConfig` (windows, ``normalize_macd``).
        flux: Series [T] in [0, 1]; zeros when omitted.

    Returns:
        [T] score; NaN over the indicators' warm-up.
    """
    close = as_series(close, "close")
    flux = jnp.zeros_like(close) if flux is None else as_series(flux, "flux")
    windows = composite.NeuroCompositeParams(
        rsi_period=config.rsi_period,
        trend_window=config.trend_window,
        macd_fast=config.macd_fast,
        macd_slow=config.macd_slow,
        macd_signal=config.macd_signal,
        normalize_macd=config.normalize_macd,
    )

    def term(unit: jnp.ndarray) -> jnp.ndarray:
        return composite.neuro_score(
            close,
            windows.replace(
                rsi_weight=unit[0], trend_weight=unit[1], macd_weight=unit[2]
            ),
        )

    # The score is linear in the weights: its three terms [3, T] come from the
    # composite itself with unit weights (vmap computes the indicators once).
    terms = jax.vmap(term)(jnp.eye(3, dtype=close.dtype))
    ready = jnp.all(jnp.isfinite(terms), axis=0) & jnp.isfinite(flux)
    terms = jnp.where(ready, terms, 0.0)
    weights = jnp.stack([params.rsi_weight, params.trend_weight, params.macd_weight])
    score = weights.astype(close.dtype) @ terms
    score = score * (1 - params.flux_weight * jnp.where(ready, flux, 0.0))
    return jnp.where(ready, score, jnp.nan)


def smooth_positions(
    score: ArrayLike,
    threshold: ArrayLike,
    temperature: ArrayLike,
    direction: Direction = Direction.LONG_SHORT,
) -> jnp.ndarray:
    """Soft threshold positions: a smooth version of the composite's entry band.

    Long/short: ``(tanh((s - threshold) / temperature) + tanh((s + threshold) /
    temperature)) / 2``, odd in ``s``, in (-1, 1). Long-only: ``(1 + tanh((s -
    threshold) / temperature)) / 2``, in (0, 1). Both tend to the hard band as
    ``temperature -> 0``.

    Args:
        score: Score [T]; NaN (warm-up) gives a flat position.
        threshold: Half-width of the flat band (scalar).
        temperature: Softness, in score units (scalar > 0).
        direction: Static :class:`~neuroflux.strategies.Direction`.

    Returns:
        [T] positions; 0 where ``score`` is NaN.
    """
    score = as_series(score, "score")
    ready = jnp.isfinite(score)
    score = jnp.where(ready, score, 0.0)  # also keeps NaN out of the gradient
    long = jnp.tanh((score - threshold) / temperature)
    if Direction.parse(direction) is Direction.LONG_ONLY:
        positions = (1 + long) / 2
    else:
        positions = (long + jnp.tanh((score + threshold) / temperature)) / 2
    return jnp.where(ready, positions, 0.0).astype(score.dtype)


def portfolio_returns(
    close: ArrayLike,
    positions: ArrayLike,
    fees: ArrayLike = 0.0,
    turnover_smoothing: ArrayLike = 1e-4,
) -> jnp.ndarray:
    """Returns [T] of holding ``positions`` (fractions of equity), with smooth costs.

    ``r_t = p_{t-1} (close_t / close_{t-1} - 1) - fees * |p_t - p_{t-1}|`` with
    ``p_{-1} = 0`` (``r_0`` is the cost of the first trade) and the smooth ``|x| =
    sqrt(x^2 + eps^2) - eps``, which is 0 at 0 and within ``eps`` of ``|x|``.

    Relation to an exact simulation: a position is the target exposure ``p_t`` of
    equity at the close of bar ``t``, in fractional units, rebalanced at every bar.
    Without fees this *is* that backtest's bar-on-bar return, exactly (for positions
    in {0, 1}, that of :func:`~neuroflux.backtest.from_signals` too). With fees it is
    its first-order approximation: it charges the change of target weight rather
    than the trade from the weight that drifted with the price since the last bar,
    and ignores fees on fees (errors of order ``fees * |p R|``).

    Args:
        close: Prices [T], finite and positive.
        positions: Target positions [T] (any real values; leverage is ``|p|``).
        fees: Proportional cost per unit of position traded.
        turnover_smoothing: ``eps`` of the smooth ``|x|`` (> 0 for a gradient at 0).

    Returns:
        [T] simple returns.
    """
    close = as_series(close, "close")
    positions = as_series(positions, "positions")
    asset = jnp.concatenate([jnp.zeros(1, close.dtype), close[1:] / close[:-1] - 1])
    held = jnp.concatenate([jnp.zeros(1, positions.dtype), positions[:-1]])
    trade = positions - held
    turnover = jnp.sqrt(trade**2 + turnover_smoothing**2) - turnover_smoothing
    return held * asset - fees * turnover


def sharpe_objective(
    params: SmoothCompositeParams,
    close: ArrayLike,
    config: SmoothCompositeConfig,
    flux: ArrayLike | None = None,
) -> jnp.ndarray:
    """Annualised Sharpe ratio of the smooth composite, to maximise over ``params``.

    ``sqrt(P) * mean(r) / sqrt(var(r, ddof=1) + floor^2)`` over every bar's
    :func:`portfolio_returns` (warm-up bars included, flat), with zero risk-free rate:
    :func:`~neuroflux.metrics.sharpe_ratio` when ``floor = 0``. Differentiable in
    every field of ``params``; jit it with ``config`` static and vmap it over
    ``params``.

    Args:
        params: :class:`SmoothCompositeParams` (scalars).
        close: Prices [T].
        config: :class:`SmoothCompositeConfig`.
        flux: Series [T] in [0, 1]; zeros when omitted.

    Returns:
        Scalar objective.
    """
    score = smooth_score(close, params, config, flux)
    positions = smooth_positions(
        score, params.threshold, config.temperature, config.direction
    )
    returns = portfolio_returns(
        close, positions, config.fees, config.turnover_smoothing
    )
    variance = jnp.var(returns, ddof=1)
    volatility = jnp.sqrt(variance + config.volatility_floor**2)
    return jnp.sqrt(config.periods_per_year) * jnp.mean(returns) / volatility
