"""A neural position policy trained end to end on the backtest's net Sharpe ratio.

The policy reads the last ``window`` rows of :func:`neuroflux.envs.bar_features`
(``F`` scale-free features per bar) and holds the target position

    ``p_t = tanh(mlp(theta, x_t))``,  ``x_t = features[t - window + 1 .. t].ravel()``

in (-1, 1) after bar ``t``'s close; ``p_t = 0`` while the window holds a NaN row (the
warm-up). It ignores the position and P&L part of the environment's observation, so
its positions are not path dependent and a whole series is one vectorised call
(:func:`policy_positions`). Training maximises the annualised net Sharpe ratio of
:func:`neuroflux.backtest.portfolio_returns` (Moody and Saffell, "Learning to trade
via direct reinforcement", IEEE Trans. Neural Networks 12, 2001):

    ``r_t = p_{t-1} (c_t / c_{t-1} - 1) - fees * |p_t - p_{t-1}|_eps``,
    ``|x|_eps = sqrt(x^2 + eps^2) - eps``,
    ``S = sqrt(P) mean(r) / sqrt(var(r, ddof=1) + floor^2)``

(the objective of :func:`neuroflux.backtest.differentiable.sharpe_objective`) by
full-batch AdamW (Loshchilov and Hutter, "Decoupled weight decay regularization",
ICLR 2019) over a ``lax.scan`` of steps. The network runs in the dtype of its
parameters (float32 from :func:`train_neural_policy`); money stays float64.

The deployed decision path is :func:`make_neural_step`: a
:class:`~neuroflux.strategies.steps.StepStrategy` that sees the environment's
observation bar by bar and equals :func:`policy_positions` on the same bars.
:func:`walk_forward_neural` trains on each walk-forward training window and runs that
step function over the following test window.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.typing import ArrayLike

from neuroflux._arrays import as_count, as_series
from neuroflux.agents import networks, policies
from neuroflux.backtest import differentiable, splits
from neuroflux.envs import observations
from neuroflux.strategies.steps import Bar, StepStrategy, run_steps

__all__ = [
    "NeuralPolicyConfig",
    "init_neural_policy",
    "make_neural_step",
    "net_sharpe",
    "neural_decide",
    "policy_positions",
    "train_neural_policy",
    "walk_forward_neural",
]

NUM_FEATURES = len(observations.FEATURE_NAMES)
# A small last layer starts the policy near flat; the Sharpe ratio is scale-free, so
# the direction of its first gradients does not depend on this gain.
OUTPUT_SCALE = 0.1


def _check_number(config: object, name: str, low: float, *, strict: bool) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number; got {value!r}")
    if not math.isfinite(value) or value < low or (strict and value == low):
        relation = ">" if strict else ">="
        raise ValueError(
            f"{name} must be a finite number {relation} {low}; got {value}"
        )


def _check_hidden_sizes(hidden_sizes: object) -> None:
    """``hidden_sizes`` must be a tuple of integers >= 1 (hashable for jit)."""
    if not isinstance(hidden_sizes, tuple):
        raise TypeError(f"hidden_sizes must be a tuple of ints; got {hidden_sizes!r}")
    for size in hidden_sizes:
        as_count(size, "hidden_sizes entry", 1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NeuralPolicyConfig:
    """Static settings of the neural policy and its training (hashable).

    Attributes:
        window: Feature rows the policy reads (as ``EnvConfig.window``).
        hidden_sizes: Hidden layer widths of the MLP.
        fees: Proportional cost per unit of position traded.
        turnover_smoothing: ``eps`` of the smooth ``|x|`` in the costs (0 is exact).
        learning_rate: AdamW's learning rate.
        steps: Full-batch gradient steps.
        weight_decay: AdamW's decoupled weight decay.
        periods_per_year: Bars in a year, to annualise the Sharpe ratio.
        volatility_floor: ``floor`` in the Sharpe denominator.
    """

    window: int = 16
    hidden_sizes: tuple[int, ...] = (32,)
    fees: float = 0.001
    turnover_smoothing: float = 1e-4
    learning_rate: float = 1e-3
    steps: int = 300
    weight_decay: float = 1e-4
    periods_per_year: float = 252.0
    volatility_floor: float = 1e-8

    def __post_init__(self) -> None:
        as_count(self.window, "window", 1)
        as_count(self.steps, "steps", 1)
        _check_hidden_sizes(self.hidden_sizes)
        for name in ("fees", "turnover_smoothing", "weight_decay", "volatility_floor"):
            _check_number(self, name, 0.0, strict=False)
        for name in ("learning_rate", "periods_per_year"):
            _check_number(self, name, 0.0, strict=True)


def init_neural_policy(
    key: jax.Array, window: int, hidden_sizes: Sequence[int]
) -> networks.Layers:
    """Float32 layers ``[window * F, *hidden_sizes, 1]`` of a fresh policy."""
    sizes = [window * NUM_FEATURES, *hidden_sizes, 1]
    return networks.init_mlp(key, sizes, output_scale=OUTPUT_SCALE)


def neural_decide(
    layers: networks.Layers, observation: jax.Array, window: int
) -> jax.Array:
    """Target position [1] from an environment observation (its feature part only).

    Args:
        layers: Policy layers (input ``window * F``).
        observation: :func:`neuroflux.envs.observation` vector of one asset,
            ``[window * F + 2]``; the position and P&L entries are ignored.
        window: Feature rows in the observation (static).
    """
    features = observation[: window * NUM_FEATURES]
    return jnp.tanh(networks.mlp(layers, features.astype(layers[0]["w"].dtype)))


def make_neural_step(config: NeuralPolicyConfig) -> StepStrategy:
    """The policy as a step strategy over its layers (one asset, scalar bars)."""
    window = config.window

    def decide(layers: networks.Layers, observation: jax.Array) -> jax.Array:
        return neural_decide(layers, observation, window)

    return policies.make_policy_step(decide, window=window)


def _check_features(features: ArrayLike, length: int | None = None) -> jax.Array:
    features = jnp.asarray(features)
    if features.ndim != 2 or features.shape[1] != NUM_FEATURES:
        raise ValueError(
            f"features must have shape [T, {NUM_FEATURES}] (bar_features of one "
            f"asset); got {features.shape}"
        )
    if length is not None and features.shape[0] != length:
        raise ValueError(
            f"features have {features.shape[0]} rows; expected one per close ({length})"
        )
    return features


def policy_positions(
    layers: networks.Layers, features: ArrayLike, window: int
) -> jax.Array:
    """Positions [T] of the policy at every bar, vectorised.

    Args:
        layers: Policy layers; the network runs in their dtype.
        features: :func:`neuroflux.envs.bar_features` [T, F].
        window: Feature rows per decision (static).

    Returns:
        [T] positions in (-1, 1), in the layers' dtype; 0 where the window reaches
        before bar 0 or holds a NaN.
    """
    window = as_count(window, "window", 1)
    features = _check_features(features)
    length = features.shape[0]
    rows = jnp.arange(length)[:, None] - window + 1 + jnp.arange(window)[None, :]
    windows = features[jnp.clip(rows, 0, None)]  # [T, window, F]
    ready = jnp.all(rows >= 0, axis=1) & jnp.all(jnp.isfinite(windows), axis=(1, 2))
    # Masked before the network: a NaN input would make every gradient NaN.
    inputs = jnp.where(ready[:, None], windows.reshape(length, -1), 0.0)
    output = jnp.tanh(networks.mlp(layers, inputs.astype(layers[0]["w"].dtype)))[:, 0]
    return jnp.where(ready, output, 0.0)


def net_sharpe(
    layers: networks.Layers,
    close: ArrayLike,
    features: ArrayLike,
    config: NeuralPolicyConfig,
) -> jax.Array:
    """Annualised net Sharpe ratio of the policy's positions over the series.

    Args:
        layers: Policy layers.
        close: Prices [T].
        features: :func:`neuroflux.envs.bar_features` [T, F] of the same bars.
        config: :class:`NeuralPolicyConfig` (static: window, fees, smoothing, ...).

    Returns:
        Scalar ``S`` of the module notes (float64), differentiable in ``layers``.
    """
    close = as_series(close, "close")
    features = _check_features(features, close.shape[0])
    positions = policy_positions(layers, features, config.window)
    returns = differentiable.portfolio_returns(
        close, positions, config.fees, config.turnover_smoothing
    )
    variance = jnp.var(returns, ddof=1)
    volatility = jnp.sqrt(variance + config.volatility_floor**2)
    return jnp.sqrt(config.periods_per_year) * jnp.mean(returns) / volatility


@functools.partial(jax.jit, static_argnames="config")
def train_neural_policy(
    key: jax.Array,
    close: ArrayLike,
    features: ArrayLike,
    config: NeuralPolicyConfig,
) -> tuple[networks.Layers, jax.Array]:
    """Maximise :func:`net_sharpe` on the given (training) bars by full-batch AdamW.

    Args:
        key: PRNG key of the initial layers (vmap over keys for seeds).
        close: Training prices [T].
        features: Their :func:`neuroflux.envs.bar_features` rows [T, F].
        config: :class:`NeuralPolicyConfig` (static).

    Returns:
        ``(layers, history)``: the trained float32 layers and the net Sharpe ratio
        before each step [steps].
    """
    layers = init_neural_policy(key, config.window, config.hidden_sizes)
    optimizer = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)

    def loss(layers: networks.Layers) -> jax.Array:
        return -net_sharpe(layers, close, features, config)

    def step(carry, _):
        layers, state = carry
        value, gradient = jax.value_and_grad(loss)(layers)
        updates, state = optimizer.update(gradient, state, layers)
        return (optax.apply_updates(layers, updates), state), -value

    (layers, _), history = lax.scan(
        step, (layers, optimizer.init(layers)), None, length=config.steps
    )
    return layers, history


def walk_forward_neural(
    key: jax.Array,
    bars: Bar,
    folds: Sequence[splits.Split],
    config: NeuralPolicyConfig,
) -> tuple[jax.Array, jax.Array]:
    """Train on each walk-forward training window, trade the following test window.

    For each fold the policy is trained by :func:`train_neural_policy` on the bars
    ``fold.train`` (joined where an embargo cut them), then the step function of
    :func:`make_neural_step` runs over the bars from the first training bar to the
    end of the test window, so its warm-up is filled from history, and its actions on
    the test bars are kept. Where test windows overlap, the later fold's positions
    are kept. Folds are concrete (a Python loop); each one recompiles for its length.

    Args:
        key: PRNG key; fold ``k`` trains with ``jax.random.split(key, K)[k]``.
        bars: :class:`~neuroflux.strategies.steps.Bar` batch [T] of one asset.
        folds: :func:`neuroflux.backtest.walk_forward_splits` of ``T`` bars.
        config: :class:`NeuralPolicyConfig`.

    Returns:
        ``(positions [T], train_sharpe [K])``: out-of-sample positions, NaN outside
        every test window, and each fold's in-sample net Sharpe after training.
    """
    close = as_series(bars.close, "bars.close")
    length = close.shape[0]
    if not folds:
        raise ValueError("folds must hold at least one walk-forward split")
    features = observations.bar_features(bars)
    strategy = make_neural_step(config)
    run = jax.jit(functools.partial(run_steps, strategy))
    positions = np.full(length, np.nan)
    train_sharpe = []
    for fold_key, fold in zip(jax.random.split(key, len(folds)), folds, strict=True):
        train, test = np.asarray(fold.train), np.asarray(fold.test)
        if train.size == 0 or test.size == 0 or test.max() >= length:
            raise ValueError(
                f"folds must index bars 0 .. {length - 1} with non-empty train and "
                "test windows"
            )
        layers, _ = train_neural_policy(fold_key, close[train], features[train], config)
        train_sharpe.append(net_sharpe(layers, close[train], features[train], config))
        start, stop = int(train.min()), int(test.max()) + 1
        span = jax.tree.map(lambda x, a=start, b=stop: x[a:b], bars)
        _, actions = run(layers, span)
        positions[test] = np.asarray(actions)[test - start]
    return jnp.asarray(positions), jnp.stack(train_sharpe)
