"""Mean reversion on the relative strength index.

References:
    J. Welles Wilder, "New Concepts in Technical Trading Systems", 1978.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct
from jax.typing import ArrayLike

from neuroflux import features
from neuroflux._arrays import as_series
from neuroflux.strategies.positions import Direction, hysteresis_positions

__all__ = ["RsiReversionParams", "rsi_reversion"]


@struct.dataclass
class RsiReversionParams:
    """Parameters of :func:`rsi_reversion`.

    Attributes:
        period: RSI smoothing period (integer >= 1).
        lower: Oversold level in [0, 100]: go long below it.
        upper: Overbought level in [0, 100], above ``lower``: leave the long (or go
            short) above it.
        direction: Static :class:`Direction`.
    """

    period: int = 14
    lower: float = 30.0
    upper: float = 70.0
    direction: Direction = struct.field(pytree_node=False, default=Direction.LONG_SHORT)


def rsi_reversion(close: ArrayLike, params: RsiReversionParams) -> jnp.ndarray:
    """Buy oversold, sell overbought, holding in between.

    Stateful (hysteresis by ``lax.scan``, see
    :func:`~neuroflux.strategies.hysteresis_positions`), with ``r`` =
    :func:`neuroflux.features.rsi` (Wilder, TA-Lib seeding):

    * ``r < lower``: long;
    * ``r > upper``: short (long/short) or flat (long-only);
    * otherwise: the previous position, so long/short is a reversal system that is
      always in the market after its first signal, and long-only holds each long from
      the oversold bar to the next overbought bar.

    Flat over the RSI warm-up (bars ``0 .. period - 1``).

    Args:
        close: Prices [T].
        params: :class:`RsiReversionParams`.

    Returns:
        [T] positions in {-1, 0, 1} (long/short) or {0, 1} (long-only).
    """
    close = as_series(close, "close")
    strength = features.rsi(close, params.period)
    oversold = strength < params.lower
    overbought = strength > params.upper
    return hysteresis_positions(
        enter_long=oversold,
        exit_long=overbought,
        enter_short=overbought,
        exit_short=oversold,
        ready=jnp.isfinite(strength),
        direction=params.direction,
        dtype=close.dtype,
    )
