"""Input checks and NaN-aware reductions shared by the metric modules.

The reductions mirror the NumPy functions empyrical calls (``np.nanmean``,
``np.nanstd``, ``np.percentile`` with linear interpolation) so that the metrics agree
with empyrical to rounding, and they are written with masks rather than boolean
indexing so that every metric keeps static shapes under ``jax.jit`` and ``jax.vmap``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from neuroflux._arrays import as_series


def as_returns(x: ArrayLike, name: str = "returns") -> jnp.ndarray:
    """``x`` as a float array of shape [T] (integers become the default float)."""
    return as_series(x, name)


def as_mask(mask: ArrayLike | None, like: jnp.ndarray, name: str = "mask"):
    """A boolean mask [N] for ``like`` [N]; ``None`` means every entry counts."""
    if mask is None:
        return jnp.ones(like.shape, bool)
    mask = jnp.asarray(mask)
    if mask.shape != like.shape or mask.dtype != jnp.bool_:
        raise ValueError(
            f"{name} must be a boolean array of shape {like.shape}; "
            f"got {mask.dtype} of shape {mask.shape}"
        )
    return mask


def nan_count(x: jnp.ndarray) -> jnp.ndarray:
    """Number of non-NaN entries of ``x`` [T]."""
    return jnp.sum(~jnp.isnan(x))


def nan_mean(x: jnp.ndarray) -> jnp.ndarray:
    """Mean of the non-NaN entries (NaN if there are none), as ``np.nanmean``."""
    return jnp.nanmean(x)


def nan_std(x: jnp.ndarray, ddof: int = 1) -> jnp.ndarray:
    """Standard deviation of the non-NaN entries, as ``np.nanstd(x, ddof=ddof)``.

    NaN when fewer than ``ddof + 1`` entries are present (NumPy warns and returns NaN).
    """
    count = nan_count(x)
    std = jnp.nanstd(x, ddof=ddof)
    return jnp.where(count > ddof, std, jnp.nan)


def sorted_quantile(
    sorted_x: jnp.ndarray, count: jnp.ndarray, quantile: ArrayLike
) -> jnp.ndarray:
    """Quantile of the first ``count`` entries of an ascending array [T].

    NumPy's default ``method="linear"``: virtual index ``(count - 1) * quantile``,
    then NumPy's two-sided ``_lerp`` between its neighbours (``b - (b - a) (1 - g)``
    when the weight ``g >= 0.5``), so the result is bit-compatible with
    ``np.percentile``. NaN when ``count`` is 0.

    References:
        Hyndman and Fan, "Sample quantiles in statistical packages", The American
        Statistician 50(4), 1996 (definition 7).
    """
    last = jnp.maximum(count - 1, 0)
    virtual = last.astype(sorted_x.dtype) * quantile
    below = jnp.floor(virtual)
    gamma = virtual - below
    previous = jnp.minimum(below.astype(last.dtype), last)
    following = jnp.minimum(previous + 1, last)
    a, b = sorted_x[previous], sorted_x[following]
    difference = b - a
    value = jnp.where(
        gamma >= 0.5, b - difference * (1 - gamma), a + difference * gamma
    )
    value = jnp.where(virtual >= last, sorted_x[last], value)
    return jnp.where(count > 0, value, jnp.nan)


def percentile_fraction(percent: ArrayLike) -> jnp.ndarray:
    """``percent / 100`` as ``np.percentile`` forms it, so quantiles round alike."""
    return jnp.true_divide(jnp.asarray(percent, float), 100)
