"""Target positions: the direction option, the hysteresis state machine, signals.

A signal function returns a target position per bar, [T], taken at that bar's close:
``1`` long, ``-1`` short, ``0`` flat (continuous strategies may return any value in
[-1, 1]). Bars whose indicators are still warming up are flat, so positions are never
NaN. Positions say what to hold, not when to trade; :func:`positions_to_signals` turns
them into the entry and exit flags that vectorbt-style engines expect.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

__all__ = [
    "Direction",
    "Signals",
    "crossover_positions",
    "hysteresis_positions",
    "positions_to_signals",
]


class Direction(enum.Enum):
    """Which sides a strategy may take.

    Attributes:
        LONG_ONLY: Positions in {0, 1}: a short signal means flat.
        LONG_SHORT: Positions in {-1, 0, 1}.
    """

    LONG_ONLY = "long_only"
    LONG_SHORT = "long_short"

    @classmethod
    def parse(cls, value: Direction | str) -> Direction:
        """``value`` as a Direction; strings are the member values or names."""
        if isinstance(value, cls):
            return value
        for member in cls:
            if str(value).lower() in (member.value, member.name.lower()):
                return member
        valid = ", ".join(repr(member.value) for member in cls)
        raise ValueError(f"direction must be one of {valid}; got {value!r}")


def crossover_positions(
    fast: jnp.ndarray, slow: jnp.ndarray, direction: Direction
) -> jnp.ndarray:
    """Long while ``fast > slow``, short (or flat) while ``fast < slow``.

    Stateless. Equal lines and bars where either line is NaN (warm-up) are flat.

    Args:
        fast: Fast line [T].
        slow: Slow line [T].
        direction: Long/short gives -1 below, long-only 0.

    Returns:
        [T] positions, in the input's float dtype.
    """
    long = fast > slow
    short = fast < slow
    if Direction.parse(direction) is Direction.LONG_ONLY:
        short = jnp.zeros_like(short)
    dtype = jnp.result_type(fast, float)
    return long.astype(dtype) - short.astype(dtype)


def hysteresis_positions(
    enter_long: jnp.ndarray,
    exit_long: jnp.ndarray,
    enter_short: jnp.ndarray,
    exit_short: jnp.ndarray,
    ready: jnp.ndarray,
    direction: Direction,
    dtype=float,
) -> jnp.ndarray:
    """Path-dependent positions from entry and exit conditions, by ``lax.scan``.

    With ``p`` the previous bar's position (0 before the first bar), each bar takes
    the first rule that applies:

    1. not ``ready`` (indicator warm-up): 0;
    2. ``enter_long``: 1;
    3. ``enter_short`` (long/short only): -1;
    4. ``p == 1`` and ``exit_long``: 0;
    5. ``p == -1`` and ``exit_short``: 0;
    6. otherwise: ``p`` (hold).

    Entries win over exits, so a long/short rule whose short entry is also the long
    exit reverses in one bar; long before short when both entries hold at once.

    Args:
        enter_long, exit_long, enter_short, exit_short: Boolean conditions [T].
        ready: Boolean [T], False where the inputs are not yet defined.
        direction: Long-only ignores ``enter_short``.
        dtype: Float dtype of the result.

    Returns:
        [T] positions in {-1, 0, 1}.
    """
    if Direction.parse(direction) is Direction.LONG_ONLY:
        enter_short = jnp.zeros_like(enter_short)
    conditions = jnp.stack(
        [enter_long, exit_long, enter_short, exit_short, ready], axis=-1
    ).astype(bool)

    def step(previous, flags):
        go_long, leave_long, go_short, leave_short, is_ready = (
            flags[..., i] for i in range(5)
        )
        held = jnp.where(
            ((previous == 1) & leave_long) | ((previous == -1) & leave_short),
            0,
            previous,
        )
        position = jnp.where(go_long, 1, jnp.where(go_short, -1, held))
        position = jnp.where(is_ready, position, 0).astype(previous.dtype)
        return position, position

    start = jnp.zeros(conditions.shape[1:-1], jnp.int8)
    positions = lax.scan(step, start, conditions)[1]
    return positions.astype(dtype)


class Signals(NamedTuple):
    """Entry and exit flags [T] for vectorbt-style engines.

    ``vbt.Portfolio.from_signals(close, entries=long_entries, exits=long_exits,
    short_entries=short_entries, short_exits=short_exits)``.
    """

    long_entries: jnp.ndarray
    long_exits: jnp.ndarray
    short_entries: jnp.ndarray
    short_exits: jnp.ndarray


def positions_to_signals(positions: ArrayLike) -> Signals:
    """Entries and exits implied by a path of target positions.

    Only the sign of a position counts (a continuous position of 0.3 is long). The
    position before the first bar is flat, so a strategy long at bar 0 enters there.
    A reversal from long to short sets both ``long_exits`` and ``short_entries``.

    Args:
        positions: Target positions [T] (or [T, ...]; time axis first).

    Returns:
        :class:`Signals` of boolean arrays shaped like ``positions``.
    """
    positions = jnp.asarray(positions)
    side = jnp.sign(positions)
    previous = jnp.concatenate([jnp.zeros_like(side[:1]), side[:-1]])
    return Signals(
        long_entries=(side > 0) & (previous <= 0),
        long_exits=(previous > 0) & (side <= 0),
        short_entries=(side < 0) & (previous >= 0),
        short_exits=(previous < 0) & (side >= 0),
    )
