"""The flux estimator: market uncertainty in [0, 1] from prices and volumes.

Three components, each in [0, 1], computed from trailing windows only (no look-ahead):

* **Volatility regime** ``q_t``. With log returns ``r_t = log c_t - log c_{t-1}`` and
  the rolling volatility ``s_t = std(r_{t-V+1} .. r_t)`` (sample std, ``ddof=1``,
  ``V = volatility_window``), ``q_t`` is the percentile rank of ``s_t`` among the
  trailing ``R = regime_window`` volatilities: ``q_t = #{j < R : s_{t-j} <= s_t} / R``.
  ``q_t = 1`` is the most turbulent bar of the last ``R``.
* **Trend strength** ``e_t``, Kaufman's efficiency ratio over ``n = trend_window``
  bars: ``e_t = |c_t - c_{t-n}| / sum_{i=t-n+1}^{t} |c_i - c_{i-1}|`` (0 when the
  path length is 0). ``e_t = 1`` is a straight line, ``e_t -> 0`` chop.
* **Volume surprise** ``u_t = 1 - exp(-max(z_t, 0))`` with ``z_t`` the z-score of
  ``x_t = log(1 + volume_t)`` among the last ``volume_window`` values (``x_t``
  included; population std; ``z_t = 0`` when they are all equal), so ``u_t`` is in
  [0, 1): only unusually heavy volume counts.

Flux is their weighted average with the weights of :class:`FluxParams` normalised to
sum to 1: ``flux_t = (w_v q_t + w_e (1 - e_t) + w_u u_t) / (w_v + w_e + w_u)``. A
turbulent volatility regime and surprising volume raise flux (uncertainty); a strong
trend lowers it, hence ``1 - e_t``. Flux is NaN until every component is defined:
the first ``FluxConfig.warmup`` bars (269 with the defaults), or wherever an input is
NaN (e.g. bars without volume).

:func:`market_flux` is the vectorised version; :func:`make_flux_step` the step
version for :func:`~neuroflux.strategies.steps.run_steps` and the live runner. The
step keeps a ring buffer of the last ``FluxConfig.memory`` bars (``regime_window +
volatility_window`` with the defaults), recomputes the windows from it and applies the
same window kernels, so both agree to rounding.

Adaptation. :func:`make_flux_adapted_step` scales any step strategy's action by
``1 - size_weight * round(levels * flux) / levels`` (:func:`flux_adapted_positions` is
the vectorised twin). Flux moves a little every bar; rounding it to ``levels`` steps
(4 by default) changes the position only when flux crosses a step, so the sizing does
not pay for an order at every bar.
While flux is undefined (warm-up) the inner action passes unscaled: the estimator's
long warm-up should not silence the strategy. Threshold adaptation is already in
:func:`~neuroflux.strategies.composite.neuro_composite` (``flux=`` argument).

References:
    P. J. Kaufman, "Smarter Trading", McGraw-Hill, 1995 (efficiency ratio).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.typing import ArrayLike

from neuroflux._arrays import as_count, as_series
from neuroflux.strategies.steps import Bar, StepStrategy

__all__ = [
    "FluxAdaptedParams",
    "FluxAdaptedState",
    "FluxConfig",
    "FluxParams",
    "FluxState",
    "flux_adapted_positions",
    "flux_components",
    "make_flux_adapted_step",
    "make_flux_step",
    "market_flux",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class FluxConfig:
    """Static windows of the flux estimator (hashable; a ``jit`` static argument).

    Attributes:
        volatility_window: Log returns per rolling volatility (>= 2).
        regime_window: Volatilities the current one is ranked among (>= 1).
        trend_window: Bars of the efficiency ratio (>= 1).
        volume_window: Volumes of the z-score (>= 2).
    """

    volatility_window: int = 20
    regime_window: int = 250
    trend_window: int = 20
    volume_window: int = 20

    def __post_init__(self) -> None:
        for name, minimum in (
            ("volatility_window", 2),
            ("regime_window", 1),
            ("trend_window", 1),
            ("volume_window", 2),
        ):
            as_count(getattr(self, name), f"FluxConfig.{name}", minimum)

    @property
    def memory(self) -> int:
        """Bars the step version keeps: enough for every window."""
        return max(
            self.regime_window + self.volatility_window,
            self.trend_window + 1,
            self.volume_window,
        )

    @property
    def warmup(self) -> int:
        """Leading bars where flux is NaN (index of the first defined value)."""
        return max(
            self.volatility_window + self.regime_window - 1,
            self.trend_window,
            self.volume_window - 1,
        )


@struct.dataclass
class FluxParams:
    """Weights of the components (>= 0, not all 0; normalised to sum to 1).

    Attributes:
        regime_weight: Weight of the volatility regime ``q``.
        trend_weight: Weight of ``1 - e`` (one minus trend strength).
        volume_weight: Weight of the volume surprise ``u``.
    """

    regime_weight: float = 1.0
    trend_weight: float = 1.0
    volume_weight: float = 1.0


_WEIGHT_NAMES = ("regime_weight", "trend_weight", "volume_weight")


def _check_weights(params: FluxParams) -> None:
    """Concrete weights must be >= 0 with a positive sum (traced ones are unchecked:
    a zero sum then gives NaN)."""
    values = [getattr(params, name) for name in _WEIGHT_NAMES]
    if any(isinstance(value, jax.core.Tracer) for value in values):
        return
    for name, value in zip(_WEIGHT_NAMES, values, strict=True):
        if np.any(np.asarray(value) < 0):
            raise ValueError(f"FluxParams.{name} must be >= 0; got {value!r}")
    if np.any(sum(np.asarray(value) for value in values) <= 0):
        raise ValueError(f"FluxParams weights must not all be 0; got {params!r}")


def _windows(x: jax.Array, length: int) -> jax.Array:
    """[T] -> [T, length]: row ``t`` is ``x[t - length + 1 .. t]``, NaN before 0."""
    index = jnp.arange(x.shape[0])[:, None] - (length - 1) + jnp.arange(length)
    return jnp.where(index >= 0, x[jnp.clip(index, 0)], jnp.nan)


def _log_returns(closes: jax.Array) -> jax.Array:
    """``log c_i - log c_{i-1}`` [n - 1] (elementwise, so any slicing agrees)."""
    logs = jnp.log(closes)
    return logs[1:] - logs[:-1]


def _volatility(returns: jax.Array) -> jax.Array:
    """Sample std (ddof=1) over the last axis: [..., V] -> [...]."""
    mean = jnp.mean(returns, axis=-1, keepdims=True)
    deviations = returns - mean
    return jnp.sqrt(jnp.sum(deviations**2, axis=-1) / (returns.shape[-1] - 1))


def _percentile_rank(volatilities: jax.Array) -> jax.Array:
    """Share of the window <= its last value: [..., R] -> [...]; NaN if any NaN."""
    at_most = volatilities <= volatilities[..., -1:]
    rank = jnp.sum(at_most, axis=-1, dtype=float) / volatilities.shape[-1]
    return jnp.where(jnp.isnan(volatilities).any(axis=-1), jnp.nan, rank)


def _efficiency_ratio(closes: jax.Array) -> jax.Array:
    """Kaufman's ratio over the last axis: [..., n + 1] -> [...] (0 on a flat path)."""
    path = jnp.sum(jnp.abs(closes[..., 1:] - closes[..., :-1]), axis=-1)
    net = jnp.abs(closes[..., -1] - closes[..., 0])
    return jnp.where(path == 0, 0.0, net / jnp.where(path == 0, 1.0, path))


