"""Input checks and NaN-aware reductions shared by the metric modules.

The reductions mirror the NumPy functions empyrical calls (``np.nanmean``,
``np.nanstd``, ``np.percentile`` with linear interpolation) so that the metrics agree
with empyrical to rounding, and they are written with masks rather than boolean
indexing so that every metric keeps static shapes under ``jax.jit`` and ``jax.vmap``.

Speed on XLA:CPU (see BENCHMARKS.md, "Metrics"): a single-output reduction of a long
axis is rewritten into a tree of windowed reductions, which writes its elementwise
input (a mask, a square, a ``where``) to memory first; a reduction with several
outputs (:func:`reduce_together`) is emitted as one loop fused with that elementwise
work, about five times faster over a [10_000, 2_500] panel. Sorting is done on
integer keys (:func:`sort_ascending`), which XLA:CPU sorts several times faster than
floats.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from neuroflux._arrays import as_series

_IDENTITY = {lax.add: 0.0, lax.mul: 1.0, lax.max: -jnp.inf, lax.min: jnp.inf}


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


def reduce_together(
    *terms: tuple[jnp.ndarray, Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]],
) -> tuple[jnp.ndarray, ...]:
    """Several reductions of [T] arrays in one pass, one scalar per term.

    Args:
        *terms: ``(values [T], operation)`` pairs, the operation one of ``lax.add``,
            ``lax.mul``, ``lax.max`` and ``lax.min`` (the empty reduction gives its
            identity: 0, 1, -inf, +inf).

    Returns:
        Tuple of scalars, in the order of ``terms``.
    """
    values = tuple(value for value, _ in terms)
    operations = tuple(operation for _, operation in terms)
    identities = tuple(
        jnp.array(_IDENTITY[operation], value.dtype) for value, operation in terms
    )

    def combine(left, right):
        return tuple(op(a, b) for op, a, b in zip(operations, left, right, strict=True))

    return tuple(lax.reduce(values, identities, combine, (0,)))


def sums(*values: jnp.ndarray) -> tuple[jnp.ndarray, ...]:
    """Sums of several [T] arrays in one pass (:func:`reduce_together`)."""
    return reduce_together(*((value, lax.add) for value in values))


def centred_sum_of_squares(
    x: jnp.ndarray, present: jnp.ndarray, count: jnp.ndarray, mean: jnp.ndarray
) -> jnp.ndarray:
    """``sum((x - mean) ** 2)`` over the ``present`` entries of ``x`` [T].

    The corrected two-pass form ``sum(d ** 2) - sum(d) ** 2 / count``, which removes
    the rounding error of ``mean`` (Chan, Golub and LeVeque, "Algorithms for
    computing the sample variance", The American Statistician 37(3), 1983).
    """
    deviation = jnp.where(present, x - mean, 0.0)
    squares, total = sums(deviation * deviation, deviation)
    return jnp.maximum(squares - total * total / count, 0.0)


def nan_std(x: jnp.ndarray, ddof: int = 1) -> jnp.ndarray:
    """Standard deviation of the non-NaN entries, as ``np.nanstd(x, ddof=ddof)``.

    NaN when fewer than ``ddof + 1`` entries are present (NumPy warns and returns NaN).
    """
    present = ~jnp.isnan(x)
    count, total = sums(present.astype(x.dtype), jnp.where(present, x, 0.0))
    squares = centred_sum_of_squares(x, present, count, total / count)
    return jnp.where(count > ddof, jnp.sqrt(squares / (count - ddof)), jnp.nan)


def sort_ascending(x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``x`` [T] sorted ascending with NaNs last, and the number of non-NaN entries.

    Sorts the IEEE-754 bit patterns as integers, flipped for negative numbers so that
    their order is the numbers' order; NaNs become the largest key. Equal to
    ``np.sort(x)`` except that ``-0.0`` sorts before ``0.0`` (``jnp.sort`` on CPU
    also treats subnormal numbers as 0).
    """
    present = ~jnp.isnan(x)
    key_type = jnp.dtype(f"int{8 * x.dtype.itemsize}")  # int64 for float64
    bits = lax.bitcast_convert_type(x, key_type)
    flip = jnp.iinfo(key_type).max
    keys = jnp.where(present, jnp.where(bits < 0, bits ^ flip, bits), flip)
    keys = lax.sort(keys, is_stable=False)
    ordered = lax.bitcast_convert_type(jnp.where(keys < 0, keys ^ flip, keys), x.dtype)
    return ordered, jnp.searchsorted(keys, flip)  # a binary search, not a pass


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
