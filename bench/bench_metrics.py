"""Timings of neuroflux.metrics against a Python loop over empyrical-reloaded.

Run with ``python bench/bench_metrics.py`` (about 2 minutes on a 2-core CPU). Data:
10,000 seeded return series of 2,500 periods (normal and Student-t, mixed drifts) and
one benchmark series for alpha/beta. neuroflux computes each metric for all series in
one ``jax.jit(jax.vmap(f))`` call, timed warm to ``block_until_ready`` (best of
repeats); compile time is reported separately. empyrical has no batched path for most
of these functions, so the peer is the loop a user would write (one call per series);
it is timed on the first ``LOOP_SERIES`` series and scaled linearly to 10,000.
The last column is ``empyrical_time / neuroflux_time`` (above 1: neuroflux is faster).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import empyrical
import jax
import numpy as np
from _machine import best_time, describe_machine

from neuroflux import metrics

NUM_SERIES = 10_000
LENGTH = 2_500
LOOP_SERIES = 200

# name: (neuroflux function of (returns, factor), empyrical function of the same)
CASES: dict[str, tuple[Callable, Callable]] = {
    "total_return": (
        lambda r, f: metrics.total_return(r),
        lambda r, f: empyrical.cum_returns_final(r),
    ),
    "annual_return": (
        lambda r, f: metrics.annual_return(r),
        lambda r, f: empyrical.annual_return(r),
    ),
    "annual_volatility": (
        lambda r, f: metrics.annual_volatility(r),
        lambda r, f: empyrical.annual_volatility(r),
    ),
    "sharpe_ratio": (
        lambda r, f: metrics.sharpe_ratio(r),
        lambda r, f: empyrical.sharpe_ratio(r),
    ),
    "sortino_ratio": (
        lambda r, f: metrics.sortino_ratio(r),
        lambda r, f: empyrical.sortino_ratio(r),
    ),
    "calmar_ratio": (
        lambda r, f: metrics.calmar_ratio(r),
        lambda r, f: empyrical.calmar_ratio(r),
    ),
    "omega_ratio": (
        lambda r, f: metrics.omega_ratio(r),
        lambda r, f: empyrical.omega_ratio(r),
    ),
    "tail_ratio": (
        lambda r, f: metrics.tail_ratio(r),
        lambda r, f: empyrical.tail_ratio(r),
    ),
    "stability": (
        lambda r, f: metrics.stability(r),
        lambda r, f: empyrical.stability_of_timeseries(r),
    ),
    "max_drawdown": (
        lambda r, f: metrics.max_drawdown(r),
        lambda r, f: empyrical.max_drawdown(r),
    ),
    "value_at_risk": (
        lambda r, f: metrics.value_at_risk(r),
        lambda r, f: empyrical.value_at_risk(r),
    ),
    "conditional_value_at_risk": (
        lambda r, f: metrics.conditional_value_at_risk(r),
        lambda r, f: empyrical.conditional_value_at_risk(r),
    ),
    "alpha_beta": (
        lambda r, f: metrics.alpha_beta(r, f),
        lambda r, f: empyrical.alpha_beta(r, f),
    ),
}


def all_metrics(returns, factor):
    """Every metric of one series, as one pytree (the batched case)."""
    return {name: function(returns, factor) for name, (function, _) in CASES.items()}


def make_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20240601)
    drift = rng.uniform(-0.001, 0.001, (NUM_SERIES, 1))
    scale = rng.uniform(0.005, 0.03, (NUM_SERIES, 1))
    shocks = rng.standard_t(4, (NUM_SERIES, LENGTH)) / np.sqrt(2)
    factor = rng.normal(0.0004, 0.01, LENGTH)
    returns = drift + scale * shocks + rng.uniform(0, 1, (NUM_SERIES, 1)) * factor
    return np.clip(returns, -0.9, None), factor


def time_neuroflux(function, returns, factor) -> tuple[float, float]:
    """(compile + first run, best warm run) of jit(vmap(function)) on the panel."""
    batched = jax.jit(jax.vmap(function, in_axes=(0, None)))
    start = time.perf_counter()
    jax.block_until_ready(batched(returns, factor))
    first = time.perf_counter() - start
    return first, best_time(lambda: batched(returns, factor))


def time_empyrical_loop(function, returns_np, factor_np) -> float:
    """Seconds for the loop over LOOP_SERIES series, scaled to NUM_SERIES."""

    def loop():
        for row in returns_np[:LOOP_SERIES]:
            function(row, factor_np)

    return best_time(loop, repeats=2) * NUM_SERIES / LOOP_SERIES


def machine() -> str:
    return describe_machine(empyrical_reloaded=empyrical.__version__)


def main() -> None:
    print(machine())
    returns_np, factor_np = make_data()
    returns, factor = jax.device_put(returns_np), jax.device_put(factor_np)
    print(
        f"{NUM_SERIES} series x {LENGTH} returns; empyrical loop timed on "
        f"{LOOP_SERIES} series and scaled x{NUM_SERIES // LOOP_SERIES}\n"
    )
    print(
        "| metric | neuroflux compile+first (s) | neuroflux warm (s) "
        "| empyrical loop (s, scaled) | empyrical / neuroflux |"
    )
    print("|---|---:|---:|---:|---:|")
    total_loop = 0.0
    for name, (function, peer) in CASES.items():
        first, warm = time_neuroflux(function, returns, factor)
        loop = time_empyrical_loop(peer, returns_np, factor_np)
        total_loop += loop
        print(f"| {name} | {first:.2f} | {warm:.3f} | {loop:.2f} | {loop / warm:.1f} |")
    first, warm = time_neuroflux(all_metrics, returns, factor)
    print(
        f"| **all 13 in one jit** | {first:.2f} | {warm:.3f} | {total_loop:.2f} "
        f"| **{total_loop / warm:.1f}** |"
    )


if __name__ == "__main__":
    main()
