"""Period-over-period returns of a price series [T].

References:
    Campbell, Lo and MacKinlay, "The Econometrics of Financial Markets", 1997, ch. 1
    (simple and continuously compounded returns).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from neuroflux._arrays import as_series

__all__ = ["log_returns", "simple_returns"]


def _lagged(close: jnp.ndarray) -> jnp.ndarray:
    return jnp.concatenate([jnp.full(1, jnp.nan, close.dtype), close[:-1]])


def simple_returns(close: ArrayLike) -> jnp.ndarray:
    """Simple returns ``r_t = (c_t - c_{t-1}) / c_{t-1}``.

    Same as ``pandas.Series.pct_change()`` up to its rounding: pandas computes
    ``c_t / c_{t-1} - 1``, which keeps fewer correct digits when the move is small.

    Args:
        close: Prices [T], positive.

    Returns:
        [T] returns; NaN at index 0.
    """
    close = as_series(close, "close")
    previous = _lagged(close)
    # (c_t - c_{t-1}) / c_{t-1}: the difference of nearby prices is exact, whereas
    # c_t / c_{t-1} - 1 (pandas' pct_change) loses digits on small moves.
    return (close - previous) / previous


def log_returns(close: ArrayLike) -> jnp.ndarray:
    """Log returns ``log(c_t / c_{t-1})``, accurate to a few ulps for any move.

    Moves under 50% are computed as ``log1p`` of the simple return: there
    ``log(c_t / c_{t-1})`` (or ``log(c_t) - log(c_{t-1})``) would lose up to
    ``log10(1 / |r|)`` digits. Larger moves use the log of the ratio, which is well
    conditioned there, while ``1 + r`` would cancel for a crash towards 0.

    Args:
        close: Prices [T], positive.

    Returns:
        [T] log returns; NaN at index 0.
    """
    close = as_series(close, "close")
    previous = _lagged(close)
    change = (close - previous) / previous
    return jnp.where(
        jnp.abs(change) < 0.5, jnp.log1p(change), jnp.log(close / previous)
    )
