"""Timings of neuroflux.backtest.from_signals against vectorbt's Portfolio.from_signals.

Run with ``python bench/bench_backtest.py`` (under 2 minutes on a 2-core CPU). Data:
1,000 bars x 1,000 columns of seeded random-walk closes with independent entry and exit
signals of 10 % density; long-only, all in, fees 0.1 %, slippage 0.05 %, init cash 100.
neuroflux runs ``jax.jit(from_signals)`` (one ``lax.scan`` over bars that steps all
columns at once), timed to ``block_until_ready`` (best of repeats); compile time is
reported separately. vectorbt is run once first (numba compile) and then timed warm,
both for the simulation alone (``Portfolio.from_signals``) and for the simulation plus
the equity curve (``.value()``), which neuroflux returns in the same call. neuroflux is
timed for its full result (cash, position, value, returns, orders, trade records) and
for the equity curve alone (XLA then drops the trade records). The equity curves of
every column are checked to be identical bit for bit. Ratio = vectorbt / neuroflux.
"""

from __future__ import annotations

import time

import jax
import numpy as np
import vectorbt as vbt
from _machine import best_time, describe_machine

from neuroflux import backtest

BARS = 1_000
COLUMNS = 1_000
DENSITY = 0.1
SETTINGS = {"fees": 0.001, "slippage": 0.0005, "init_cash": 100.0}


def make_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20240601)
    steps = rng.normal(0.0, 0.02, (BARS, COLUMNS))
    close = 100.0 * np.exp(np.cumsum(steps, axis=0))
    entries = rng.random((BARS, COLUMNS)) < DENSITY
    exits = rng.random((BARS, COLUMNS)) < DENSITY
    return close, entries, exits


def machine() -> str:
    return describe_machine(vectorbt=vbt.__version__)


def main() -> None:
    print(machine())
    close_np, entries_np, exits_np = make_data()
    print(
        f"{BARS} bars x {COLUMNS} columns, signal density {DENSITY:.0%}, {SETTINGS}\n"
    )
    close, entries, exits = jax.device_put((close_np, entries_np, exits_np))
    simulate = jax.jit(backtest.from_signals)

    def run_neuroflux():
        return simulate(close, entries, exits, **SETTINGS)

    start = time.perf_counter()
    result = jax.block_until_ready(run_neuroflux())
    first = time.perf_counter() - start
    warm = best_time(run_neuroflux, repeats=7)
    # A caller that keeps only the equity curve: XLA drops the trade records.
    equity_only = jax.jit(
        lambda close, entries, exits: (
            backtest.from_signals(close, entries, exits, **SETTINGS).value
        )
    )
    equity_only(close, entries, exits).block_until_ready()
    warm_equity = best_time(lambda: equity_only(close, entries, exits), repeats=7)

    def run_vectorbt():
        return vbt.Portfolio.from_signals(
            close_np, entries_np, exits_np, freq="1D", **SETTINGS
        )

    start = time.perf_counter()
    portfolio = run_vectorbt()
    portfolio.value()
    vbt_first = time.perf_counter() - start
    vbt_simulation = best_time(run_vectorbt, repeats=5)
    vbt_with_value = best_time(lambda: run_vectorbt().value(), repeats=5)

    # value()[-1] is the equity curve's last bar; final_value() is vectorbt's
    # init_cash + total_profit, summed from the orders, so equal only to rounding.
    value = np.asarray(result.value)
    assert np.array_equal(value[-1], portfolio.value().to_numpy()[-1]), "final values"
    assert np.array_equal(value, portfolio.value().to_numpy()), "equity curves"
    final_gap = np.max(np.abs(value[-1] / portfolio.final_value().to_numpy() - 1))
    assert final_gap < 1e-12, final_gap
    trades = int(np.asarray(result.trades.count).sum())
    assert trades == len(portfolio.trades.records)
    print(
        f"equity curves and final values identical (bit for bit) in all {COLUMNS} "
        f"columns; final_value() within {final_gap:.1e} relative; {trades} trades\n"
    )

    print("| | time (s) | vectorbt / neuroflux |")
    print("|---|---:|---:|")
    print(f"| neuroflux compile + first call | {first:.2f} | |")
    print(f"| neuroflux warm, full result (A) | {warm:.4f} | |")
    print(f"| neuroflux warm, equity curve only (B) | {warm_equity:.4f} | |")
    print(f"| vectorbt first call (numba compile) | {vbt_first:.2f} | |")
    print(
        f"| vectorbt warm, from_signals (C) | {vbt_simulation:.4f} "
        f"| C/A {vbt_simulation / warm:.2f}, C/B {vbt_simulation / warm_equity:.2f} |"
    )
    print(
        f"| vectorbt warm, from_signals + value() (D) | {vbt_with_value:.4f} "
        f"| D/A {vbt_with_value / warm:.2f}, D/B {vbt_with_value / warm_equity:.2f} |"
    )


if __name__ == "__main__":
    main()
