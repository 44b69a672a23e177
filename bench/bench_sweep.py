"""An SMA-cross parameter sweep: neuroflux against vectorbt, final values checked.

Run with ``python bench/bench_sweep.py`` (about 2.5 minutes on a 2-core CPU, peak memory
about 3 GiB); ``--full`` runs all minute chunks (about 6 minutes). The grid is every
pair of windows ``fast < slow`` from 2..47: C(46, 2) = 1,035 combinations. Each enters
when the fast SMA crosses above the slow one and exits when it crosses below
(vectorbt's ``crossed_above``), long-only, all in, fees 0.1 %, init cash 100. Both
peers compute the moving averages, the crossings and the backtest of each combination
and return its final value:

* vectorbt 1.2.0: ``vbt.MA.run`` for the fast and for the slow windows (what
  ``vbt.MA.run_combs(close, window=..., r=2)`` runs), ``ma_crossed_above`` /
  ``ma_crossed_below``, ``vbt.Portfolio.from_signals(...).final_value()``.
* neuroflux: one ``jax.jit`` function: ``features.sma`` vmapped over the 46 windows,
  the crossings (a ``lax.scan`` over bars), ``backtest.from_signals`` on the
  [T, combinations] panel and the last bar of ``value`` (XLA drops the rest).

Data: (a) 20 years of real S&P 500 daily closes (``load_sample("sp500")``, 5,031 bars),
all 1,035 combinations in one chunk; (b) 500,000 SYNTHETIC one-minute bars
(``synthetic_ohlcv``, seed 7), where a [T, 1035] array would take 4 GiB: both peers run
the same chunks of 45 combinations, by default every 4th of the 23 chunks (270
combinations, as vectorbt needs about 14 s a chunk), with ``--full`` all of them. Times
are warm: vectorbt's numba functions are compiled on the daily data first, neuroflux's
compile is reported on its own. Daily: best of 3; minute: one pass. Check: neuroflux's
final values equal the last bar of vectorbt's ``value()`` within 1e-9 relative on every
9th combination. Ratio = vectorbt time / neuroflux time (above 1: neuroflux faster).
"""

from __future__ import annotations

import itertools
import resource
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import vectorbt as vbt
from _machine import describe_machine

from neuroflux import backtest, features
from neuroflux.data import load_sample, synthetic_ohlcv

WINDOWS = range(2, 48)
COMBINATIONS = np.array(list(itertools.combinations(WINDOWS, 2)))  # [1035, 2]
SETTINGS = {"fees": 0.001, "init_cash": 100.0}
MINUTE_BARS = 500_000
MINUTE_CHUNK = 45
SAMPLE_EVERY = 9  # combinations checked against vectorbt's equity curve
MINUTE_EVERY = 4  # chunks 0, 4, ..., 20 of 23 (270 combinations); --full: all


