"""Rolling-window statistics over a series [T], with a window that may be traced.

A window length can be a traced integer, so ``jax.vmap(sma, in_axes=(None, 0))(x,
windows)`` computes many windows in one call. Shapes never depend on it: a window is
read from whole-series arrays by a dynamic shift.

Sums, means and variances are differences of running sums, made exact: each value (and
each ``x**2``, split into exactly representable products of half-width halves) is cut
at one power of two into a high part, whose running sums are exact in any order, and a
tiny low part (Rump, Ogita and Oishi's extraction). A window sum is then known to about
twice the working precision, and ``w * m2 = w * sum(x**2) - sum(x)**2`` is formed with
error-free transformations (TwoSum) before one final rounding. Means and standard
deviations come out correctly rounded up to a few ulps, whatever the level of the series
or the length of the window. Add-and-remove updates (pandas' rolling variance, a
Welford scan, a plain cumulative sum of squares) carry their rounding along the series
instead: on S&P 500 closes pandas' 5-day rolling std is off by up to 1e-8 relative.

Maxima and minima use a sparse table: the window is covered by two overlapping blocks of
length ``2**floor(log2(w))`` whose maxima are precomputed, which is exact.

Under ``vmap`` over windows the running sums and tables are built once; only the shifts
and the final arithmetic are batched.

References:
    Knuth, TAOCP vol. 2, 4.2.2 (TwoSum); Dekker, "A floating-point technique for
    extending the available precision", Numer. Math. 18, 1971 (split products,
    double-word arithmetic); Rump, Ogita and Oishi, "Accurate floating-point
    summation part I: faithful rounding", SIAM J. Sci. Comput. 31, 2008 (extraction).
    Bender and Farach-Colton, "The LCA problem revisited", LATIN 2000 (sparse tables).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from neuroflux._arrays import as_length, as_series

__all__ = [
    "BollingerBands",
    "bollinger_bands",
    "rolling_max",
    "rolling_min",
    "rolling_std",
    "sma",
    "zscore",
]

_INT_OF_WIDTH = {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}


def _two_sum(a: jnp.ndarray, b: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly."""
    s = a + b
    b_part = s - a
    return s, (a - (s - b_part)) + (b - b_part)


def _add(hi: jnp.ndarray, lo: jnp.ndarray, value: jnp.ndarray):
    """Double-word ``(hi, lo) + value``, renormalised so that ``hi = fl(hi + lo)``."""
    s, e = _two_sum(hi, value)
    lo = lo + e
    hi = s + lo
    return hi, lo - (hi - s)


