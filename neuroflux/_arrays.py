"""Input checks shared by the pure packages: a float series [T], lengths, counts."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def as_series(x: ArrayLike, name: str = "x") -> jnp.ndarray:
    """``x`` as a float array of shape [T] (integers become the default float)."""
    series = jnp.asarray(x)
    series = series.astype(jnp.result_type(series, float))
    if series.ndim != 1:
        raise ValueError(
            f"{name} must be a series of shape [T]; got shape {series.shape}. "
            "For several series, jax.vmap the function over their axis."
        )
    return series


def as_length(value: ArrayLike, name: str) -> jnp.ndarray:
    """A window, span or period: integers >= 1.

    Concrete values are checked here; a traced value can only be checked for its
    dtype, and a traced length below 1 yields all-NaN output.
    """
    length = jnp.asarray(value)
    if not jnp.issubdtype(length.dtype, jnp.integer):
        raise TypeError(f"{name} must be an integer >= 1, got {value!r}")
    if not isinstance(length, jax.core.Tracer) and bool(jnp.any(length < 1)):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return length


def as_count(value: object, name: str, minimum: int) -> int:
    """A concrete integer argument >= ``minimum`` (a size, a horizon, a lag).

    Raises:
        TypeError: Not an integer (``bool`` included).
        ValueError: Below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)
