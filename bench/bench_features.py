"""Side-by-side timings of neuroflux.features against pandas and vectorbt.

Run with ``python bench/bench_features.py``; it prints the machine, then a Markdown
table with the best time of several repeats of each case and the ratio
``peer_time / neuroflux_time`` (above 1: neuroflux is faster). JAX functions are
jit-compiled and warmed up first, and timed to ``block_until_ready``; vectorbt's numba
kernels are compiled by a first call before timing. The whole run takes about a minute
on a 2-core CPU.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "numba"))

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import vectorbt as vbt
from _machine import describe_machine
from arch.data import sp500
from vectorbt.generic import nb as vbt_nb

from neuroflux import features

NUM_WINDOWS = 1000
NUM_ASSETS = 500


def best_time(function: Callable[[], object], budget: float = 1.0) -> float:
    """Best wall time of ``function()`` over repeats (3 or more, about ``budget`` s)."""
    jax.block_until_ready(function())
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < 3 or (
        time.perf_counter() - started < budget and len(times) < 50
    ):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    return min(times)


def machine() -> str:
    return describe_machine(pandas=pd.__version__, vectorbt=vbt.__version__)


def pandas_rsi(close: pd.Series | pd.DataFrame, period: int):
    change = close.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / period, adjust=False).mean()
    loss = (-change).clip(lower=0).ewm(alpha=1 / period, adjust=False).mean()
    return 100 - 100 / (1 + gain / loss)


def pandas_atr(high: pd.Series, low: pd.Series, close: pd.Series, period: int):
    previous = close.shift()
    ranges = pd.concat(
        [high - low, (high - previous).abs(), (low - previous).abs()], axis=1
    ).max(axis=1)
    return ranges.ewm(alpha=1 / period, adjust=False).mean()


def cases() -> list[tuple[str, Callable, dict[str, Callable]]]:
    frame = sp500.load()
    close, high, low = (frame[k].to_numpy(np.float64) for k in ("Close", "High", "Low"))
    series, highs, lows = pd.Series(close), pd.Series(high), pd.Series(low)
    column = close[:, None]
    rng = np.random.default_rng(0)
    steps = rng.normal(0, 0.01, (len(close), NUM_ASSETS))
    panel = 100 * np.exp(np.cumsum(steps, axis=0))
    table = pd.DataFrame(panel)
    windows = np.arange(2, 2 + NUM_WINDOWS)

    jax_close, jax_high, jax_low = (jnp.asarray(x) for x in (close, high, low))
    jax_panel, jax_windows = jnp.asarray(panel), jnp.asarray(windows)
    sma = jax.jit(features.sma)
    ema = jax.jit(features.ema)
    rsi = jax.jit(features.rsi)
    atr = jax.jit(features.atr)
    std = jax.jit(features.rolling_std)
    many_sma = jax.jit(jax.vmap(features.sma, in_axes=(None, 0)))
    many_ema = jax.jit(jax.vmap(features.ema, in_axes=(None, 0)))
    panel_sma = jax.jit(jax.vmap(features.sma, in_axes=(1, None), out_axes=1))
    panel_ema = jax.jit(jax.vmap(features.ema, in_axes=(1, None), out_axes=1))
    panel_rsi = jax.jit(jax.vmap(features.rsi, in_axes=(1, None), out_axes=1))
    panel_std = jax.jit(jax.vmap(features.rolling_std, in_axes=(1, None), out_axes=1))
    window_list = [int(w) for w in windows]

    return [
        (
            "SMA(20), 1 series",
            lambda: sma(jax_close, 20),
            {
                "pandas": lambda: series.rolling(20).mean(),
                "vbt.MA.run": lambda: vbt.MA.run(series, 20).ma,
                "vbt numba kernel": lambda: vbt_nb.rolling_mean_nb(column, 20, minp=20),
            },
        ),
        (
            "EMA(20), 1 series",
            lambda: ema(jax_close, 20),
            {
                "pandas": lambda: series.ewm(
                    span=20, adjust=False, min_periods=20
                ).mean(),
                "vbt.MA.run": lambda: vbt.MA.run(series, 20, ewm=True).ma,
                "vbt numba kernel": lambda: vbt_nb.ewm_mean_nb(
                    column, 20, minp=20, adjust=False
                ),
            },
        ),
        (
            "rolling std(20), 1 series",
            lambda: std(jax_close, 20),
            {
                "pandas": lambda: series.rolling(20).std(),
                "vbt numba kernel": lambda: vbt_nb.rolling_std_nb(
                    column, 20, minp=20, ddof=1
                ),
            },
        ),
        (
            "RSI(14), 1 series",
            lambda: rsi(jax_close, 14),
            {
                "pandas": lambda: pandas_rsi(series, 14),
                "vbt.RSI.run": lambda: vbt.RSI.run(series, 14, ewm=True).rsi,
            },
        ),
        (
            "ATR(14), 1 series",
            lambda: atr(jax_high, jax_low, jax_close, 14),
            {
                "pandas": lambda: pandas_atr(highs, lows, series, 14),
                "vbt.ATR.run": lambda: vbt.ATR.run(highs, lows, series, 14).atr,
            },
        ),
        (
            f"SMA, {NUM_WINDOWS} windows (2..{1 + NUM_WINDOWS}), 1 series",
            lambda: many_sma(jax_close, jax_windows),
            {
                "pandas loop": lambda: [series.rolling(w).mean() for w in window_list],
                "vbt.MA.run": lambda: vbt.MA.run(series, window_list).ma,
                "vbt numba kernel loop": lambda: [
                    vbt_nb.rolling_mean_nb(column, w, minp=w) for w in window_list
                ],
            },
        ),
        (
            f"EMA, {NUM_WINDOWS} spans, 1 series",
            lambda: many_ema(jax_close, jax_windows),
            {
                "pandas loop": lambda: [
                    series.ewm(span=w, adjust=False, min_periods=w).mean()
                    for w in window_list
                ],
                "vbt.MA.run": lambda: vbt.MA.run(series, window_list, ewm=True).ma,
            },
        ),
        (
            f"SMA(20), panel [T, {NUM_ASSETS}]",
            lambda: panel_sma(jax_panel, 20),
            {
                "pandas": lambda: table.rolling(20).mean(),
                "vbt.MA.run": lambda: vbt.MA.run(table, 20).ma,
                "vbt numba kernel": lambda: vbt_nb.rolling_mean_nb(panel, 20, minp=20),
            },
        ),
        (
            f"EMA(20), panel [T, {NUM_ASSETS}]",
            lambda: panel_ema(jax_panel, 20),
            {
                "pandas": lambda: table.ewm(
                    span=20, adjust=False, min_periods=20
                ).mean(),
                "vbt.MA.run": lambda: vbt.MA.run(table, 20, ewm=True).ma,
            },
        ),
        (
            f"rolling std(20), panel [T, {NUM_ASSETS}]",
            lambda: panel_std(jax_panel, 20),
            {
                "pandas": lambda: table.rolling(20).std(),
                "vbt numba kernel": lambda: vbt_nb.rolling_std_nb(
                    panel, 20, minp=20, ddof=1
                ),
            },
        ),
        (
            f"RSI(14), panel [T, {NUM_ASSETS}]",
            lambda: panel_rsi(jax_panel, 14),
            {
                "pandas": lambda: pandas_rsi(table, 14),
                "vbt.RSI.run": lambda: vbt.RSI.run(table, 14, ewm=True).rsi,
            },
        ),
    ]


def main() -> None:
    print(machine())
    print(f"S&P 500 daily closes from arch: T = {len(sp500.load())}\n")
    print("| case | neuroflux (ms) | peer | peer (ms) | peer / neuroflux |")
    print("|---|---:|---|---:|---:|")
    for name, ours, peers in cases():
        our_time = best_time(ours)
        for peer, function in peers.items():
            peer_time = best_time(function)
            print(
                f"| {name} | {our_time * 1e3:.3f} | {peer} | {peer_time * 1e3:.3f} "
                f"| {peer_time / our_time:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
