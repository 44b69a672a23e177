"""Training of forecasters: minibatch AdamW, early stopping, seeds in a vmap, shards.

The model is split once into a static graph and its parameters (``nnx.split``); the
training itself is pure JAX over the parameters. One epoch is one jitted function: a
``lax.scan`` of the train step over shuffled minibatches, then the validation loss and
the early-stopping bookkeeping. The Python loop over epochs only calls it, records the
losses, reports them through ``on_epoch`` (the edge hooks a progress bar there; this
package must not import one) and stops when the patience runs out.

* **Optimizer** (:func:`make_optimizer`): ``clip_by_global_norm`` then ``adamw`` with
  a ``warmup_cosine_decay_schedule`` over all the steps of ``epochs`` epochs.
* **Minibatches**: each epoch draws a permutation from the run's key and trains on
  ``len(X) // batch_size`` full batches; the remainder of the permutation is left out
  that epoch (static shapes, one compilation), and a different remainder the next.
* **Determinism**: the initial parameters come from ``nnx.Rngs(init_key)`` and the
  shuffles and dropout from ``train_key``, both split from ``jax.random.key(seed)``:
  the same seed gives bit-identical losses and parameters.
* **Early stopping**: an epoch whose validation loss is not below the best so far is
  a bad epoch; after ``patience`` bad epochs in a row training stops, and the result
  holds the parameters of the best epoch.
* **Seeds** (:func:`train_seeds`): the same epoch function under ``jax.vmap`` over
  the seeds. A seed whose patience has run out is frozen (its epochs leave its state
  unchanged) while the others go on, so each seed follows exactly the single-seed run
  of :func:`train`; the loop ends when every seed has stopped.
* **Data parallel** (``mesh=``): parameters and data are replicated over the devices
  of a one-axis mesh (:func:`make_data_mesh`) and every minibatch is sharded on the
  ``"data"`` axis; XLA inserts the gradient all-reduce. The losses equal the
  one-device run up to the order of floating-point sums.
* **Checkpoints**: :mod:`neuroflux.research.checkpoints` (files are an edge's job).

Models follow the interface of :mod:`neuroflux.models.forecasters`: ``model(x)``
for inference, ``model(x, rngs=rngs)`` for a training call, a ``Forecast`` out. A
model's non-parameter variables (if any) are held constant during training.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from neuroflux.models import forecasters
from neuroflux.models.forecasters import Forecast

__all__ = [
    "ModelFactory",
    "TrainConfig",
    "TrainResult",
    "make_data_mesh",
    "make_optimizer",
    "predict",
    "train",
    "train_seeds",
]

ModelFactory = Callable[[nnx.Rngs], nnx.Module]
"""Builds a model from initial randomness: ``lambda rngs: Model(..., rngs=rngs)``."""

_LOSSES = {"gaussian_nll": forecasters.gaussian_nll, "mse": forecasters.mse_loss}
_DATA_AXIS = "data"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Static settings of a training run (hashable; unknown keys fail).

    Attributes:
        learning_rate: Peak learning rate of the schedule.
        weight_decay: AdamW's decoupled weight decay.
        warmup_steps: Linear warm-up from 0 to ``learning_rate``, in optimizer steps;
            a cosine decay to 0 follows until the last step.
        epochs: Most epochs to train.
        batch_size: Samples per minibatch (at most the training set; a multiple of
            the device count when data-parallel).
        clip_norm: Gradients are rescaled to at most this global L2 norm.
        patience: Bad epochs in a row before stopping; ``None`` trains all epochs.
        loss: ``"gaussian_nll"`` (mean and scale) or ``"mse"`` (mean only); the
            validation loss uses the same.
        seed: Seeds the initial parameters, the shuffles and the dropout.
    """

    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    epochs: int = 20
    batch_size: int = 64
    clip_norm: float = 1.0
    patience: int | None = 5
    loss: Literal["gaussian_nll", "mse"] = "gaussian_nll"
    seed: int = 0

    def __post_init__(self):
        if self.loss not in _LOSSES:
            raise ValueError(
                f"loss must be one of {sorted(_LOSSES)}, got {self.loss!r}"
            )
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")
        if self.warmup_steps < 0 or self.clip_norm <= 0 or self.learning_rate <= 0:
            raise ValueError(
                "warmup_steps must be >= 0, clip_norm and learning_rate > 0; got "
                f"{self.warmup_steps}, {self.clip_norm}, {self.learning_rate}"
            )


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Outcome of one training run.

    Attributes:
        model: The model with the parameters of the best epoch.
        train_losses: Mean minibatch loss of each epoch run ``[epochs_run]``.
        val_losses: Validation loss after each epoch run ``[epochs_run]``.
        best_epoch: Index of the epoch with the lowest validation loss.
    """

    model: nnx.Module
    train_losses: np.ndarray
    val_losses: np.ndarray
    best_epoch: int

    @property
    def best_val_loss(self) -> float:
        """Validation loss of the best epoch (that of the returned model)."""
        return float(self.val_losses[self.best_epoch])


@struct.dataclass
class _Carry:
    """State carried from epoch to epoch (one seed)."""

    params: nnx.State
    opt_state: optax.OptState
    best_params: nnx.State
    best_val: jax.Array
    best_epoch: jax.Array
    epoch: jax.Array
    bad_epochs: jax.Array
    key: jax.Array


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """Gradient clipping, then AdamW on a warm-up + cosine schedule.

    Args:
        config: Training settings.
        steps_per_epoch: Optimizer steps per epoch (the schedule spans ``epochs`` of
            them).

    Returns:
        An ``optax.GradientTransformation``.
    """
    total_steps = config.epochs * steps_per_epoch
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=config.warmup_steps,
        decay_steps=max(total_steps, config.warmup_steps + 1),
    )
    return optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(schedule, weight_decay=config.weight_decay),
    )


def make_data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named ``"data"`` over ``devices`` (default: all devices)."""
    return Mesh(np.asarray(devices or jax.devices()), (_DATA_AXIS,))


