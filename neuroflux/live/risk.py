"""Risk guards of the live runner: position limits and the circuit breaker.

Plain Python (no JAX): it runs once per bar at the edge, between the consensus target
and the orders.

* :func:`gate_target` shrinks a target that breaks ``max_position`` or
  ``max_notional`` toward zero (never past it) and says why; the runner journals and
  reports every reduction.
* :class:`CircuitBreaker` is a state machine over ``NORMAL -> WARNING -> HALTED ->
  EMERGENCY`` fed once per cycle by :meth:`CircuitBreaker.update`. It tracks the peak
  equity and the equity at the first cycle of each UTC day itself. With ``daily loss
  = 1 - equity / start-of-day equity``, ``drawdown = 1 - equity / peak equity`` and
  ``w = warning_fraction``:

=============  ==========================================================  ==========
state          entered when (checked from the top; the first match wins)   cause
=============  ==========================================================  ==========
EMERGENCY      drawdown >= emergency_drawdown, or :meth:`trip_emergency`    emergency
HALTED         drawdown >= max_drawdown                                     drawdown
HALTED         daily loss >= max_daily_loss                                 daily_loss
HALTED         errors >= max_consecutive_errors                             errors
HALTED         stale_bars >= max_stale_bars                                 stale
WARNING        daily loss >= w·max_daily_loss, drawdown >= w·max_drawdown,  warning
               errors >= 1 or stale_bars >= 1
=============  ==========================================================  ==========

The state only moves up by these rules; it moves down only by these:

====================  =========================================================
from                  recovery
====================  =========================================================
WARNING               NORMAL after ``recovery_cycles`` consecutive cycles with no
                      warning condition
HALTED (daily_loss)   at the first cycle of a later UTC day: re-evaluated from
                      NORMAL by the first table (NORMAL, WARNING or HALTED)
HALTED (errors,       WARNING after ``recovery_cycles`` consecutive clean cycles
stale)                (errors == 0, stale_bars == 0 and no HALTED condition)
HALTED (drawdown)     only :meth:`reset` (a manual command)
EMERGENCY             only :meth:`reset`
====================  =========================================================

While HALTED, a new condition of a stickier cause (drawdown > daily_loss > errors,
stale) replaces the cause and :meth:`update` reports it as a transition whose
``previous`` equals its ``state``. :meth:`CircuitBreaker.reset` goes to NORMAL and
re-bases the peak and start-of-day equity at the last equity seen: the operator
acknowledges the loss, and drawdowns are measured from there.

:meth:`CircuitBreaker.permits` says which orders each state lets through: NORMAL and
WARNING any; HALTED only orders that reduce ``|units|`` without flipping the sign;
EMERGENCY only going flat (and :attr:`CircuitBreaker.flatten_required` is True).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "GateDecision",
    "RiskLimits",
    "Transition",
    "gate_target",
]

DAY_MS = 86_400_000
_CAUSE_RANK = {"stale": 0, "errors": 0, "daily_loss": 1, "drawdown": 2}
_FRACTIONS = ("max_daily_loss", "max_drawdown", "emergency_drawdown")
_COUNTS = ("max_consecutive_errors", "max_stale_bars", "recovery_cycles")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RiskLimits:
    """Limits of one live session; ``inf`` turns a limit off.

    Attributes:
        max_position: Largest ``|units|`` held per symbol.
        max_notional: Largest ``|units * price|`` per symbol, in quote currency.
        max_daily_loss: Loss from the start-of-UTC-day equity that halts, in (0, 1].
        max_drawdown: Loss from the peak equity that halts, in (0, 1].
        emergency_drawdown: Loss from the peak that flattens everything
            (>= ``max_drawdown``).
        warning_fraction: WARNING when a loss passes this fraction of its limit.
        max_consecutive_errors: Failed cycles (or failing agents) that halt.
        max_stale_bars: Bars without fresh data that halt.
        recovery_cycles: Clean cycles before WARNING (or HALTED by errors or
            staleness) steps down.
    """

    max_position: float = math.inf
    max_notional: float = math.inf
    max_daily_loss: float = math.inf
    max_drawdown: float = math.inf
    emergency_drawdown: float = math.inf
    warning_fraction: float = 0.5
    max_consecutive_errors: int = 3
    max_stale_bars: int = 3
    recovery_cycles: int = 10

    def __post_init__(self) -> None:
        for name in ("max_position", "max_notional", *_FRACTIONS, "warning_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"RiskLimits.{name} must be a number, got {value!r}")
            if not value > 0:
                raise ValueError(f"RiskLimits.{name} must be > 0, got {value!r}")
        for name in _FRACTIONS:
            value = getattr(self, name)
            if math.isfinite(value) and value > 1:
                raise ValueError(
                    f"RiskLimits.{name} is a fraction of equity in (0, 1] (or inf), "
                    f"got {value!r}; write 0.05 for 5%"
                )
        if not self.warning_fraction <= 1:
            raise ValueError(
                "RiskLimits.warning_fraction must be in (0, 1], "
                f"got {self.warning_fraction!r}"
            )
        if self.emergency_drawdown < self.max_drawdown:
            raise ValueError(
                f"RiskLimits.emergency_drawdown ({self.emergency_drawdown!r}) must be "
                f">= max_drawdown ({self.max_drawdown!r})"
            )
        for name in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"RiskLimits.{name} must be an integer >= 1, got {value!r}"
                )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RiskLimits:
        """Limits from a config mapping (the runner's YAML ``risk:`` section).

        Raises:
            ValueError: A key is not a field (named), or a value is invalid.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown RiskLimits field(s) {unknown}; expected some of "
                f"{sorted(known)}"
            )
        return cls(**values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GateDecision:
    """The units allowed for a target, and why they differ (None when they don't)."""

    units: float
    reason: str | None = None


def gate_target(
    symbol: str, target_units: float, price: float, limits: RiskLimits
) -> GateDecision:
    """Shrinks ``target_units`` of ``symbol`` toward zero to respect the limits.

    Returns:
        The target unchanged with ``reason`` None, or the largest ``|units|`` of the
        same sign within ``max_position`` and ``max_notional`` at ``price`` with a
        reason naming the limit.

    Raises:
        ValueError: ``target_units`` is not finite or ``price`` is not finite and > 0.
    """
    if not math.isfinite(target_units):
        raise ValueError(f"{symbol}: target_units must be finite, got {target_units}")
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"{symbol}: price must be finite and > 0, got {price}")
    allowed, limit = limits.max_position, "max_position"
    by_notional = limits.max_notional / price
    # Division rounds: step down until units * price is within the notional itself.
    while by_notional * price > limits.max_notional:
        by_notional = math.nextafter(by_notional, 0.0)
    if by_notional < allowed:
        allowed, limit = by_notional, "max_notional"
    if abs(target_units) <= allowed:
        return GateDecision(units=target_units)
    units = math.copysign(allowed, target_units)
    value = getattr(limits, limit)
    return GateDecision(
        units=units,
        reason=(
            f"{symbol}: target {target_units:g} units reduced to {units:g} by "
            f"{limit}={value:g} at price {price:g}"
        ),
    )