def _split(x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``x = high + low`` exactly, each with at most half of the significand bits.

    Rounding the bit pattern (rather than Veltkamp's ``c - (c - x)``) cannot be undone
    by a compiler fusing a multiply and an add, so the products of halves stay exact
    on CPU and GPU alike.
    """
    cleared = (jnp.finfo(x.dtype).nmant + 2) // 2
    int_type = _INT_OF_WIDTH[x.dtype.itemsize]
    bits = lax.bitcast_convert_type(x, int_type)
    half_unit = jnp.asarray(1 << (cleared - 1), int_type)
    mask = jnp.asarray(~((1 << cleared) - 1), int_type)
    high = lax.bitcast_convert_type((bits + half_unit) & mask, x.dtype)
    return high, x - high


def _exact_product(a: jnp.ndarray, b: jnp.ndarray) -> tuple[jnp.ndarray, ...]:
    """Four products of halves, each exact, that sum to ``a * b``, largest first."""
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    return a_high * b_high, a_high * b_low, a_low * b_high, a_low * b_low


def _exact_square(a: jnp.ndarray) -> tuple[jnp.ndarray, ...]:
    """Three exact products that sum to ``a * a``, largest first."""
    high, low = _split(a)
    return high * high, 2 * high * low, low * low


def _summation_unit(bound: jnp.ndarray) -> jnp.ndarray:
    """A power of two ``sigma > 2 * bound``; adding and removing it extracts high parts.

    ``(sigma + v) - sigma`` rounds ``v`` to a multiple of ``ulp(sigma) / 2``. When the
    running total of all ``|v|`` stays below ``bound``, every partial sum of those
    high parts is exactly representable, so running sums of them are exact in any
    order ("ExtractVector" of Rump, Ogita and Oishi). The low parts ``v - high`` are
    below that unit; their running sum rounds by ``O(T**2 eps**2 bound)``, far below an
    ulp of any window sum.
    """
    _, exponent = jnp.frexp(bound)
    return jnp.ldexp(jnp.ones((), bound.dtype), exponent + 1)


class _Running(NamedTuple):
    """Running totals [T] of a series, as exact high parts and small low parts."""

    high: jnp.ndarray
    low: jnp.ndarray
    missing: jnp.ndarray  # int32 count of non-finite values
    square_high: jnp.ndarray | None = None
    square_low: jnp.ndarray | None = None
    changes: jnp.ndarray | None = None  # int32 count of changes of value


def _running_totals(x: jnp.ndarray, squares: bool) -> _Running:
    """Running sums of ``x`` (and of ``x**2`` and value changes if ``squares``).

    The terms are built inside one sequential scan over ``x`` rather than as [T]
    arrays first: on a panel [T, A] every intermediate array costs more than the
    arithmetic. On CPU XLA compiles the scan to a tight loop (about 10 ns a step for
    one series), several times faster than cumsum or an associative scan.
    """
    length = x.shape[0]
    largest = jnp.max(jnp.where(jnp.isfinite(x), jnp.abs(x), 0), initial=0)
    unit = _summation_unit(length * largest)
    square_unit = _summation_unit(2 * length * largest * largest)
    zero, count = jnp.zeros((), x.dtype), jnp.zeros((), jnp.int32)

    def step(totals: _Running, value):
        finite = jnp.isfinite(value)
        value = jnp.where(finite, value, 0)
        high = (unit + value) - unit
        updated = _Running(
            totals.high + high,
            totals.low + (value - high),
            totals.missing + (~finite).astype(jnp.int32),
        )
        if squares:
            # Counting changes of value gives a window of identical values a variance
            # of exactly 0, as in pandas, rather than a few ulps of the squares.
            changed = (value != totals.changes[1]).astype(jnp.int32)
            terms = _exact_square(value)
            highs = [(square_unit + term) - square_unit for term in terms]
            lows = [term - h for term, h in zip(terms, highs, strict=True)]
            updated = updated._replace(
                square_high=totals.square_high + (highs[0] + highs[1] + highs[2]),
                square_low=totals.square_low + (lows[0] + lows[1] + lows[2]),
                changes=(totals.changes[0] + changed, value),
            )
        return updated, updated

    first = jnp.where(jnp.isfinite(x[0]), x[0], 0) if length else zero
    start = _Running(zero, zero, count)
    if squares:
        start = start._replace(
            square_high=zero, square_low=zero, changes=(count, first)
        )
    _, running = lax.scan(step, start, x)
    if squares:
        running = running._replace(changes=running.changes[0])
    return running


def _lag(x: jnp.ndarray, lag: jnp.ndarray) -> jnp.ndarray:
    """``x[t - lag]`` for a traced ``lag`` in ``[0, T]``, zero before the start."""
    length = x.shape[0]
    padded = jnp.concatenate([jnp.zeros_like(x), x])
    start = length - jnp.clip(lag, 0, length)
    return lax.dynamic_slice_in_dim(padded, start, length)


def _window_sum(running: jnp.ndarray, window: jnp.ndarray) -> jnp.ndarray:
    return running - _lag(running, window)


class _Window(NamedTuple):
    """Double-word sum ``(total_hi, total_lo)``, ``w * m2`` and validity, [T] each."""

    total_hi: jnp.ndarray
    total_lo: jnp.ndarray
    scaled_m2: jnp.ndarray
    complete: jnp.ndarray


def _working_dtype(dtype) -> jnp.dtype:
    return jnp.promote_types(dtype, jax.dtypes.canonicalize_dtype(jnp.float64))


def _window_moments(x: jnp.ndarray, window: jnp.ndarray, squares: bool) -> _Window:
    """Sum and (if ``squares``) ``w * m2`` of the last ``window`` values of ``x``.

    ``complete`` is False for warm-up positions and windows holding a non-finite value.
    The fields are in the working precision: float64 whenever 64-bit mode is on, since
    the low parts of float32 running sums would round by far more than a float32 ulp
    of a small variance (1e-2 relative on S&P 500 closes); callers cast the result.
    """
    x = x.astype(_working_dtype(x.dtype))
    running = _running_totals(x, squares)
    total_hi, total_lo = _two_sum(
        _window_sum(running.high, window), _window_sum(running.low, window)
    )
    positions = jnp.arange(x.shape[0])
    complete = (positions >= window - 1) & (window >= 1)
    complete &= _window_sum(running.missing, window) == 0
    if not squares:
        return _Window(total_hi, total_lo, jnp.zeros_like(x), complete)
    squares_hi, squares_lo = _two_sum(
        _window_sum(running.square_high, window),
        _window_sum(running.square_low, window),
    )
    # w * m2 = w * sum(x**2) - sum(x)**2, summed largest terms first.
    size = window.astype(x.dtype)
    big, *rest = _exact_product(squares_hi, size)
    big_square, *rest_square = _exact_square(total_hi)
    hi, lo = _two_sum(big, -big_square)
    for term in (*rest, *(-t for t in rest_square)):
        hi, lo = _add(hi, lo, term)
    hi, _ = _add(hi, lo, squares_lo * size - 2 * total_hi * total_lo)
    constant = _window_sum(running.changes, window - 1) == 0
    scaled_m2 = jnp.where(constant, 0, jnp.maximum(hi, 0))
    return _Window(total_hi, total_lo, scaled_m2, complete)


def sma(x: ArrayLike, window: ArrayLike) -> jnp.ndarray:
    """Simple moving average over the last ``window`` values.

    Matches ``pandas.Series.rolling(window).mean()``, correctly rounded up to an ulp.

    Args:
        x: Series [T].
        window: Window length >= 1 (Python int or traced integer).

    Returns:
        [T] mean of ``x[t-window+1 .. t]``; NaN for ``t < window - 1`` and for windows
        holding a NaN.
    """
    x = as_series(x)
    window = as_length(window, "window")
    moments = _window_moments(x, window, squares=False)
    mean = moments.total_hi / window.astype(moments.total_hi.dtype)
    return jnp.where(moments.complete, mean, jnp.nan).astype(x.dtype)


def rolling_std(x: ArrayLike, window: ArrayLike, ddof: int = 1) -> jnp.ndarray:
    """Rolling standard deviation over the last ``window`` values.

    Same convention as ``pandas.Series.rolling(window).std(ddof=ddof)``, but correctly
    rounded up to a few ulps, where pandas' running update drifts (module notes).

    Args:
        x: Series [T].
        window: Window length >= 1 (Python int or traced integer).
        ddof: Delta degrees of freedom: the divisor is ``window - ddof``. 1 gives the
            sample standard deviation (pandas' default), 0 the population one.

    Returns:
        [T] standard deviation; NaN for ``t < window - 1``, for windows holding a NaN
        and where ``window <= ddof``; exactly 0 for a window of identical values.
    """
    x = as_series(x)
    window = as_length(window, "window")
    moments = _window_moments(x, window, squares=True)
    return _std(moments, window, ddof).astype(x.dtype)


def _std(moments: _Window, window: jnp.ndarray, ddof) -> jnp.ndarray:
    divisor = (window * (window - ddof)).astype(moments.scaled_m2.dtype)
    valid = moments.complete & (divisor > 0)
    variance = moments.scaled_m2 / jnp.where(valid, divisor, 1)
    return jnp.where(valid, jnp.sqrt(variance), jnp.nan)


def zscore(x: ArrayLike, window: ArrayLike) -> jnp.ndarray:
    """Rolling z-score: distance of ``x`` from its rolling mean in rolling stds.

    ``(x - sma(x, window)) / rolling_std(x, window, ddof=1)``; the deviation is formed
    in double-word arithmetic, so values near 0 keep their relative accuracy.

    Args:
        x: Series [T].
        window: Window length >= 2 (Python int or traced integer).

    Returns:
        [T] z-score; NaN for ``t < window - 1``, for windows holding a NaN and for
        windows of identical values (0 / 0). Invariant under ``x -> a * x + b`` for
        ``a > 0``.
    """
    x = as_series(x)
    window = as_length(window, "window")
    moments = _window_moments(x, window, squares=True)
    dtype = moments.total_hi.dtype
    size = window.astype(dtype)
    # w * (x - mean) = w * x - sum(x), exact before the final rounding.
    high, *rest = _exact_product(x.astype(dtype), size)
    hi, lo = _two_sum(high, -moments.total_hi)
    for term in (*rest, -moments.total_lo):
        hi, lo = _add(hi, lo, term)
    return (hi / size / _std(moments, window, 1)).astype(x.dtype)


class BollingerBands(NamedTuple):
    """Bollinger bands, [T] each."""

    middle: jnp.ndarray
    upper: jnp.ndarray
    lower: jnp.ndarray


def bollinger_bands(
    close: ArrayLike, window: ArrayLike = 20, num_std: ArrayLike = 2.0
) -> BollingerBands:
    """Bollinger bands: the rolling mean plus and minus ``num_std`` rolling stds.

    The standard deviation is the population one (``ddof=0``), as in Bollinger's
    definition and TA-Lib's ``BBANDS``; pandas' ``rolling().std()`` defaults to
    ``ddof=1``, so compare with ``rolling(window).std(ddof=0)``.

    Args:
        close: Closing prices [T].
        window: Window length >= 1 (Python int or traced integer).
        num_std: Width of the bands in standard deviations (may be traced).

    Returns:
        ``BollingerBands(middle, upper, lower)``, [T] each; NaN for
        ``t < window - 1``.

    References:
        John Bollinger, "Bollinger on Bollinger Bands", 2001.
    """
    close = as_series(close)
    window = as_length(window, "window")
    moments = _window_moments(close, window, squares=True)
    dtype = moments.total_hi.dtype
    mean = moments.total_hi / window.astype(dtype)
    middle = jnp.where(moments.complete, mean, jnp.nan)
    width = jnp.asarray(num_std, dtype) * _std(moments, window, 0)
    bands = (middle, middle + width, middle - width)
    return BollingerBands(*(band.astype(close.dtype) for band in bands))


def rolling_max(x: ArrayLike, window: ArrayLike) -> jnp.ndarray:
    """Rolling maximum over the last ``window`` values (exact).

    Matches ``pandas.Series.rolling(window).max()``.

    Args:
        x: Series [T].
        window: Window length >= 1 (Python int or traced integer).

    Returns:
        [T] maximum of ``x[t-window+1 .. t]``; NaN for ``t < window - 1``.
    """
    x = as_series(x)
    window_arg, window = window, as_length(window, "window")
    length = x.shape[0]
    num_levels = max(1, length.bit_length())
    # floor(log2(window)), counted so that the window may be traced.
    level = sum((window >= (1 << k)).astype(jnp.int32) for k in range(1, num_levels))
    level = jnp.asarray(level, jnp.int32)
    if isinstance(window_arg, int):
        block = _block_max(x, min(window_arg.bit_length(), num_levels) - 1)
    else:
        # With one window only the needed level is built; under vmap over windows the
        # switch becomes a select over the levels, which depend on x only.
        branches = [functools.partial(_block_max, x, k) for k in range(num_levels)]
        block = lax.switch(level, branches)
    result = jnp.maximum(block, _lag(block, window - (1 << level)))
    complete = (jnp.arange(length) >= window - 1) & (window >= 1)
    return jnp.where(complete, result, jnp.nan)


def _block_max(x: jnp.ndarray, level: int) -> jnp.ndarray:
    """``max(x[t - 2**level + 1 .. t])`` for every ``t`` (garbage before the start)."""
    for k in range(level):
        lag = 1 << k
        if lag < x.shape[0]:
            earlier = jnp.concatenate([jnp.full(lag, -jnp.inf, x.dtype), x[:-lag]])
            x = jnp.maximum(x, earlier)
    return x


def rolling_min(x: ArrayLike, window: ArrayLike) -> jnp.ndarray:
    """Rolling minimum over the last ``window`` values (exact).

    Matches ``pandas.Series.rolling(window).min()``.

    Args:
        x: Series [T].
        window: Window length >= 1 (Python int or traced integer).

    Returns:
        [T] minimum of ``x[t-window+1 .. t]``; NaN for ``t < window - 1``.
    """
    return -rolling_max(-as_series(x), window)