def _forecast_batches(graphdef, params, rest, X, batch_size: int, mesh=None):
    """Inference over ``X [n, lookback, features]`` in batches; a Forecast ``[n]``."""
    n = X.shape[0]
    batch_size = min(batch_size, n)
    if mesh is not None:
        batch_size = -(-batch_size // mesh.size) * mesh.size
    batches = -(-n // batch_size)
    padded = jnp.concatenate(
        [X, jnp.zeros((batches * batch_size - n, *X.shape[1:]), X.dtype)]
    ).reshape(batches, batch_size, *X.shape[1:])

    def forecast(x):
        x = _shard_batch(x, mesh)
        return nnx.merge(graphdef, params, rest)(x)

    out = jax.lax.map(forecast, padded)
    return jax.tree.map(lambda a: a.reshape(-1)[:n], out)


def _shard_batch(batch, mesh):
    if mesh is None:
        return batch
    sharding = NamedSharding(mesh, PartitionSpec(_DATA_AXIS))
    return jax.lax.with_sharding_constraint(batch, sharding)


def _make_epoch(graphdef, config: TrainConfig, optimizer, n_train: int, mesh=None):
    """The pure epoch ``(carry, rest, X, y, X_val, y_val) -> (carry, train, val)``."""
    loss_fn = _LOSSES[config.loss]
    batch_size = min(config.batch_size, n_train)
    steps = n_train // batch_size
    patience = config.patience if config.patience is not None else math.inf

    def epoch(carry: _Carry, rest, X, y, X_val, y_val):
        def batch_loss(params, x, target, key):
            model = nnx.merge(graphdef, params, rest)
            return loss_fn(model(x, rngs=nnx.Rngs(dropout=key)), target)

        def step(state, inputs):
            params, opt_state = state
            index, key = inputs
            x, target = _shard_batch(X[index], mesh), _shard_batch(y[index], mesh)
            loss, grads = jax.value_and_grad(batch_loss)(params, x, target, key)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        key, shuffle_key, dropout_key = jax.random.split(carry.key, 3)
        order = jax.random.permutation(shuffle_key, n_train)[: steps * batch_size]
        inputs = (
            order.reshape(steps, batch_size),
            jax.random.split(dropout_key, steps),
        )
        (params, opt_state), losses = jax.lax.scan(
            step, (carry.params, carry.opt_state), inputs
        )
        forecast = _forecast_batches(
            graphdef, params, rest, X_val, config.batch_size, mesh
        )
        val_loss = loss_fn(forecast, y_val)
        improved = val_loss < carry.best_val
        updated = _Carry(
            params=params,
            opt_state=opt_state,
            best_params=_select(improved, params, carry.best_params),
            best_val=jnp.where(improved, val_loss, carry.best_val),
            best_epoch=jnp.where(improved, carry.epoch, carry.best_epoch),
            epoch=carry.epoch + 1,
            bad_epochs=jnp.where(improved, 0, carry.bad_epochs + 1),
            key=key,
        )
        stopped = carry.bad_epochs >= patience
        return _select(stopped, carry, updated), losses.mean(), val_loss

    return epoch


def _select(condition, if_true, if_false):
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), if_true, if_false)


