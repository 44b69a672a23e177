"""Paired block bootstrap of the difference between two Sharpe ratios.

Two strategies run on the same bars have returns that are correlated with each other
and autocorrelated in time (positions held for many bars, volatility clustering). An
iid bootstrap, or resampling each series on its own, breaks both dependences and
gives intervals that are too narrow. Here every resample draws *one* set of indices
and applies it to both series (paired), in blocks (serial dependence kept within a
block):

* **Stationary bootstrap** (Politis and Romano 1994): each resampled position either
  continues the current block (the next bar, wrapping from the last bar to the
  first) or, with probability ``1 / block_length``, starts a new block at a uniform
  random bar. Block lengths are geometric with mean ``block_length``, and the
  resampled series is stationary. Wrapping around the end is the circular device of
  Politis and Romano (1992), so every bar is equally likely to be drawn.
* The interval is the percentile interval of the resampled differences
  ``SR_A* - SR_B*`` (linear interpolation, as ``numpy.percentile``). Ledoit and Wolf
  (2008) use the same paired block resampling for Sharpe ratio differences; their
  studentized interval is more accurate in small samples, this percentile one is the
  simple, common choice.

Sharpe ratios are annualised: ``mean / std(ddof=1) * sqrt(periods_per_year)``, with
NaNs ignored in each series (as :func:`neuroflux.metrics.sharpe_ratio`).

References:
    D. N. Politis and J. P. Romano, "The Stationary Bootstrap", Journal of the
    American Statistical Association 89(428), 1994.
    D. N. Politis and J. P. Romano, "A Circular Block-Resampling Procedure for
    Stationary Data", in Exploring the Limits of Bootstrap, Wiley, 1992.
    O. Ledoit and M. Wolf, "Robust Performance Hypothesis Testing with the Sharpe
    Ratio", Journal of Empirical Finance 15(5), 2008.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

__all__ = ["sharpe_difference_bootstrap", "stationary_bootstrap_indices"]


@functools.partial(jax.jit, static_argnames=("length", "samples"))
def stationary_bootstrap_indices(
    key: jax.Array, length: int, samples: int, block_length: ArrayLike = 20.0
) -> jnp.ndarray:
    """Indices of ``samples`` stationary-bootstrap resamples of a length-T axis.

    Two draws per position, from ``jax.random.split(key)``: ``restart = uniform <
    1 / block_length`` (forced at position 0) and ``start`` uniform in ``[0, T)``.
    Position ``t`` takes ``(start[s] + t - s) mod T`` where ``s <= t`` is the last
    restart.

    Args:
        key: PRNG key.
        length: Length ``T`` of the series (static).
        samples: Number of resamples (static).
        block_length: Mean block length (>= 1); 1 gives the iid bootstrap.

    Returns:
        Integer array [samples, T] of indices into ``[0, T)``.
    """
    restart_key, start_key = jax.random.split(key)
    restart = jax.random.uniform(restart_key, (samples, length)) < 1.0 / block_length
    restart = restart.at[:, 0].set(True)
    starts = jax.random.randint(start_key, (samples, length), 0, length)
    positions = jnp.arange(length)
    last_restart = lax.cummax(jnp.where(restart, positions, 0), axis=1)
    block_start = jnp.take_along_axis(starts, last_restart, axis=1)
    return (block_start + positions - last_restart) % length


def _sharpe(returns: jnp.ndarray, periods_per_year: ArrayLike) -> jnp.ndarray:
    """Annualised Sharpe ratio along the last axis, NaNs ignored."""
    mean = jnp.nanmean(returns, axis=-1)
    std = jnp.nanstd(returns, axis=-1, ddof=1)
    return mean / std * jnp.sqrt(periods_per_year)


@functools.partial(jax.jit, static_argnames=("samples",))
def sharpe_difference_bootstrap(
    returns_a: ArrayLike,
    returns_b: ArrayLike,
    key: jax.Array,
    *,
    samples: int = 2000,
    block_length: ArrayLike = 20.0,
    confidence: ArrayLike = 0.95,
    periods_per_year: ArrayLike = 252,
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Sharpe ratio difference ``A - B`` and its paired block-bootstrap interval.

    Both series are resampled with the same stationary-bootstrap indices
    (:func:`stationary_bootstrap_indices`), so their cross-correlation and, within
    blocks, their autocorrelation are kept; the interval is the percentile interval
    of the resampled differences (module notes).

    Args:
        returns_a: Simple returns [T] of strategy A; NaNs are ignored.
        returns_b: Simple returns [T] of strategy B, on the same bars as A.
        key: PRNG key of the resampling.
        samples: Number of bootstrap resamples (static).
        block_length: Mean block length in bars (>= 1).
        confidence: Two-sided confidence level of the interval, in (0, 1).
        periods_per_year: Bars per year, to annualise the Sharpe ratios.

    Returns:
        ``(difference, lower, upper)`` scalars: the observed annualised Sharpe ratio
        of A minus that of B, and the interval's bounds. Identical series give
        exactly ``(0, 0, 0)``.

    Raises:
        ValueError: The series are not one-dimensional of the same length.
    """
    returns_a = jnp.asarray(returns_a, float)
    returns_b = jnp.asarray(returns_b, float)
    if returns_a.ndim != 1 or returns_a.shape != returns_b.shape:
        raise ValueError(
            "returns_a and returns_b must be [T] series of the same length; got "
            f"shapes {returns_a.shape} and {returns_b.shape}"
        )
    # One compiled loop body computes the Sharpe ratios of each series in turn, so
    # equal series give bit-equal ratios and a difference of exactly 0 (a stacked or
    # fused computation may sum the two rows in different orders).
    pair = jnp.stack([returns_a, returns_b])
    indices = stationary_bootstrap_indices(key, pair.shape[1], samples, block_length)
    observed, resampled = lax.map(
        lambda series: (
            _sharpe(series, periods_per_year),
            _sharpe(series[indices], periods_per_year),
        ),
        pair,
    )
    difference = observed[0] - observed[1]
    resampled = resampled[0] - resampled[1]
    tail = (1.0 - jnp.asarray(confidence, float)) / 2.0
    lower, upper = jnp.quantile(resampled, jnp.stack([tail, 1.0 - tail]))
    return difference, lower, upper