def crossed_above(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """vectorbt's ``crossed_above_nb`` for [T, N], as its loop over bars."""

    def step(carry, row):
        was_below, crossed = carry
        a, b = row
        above = a > b
        out = above & was_below & ~crossed
        crossed = above & was_below
        was_below = ~(jnp.isnan(a) | jnp.isnan(b)) & (was_below | (a < b))
        return (was_below, crossed), out

    start = jnp.zeros(a.shape[1], bool)
    return jax.lax.scan(step, (start, start), (a, b))[1]


def neuroflux_signals(
    close: jnp.ndarray, fast: jnp.ndarray, slow: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray]:
    windows = jnp.arange(WINDOWS.start, WINDOWS.stop)
    moving_average = jax.vmap(features.sma, in_axes=(None, 0), out_axes=1)(
        close, windows
    )
    fast_ma = moving_average[:, fast - WINDOWS.start]
    slow_ma = moving_average[:, slow - WINDOWS.start]
    return crossed_above(fast_ma, slow_ma), crossed_above(slow_ma, fast_ma)


@jax.jit
def neuroflux_final_values(
    close: jnp.ndarray, fast: jnp.ndarray, slow: jnp.ndarray
) -> jnp.ndarray:
    entries, exits = neuroflux_signals(close, fast, slow)
    panel = jnp.broadcast_to(close[:, None], entries.shape)
    return backtest.from_signals(panel, entries, exits, **SETTINGS).value[-1]


def vectorbt_signals(
    close: pd.Series, fast: np.ndarray, slow: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    fast_ma = vbt.MA.run(close, window=list(fast), short_name="fast")
    slow_ma = vbt.MA.run(close, window=list(slow), short_name="slow")
    return fast_ma.ma_crossed_above(slow_ma), fast_ma.ma_crossed_below(slow_ma)


def vectorbt_portfolio(
    close: pd.Series, fast: np.ndarray, slow: np.ndarray, freq: str
) -> vbt.Portfolio:
    entries, exits = vectorbt_signals(close, fast, slow)
    return vbt.Portfolio.from_signals(close, entries, exits, freq=freq, **SETTINGS)


def in_chunks(
    run: Callable[[np.ndarray, np.ndarray], np.ndarray],
    combinations: np.ndarray,
    chunk: int,
) -> np.ndarray:
    return np.concatenate(
        [
            np.asarray(run(*combinations[start : start + chunk].T))
            for start in range(0, len(combinations), chunk)
        ]
    )


def timed(function: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def compare(
    name: str,
    close: pd.Series,
    freq: str,
    chunk: int,
    repeats: int,
    every: int = 1,
) -> str:
    """Both peers on every ``every``-th chunk of ``chunk`` combinations."""
    chunks = COMBINATIONS.reshape(-1, chunk, 2)  # 1035 = 23 * 45
    combinations = chunks[::every].reshape(-1, 2)
    close_jax = jnp.asarray(close.to_numpy())

    def run_neuroflux(fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
        return jax.block_until_ready(neuroflux_final_values(close_jax, fast, slow))

    def run_vectorbt(fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
        return vectorbt_portfolio(close, fast, slow, freq).final_value().to_numpy()

    start = time.perf_counter()
    run_neuroflux(*COMBINATIONS[:chunk].T)
    compile_time = time.perf_counter() - start
    nf_time, nf_values = timed(
        lambda: in_chunks(run_neuroflux, combinations, chunk), repeats
    )
    vbt_time, vbt_values = timed(
        lambda: in_chunks(run_vectorbt, combinations, chunk), repeats
    )
    # vectorbt's final_value() is init_cash + total profit: where fees bring the equity
    # near 0 it is the cancellation of 100 - 100. The check uses its equity curve.
    sample = combinations[::SAMPLE_EVERY]
    portfolio = vectorbt_portfolio(close, *sample.T, freq)
    expected = portfolio.value().to_numpy()[-1]
    gap = np.abs(nf_values[::SAMPLE_EVERY] - expected) / np.abs(expected)
    assert np.all(gap <= 1e-9), np.max(gap)
    agree = np.abs(nf_values - vbt_values) <= 1e-9 * np.abs(vbt_values)
    print(
        f"{name}: {len(close)} bars x {len(combinations)} combinations in chunks of "
        f"{chunk}; neuroflux compile {compile_time:.2f} s; final values equal to "
        f"vectorbt's last value() within {np.max(gap):.1e} relative in a sample of "
        f"{len(sample)}; to its final_value() within 1e-9 in {agree.sum()}, the "
        f"smallest final value {np.min(nf_values):.1e}"
    )
    return (
        f"| {name} | {len(close):,} | {len(combinations)} ({chunk} a chunk) "
        f"| {nf_time:.3f} | {vbt_time:.3f} | {vbt_time / nf_time:.2f} |"
    )


def main() -> None:
    every = 1 if "--full" in sys.argv else MINUTE_EVERY
    print(describe_machine(vectorbt=vbt.__version__))
    daily = load_sample("sp500")["close"]
    minute = synthetic_ohlcv(MINUTE_BARS, bar="1min", seed=7)["close"]
    rows = [
        compare("S&P 500 daily (real)", daily, "1D", len(COMBINATIONS), repeats=3),
        compare("SYNTHETIC 1-minute", minute, "1min", MINUTE_CHUNK, 1, every),
    ]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory (max RSS) {peak:.1f} GiB\n")
    print("| data | bars | combinations | neuroflux (s) | vectorbt (s) | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