def _init(model_factory: ModelFactory, seed, optimizer):
    """Model from ``seed``; returns ``(graphdef, rest, carry)``."""
    init_key, train_key = jax.random.split(jax.random.key(seed))
    model = model_factory(nnx.Rngs(init_key))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    dtype = jax.tree.leaves(params)[0].dtype
    carry = _Carry(
        params=params,
        opt_state=optimizer.init(params),
        best_params=params,
        best_val=jnp.asarray(jnp.inf, dtype),
        best_epoch=jnp.asarray(0),
        epoch=jnp.asarray(0),
        bad_epochs=jnp.asarray(0),
        key=train_key,
    )
    return graphdef, rest, carry


def _check_data(X_train, y_train, X_val, y_val, config: TrainConfig, mesh):
    for name, X, y in (("train", X_train, y_train), ("val", X_val, y_val)):
        if X.ndim != 3 or y.shape != X.shape[:1] or X.shape[0] == 0:
            raise ValueError(
                f"X_{name} must be [n, lookback, features] and y_{name} [n] with n > "
                f"0; got {X.shape} and {y.shape}"
            )
    batch_size = min(config.batch_size, X_train.shape[0])
    if mesh is not None and batch_size % mesh.size:
        raise ValueError(
            f"batch_size={batch_size} must be a multiple of the {mesh.size} devices"
        )


