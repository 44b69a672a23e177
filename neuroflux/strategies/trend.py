"""Trend-following signal functions: buy-and-hold, moving-average crosses, MACD,
Bollinger breakout.

Each function is ``(close [T], params) -> positions [T]``, pure and NaN-free (flat
during warm-up). Integer windows in the params may be traced, so a grid of parameters
is one ``jax.vmap`` over a params pytree of arrays::

    fast, slow = jnp.meshgrid(jnp.arange(5, 15), jnp.arange(20, 30), indexing="ij")
    grid = SmaCrossParams(fast=fast.ravel(), slow=slow.ravel())
    positions = jax.jit(jax.vmap(sma_cross, in_axes=(None, 0)))(close, grid)  # [100, T]

``direction`` is a static field (not a pytree leaf): it is shared by a whole grid and
selects code, not numbers.

References:
    Gerald Appel, "Technical Analysis: Power Tools for Active Investors", 2005 (MACD).
    John Bollinger, "Bollinger on Bollinger Bands", 2001.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct
from jax.typing import ArrayLike

from neuroflux import features
from neuroflux._arrays import as_series
from neuroflux.strategies.positions import (
    Direction,
    crossover_positions,
    hysteresis_positions,
)

__all__ = [
    "BollingerBreakoutParams",
    "BuyAndHoldParams",
    "EmaCrossParams",
    "MacdCrossParams",
    "SmaCrossParams",
    "bollinger_breakout",
    "buy_and_hold",
    "ema_cross",
    "macd_cross",
    "sma_cross",
]


def _crossover(fast: jnp.ndarray, slow: jnp.ndarray, params) -> jnp.ndarray:
    """Crossover positions; with ``params.wait_for_cross``, flat until a crossing.

    A crossing is a bar where the fast line is strictly on the other side of the slow
    line than on the bar before, as backtesting.py's ``crossover`` and vectorbt's
    ``ma_crossed_above``/``below`` count it; the first one starts the trading
    (otherwise the position at the end of the warm-up is taken at once).
    """
    positions = crossover_positions(fast, slow, params.direction)
    if not params.wait_for_cross:
        return positions
    side = jnp.sign(fast - slow)
    crossed = side[1:] * side[:-1] < 0
    started = jnp.concatenate([jnp.zeros(1, bool), jnp.cumsum(crossed) > 0])
    return jnp.where(started, positions, 0.0)


def _direction_field(default: Direction = Direction.LONG_SHORT):
    return struct.field(pytree_node=False, default=default)


@struct.dataclass
class BuyAndHoldParams:
    """Parameters of :func:`buy_and_hold`.

    Attributes:
        start: First bar held (integer >= 0); flat before it, e.g. to start together
            with a strategy that needs a warm-up.
        direction: Static; buy-and-hold is long in both directions.
    """

    start: int = 0
    direction: Direction = _direction_field(Direction.LONG_ONLY)


def buy_and_hold(close: ArrayLike, params: BuyAndHoldParams) -> jnp.ndarray:
    """Long from bar ``params.start`` to the end.

    Args:
        close: Prices [T] (only the length is used).
        params: :class:`BuyAndHoldParams`.

    Returns:
        [T] positions in {0, 1}.
    """
    close = as_series(close, "close")
    bars = jnp.arange(close.shape[0])
    return (bars >= params.start).astype(close.dtype)


@struct.dataclass
class SmaCrossParams:
    """Parameters of :func:`sma_cross`.

    Attributes:
        fast: Window of the fast simple moving average (integer >= 1).
        slow: Window of the slow simple moving average (integer >= 1).
        direction: Static :class:`Direction`.
        wait_for_cross: Static; stay flat until the lines first cross.
    """

    fast: int = 10
    slow: int = 50
    direction: Direction = _direction_field()
    wait_for_cross: bool = struct.field(pytree_node=False, default=False)


def sma_cross(close: ArrayLike, params: SmaCrossParams) -> jnp.ndarray:
    """Long while ``sma(close, fast) > sma(close, slow)``, short (or flat) below.

    Stateless. Flat until both averages exist (bar ``max(fast, slow) - 1``) and on
    bars where they are equal. ``fast > slow`` is allowed and simply trades the
    opposite way.

    Args:
        close: Prices [T].
        params: :class:`SmaCrossParams`.

    Returns:
        [T] positions in {-1, 0, 1} (long/short) or {0, 1} (long-only).
    """
    close = as_series(close, "close")
    fast = features.sma(close, params.fast)
    slow = features.sma(close, params.slow)
    return _crossover(fast, slow, params)


@struct.dataclass
class EmaCrossParams:
    """Parameters of :func:`ema_cross`.

    Attributes:
        fast: Span of the fast exponential average (integer >= 1).
        slow: Span of the slow exponential average (integer >= 1).
        direction: Static :class:`Direction`.
        wait_for_cross: Static; stay flat until the lines first cross.
    """

    fast: int = 12
    slow: int = 26
    direction: Direction = _direction_field()
    wait_for_cross: bool = struct.field(pytree_node=False, default=False)


def ema_cross(close: ArrayLike, params: EmaCrossParams) -> jnp.ndarray:
    """Long while ``ema(close, fast) > ema(close, slow)``, short (or flat) below.

    Averages as :func:`neuroflux.features.ema` (pandas ``ewm(span, adjust=False,
    min_periods=span)``). Stateless; flat until both exist and on equal bars.

    Args:
        close: Prices [T].
        params: :class:`EmaCrossParams`.

    Returns:
        [T] positions in {-1, 0, 1} (long/short) or {0, 1} (long-only).
    """
    close = as_series(close, "close")
    fast = features.ema(close, params.fast)
    slow = features.ema(close, params.slow)
    return _crossover(fast, slow, params)


@struct.dataclass
class MacdCrossParams:
    """Parameters of :func:`macd_cross`.

    Attributes:
        fast: Span of the fast average of the MACD line (integer >= 1).
        slow: Span of the slow average of the MACD line (integer >= 1).
        signal: Span of the signal line (integer >= 1).
        direction: Static :class:`Direction`.
        wait_for_cross: Static; stay flat until the lines first cross.
    """

    fast: int = 12
    slow: int = 26
    signal: int = 9
    direction: Direction = _direction_field()
    wait_for_cross: bool = struct.field(pytree_node=False, default=False)


def macd_cross(close: ArrayLike, params: MacdCrossParams) -> jnp.ndarray:
    """Long while the MACD line is above its signal line, short (or flat) below.

    Lines as :func:`neuroflux.features.macd`. Stateless; flat until the signal line
    exists and where the histogram is exactly 0.

    Args:
        close: Prices [T].
        params: :class:`MacdCrossParams`.

    Returns:
        [T] positions in {-1, 0, 1} (long/short) or {0, 1} (long-only).
    """
    close = as_series(close, "close")
    lines = features.macd(close, params.fast, params.slow, params.signal)
    return _crossover(lines.line, lines.signal, params)


@struct.dataclass
class BollingerBreakoutParams:
    """Parameters of :func:`bollinger_breakout`.

    Attributes:
        window: Window of the rolling mean and standard deviation (integer >= 1).
        num_std: Band width in population standard deviations (> 0).
        direction: Static :class:`Direction`.
    """

    window: int = 20
    num_std: float = 2.0
    direction: Direction = _direction_field()


def bollinger_breakout(
    close: ArrayLike, params: BollingerBreakoutParams
) -> jnp.ndarray:
    """Breakout of the Bollinger bands, held until the close returns to the middle.

    Stateful (hysteresis by ``lax.scan``, see
    :func:`~neuroflux.strategies.hysteresis_positions`): go long when the close is
    above the upper band, leave the long when it is below the middle band; go short
    when it is below the lower band (long/short only), leave the short when it is above
    the middle band. Comparisons are strict. Flat before bar ``window - 1``.

    Args:
        close: Prices [T].
        params: :class:`BollingerBreakoutParams`.

    Returns:
        [T] positions in {-1, 0, 1} (long/short) or {0, 1} (long-only).
    """
    close = as_series(close, "close")
    bands = features.bollinger_bands(close, params.window, params.num_std)
    return hysteresis_positions(
        enter_long=close > bands.upper,
        exit_long=close < bands.middle,
        enter_short=close < bands.lower,
        exit_short=close > bands.middle,
        ready=jnp.isfinite(bands.upper) & jnp.isfinite(bands.lower),
        direction=params.direction,
        dtype=close.dtype,
    )
