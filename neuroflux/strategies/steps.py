"""Strategies as step functions, one bar at a time: the live runner's decision path.

A step strategy is a pair of pure functions (like optax's ``GradientTransformation``):

* ``init(params) -> state``: the state before the first bar;
* ``step(state, bar, params) -> (state, action)``: ``action`` is the target position
  held after this bar's close, in [-1, 1] (1 long, -1 short, 0 flat).

:func:`run_steps` drives a step strategy over a [T] :class:`Bar` batch with
``lax.scan`` (a backtest); a live runner calls the same jitted ``step`` bar by bar and
gets the same actions. The step versions of ``sma_cross``, ``ema_cross`` and
``rsi_reversion`` take the very parameters of the signal functions of the same names
and return their positions bit for bit: the recursive averages repeat the arithmetic
of :mod:`neuroflux.features` in the same order (the multiply-add rounded once, as XLA
fuses it inside a scan, emulated exactly so that a step jitted alone agrees), and a
moving average's window sum is rounded correctly, as :func:`neuroflux.features.sma`
rounds it.

Shapes cannot depend on parameters, so the SMA cross keeps the last ``max_window``
closes in a ring buffer whose size is fixed by :func:`make_sma_cross_step` (a static
int). Windows are then ordinary (possibly traced) integers in ``1 .. max_window``, so a
grid of windows is one ``jax.vmap`` over the params. A concrete window outside that
range is an error in ``init``; a traced one stays flat. The EMA cross and the RSI need
no buffer. Bars are assumed finite; states are float64 (:mod:`neuroflux` turns on
64-bit mode).

:data:`STEP_STRATEGIES` maps the names of :data:`neuroflux.strategies.STRATEGIES` to
their step strategies, for those that have one.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax
from jax.typing import ArrayLike

from neuroflux.strategies.positions import Direction, crossover_positions
from neuroflux.strategies.reversion import RsiReversionParams
from neuroflux.strategies.trend import EmaCrossParams, SmaCrossParams

__all__ = [
    "DEFAULT_MAX_WINDOW",
    "STEP_STRATEGIES",
    "Bar",
    "EmaCrossState",
    "RsiReversionState",
    "SmaCrossState",
    "StepStrategy",
    "make_ema_cross_step",
    "make_rsi_reversion_step",
    "make_sma_cross_step",
    "run_steps",
]

DEFAULT_MAX_WINDOW = 256
_BAR_FIELDS = ("open", "high", "low", "close", "volume")


@struct.dataclass
class Bar:
    """One OHLCV bar of scalars, or a batch [T] of them (time axis first)."""

    open: jax.Array
    high: jax.Array
    low: jax.Array
    close: jax.Array
    volume: jax.Array

    @classmethod
    def from_arrays(cls, close: ArrayLike, **fields: ArrayLike | None) -> Bar:
        """Bars from arrays of equal shape ([T] for a batch, scalars for one bar).

        Args:
            close: Closing prices.
            **fields: ``open``, ``high``, ``low``, ``volume``; a missing (or None)
                field is NaN, so nothing is made up for strategies that read it.

        Raises:
            ValueError: An unknown field, or a field shaped unlike ``close``.
        """
        unknown = set(fields) - set(_BAR_FIELDS)
        if unknown:
            raise ValueError(f"unknown bar fields {sorted(unknown)}; use {_BAR_FIELDS}")
        close = jnp.asarray(close, float)
        values = {}
        for name in _BAR_FIELDS:
            given = close if name == "close" else fields.get(name)
            value = jnp.full_like(close, jnp.nan) if given is None else given
            value = jnp.asarray(value, float)
            if value.shape != close.shape:
                raise ValueError(
                    f"bar field {name!r} has shape {value.shape}; "
                    f"expected the shape of close, {close.shape}"
                )
            values[name] = value
        return cls(**values)


class StepStrategy(NamedTuple):
    """A strategy as ``init(params) -> state`` and ``step(state, bar, params)``.

    ``step`` returns ``(state, action)``, the action being the target position after
    the bar's close. Both are pure and work under ``jax.jit`` and ``jax.vmap``.
    """

    init: Callable[[Any], Any]
    step: Callable[[Any, Bar, Any], tuple[Any, jax.Array]]


def run_steps(strategy: StepStrategy, params: Any, bars: Bar) -> tuple[Any, jax.Array]:
    """Drives ``strategy`` over the bars with ``lax.scan``.

    Under jit pass the strategy statically (``jax.jit(run_steps, static_argnums=0)``)
    and map only the params with vmap (``jax.vmap(partial(run_steps, strategy),
    in_axes=(0, None))``).

    Args:
        strategy: A :class:`StepStrategy`.
        params: Its parameters.
        bars: A :class:`Bar` batch [T].

    Returns:
        ``(final_state, actions [T])``.
    """

    def body(state, bar):
        return strategy.step(state, bar, params)

    return lax.scan(body, strategy.init(params), bars)


def _check_windows(params: Any, names: tuple[str, ...], max_window: int) -> None:
    for name in names:
        value = getattr(params, name)
        if isinstance(value, jax.core.Tracer):
            continue  # a traced window outside the range leaves the strategy flat
        value = jnp.asarray(value)
        if not jnp.issubdtype(value.dtype, jnp.integer) or bool(
            jnp.any((value < 1) | (value > max_window))
        ):
            raise ValueError(
                f"{name} must be an integer in 1 .. max_window={max_window}, got "
                f"{value!r}; build the step with a larger max_window"
            )


def _check_state_entry(params: Any) -> None:
    """The steps take positions from the state of the lines, not from crossings."""
    if params.wait_for_cross:
        raise ValueError(
            "wait_for_cross=True has no step version yet; use the signal function"
        )


def _reciprocal(length: jax.Array) -> jax.Array:
    """``1 / length``, to divide by as ``x * (1 / length)``.

    XLA rewrites ``x / broadcast(n)`` as ``x * (1 / n)``, which can round differently
    from ``x / n``; the features divide whole series by a scalar, so their means are
    in effect formed this way, and the steps form them the same way on purpose.
    """
    return 1 / jnp.asarray(length).astype(float)


def _correctly_rounded_sum(values: jax.Array) -> jax.Array:
    """``sum(values)`` rounded once, as :func:`neuroflux.features.sma` rounds it.

    Each value is split at one power of two into a high part (whose sums are exact in
    any order) and a small low part (Rump, Ogita and Oishi's extraction), so the order
    in which XLA reduces them cannot change the result.
    """
    bound = values.shape[0] * jnp.max(jnp.abs(values))
    unit = jnp.ldexp(jnp.ones((), values.dtype), jnp.frexp(bound)[1] + 1)
    high = (unit + values) - unit
    return jnp.sum(high) + jnp.sum(values - high)


@struct.dataclass
class SmaCrossState:
    """Ring buffer of the last ``max_window`` closes [max_window]; bars seen."""

    closes: jax.Array
    count: jax.Array


def make_sma_cross_step(max_window: int = DEFAULT_MAX_WINDOW) -> StepStrategy:
    """Step version of :func:`~neuroflux.strategies.sma_cross`.

    Args:
        max_window: Static size of the ring buffer: the longest window allowed.

    Returns:
        A :class:`StepStrategy` over :class:`~neuroflux.strategies.SmaCrossParams`.
    """

    def init(params: SmaCrossParams) -> SmaCrossState:
        _check_windows(params, ("fast", "slow"), max_window)
        _check_state_entry(params)
        return SmaCrossState(jnp.zeros(max_window, float), jnp.zeros((), jnp.int32))

    def mean(state: SmaCrossState, newest: jax.Array, window: ArrayLike) -> jax.Array:
        window = jnp.asarray(window)
        in_window = (newest - jnp.arange(max_window)) % max_window < window
        total = _correctly_rounded_sum(jnp.where(in_window, state.closes, 0))
        ready = (window >= 1) & (window <= max_window) & (state.count >= window)
        return jnp.where(ready, total * _reciprocal(window), jnp.nan)

    def step(state: SmaCrossState, bar: Bar, params: SmaCrossParams):
        newest = state.count % max_window
        state = SmaCrossState(state.closes.at[newest].set(bar.close), state.count + 1)
        fast, slow = mean(state, newest, params.fast), mean(state, newest, params.slow)
        return state, crossover_positions(fast, slow, params.direction)

    return StepStrategy(init, step)


def _two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly (Knuth)."""
    s = a + b
    b_part = s - a
    return s, (a - (s - b_part)) + (b - b_part)


def _split(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``x = high + low`` exactly, each with at most 26 significant bits (float64)."""
    bits = lax.bitcast_convert_type(x, jnp.int64)
    high = lax.bitcast_convert_type((bits + (1 << 26)) & ~((1 << 27) - 1), x.dtype)
    return high, x - high


def _fused_multiply_add(a: jax.Array, b: jax.Array, c: jax.Array) -> jax.Array:
    """``a * b + c`` rounded once, as an FMA instruction, whatever XLA fuses.

    XLA on CPU contracts ``a * b + c`` into an FMA inside a ``lax.scan`` body (so the
    features' recurrences round once) but not always in a step jitted on its own.
    Emulating the FMA exactly gives the same state in both: the exact product as
    ``product + error`` (Dekker), then a sum rounded to odd before the final rounding
    (Boldo and Melquiond, "Emulation of FMA and correctly rounded sums: proved
    algorithms using rounding to odd", IEEE Trans. Computers 57, 2008).
    """
    product = a * b
    (a_high, a_low), (b_high, b_low) = _split(a), _split(b)
    error = (a_high * b_high - product) + a_high * b_low + a_low * b_high
    error = error + a_low * b_low
    total, tail = _two_sum(c, product)
    rest, lost = _two_sum(tail, error)
    bits = lax.bitcast_convert_type(rest, jnp.int64)
    toward_lost = jnp.where(jnp.sign(lost) == jnp.sign(rest), 1, -1)
    odd = lax.bitcast_convert_type(bits + toward_lost, rest.dtype)
    rest = jnp.where((lost != 0) & (bits % 2 == 0), odd, rest)
    return total + rest


def _seeded_update(previous, count, value, seed_length, decay, weight):
    """One step of ``features.averages._seeded_recurrence``, in the same arithmetic.

    The mean of the first ``seed_length`` finite values, then ``decay * previous +
    weight * value`` with one rounding for the first product and the sum, as XLA
    computes it in the features' scans; leading NaNs are skipped. Returns ``(average,
    count)``.
    """
    count = count + ((count > 0) | jnp.isfinite(value)).astype(count.dtype)
    value = jnp.where(count > 0, value, 0)
    total = previous + value
    seeded = jnp.where(count == seed_length, total * _reciprocal(seed_length), total)
    recurrence = _fused_multiply_add(decay, previous, weight * value)
    current = jnp.where(count > seed_length, recurrence, seeded)
    return current, count


@struct.dataclass
class EmaCrossState:
    """The fast and slow averages [2] and the values each has counted [2]."""

    averages: jax.Array
    counts: jax.Array


def make_ema_cross_step() -> StepStrategy:
    """Step version of :func:`~neuroflux.strategies.ema_cross`.

    Returns:
        A :class:`StepStrategy` over :class:`~neuroflux.strategies.EmaCrossParams`.
    """

    def init(params: EmaCrossParams) -> EmaCrossState:
        _check_state_entry(params)
        return EmaCrossState(jnp.zeros(2, float), jnp.zeros(2, jnp.int32))

    def step(state: EmaCrossState, bar: Bar, params: EmaCrossParams):
        spans = jnp.stack([jnp.asarray(params.fast), jnp.asarray(params.slow)])
        alpha = 2 / (spans + 1)  # as features.ema forms it
        decay, weight = (1 - alpha).astype(float), alpha.astype(float)
        averages, counts = _seeded_update(
            state.averages, state.counts, bar.close, jnp.ones_like(spans), decay, weight
        )
        ready = (spans >= 1) & (counts >= spans)
        fast, slow = jnp.where(ready, averages, jnp.nan)
        action = crossover_positions(fast, slow, params.direction)
        return EmaCrossState(averages, counts), action

    return StepStrategy(init, step)


def _hysteresis_update(previous, enter_long, exit_long, enter_short, exit_short, ready):
    """One bar of :func:`~neuroflux.strategies.hysteresis_positions` (its rules)."""
    leave = ((previous == 1) & exit_long) | ((previous == -1) & exit_short)
    held = jnp.where(leave, 0, previous)
    position = jnp.where(enter_long, 1, jnp.where(enter_short, -1, held))
    return jnp.where(ready, position, 0).astype(previous.dtype)


@struct.dataclass
class RsiReversionState:
    """Previous close; Wilder averages of gains and losses [2] and counts [2];
    the position held."""

    previous_close: jax.Array
    averages: jax.Array
    counts: jax.Array
    position: jax.Array


def make_rsi_reversion_step() -> StepStrategy:
    """Step version of :func:`~neuroflux.strategies.rsi_reversion`.

    Returns:
        A :class:`StepStrategy` over
        :class:`~neuroflux.strategies.RsiReversionParams`.
    """

    def init(params: RsiReversionParams) -> RsiReversionState:
        return RsiReversionState(
            previous_close=jnp.full((), jnp.nan, float),
            averages=jnp.zeros(2, float),
            counts=jnp.zeros(2, jnp.int32),
            position=jnp.zeros((), float),
        )

    def step(state: RsiReversionState, bar: Bar, params: RsiReversionParams):
        change = bar.close - state.previous_close  # NaN on the first bar: skipped
        moves = jnp.stack([jnp.maximum(change, 0), jnp.maximum(-change, 0)])
        period = jnp.asarray(params.period)
        size = period.astype(float)
        averages, counts = _seeded_update(
            state.averages, state.counts, moves, period, (size - 1) / size, 1 / size
        )
        ready = (period >= 1) & (counts >= period)
        gain, loss = jnp.where(ready, averages, jnp.nan)
        total = gain + loss
        flat = total == 0
        strength = jnp.where(flat, 50, 100 * (gain / jnp.where(flat, 1, total)))
        oversold, overbought = strength < params.lower, strength > params.upper
        long_only = Direction.parse(params.direction) is Direction.LONG_ONLY
        position = _hysteresis_update(
            state.position,
            enter_long=oversold,
            exit_long=overbought,
            enter_short=overbought & (not long_only),
            exit_short=oversold,
            ready=jnp.isfinite(strength),
        )
        state = RsiReversionState(bar.close, averages, counts, position)
        return state, position

    return StepStrategy(init, step)


STEP_STRATEGIES: Mapping[str, StepStrategy] = types.MappingProxyType(
    {
        "sma_cross": make_sma_cross_step(),
        "ema_cross": make_ema_cross_step(),
        "rsi_reversion": make_rsi_reversion_step(),
    }
)