def _volume_surprise(log_volumes: jax.Array) -> jax.Array:
    """``1 - exp(-max(z, 0))`` of the last value's z-score: [..., V] -> [...]."""
    mean = jnp.mean(log_volumes, axis=-1)
    spread = jnp.sqrt(jnp.mean((log_volumes - mean[..., None]) ** 2, axis=-1))
    flat = spread == 0
    score = (log_volumes[..., -1] - mean) / jnp.where(flat, 1.0, spread)
    return 1 - jnp.exp(-jnp.maximum(jnp.where(flat, 0.0, score), 0))


def _combine(components: dict[str, jax.Array], params: FluxParams) -> jax.Array:
    weights = [jnp.asarray(getattr(params, name), float) for name in _WEIGHT_NAMES]
    uncertainty = (
        weights[0] * components["volatility_regime"]
        + weights[1] * (1 - components["trend_strength"])
        + weights[2] * components["volume_surprise"]
    )
    return uncertainty / (weights[0] + weights[1] + weights[2])


def flux_components(bars: Bar, config: FluxConfig) -> dict[str, jax.Array]:
    """The three components [T] (module docstring for the formulas).

    Args:
        bars: A :class:`~neuroflux.strategies.steps.Bar` batch [T] (close, volume).
        config: :class:`FluxConfig`.

    Returns:
        ``{"volatility_regime", "trend_strength", "volume_surprise"}``, each [T] in
        [0, 1] and NaN over its own warm-up.
    """
    close = as_series(bars.close, "bars.close")
    volume = as_series(bars.volume, "bars.volume")
    if volume.shape != close.shape:
        raise ValueError(
            f"bars.volume must have the shape of bars.close {close.shape}; "
            f"got {volume.shape}"
        )
    logs = jnp.log(close)
    returns = jnp.concatenate([jnp.full(1, jnp.nan), logs[1:] - logs[:-1]])
    volatility = _volatility(_windows(returns, config.volatility_window))
    return {
        "volatility_regime": _percentile_rank(
            _windows(volatility, config.regime_window)
        ),
        "trend_strength": _efficiency_ratio(_windows(close, config.trend_window + 1)),
        "volume_surprise": _volume_surprise(
            _windows(jnp.log1p(volume), config.volume_window)
        ),
    }


