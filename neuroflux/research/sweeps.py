"""Parameter sweeps of a registered strategy on an OHLCV frame, as one table.

``run_sweep(load_sample("goog"), "sma_cross", {"fast": range(5, 51, 5), "slow": [20,
50, 100]})`` runs every combination through :func:`neuroflux.backtest.sweep` (one
vmapped, jit-compiled call per chunk of ``chunk_size`` combinations, so memory stays
bounded) and returns one row per combination: the parameters, then the statistics.

Static parameters (``direction``, ``wait_for_cross``) may be swept too: each of their
values is a separate compiled sweep.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neuroflux import strategies
from neuroflux.backtest import STATISTICS
from neuroflux.backtest import sweeps as pure_sweeps
from neuroflux.research import backtests

__all__ = ["parse_grid_values", "run_sweep"]


def parse_grid_values(strategy: str, name: str, text: str) -> list[Any]:
    """Values of a grid axis from ``"a:b:step"`` (inclusive range) or ``"x,y,z"``.

    ``"5:50:5"`` is 5, 10, ..., 50; ``"a:b"`` steps by 1; ``"0.5:2:0.5"`` gives floats
    for float parameters. Each value is parsed as :func:`backtests.parse_param` does.

    Raises:
        ValueError: Unknown strategy or parameter, a value of the wrong type, or a
            range with a step that is not positive.
    """
    text = text.strip()
    if ":" not in text:
        return [backtests.parse_param(strategy, name, part) for part in text.split(",")]
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"grid {name}={text!r}: expected start:stop[:step]")
    start, stop, *step = (backtests.parse_param(strategy, name, p) for p in parts)
    step = step[0] if step else 1
    if isinstance(start, bool) or not isinstance(start, int | float):
        raise ValueError(f"grid {name}={text!r}: ranges need a numeric parameter")
    if not step > 0:
        raise ValueError(f"grid {name}={text!r}: the step must be positive")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count < 1:
        raise ValueError(f"grid {name}={text!r}: empty range (start > stop)")
    return [type(start)(start + i * step) for i in range(count)]


def _is_static(params_class: type, name: str) -> bool:
    field = {f.name: f for f in dataclasses.fields(params_class)}[name]
    return not field.metadata.get("pytree_node", True)


def _combinations(shape: tuple[int, ...], sample: int | None, seed: int) -> np.ndarray:
    """Flat indices into the product of ``shape`` (all, or a sorted random subset)."""
    total = math.prod(shape)
    if sample is None or sample >= total:
        return np.arange(total)
    if sample < 1:
        raise ValueError(f"sample must be >= 1; got {sample}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=sample, replace=False))


def run_sweep(
    data: pd.DataFrame,
    strategy: str,
    grid: Mapping[str, Sequence[Any]],
    *,
    params: Mapping[str, Any] | None = None,
    sample: int | None = None,
    seed: int = 0,
    chunk_size: int = 256,
    progress: bool = True,
    periods_per_year: float = 252.0,
    **options: Any,
) -> pd.DataFrame:
    """Statistics of every combination of ``grid`` (or of a random ``sample``).

    Args:
        data: One asset's OHLCV frame (validated as in :func:`run_backtest`).
        strategy: Registry name.
        grid: Parameter name -> values (the cartesian product is swept).
        params: Fixed parameter overrides shared by every combination.
        sample: Sweep this many combinations drawn without replacement.
        seed: Seed of that draw.
        chunk_size: Combinations per compiled call (the last chunk is padded, so one
            compilation serves all chunks).
        progress: Show a tqdm progress bar (on stderr).
        periods_per_year: Bars per year for annualised statistics.
        **options: Simulation options of :func:`run_backtest` (``cash``,
            ``commission``, ``fill``, ``compat``, ``stop_loss``, ...).

    Returns:
        One row per combination, in the product's order: the grid's parameter columns,
        then the :data:`~neuroflux.backtest.STATISTICS` columns.

    Raises:
        ValueError: Unknown strategy or parameter, an empty value list, bad options or
            a panel frame.
    """
    chosen = strategies.get_strategy(strategy)
    names = list(grid)
    values = {name: list(grid[name]) for name in names}
    for name in names:
        if not values[name]:
            raise ValueError(f"grid {name!r} of {strategy}: no values")
        strategies.make_params(strategy, **{name: values[name][0]})  # valid name?
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    defaults = strategies.make_params(strategy, **dict(params or {}))
    frame = backtests._checked_frame(data)
    simulation_params, config = backtests.make_simulation(**options)
    bars = backtests._bars(frame)
    inputs = backtests._inputs(frame, chosen)

    shape = tuple(len(values[name]) for name in names)
    flat = _combinations(shape, sample, seed)
    picked = np.unravel_index(flat, shape) if names else ()
    table = pd.DataFrame(
        {
            name: [values[name][i] for i in picked[axis]]
            for axis, name in enumerate(names)
        },
        index=pd.RangeIndex(len(flat), name="combination"),
    )
    static = [name for name in names if _is_static(chosen.params_class, name)]
    swept = [name for name in names if name not in static]
    groups = (
        table.groupby(static, sort=False).indices
        if static
        else {(): np.arange(len(table))}
    )

    stats = {name: np.full(len(table), np.nan) for name in STATISTICS}
    bar = tqdm(
        total=len(table),
        desc=f"sweep {strategy}",
        unit="combination",
        disable=not progress,
    )
    with bar:
        for key, rows in groups.items():
            key = key if isinstance(key, tuple) else (key,)
            fixed = (
                strategies.make_params(
                    strategy,
                    **{**dict(params or {}), **dict(zip(static, key, strict=True))},
                )
                if static
                else defaults
            )
            for start in range(0, len(rows), chunk_size):
                chunk = rows[start : start + chunk_size]
                padded = (
                    np.concatenate(
                        [chunk, np.repeat(chunk[-1:], chunk_size - len(chunk))]
                    )
                    if len(rows) > chunk_size
                    else chunk
                )
                columns = {
                    name: table[name].to_numpy()[padded].tolist() for name in swept
                }
                grid_params = pure_sweeps.from_columns(fixed, **columns)
                result = pure_sweeps.sweep(
                    bars,
                    chosen.signal,
                    grid_params,
                    simulation_params,
                    config,
                    periods_per_year,
                    inputs,
                )
                for name in STATISTICS:
                    stats[name][chunk] = np.asarray(result[name])[: len(chunk)]
                bar.update(len(chunk))
    out = pd.concat([table, pd.DataFrame(stats, index=table.index)], axis=1)
    for name in ("trades", "max_drawdown_bars"):
        out[name] = out[name].astype(np.int64)
    return out
