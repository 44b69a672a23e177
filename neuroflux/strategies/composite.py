"""The neuro composite score: RSI, distance from trend and MACD in one number.

``score = (0.3 (RSI - 50) / 50 + 0.4 (close - SMA20) / SMA20 + 0.3 (MACD - signal))
* (1 - 0.2 flux)``, with every weight, window and the flux damping as parameters.

Units. The RSI and trend terms are dimensionless (about +-1 and a few percent). The MACD
term is in price units, as the formula states: on an index near 2,000 the histogram is
tens of points and swamps the other two, and the same thresholds mean different things
on different instruments. ``normalize_macd=True`` divides the histogram by the close,
making the term a fraction of price comparable with the trend term; it is off by default
so that the score is the formula as written. Choose thresholds with the units in mind.

``flux`` is an exogenous series in [0, 1] (a regime or uncertainty estimate, e.g. from
the agents' flux estimator); high flux damps the score by up to ``flux_weight``. It
defaults to zeros, i.e. no damping.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct
from jax.typing import ArrayLike

from neuroflux import features
from neuroflux._arrays import as_series
from neuroflux.strategies.positions import Direction, hysteresis_positions

__all__ = ["NeuroCompositeParams", "neuro_composite", "neuro_score"]


@struct.dataclass
class NeuroCompositeParams:
    """Parameters of :func:`neuro_score` and :func:`neuro_composite`.

    Attributes:
        rsi_period: RSI period (integer >= 1).
        trend_window: Window of the SMA the close is compared with (integer >= 1).
        macd_fast: Fast span of the MACD line (integer >= 1).
        macd_slow: Slow span of the MACD line (integer >= 1).
        macd_signal: Span of the MACD signal line (integer >= 1).
        rsi_weight: Weight of ``(RSI - 50) / 50``.
        trend_weight: Weight of ``(close - SMA) / SMA``.
        macd_weight: Weight of ``MACD - signal`` (price units unless
            ``normalize_macd``).
        flux_weight: Damping: the score is multiplied by ``1 - flux_weight * flux``.
        entry: Enter long above ``entry``, short below ``-entry`` (>= 0).
        exit: Leave a long below ``exit``, a short above ``-exit`` (``exit <= entry``;
            ``exit < entry`` gives hysteresis).
        normalize_macd: Static; divide ``MACD - signal`` by the close.
        direction: Static :class:`Direction`.
    """

    rsi_period: int = 14
    trend_window: int = 20
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    rsi_weight: float = 0.3
    trend_weight: float = 0.4
    macd_weight: float = 0.3
    flux_weight: float = 0.2
    entry: float = 0.1
    exit: float = 0.0
    normalize_macd: bool = struct.field(pytree_node=False, default=False)
    direction: Direction = struct.field(pytree_node=False, default=Direction.LONG_SHORT)


def neuro_score(
    close: ArrayLike, params: NeuroCompositeParams, flux: ArrayLike | None = None
) -> jnp.ndarray:
    """The composite score [T] (module notes for the formula and its units).

    Args:
        close: Prices [T].
        params: :class:`NeuroCompositeParams`.
        flux: Series [T] in [0, 1]; zeros when omitted.

    Returns:
        [T] score; NaN until every indicator exists (the MACD signal line, usually) and
        where ``flux`` is NaN.
    """
    close = as_series(close, "close")
    flux = jnp.zeros_like(close) if flux is None else as_series(flux, "flux")
    if flux.shape != close.shape:
        raise ValueError(
            f"flux must have the shape of close {close.shape}; got {flux.shape}"
        )
    strength = features.rsi(close, params.rsi_period)
    trend = features.sma(close, params.trend_window)
    lines = features.macd(close, params.macd_fast, params.macd_slow, params.macd_signal)
    histogram = lines.line - lines.signal
    if params.normalize_macd:
        histogram = histogram / close
    score = (
        params.rsi_weight * (strength - 50) / 50
        + params.trend_weight * (close - trend) / trend
        + params.macd_weight * histogram
    )
    return (score * (1 - params.flux_weight * flux)).astype(close.dtype)


def neuro_composite(
    close: ArrayLike, params: NeuroCompositeParams, flux: ArrayLike | None = None
) -> jnp.ndarray:
    """Positions from thresholds on :func:`neuro_score`, with hysteresis.

    Stateful (``lax.scan``, see :func:`~neuroflux.strategies.hysteresis_positions`):
    long when ``score > entry``, held until ``score < exit``; short (long/short only)
    when ``score < -entry``, held until ``score > -exit``. Flat while the score is NaN
    (warm-up).

    Args:
        close: Prices [T].
        params: :class:`NeuroCompositeParams`.
        flux: Series [T] in [0, 1]; zeros when omitted.

    Returns:
        [T] positions in {-1, 0, 1} (long/short) or {0, 1} (long-only).
    """
    score = neuro_score(close, params, flux)
    return hysteresis_positions(
        enter_long=score > params.entry,
        exit_long=score < params.exit,
        enter_short=score < -params.entry,
        exit_short=score > -params.exit,
        ready=jnp.isfinite(score),
        direction=params.direction,
        dtype=score.dtype,
    )