def train(
    model_factory: ModelFactory,
    X_train: jax.Array,
    y_train: jax.Array,
    X_val: jax.Array,
    y_val: jax.Array,
    config: TrainConfig,
    *,
    on_epoch: Callable[[int, float, float], None] | None = None,
    mesh: Mesh | None = None,
) -> TrainResult:
    """Train a forecaster with early stopping on the validation loss.

    Args:
        model_factory: Builds the model from ``nnx.Rngs``.
        X_train: Training windows ``[n, lookback, features]``.
        y_train: Training targets ``[n]``.
        X_val: Validation windows ``[m, lookback, features]``.
        y_val: Validation targets ``[m]``.
        config: Training settings.
        on_epoch: Called after each epoch with ``(epoch, train_loss, val_loss)``.
        mesh: Train data-parallel over this one-axis mesh (:func:`make_data_mesh`).

    Returns:
        The best model and the loss history.
    """
    X_train, y_train, X_val, y_val = map(jnp.asarray, (X_train, y_train, X_val, y_val))
    _check_data(X_train, y_train, X_val, y_val, config, mesh)
    n_train = X_train.shape[0]
    optimizer = make_optimizer(config, n_train // min(config.batch_size, n_train))
    graphdef, rest, carry = _init(model_factory, config.seed, optimizer)
    data = (rest, X_train, y_train, X_val, y_val)
    if mesh is not None:
        replicated = NamedSharding(mesh, PartitionSpec())
        carry, data = jax.device_put((carry, data), replicated)
    epoch = jax.jit(_make_epoch(graphdef, config, optimizer, n_train, mesh))
    train_losses, val_losses = [], []
    for index in range(config.epochs):
        carry, train_loss, val_loss = epoch(carry, *data)
        train_losses.append(float(train_loss))
        val_losses.append(float(val_loss))
        if on_epoch is not None:
            on_epoch(index, train_losses[-1], val_losses[-1])
        if config.patience is not None and int(carry.bad_epochs) >= config.patience:
            break
    return TrainResult(
        model=nnx.merge(graphdef, carry.best_params, rest),
        train_losses=np.asarray(train_losses),
        val_losses=np.asarray(val_losses),
        best_epoch=int(carry.best_epoch),
    )


def train_seeds(
    model_factory: ModelFactory,
    X_train: jax.Array,
    y_train: jax.Array,
    X_val: jax.Array,
    y_val: jax.Array,
    config: TrainConfig,
    seeds: Sequence[int],
    *,
    on_epoch: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
) -> list[TrainResult]:
    """Train one model per seed, all seeds in one ``vmap`` (``config.seed`` unused).

    Each seed follows :func:`train` with ``dataclasses.replace(config, seed=seed)``,
    early stopping included: a stopped seed is frozen while the others train on.

    Args:
        model_factory: Builds the model from ``nnx.Rngs``.
        X_train, y_train, X_val, y_val: As in :func:`train`.
        config: Training settings.
        seeds: Seeds ``[S]``.
        on_epoch: Called after each epoch with ``(epoch, train_losses [S],
            val_losses [S])``; a seed that has stopped reports its frozen losses.

    Returns:
        One result per seed, in the order of ``seeds``.
    """
    X_train, y_train, X_val, y_val = map(jnp.asarray, (X_train, y_train, X_val, y_val))
    _check_data(X_train, y_train, X_val, y_val, config, None)
    n_train = X_train.shape[0]
    optimizer = make_optimizer(config, n_train // min(config.batch_size, n_train))
    seeds = jnp.asarray(seeds)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: model_factory(nnx.Rngs(0))))
    rest, carry = jax.vmap(lambda seed: _init(model_factory, seed, optimizer)[1:])(
        seeds
    )
    epoch = jax.jit(
        jax.vmap(
            _make_epoch(graphdef, config, optimizer, n_train),
            in_axes=(0, 0, None, None, None, None),
        )
    )
    patience = config.patience if config.patience is not None else math.inf
    train_losses, val_losses, epochs_run = [], [], np.zeros(len(seeds), int)
    for index in range(config.epochs):
        active = np.asarray(carry.bad_epochs) < patience
        if not active.any():
            break
        epochs_run += active
        carry, train_loss, val_loss = epoch(carry, rest, X_train, y_train, X_val, y_val)
        train_losses.append(np.asarray(train_loss))
        val_losses.append(np.asarray(val_loss))
        if on_epoch is not None:
            on_epoch(index, train_losses[-1], val_losses[-1])
    train_losses, val_losses = np.stack(train_losses), np.stack(val_losses)
    results = []
    for s in range(len(seeds)):
        results.append(
            TrainResult(
                model=nnx.merge(graphdef, _take(carry.best_params, s), _take(rest, s)),
                train_losses=train_losses[: epochs_run[s], s],
                val_losses=val_losses[: epochs_run[s], s],
                best_epoch=int(carry.best_epoch[s]),
            )
        )
    return results


def _take(tree, index: int):
    return jax.tree.map(lambda a: a[index], tree)


def predict(model: nnx.Module, X: jax.Array, batch_size: int = 1024) -> Forecast:
    """Forecasts of ``model`` for windows ``X [n, lookback, features]``, in batches.

    Returns:
        A Forecast with ``mean`` and ``log_scale`` ``[n]``.
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return _predict(graphdef, params, rest, jnp.asarray(X), batch_size)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _predict(graphdef, params, rest, X, batch_size):
    return _forecast_batches(graphdef, params, rest, X, batch_size)