def market_flux(
    bars: Bar, config: FluxConfig, params: FluxParams | None = None
) -> jax.Array:
    """Flux [T] in [0, 1], NaN over the first ``config.warmup`` bars.

    Args:
        bars: A :class:`~neuroflux.strategies.steps.Bar` batch [T] (close, volume).
        config: :class:`FluxConfig` (static under ``jit``).
        params: :class:`FluxParams`; equal weights if ``None``.

    Raises:
        ValueError: A concrete weight below 0, or all weights 0.
    """
    params = FluxParams() if params is None else params
    _check_weights(params)
    return _combine(flux_components(bars, config), params)


@struct.dataclass
class FluxState:
    """Ring buffers of the last ``memory`` closes and volumes [memory] (NaN before
    the first bar) and the bars seen."""

    closes: jax.Array
    volumes: jax.Array
    count: jax.Array


def make_flux_step(config: FluxConfig | None = None) -> StepStrategy:
    """Step version of :func:`market_flux`, whose action is the flux.

    Args:
        config: :class:`FluxConfig`; defaults if ``None``.

    Returns:
        A :class:`~neuroflux.strategies.steps.StepStrategy` over :class:`FluxParams`
        whose "action" is the flux of the bar (NaN over the warm-up).
    """
    config = FluxConfig() if config is None else config
    memory = config.memory
    regime, volatility = config.regime_window, config.volatility_window

    def init(params: FluxParams) -> FluxState:
        _check_weights(params)
        empty = jnp.full(memory, jnp.nan, float)
        return FluxState(empty, empty, jnp.zeros((), jnp.int32))

    def step(state: FluxState, bar: Bar, params: FluxParams):
        slot = state.count % memory
        state = FluxState(
            state.closes.at[slot].set(bar.close),
            state.volumes.at[slot].set(bar.volume),
            state.count + 1,
        )
        oldest_first = (state.count + jnp.arange(memory)) % memory
        closes, volumes = state.closes[oldest_first], state.volumes[oldest_first]
        returns = _log_returns(closes[-(regime + volatility) :])
        spans = jnp.arange(regime)[:, None] + jnp.arange(volatility)
        components = {
            "volatility_regime": _percentile_rank(_volatility(returns[spans])),
            "trend_strength": _efficiency_ratio(closes[-(config.trend_window + 1) :]),
            "volume_surprise": _volume_surprise(
                jnp.log1p(volumes[-config.volume_window :])
            ),
        }
        return state, _combine(components, params)

    return StepStrategy(init, step)


