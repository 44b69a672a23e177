"""Parameter sweeps: one jit-compiled ``vmap`` of signal, simulation and statistics.

A grid is a strategy's parameter pytree whose leaves have a leading axis C (one entry
per combination); :func:`grid` builds the cartesian product of value lists and
:func:`random_grid` a random subset of it. :func:`sweep` runs every combination in one
vectorised call: ``vmap`` over ``signal(close, p)``, :func:`simulate` and
:meth:`Result.stats`, so it runs unchanged on CPU, GPU or TPU.

Static fields of a parameter class (``direction``, ``wait_for_cross``) are not leaves:
they are shared by a whole grid (sweep each value separately).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from neuroflux.backtest.simulation import (
    Bars,
    SimulationConfig,
    SimulationParams,
    simulate,
)

__all__ = ["from_columns", "grid", "grid_size", "random_grid", "sweep"]

_STOPS = ("stop_loss", "take_profit", "trailing_stop")


def _defaults(params_class_or_defaults: Any) -> Any:
    if isinstance(params_class_or_defaults, type):
        return params_class_or_defaults()
    return params_class_or_defaults


def _swept_fields(defaults: Any, values: Mapping[str, Any]) -> list[str]:
    """Check the names in ``values``: existing fields, leaves (not static) only."""
    fields = {field.name: field for field in dataclasses.fields(defaults)}
    for name in values:
        if name not in fields:
            raise ValueError(
                f"{type(defaults).__name__} has no field {name!r}; "
                f"fields: {', '.join(fields)}"
            )
        if not fields[name].metadata.get("pytree_node", True):
            raise ValueError(
                f"{type(defaults).__name__}.{name} is static (not a pytree leaf): set "
                "it on the defaults and sweep each value separately"
            )
    return [name for name in fields if fields[name].metadata.get("pytree_node", True)]


def _column(default: Any, values: Sequence[Any]) -> jnp.ndarray:
    dtype = jnp.result_type(int if isinstance(default, int) else float)
    return jnp.asarray(np.asarray(values), dtype)


def grid_size(**values: Sequence[Any]) -> int:
    """Number of combinations of the cartesian product of ``values``."""
    return math.prod(len(v) for v in values.values())


def _assemble(defaults: Any, leaves: list[str], columns: Mapping[str, Any], size: int):
    stacked = {
        name: _column(
            getattr(defaults, name),
            columns[name] if name in columns else [getattr(defaults, name)] * size,
        )
        for name in leaves
    }
    return defaults.replace(**stacked)


def from_columns(params_class_or_defaults: Any, **columns: Sequence[Any]) -> Any:
    """A parameter pytree with leaves [C] from columns of C values each (no product).

    ``from_columns(SmaCrossParams, fast=[5, 10], slow=[20, 50])`` has the two
    combinations (5, 20) and (10, 50). Leaves not named keep their default.

    Raises:
        ValueError: An unknown or static field, or columns of different lengths.
    """
    defaults = _defaults(params_class_or_defaults)
    leaves = _swept_fields(defaults, columns)
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns of different lengths: {lengths}")
    size = next(iter(lengths.values()), 1)
    return _assemble(defaults, leaves, columns, size)


def grid(params_class_or_defaults: Any, **values: Sequence[Any]) -> Any:
    """The cartesian product of ``values`` as one parameter pytree with leaves [C].

    ``grid(SmaCrossParams, fast=[5, 10], slow=[20, 50])`` has C = 4 combinations in
    row-major order (the last name varies fastest, as ``itertools.product``). Leaves
    not named keep their default, repeated C times; static fields come from the
    defaults.

    Args:
        params_class_or_defaults: A parameter class (its defaults are used) or an
            instance (e.g. with static fields set).
        **values: Field name -> sequence of values.

    Returns:
        The parameter pytree, every leaf an array [C] (int fields int, others float).

    Raises:
        ValueError: An unknown or static field, or an empty value list.
    """
    defaults = _defaults(params_class_or_defaults)
    leaves = _swept_fields(defaults, values)
    for name, options in values.items():
        if len(options) == 0:
            raise ValueError(f"no values given for {name!r}")
    names = list(values)
    rows = list(itertools.product(*(values[name] for name in names)))
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    return _assemble(defaults, leaves, columns, len(rows))


def random_grid(
    key: jax.Array,
    params_class_or_defaults: Any,
    count: int,
    **values: Sequence[Any],
) -> Any:
    """``count`` distinct combinations drawn uniformly from :func:`grid`'s product.

    The combinations keep the product's order. When ``count`` is at least the size of
    the product the whole grid is returned.

    Args:
        key: ``jax.random`` key.
        params_class_or_defaults: As in :func:`grid`.
        count: Number of combinations C.
        **values: Field name -> sequence of values.

    Returns:
        The parameter pytree with leaves [C].
    """
    defaults = _defaults(params_class_or_defaults)
    leaves = _swept_fields(defaults, values)
    names = list(values)
    shape = tuple(len(values[name]) for name in names)
    total = math.prod(shape)
    if count >= total:
        return grid(defaults, **values)
    flat = np.sort(np.asarray(jax.random.choice(key, total, (count,), replace=False)))
    picked = np.unravel_index(flat, shape)
    columns = {
        name: [values[name][i] for i in picked[axis]] for axis, name in enumerate(names)
    }
    return _assemble(defaults, leaves, columns, count)


def _stops_off(params: SimulationParams) -> bool:
    """Whether every stop is a concrete ``inf`` (the stop check can then be skipped)."""
    levels = [getattr(params, name) for name in _STOPS]
    return all(
        isinstance(x, int | float | np.number) and math.isinf(float(x)) for x in levels
    )


@functools.partial(
    jax.jit, static_argnames=("signal", "config", "stops_off", "statistics")
)
def _sweep(
    bars,
    grid_params,
    params,
    inputs,
    periods_per_year,
    *,
    signal,
    config,
    stops_off,
    statistics,
):
    if stops_off:
        # Concrete infinities let simulate leave the stop check out of its scan.
        params = params.replace(**dict.fromkeys(_STOPS, math.inf))

    def one(strategy_params):
        target = signal(bars.close, strategy_params, **inputs)
        result = simulate(bars, target, params, config)
        stats = result.stats(periods_per_year)
        return {name: stats[name] for name in statistics or stats}

    return jax.vmap(one)(grid_params)


def sweep(
    bars: Bars,
    signal: Callable[..., jnp.ndarray],
    grid_params: Any,
    params: SimulationParams | None = None,
    config: SimulationConfig | None = None,
    periods_per_year: ArrayLike = 252,
    inputs: Mapping[str, ArrayLike] | None = None,
    statistics: Sequence[str] | None = None,
) -> dict[str, jnp.ndarray]:
    """Statistics of every combination of a parameter grid, in one vmapped call.

    Args:
        bars: :class:`Bars` of [T] prices.
        signal: ``signal(close [T], params, **inputs) -> target [T]`` (a strategy's
            signal function; static, it must be hashable).
        grid_params: Strategy parameters whose leaves are arrays [C] (:func:`grid`).
        params: :class:`SimulationParams` shared by the grid; defaults if ``None``.
        config: :class:`SimulationConfig` (static); defaults if ``None``.
        periods_per_year: Bars per year, for annualisation.
        inputs: Extra series [T] of the signal (e.g. ``{"flux": flux}``), shared.
        statistics: Names of the statistics to return (all if ``None``); XLA then
            leaves out the work of the others.

    Returns:
        Statistic name (as :data:`~neuroflux.backtest.statistics.STATISTICS`) ->
        array [C].
    """
    params = SimulationParams() if params is None else params
    config = SimulationConfig() if config is None else config
    return _sweep(
        bars,
        grid_params,
        params,
        dict(inputs or {}),
        periods_per_year,
        signal=signal,
        config=config,
        stops_off=_stops_off(params),
        statistics=None if statistics is None else tuple(statistics),
    )