class BreakerState(enum.Enum):
    """Circuit-breaker states, from the most to the least permissive."""

    NORMAL = "NORMAL"
    WARNING = "WARNING"
    HALTED = "HALTED"
    EMERGENCY = "EMERGENCY"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Transition:
    """A change of state (or of the cause of HALTED when ``previous == state``)."""

    previous: BreakerState
    state: BreakerState
    reason: str

    def to_json(self) -> dict[str, str]:
        """The ``breaker`` event's data."""
        return {
            "previous": self.previous.value,
            "state": self.state.value,
            "reason": self.reason,
        }


class CircuitBreaker:
    """The state machine of the module docstring's tables.

    Attributes:
        state: The current :class:`BreakerState`.
        cause: Why the state was entered ('warning', 'daily_loss', 'drawdown',
            'errors', 'stale', 'emergency'; None in NORMAL).
        reason: The last transition's reason ('' before any).
    """

    _STATE_KEYS = (
        "state",
        "cause",
        "reason",
        "peak_equity",
        "day",
        "day_start_equity",
        "last_equity",
        "last_time_ms",
        "clean_cycles",
    )

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self.state = BreakerState.NORMAL
        self.cause: str | None = None
        self.reason = ""
        self.peak_equity: float | None = None
        self.day: int | None = None
        self.day_start_equity: float | None = None
        self.last_equity: float | None = None
        self.last_time_ms: int | None = None
        self.clean_cycles = 0

    @property
    def drawdown(self) -> float:
        """Loss from the peak equity as a fraction (0 at or above the peak)."""
        if self.peak_equity is None or self.last_equity is None:
            return 0.0
        return max(0.0, 1.0 - self.last_equity / self.peak_equity)

    @property
    def daily_loss(self) -> float:
        """Loss from the equity at the first cycle of the UTC day, as a fraction."""
        start, equity = self.day_start_equity, self.last_equity
        if start is None or equity is None:
            return 0.0
        if start <= 0:  # nothing left to lose a fraction of: any further loss is total
            return math.inf if equity < start else 0.0
        return max(0.0, 1.0 - equity / start)

    @property
    def flatten_required(self) -> bool:
        """True in EMERGENCY: the runner must close every position."""
        return self.state is BreakerState.EMERGENCY

    def update(
        self, *, time_ms: int, equity: float, errors: int, stale_bars: int
    ) -> Transition | None:
        """Feeds one cycle; returns the transition it caused, if any.

        Args:
            time_ms: The cycle's bar time, UTC milliseconds (never decreasing).
            equity: Equity after the cycle, in quote currency.
            errors: Consecutive failed cycles or failing agents.
            stale_bars: Bars since fresh market data.

        Raises:
            ValueError: A bad argument (named), or time going backward.
        """
        self._check_inputs(time_ms, equity, errors, stale_bars)
        day = time_ms // DAY_MS
        new_day = self.day is not None and day > self.day
        if self.day is None or new_day:
            self.day, self.day_start_equity = day, equity
        self.peak_equity = max(equity, self.peak_equity or equity)
        self.last_equity, self.last_time_ms = equity, time_ms
        limits = self.limits

        if self.state is BreakerState.EMERGENCY:
            return None
        if self.drawdown >= limits.emergency_drawdown:
            reason = _breach("drawdown", self.drawdown, limits.emergency_drawdown)
            return self._move(BreakerState.EMERGENCY, "emergency", reason)
        halt = self._halt_condition(errors, stale_bars)
        warning = self._warning_condition(errors, stale_bars)
        if self.state is BreakerState.HALTED:
            if self.cause == "daily_loss" and new_day:
                if halt is not None:
                    return self._move(BreakerState.HALTED, *halt)
                if warning is not None:
                    return self._move(BreakerState.WARNING, "warning", warning)
                return self._move(BreakerState.NORMAL, None, "a new UTC day")
            if halt is not None and _CAUSE_RANK[halt[0]] > _CAUSE_RANK[self.cause]:
                return self._move(BreakerState.HALTED, *halt)
            if self.cause in ("errors", "stale"):
                clean = halt is None and errors == 0 and stale_bars == 0
                self.clean_cycles = self.clean_cycles + 1 if clean else 0
                if self.clean_cycles >= limits.recovery_cycles:
                    reason = f"{self.clean_cycles} clean cycles after {self.cause}"
                    return self._move(BreakerState.WARNING, "warning", reason)
            return None
        if halt is not None:
            return self._move(BreakerState.HALTED, *halt)
        if warning is not None:
            self.clean_cycles = 0
            if self.state is BreakerState.NORMAL:
                return self._move(BreakerState.WARNING, "warning", warning)
            return None
        if self.state is BreakerState.WARNING:
            self.clean_cycles += 1
            if self.clean_cycles >= limits.recovery_cycles:
                reason = f"{self.clean_cycles} cycles without a warning condition"
                return self._move(BreakerState.NORMAL, None, reason)
        return None

    def trip_emergency(self, reason: str) -> Transition | None:
        """The kill switch: EMERGENCY now (None when already there)."""
        if self.state is BreakerState.EMERGENCY:
            return None
        return self._move(BreakerState.EMERGENCY, "emergency", f"tripped: {reason}")

    def reset(self, reason: str) -> Transition | None:
        """The manual command: NORMAL, with peak and day start at the last equity.

        Returns:
            The transition, or None when the breaker was already NORMAL.
        """
        if self.last_equity is not None:
            self.peak_equity = self.day_start_equity = self.last_equity
        if self.state is BreakerState.NORMAL:
            return None
        return self._move(BreakerState.NORMAL, None, f"reset: {reason}")

    def permits(self, current_units: float, new_units: float) -> bool:
        """Whether a position may move from ``current_units`` to ``new_units``.

        NORMAL, WARNING: anything; HALTED: toward zero without flipping; EMERGENCY:
        only to zero.
        """
        if self.state in (BreakerState.NORMAL, BreakerState.WARNING):
            return True
        if new_units == 0:
            return True
        if self.state is BreakerState.EMERGENCY:
            return False
        return current_units * new_units > 0 and abs(new_units) <= abs(current_units)

    def state_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot, for :meth:`from_state_dict` after a restart."""
        values = {key: getattr(self, key) for key in self._STATE_KEYS}
        values["state"] = self.state.value
        return values

    @classmethod
    def from_state_dict(
        cls, limits: RiskLimits, values: dict[str, Any]
    ) -> CircuitBreaker:
        """The breaker :meth:`state_dict` saved, under ``limits``.

        Raises:
            ValueError: Keys missing or unknown (named), or an unknown state.
        """
        missing = sorted(set(cls._STATE_KEYS) - set(values))
        unknown = sorted(set(values) - set(cls._STATE_KEYS))
        if missing or unknown:
            raise ValueError(
                f"breaker state: missing keys {missing}, unknown keys {unknown}"
            )
        breaker = cls(limits)
        for key in cls._STATE_KEYS:
            setattr(breaker, key, values[key])
        try:
            breaker.state = BreakerState(values["state"])
        except ValueError:
            names = [state.value for state in BreakerState]
            raise ValueError(
                f"breaker state: state must be one of {names}, got {values['state']!r}"
            ) from None
        return breaker

    def _check_inputs(
        self, time_ms: int, equity: float, errors: int, stale_bars: int
    ) -> None:
        for name, value in (
            ("time_ms", time_ms),
            ("errors", errors),
            ("stale_bars", stale_bars),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not math.isfinite(equity):
            raise ValueError(f"equity must be finite, got {equity!r}")
        if self.peak_equity is None and equity <= 0:
            raise ValueError(f"the first equity must be > 0, got {equity!r}")
        if self.last_time_ms is not None and time_ms < self.last_time_ms:
            raise ValueError(
                f"time_ms went backward: {time_ms} after {self.last_time_ms}"
            )

    def _halt_condition(self, errors: int, stale_bars: int) -> tuple[str, str] | None:
        limits = self.limits
        if self.drawdown >= limits.max_drawdown:
            return "drawdown", _breach("drawdown", self.drawdown, limits.max_drawdown)
        if self.daily_loss >= limits.max_daily_loss:
            reason = _breach("daily loss", self.daily_loss, limits.max_daily_loss)
            return "daily_loss", reason
        if errors >= limits.max_consecutive_errors:
            return "errors", f"{errors} errors >= {limits.max_consecutive_errors}"
        if stale_bars >= limits.max_stale_bars:
            return "stale", f"{stale_bars} stale bars >= {limits.max_stale_bars}"
        return None

    def _warning_condition(self, errors: int, stale_bars: int) -> str | None:
        fraction = self.limits.warning_fraction
        if self.drawdown >= fraction * self.limits.max_drawdown:
            limit = fraction * self.limits.max_drawdown
            return _breach("drawdown", self.drawdown, limit) + " (warning level)"
        if self.daily_loss >= fraction * self.limits.max_daily_loss:
            limit = fraction * self.limits.max_daily_loss
            return _breach("daily loss", self.daily_loss, limit) + " (warning level)"
        if errors >= 1:
            return f"{errors} consecutive errors"
        if stale_bars >= 1:
            return f"{stale_bars} stale bars"
        return None

    def _move(self, state: BreakerState, cause: str | None, reason: str) -> Transition:
        transition = Transition(previous=self.state, state=state, reason=reason)
        self.state, self.cause, self.reason = state, cause, reason
        self.clean_cycles = 0
        return transition


def _breach(name: str, value: float, limit: float) -> str:
    return f"{name} {value:.2%} >= {limit:.2%}"
