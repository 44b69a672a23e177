"""What an agent sees at a bar's close: scale-free features of the last bars.

Every feature at bar ``t`` is a function of the :data:`LOOKBACK` bars ``t - 20 .. t``
only (no exponential memory), so the environment (all bars at once) and a live step
function (a buffer of the last bars) compute it with the same arithmetic. With the 20
log returns ``r`` of the window and ``s = std(r, ddof=1)`` (``s5``: of the last 5):

========================  ===============================================
``return_1``              ``r_t / s``
``return_5``              ``sum(r[-5:]) / (s sqrt(5))``
``return_20``             ``sum(r) / (s sqrt(20))``
``volatility_ratio``      ``log(s5 / s)``
``range``                 ``log(high_t / low_t) / s``
``body``                  ``log(close_t / open_t) / s``
``sma_distance``          ``(close_t / mean(close[-20:]) - 1) / s``
``volume_surprise``       20-bar z-score of ``log(1 + volume)``; 0 when the 20
                          volumes are all equal (no surprise)
========================  ===============================================

Returns are divided by the window's own volatility, so the same network reads daily
index bars and minute crypto bars alike, and no scaler has to be fitted or carried to
the live runner. A flat window (``s = 0``) has no defined features: they are NaN, and
the edges refuse such data. A missing (NaN) volume makes ``volume_surprise`` NaN.

:class:`Observer` is the live side: a pure ``push(state, bar)`` keeps the last bars,
the last ``window`` feature rows, the position and its P&L, and :func:`observation`
turns them into the very vector :class:`~neuroflux.envs.TradingEnv` returns.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from neuroflux._arrays import as_count
from neuroflux.strategies.steps import Bar

__all__ = [
    "FEATURE_NAMES",
    "LOOKBACK",
    "ObserverState",
    "bar_features",
    "observation",
    "observer_act",
    "observer_init",
    "observer_push",
    "window_features",
]

FEATURE_NAMES = (
    "return_1",
    "return_5",
    "return_20",
    "volatility_ratio",
    "range",
    "body",
    "sma_distance",
    "volume_surprise",
)
LOOKBACK = 21


def window_features(bars: Bar) -> jax.Array:
    """Features of the last bar of a window of :data:`LOOKBACK` bars.

    Args:
        bars: :class:`~neuroflux.strategies.steps.Bar` of arrays [LOOKBACK] (one
            asset; vmap for more).

    Returns:
        [F] features, in the order of :data:`FEATURE_NAMES`.
    """
    log_close = jnp.log(bars.close)
    r = log_close[1:] - log_close[:-1]
    scale = jnp.std(r, ddof=1)
    recent = jnp.std(r[-5:], ddof=1)
    log_volume = jnp.log1p(bars.volume[1:])
    # Equal volumes: their rounded mean can differ from each by an ulp, so test
    # equality itself rather than a zero spread.
    unvarying = jnp.all(log_volume == log_volume[0])
    surprise = (log_volume[-1] - jnp.mean(log_volume)) / jnp.std(log_volume, ddof=1)
    return jnp.stack(
        [
            r[-1] / scale,
            jnp.sum(r[-5:]) / (scale * jnp.sqrt(5.0)),
            jnp.sum(r) / (scale * jnp.sqrt(20.0)),
            jnp.log(recent / scale),
            jnp.log(bars.high[-1] / bars.low[-1]) / scale,
            jnp.log(bars.close[-1] / bars.open[-1]) / scale,
            (bars.close[-1] / jnp.mean(bars.close[1:]) - 1) / scale,
            jnp.where(unvarying, 0.0, surprise),
        ]
    )


def bar_features(bars: Bar) -> jax.Array:
    """:func:`window_features` at every bar of a series: [T, F] (NaN before bar 20).

    Args:
        bars: :class:`Bar` of arrays [T] (one asset), T >= :data:`LOOKBACK`.
    """
    length = bars.close.shape[0]
    if length < LOOKBACK:
        raise ValueError(f"bar_features needs at least {LOOKBACK} bars; got {length}")
    starts = jnp.arange(length - LOOKBACK + 1)
    windows = jax.tree.map(
        lambda x: x[starts[:, None] + jnp.arange(LOOKBACK)[None, :]], bars
    )
    values = jax.vmap(window_features)(windows)
    warm_up = jnp.full((LOOKBACK - 1, values.shape[1]), jnp.nan, values.dtype)
    return jnp.concatenate([warm_up, values])


@struct.dataclass
class ObserverState:
    """The last bars and feature rows, the position and its P&L (A assets).

    Attributes:
        bars: The last :data:`LOOKBACK` bars, oldest first ([LOOKBACK, A] fields).
        features: The last ``window`` feature rows, oldest first [window, A, F].
        position: Position held since the last decision [A], in [-1, 1].
        position_pnl: Log return of each position since it last changed [A].
        count: Bars pushed so far.
    """

    bars: Bar
    features: jax.Array
    position: jax.Array
    position_pnl: jax.Array
    count: jax.Array

    @property
    def ready(self) -> jax.Array:
        """Whether every feature row in the window is defined."""
        return self.count >= LOOKBACK + self.features.shape[0] - 1


def observer_init(num_assets: int, window: int) -> ObserverState:
    """The observer before the first bar (a static asset count and window)."""
    num_assets = as_count(num_assets, "num_assets", 1)
    window = as_count(window, "window", 1)
    # Strongly typed, as the states step returns: a jitted step compiles once.
    dtype = jnp.result_type(float)
    empty = jnp.full((LOOKBACK, num_assets), jnp.nan, dtype)
    return ObserverState(
        bars=Bar(empty, empty, empty, empty, empty),
        features=jnp.full((window, num_assets, len(FEATURE_NAMES)), jnp.nan, dtype),
        position=jnp.zeros(num_assets, jnp.float32),
        position_pnl=jnp.zeros(num_assets, jnp.float32),
        count=jnp.zeros((), jnp.int32),
    )


def observer_push(state: ObserverState, bar: Bar) -> ObserverState:
    """Take in a bar ([A] fields): accrue the position's return, add a feature row."""
    bars = jax.tree.map(
        lambda old, new: jnp.concatenate([old[1:], jnp.asarray(new, old.dtype)[None]]),
        state.bars,
        bar,
    )
    # float32, as the environment's returns: the P&L must match it bit for bit.
    asset_return = (bars.close[-1] / bars.close[-2] - 1).astype(state.position.dtype)
    accrued = jnp.where(state.count > 0, jnp.log1p(state.position * asset_return), 0.0)
    row = jax.vmap(window_features, in_axes=1)(bars)
    return state.replace(
        bars=bars,
        features=jnp.concatenate([state.features[1:], row[None]]),
        position_pnl=state.position_pnl + accrued,
        count=state.count + 1,
    )


def observer_act(state: ObserverState, position: jax.Array) -> ObserverState:
    """Hold ``position`` [A] from now on; the P&L restarts where it changed."""
    position = jnp.asarray(position, state.position.dtype)
    changed = position != state.position
    return state.replace(
        position=position,
        position_pnl=jnp.where(changed, 0.0, state.position_pnl),
    )


def observation(features: jax.Array, position: jax.Array, pnl: jax.Array) -> jax.Array:
    """The agent's input: ``[features.ravel(), position, position_pnl]`` in float32.

    Args:
        features: The last ``window`` feature rows [window, A, F].
        position: Current positions [A].
        pnl: Log return of each position since it last changed [A].

    Returns:
        [window * A * F + 2 A] observation.
    """
    return jnp.concatenate([features.ravel(), position, pnl]).astype(jnp.float32)