def flux_adapted_positions(
    positions: ArrayLike,
    flux: ArrayLike,
    size_weight: ArrayLike = 0.5,
    levels: int = 4,
) -> jax.Array:
    """Positions scaled by ``1 - size_weight * round(levels * flux) / levels``.

    Unscaled where flux is NaN.

    Args:
        positions: Target positions [T].
        flux: Flux [T] in [0, 1] (NaN over its warm-up).
        size_weight: In [0, 1], so that a position never changes sign.
        levels: Steps flux is rounded to (static integer >= 1).

    Returns:
        [T] scaled positions, equal to the actions of :func:`make_flux_adapted_step`.
    """
    positions = as_series(positions, "positions")
    flux = as_series(flux, "flux")
    if flux.shape != positions.shape:
        raise ValueError(
            f"flux must have the shape of positions {positions.shape}; got {flux.shape}"
        )
    _check_size_weight(size_weight)
    return positions * _scale(flux, size_weight, as_count(levels, "levels", 1))


def _scale(flux: jax.Array, size_weight: ArrayLike, levels: int) -> jax.Array:
    stepped = jnp.round(flux * levels) / levels
    return jnp.where(jnp.isnan(flux), 1.0, 1 - size_weight * stepped)


def _check_size_weight(size_weight: Any) -> None:
    if isinstance(size_weight, jax.core.Tracer):
        return
    value = np.asarray(size_weight)
    if np.any((value < 0) | (value > 1)):
        raise ValueError(f"size_weight must be in [0, 1]; got {size_weight!r}")


@struct.dataclass
class FluxAdaptedParams:
    """Parameters of :func:`make_flux_adapted_step`.

    Attributes:
        inner: Parameters of the inner step strategy.
        flux: :class:`FluxParams` of the estimator.
        size_weight: Action multiplied by ``1 - size_weight * flux`` (in [0, 1]).
    """

    inner: Any
    flux: FluxParams = FluxParams()
    size_weight: float = 0.5


@struct.dataclass
class FluxAdaptedState:
    """The inner strategy's state and the flux estimator's."""

    inner: Any
    flux: FluxState


def make_flux_adapted_step(
    inner: StepStrategy, config: FluxConfig | None = None, levels: int = 4
) -> StepStrategy:
    """``inner`` with its action scaled by ``1 - size_weight * flux`` each bar.

    Flux is rounded to ``levels`` steps first (module docstring).

    Both run on the same bar; while flux is NaN (warm-up) the inner action passes
    unscaled (module docstring).

    Args:
        inner: Any :class:`~neuroflux.strategies.steps.StepStrategy`.
        config: :class:`FluxConfig`; defaults if ``None``.
        levels: Steps flux is rounded to (static integer >= 1).

    Returns:
        A :class:`~neuroflux.strategies.steps.StepStrategy` over
        :class:`FluxAdaptedParams`.
    """
    estimator = make_flux_step(config)
    levels = as_count(levels, "levels", 1)

    def init(params: FluxAdaptedParams) -> FluxAdaptedState:
        _check_size_weight(params.size_weight)
        return FluxAdaptedState(inner.init(params.inner), estimator.init(params.flux))

    def step(state: FluxAdaptedState, bar: Bar, params: FluxAdaptedParams):
        inner_state, action = inner.step(state.inner, bar, params.inner)
        flux_state, value = estimator.step(state.flux, bar, params.flux)
        scaled = action * _scale(value, params.size_weight, levels)
        return FluxAdaptedState(inner_state, flux_state), scaled

    return StepStrategy(init, step)
