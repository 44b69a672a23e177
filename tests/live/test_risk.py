"""The circuit breaker driven by equity paths, the permits table and the target gate."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neuroflux.live.risk import (
    DAY_MS,
    BreakerState,
    CircuitBreaker,
    RiskLimits,
    gate_target,
)

NORMAL, WARNING = BreakerState.NORMAL, BreakerState.WARNING
HALTED, EMERGENCY = BreakerState.HALTED, BreakerState.EMERGENCY
HOUR_MS = 3_600_000
LIMITS = RiskLimits(
    max_daily_loss=0.05,
    max_drawdown=0.10,
    emergency_drawdown=0.20,
    warning_fraction=0.5,
    max_consecutive_errors=3,
    max_stale_bars=2,
    recovery_cycles=3,
)


def drive(breaker, path, *, start_ms=0, step_ms=HOUR_MS):
    """Feeds (equity, errors, stale_bars) per cycle; returns the states after each."""
    states = []
    for index, (equity, errors, stale_bars) in enumerate(path):
        breaker.update(
            time_ms=start_ms + index * step_ms,
            equity=equity,
            errors=errors,
            stale_bars=stale_bars,
        )
        states.append(breaker.state)
    return states


def clean(*equities):
    return [(equity, 0, 0) for equity in equities]


def test_warning_then_recovery_after_clean_cycles():
    breaker = CircuitBreaker(LIMITS)
    # 3% daily loss passes half the 5% limit; equity back up clears it.
    states = drive(breaker, clean(100, 97, 99, 99.5, 100, 100))
    assert states == [NORMAL, WARNING, WARNING, WARNING, NORMAL, NORMAL]
    assert breaker.reason == "3 cycles without a warning condition"
    # An error or a stale bar is a warning on its own, and restarts the count.
    breaker = CircuitBreaker(LIMITS)
    path = [(100, 1, 0), (100, 0, 0), (100, 0, 1), *clean(100, 100, 100)]
    assert drive(breaker, path) == [WARNING] * 5 + [NORMAL]


def test_daily_loss_halts_until_the_next_utc_day():
    breaker = CircuitBreaker(LIMITS)
    start = 10 * DAY_MS + 20 * HOUR_MS
    # 5% daily loss at 22:00; bars at 23:00 stay halted; 00:00 is a new day.
    states = drive(breaker, clean(100, 97, 95, 96, 96), start_ms=start)
    assert states == [NORMAL, WARNING, HALTED, HALTED, NORMAL]
    assert breaker.daily_loss == 0.0
    # Back to WARNING instead when a warning condition holds on the new day.
    breaker = CircuitBreaker(RiskLimits(max_daily_loss=0.05, max_drawdown=0.08))
    states = drive(breaker, clean(100, 95, 95), start_ms=start + 2 * HOUR_MS)
    assert states == [NORMAL, HALTED, WARNING]  # drawdown 5% >= half of 8%
    assert breaker.drawdown == pytest.approx(0.05)


def test_drawdown_halt_and_emergency_need_a_reset():
    breaker = CircuitBreaker(LIMITS)
    # Gains over days, then a 10.8% drawdown from the peak of 120 over three days.
    path = clean(100, 110, 120, 115, 112, 107, 108, 109, 110)
    states = drive(breaker, path, step_ms=DAY_MS)
    assert states[:3] == [NORMAL] * 3
    assert states[5:] == [HALTED] * 4  # days pass, equity recovers a little: halted
    assert breaker.cause == "drawdown" and breaker.permits(1.0, 0.5)
    assert not breaker.permits(1.0, 2.0)
    transition = breaker.reset("operator checked the strategy")
    assert transition.previous is HALTED and transition.state is NORMAL
    assert breaker.peak_equity == 110 and breaker.drawdown == 0.0
    # 20.9% from the new peak is EMERGENCY, with nothing but a reset leaving it.
    states = drive(breaker, clean(98, 87, 130, 130), start_ms=20 * DAY_MS)
    assert states == [HALTED, EMERGENCY, EMERGENCY, EMERGENCY]
    assert breaker.flatten_required
    assert breaker.reset("flattened").state is NORMAL
    assert not breaker.flatten_required


def test_errors_and_staleness_halt_then_recover_to_warning():
    breaker = CircuitBreaker(LIMITS)
    path = [(100, 1, 0), (100, 2, 0), (100, 3, 0), (100, 0, 0), (100, 1, 0)]
    path += clean(100, 100, 100, 100, 100, 100)
    states = drive(breaker, path)
    # halted at 3 errors; an error during recovery restarts the 3 clean cycles.
    assert states == [WARNING, WARNING, HALTED, HALTED, HALTED] + [HALTED] * 2 + [
        WARNING,
        WARNING,
        WARNING,
        NORMAL,
    ]
    breaker = CircuitBreaker(LIMITS)
    transitions = [
        breaker.update(time_ms=i * HOUR_MS, equity=100, errors=0, stale_bars=stale)
        for i, stale in enumerate([1, 2])
    ]
    assert [t.state for t in transitions] == [WARNING, HALTED]
    assert breaker.cause == "stale" and "stale" in transitions[1].reason
    # A drawdown halt while halted by staleness takes over: it needs a reset.
    escalation = breaker.update(time_ms=3 * HOUR_MS, equity=89, errors=0, stale_bars=0)
    assert escalation.previous is HALTED and escalation.state is HALTED
    assert breaker.cause == "drawdown"
    assert drive(breaker, clean(89, 89, 89, 89), start_ms=4 * HOUR_MS) == [HALTED] * 4


def test_kill_switch_and_transition_json():
    breaker = CircuitBreaker(LIMITS)
    transition = breaker.trip_emergency("operator")
    assert transition.to_json() == {
        "previous": "NORMAL",
        "state": "EMERGENCY",
        "reason": "tripped: operator",
    }
    assert breaker.trip_emergency("again") is None
    assert breaker.update(time_ms=0, equity=100, errors=0, stale_bars=0) is None
    assert breaker.state is EMERGENCY


@pytest.mark.parametrize(
    ("state", "current", "new", "allowed"),
    [
        (NORMAL, 1.0, 3.0, True),
        (NORMAL, 1.0, -1.0, True),
        (WARNING, 0.0, 2.0, True),
        (HALTED, 2.0, 1.0, True),
        (HALTED, -2.0, -1.0, True),
        (HALTED, 2.0, 0.0, True),
        (HALTED, 2.0, 2.0, True),
        (HALTED, 2.0, 3.0, False),
        (HALTED, 2.0, -1.0, False),
        (HALTED, 0.0, 1.0, False),
        (EMERGENCY, 2.0, 0.0, True),
        (EMERGENCY, 2.0, 1.0, False),
        (EMERGENCY, 0.0, 1.0, False),
    ],
)
def test_permits_table(state, current, new, allowed):
    breaker = CircuitBreaker(LIMITS)
    breaker.state = state
    assert breaker.permits(current, new) is allowed


def test_state_dict_round_trips_through_json():
    breaker = CircuitBreaker(LIMITS)
    drive(breaker, [(100, 0, 0), (120, 0, 0), (100, 3, 0)])
    saved = json.loads(json.dumps(breaker.state_dict()))
    restored = CircuitBreaker.from_state_dict(LIMITS, saved)
    assert restored.state_dict() == breaker.state_dict()
    assert restored.state is HALTED
    # Both continue identically.
    after = [(100, 0, 0)] * 4
    assert drive(restored, after, start_ms=3 * HOUR_MS) == drive(
        breaker, after, start_ms=3 * HOUR_MS
    )
    with pytest.raises(ValueError, match=r"missing keys \['peak_equity'\]"):
        CircuitBreaker.from_state_dict(
            LIMITS, {k: v for k, v in saved.items() if k != "peak_equity"}
        )
    with pytest.raises(ValueError, match="time_ms went backward"):
        restored.update(time_ms=0, equity=100, errors=0, stale_bars=0)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_position": 0}, "max_position must be > 0"),
        ({"max_notional": -1.0}, "max_notional must be > 0"),
        ({"max_daily_loss": 5}, "max_daily_loss is a fraction"),
        ({"max_drawdown": math.nan}, "max_drawdown must be > 0"),
        ({"max_drawdown": 0.2, "emergency_drawdown": 0.1}, "emergency_drawdown"),
        ({"warning_fraction": 1.5}, "warning_fraction must be in"),
        ({"recovery_cycles": 0}, "recovery_cycles must be an integer"),
        ({"max_stale_bars": 2.0}, "max_stale_bars must be an integer"),
        ({"max_drawdwn": 0.1}, r"unknown RiskLimits field\(s\) \['max_drawdwn'\]"),
    ],
)
def test_bad_limits_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        RiskLimits.from_dict(values)


def test_gate_target_names_the_binding_limit():
    limits = RiskLimits(max_position=2.0, max_notional=1000.0)
    assert gate_target("BTC/USDT", 1.5, 100.0, limits).reason is None
    by_position = gate_target("BTC/USDT", -5.0, 100.0, limits)
    assert by_position.units == -2.0 and "max_position" in by_position.reason
    by_notional = gate_target("BTC/USDT", 5.0, 800.0, limits)
    assert by_notional.units == 1.25 and "max_notional" in by_notional.reason
    with pytest.raises(ValueError, match="price must be finite and > 0"):
        gate_target("BTC/USDT", 1.0, 0.0, limits)


@given(
    target=st.floats(-1e9, 1e9),
    price=st.floats(1e-6, 1e7),
    max_position=st.floats(1e-6, 1e9) | st.just(math.inf),
    max_notional=st.floats(1e-6, 1e12) | st.just(math.inf),
)
def test_gate_target_never_grows_or_flips_and_respects_limits(
    target, price, max_position, max_notional
):
    limits = RiskLimits(max_position=max_position, max_notional=max_notional)
    decision = gate_target("X", target, price, limits)
    assert abs(decision.units) <= abs(target)
    assert decision.units * target >= 0
    assert abs(decision.units) <= max_position
    assert abs(decision.units) * price <= max_notional
    assert (decision.reason is None) == (decision.units == target)
