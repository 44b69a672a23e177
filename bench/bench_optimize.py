"""A 200-combination SmaCross optimisation: neuroflux.backtest.sweep vs backtesting.py.

Run with ``python bench/bench_optimize.py`` (about a minute on a 2-core CPU). Data:
backtesting.py's own GOOG daily bars (``backtesting.test.GOOG``, 2,148 bars). Strategy:
its README ``SmaCross`` (buy on an SMA(fast)/SMA(slow) cross up, sell on a cross down,
``exclusive_orders=True``, commission 0.2 %), optimised over the same 200 (fast, slow)
pairs, fast in 5..40 step 5 and slow in 50..290 step 10, maximising the final equity.

backtesting.py: ``Backtest(...).optimize(..., constraint=lambda p: p.fast < p.slow,
return_heatmap=True)``, one run (it forks a ``multiprocessing.Pool`` of
``os.cpu_count()`` workers). It runs first, before JAX starts any thread, so that its
fork is clean. neuroflux: ``neuroflux.backtest.sweep`` over
``sma_cross(wait_for_cross=True)`` with ``SimulationConfig.backtesting_py()`` (one
jit-compiled ``vmap`` of signal, simulation and statistics over the 200 pairs); the
first call (compile + run) and the warm call (best of repeats, to
``block_until_ready``) are reported separately. The final equity of every pair is
checked against backtesting.py's heatmap, and the best pair must agree.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import warnings

import backtesting
import numpy as np
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

FAST = range(5, 41, 5)
SLOW = range(50, 291, 10)
COMMISSION = 0.002


class SmaCross(Strategy):
    """backtesting.py's README example."""

    fast = 10
    slow = 30

    def init(self):
        self.sma1 = self.I(SMA, self.data.Close, self.fast)
        self.sma2 = self.I(SMA, self.data.Close, self.slow)

    def next(self):
        if crossover(self.sma1, self.sma2):
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.sell()


def run_backtesting_py():
    bt = Backtest(GOOG, SmaCross, commission=COMMISSION, exclusive_orders=True)
    start = time.perf_counter()
    # Its progress bars (one per worker run) go nowhere; the timing is unaffected.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        stats, heatmap = bt.optimize(
            fast=list(FAST),
            slow=list(SLOW),
            constraint=lambda p: p.fast < p.slow,
            maximize="Equity Final [$]",
            return_heatmap=True,
        )
    return time.perf_counter() - start, stats, heatmap


def main() -> None:
    peer_time, peer_stats, heatmap = run_backtesting_py()

    import jax
    import jax.numpy as jnp
    from _machine import best_time, describe_machine

    from neuroflux import strategies
    from neuroflux.backtest import Bars, SimulationConfig, SimulationParams, sweeps

    print(describe_machine(**{"backtesting.py": backtesting.__version__}))
    pairs = [(f, s) for f in FAST for s in SLOW if f < s]
    print(
        f"GOOG {len(GOOG)} bars, {len(pairs)} (fast, slow) pairs, commission "
        f"{COMMISSION}, backtesting.py Pool of {os.cpu_count()} processes (fork)\n"
    )
    bars = Bars(*(jnp.asarray(GOOG[c].to_numpy(np.float64)) for c in GOOG.columns[:4]))
    defaults = strategies.SmaCrossParams(wait_for_cross=True)
    grid = sweeps.from_columns(
        defaults, fast=[f for f, _ in pairs], slow=[s for _, s in pairs]
    )
    params = SimulationParams(init_cash=10_000.0, fees=COMMISSION)
    config = SimulationConfig.backtesting_py()

    def run():
        return sweeps.sweep(bars, strategies.sma_cross, grid, params, config)

    start = time.perf_counter()
    stats = jax.block_until_ready(run())
    first = time.perf_counter() - start
    warm = best_time(run, repeats=5)

    def run_equity():
        return sweeps.sweep(
            bars, strategies.sma_cross, grid, params, config,
            statistics=("equity_final",),
        )  # fmt: skip

    start = time.perf_counter()
    jax.block_until_ready(run_equity())
    first_equity = time.perf_counter() - start
    warm_equity = best_time(run_equity, repeats=5)

    equity = np.asarray(stats["equity_final"])
    peer_equity = np.array([heatmap[pair] for pair in pairs])
    worst = float(np.max(np.abs(equity / peer_equity - 1)))
    best = pairs[int(np.argmax(equity))]
    peer_best = (int(peer_stats._strategy.fast), int(peer_stats._strategy.slow))
    assert best == peer_best, (best, peer_best)
    assert worst < 1e-9, worst
    assert (
        np.max(equity) == np.float64(peer_stats["Equity Final [$]"])
        or abs(np.max(equity) / peer_stats["Equity Final [$]"] - 1) < 1e-9
    )

    print("| case | time (s) |")
    print("|---|---:|")
    print(f"| backtesting.py optimize, {len(pairs)} runs | {peer_time:.3f} |")
    print(f"| neuroflux sweep, first call (compile + run) | {first:.3f} |")
    print(f"| neuroflux sweep, compile only (first - warm) | {first - warm:.3f} |")
    print(f"| neuroflux sweep, all 19 statistics, warm (best of 5) | {warm:.4f} |")
    print(
        f"| neuroflux sweep, final equity only: first call {first_equity:.3f}, "
        f"warm (best of 5) | {warm_equity:.4f} |"
    )
    print(
        f"\nbest pair {best}, final equity {np.max(equity):.6f} "
        f"(backtesting.py {peer_best}, {peer_stats['Equity Final [$]']:.6f}); "
        f"largest relative difference of the 200 final equities {worst:.1e}"
    )
    print(f"ratio backtesting.py / neuroflux warm: {peer_time / warm:.0f}x")
    print(
        "ratio backtesting.py / neuroflux warm, final equity only: "
        f"{peer_time / warm_equity:.0f}x"
    )
    print(f"ratio backtesting.py / neuroflux first call: {peer_time / first:.1f}x")


if __name__ == "__main__":
    main()
