"""Training: learning, determinism, early stopping, clipping, seeds, checkpoints."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from neuroflux.forecasting import training
from neuroflux.models import forecasters
from neuroflux.research import checkpoints

LOOKBACK, FEATURES = 4, 3
WEIGHTS = np.array([0.5, -1.0, 2.0])


def linear_factory(rngs):
    return forecasters.LinearForecaster(
        FEATURES, lookback=LOOKBACK, param_dtype=jnp.float64, rngs=rngs
    )


def mlp_factory(rngs):
    return forecasters.MLPForecaster(
        FEATURES, lookback=LOOKBACK, hidden=(16,), param_dtype=jnp.float64, rngs=rngs
    )


@pytest.fixture(scope="module")
def data():
    """``y = WEIGHTS . x[-1] + 0.1 noise``: 256 training and 128 validation samples."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(384, LOOKBACK, FEATURES))
    y = X[:, -1] @ WEIGHTS + 0.1 * rng.normal(size=384)
    return X[:256], y[:256], X[256:], y[256:]


CONFIG = training.TrainConfig(
    learning_rate=0.05, epochs=8, batch_size=32, loss="mse", patience=None
)


def _params(model) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]


@pytest.mark.parametrize(
    ("factory", "loss"), [(linear_factory, "mse"), (mlp_factory, "gaussian_nll")]
)
def test_learns_a_linear_signal(data, factory, loss):
    X, y, X_val, y_val = data
    config = dataclasses.replace(CONFIG, loss=loss, epochs=12, warmup_steps=8)
    result = training.train(factory, X, y, X_val, y_val, config)
    forecast = training.predict(result.model, X_val)
    mse = float(np.mean((np.asarray(forecast.mean) - y_val) ** 2))
    # Var(y) = |WEIGHTS|^2 + 0.01 = 5.26; the noise floor is 0.01.
    assert mse < 0.05 * np.var(y_val)
    assert result.train_losses[-1] < result.train_losses[0]
    if loss == "gaussian_nll":
        # The learned scale follows the residuals, far below the scale of y.
        assert float(jnp.exp(forecast.log_scale).mean()) < 0.5 * np.std(y_val)


def test_transformer_learns_a_linear_signal(data):
    X, y, X_val, y_val = data

    def factory(rngs):
        return forecasters.TransformerForecaster(
            FEATURES, lookback=LOOKBACK, d_model=16, heads=2, layers=1, ff=32, rngs=rngs
        )

    config = dataclasses.replace(CONFIG, learning_rate=0.01, epochs=10)
    result = training.train(factory, X, y, X_val, y_val, config)
    mse = np.mean((np.asarray(training.predict(result.model, X_val).mean) - y_val) ** 2)
    assert mse < 0.1 * np.var(y_val)


def test_same_seed_is_bit_identical_and_reports_each_epoch(data):
    calls = []
    first = training.train(
        mlp_factory, *data, CONFIG, on_epoch=lambda *args: calls.append(args)
    )
    second = training.train(mlp_factory, *data, CONFIG)
    np.testing.assert_array_equal(first.train_losses, second.train_losses)
    np.testing.assert_array_equal(first.val_losses, second.val_losses)
    for a, b in zip(_params(first.model), _params(second.model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert calls == [
        (epoch, first.train_losses[epoch], first.val_losses[epoch])
        for epoch in range(CONFIG.epochs)
    ]
    other = training.train(mlp_factory, *data, dataclasses.replace(CONFIG, seed=1))
    assert not np.array_equal(first.val_losses, other.val_losses)


def test_early_stopping_restores_the_best_epoch(data):
    """Validation targets flip sign: the better the fit, the worse the validation."""
    X, y, X_val, y_val = data
    config = dataclasses.replace(CONFIG, epochs=30, patience=3)
    result = training.train(linear_factory, X, y, X_val, -y_val, config)
    assert len(result.val_losses) == result.best_epoch + config.patience + 1 < 30
    assert result.best_val_loss == result.val_losses.min()
    assert (result.val_losses[result.best_epoch + 1 :] >= result.best_val_loss).all()
    restored = training.predict(result.model, X_val)
    np.testing.assert_allclose(
        np.mean((np.asarray(restored.mean) + y_val) ** 2),
        result.best_val_loss,
        rtol=1e-9,
    )


def test_gradients_are_clipped_before_adamw():
    """The optimizer equals AdamW fed gradients rescaled to norm <= clip_norm."""
    config = training.TrainConfig(learning_rate=0.1, weight_decay=0.0, clip_norm=1.0)
    params = {"w": jnp.zeros(4)}
    gradients = [
        {"w": jnp.array([0.01, 0.0, 0.0, 0.0])},  # below the clip: untouched
        {"w": jnp.array([3e3, 4e3, 0.0, 0.0])},  # norm 5000: rescaled to 1
    ]
    clipped = [gradients[0], {"w": jnp.array([0.6, 0.8, 0.0, 0.0])}]
    schedule = optax.warmup_cosine_decay_schedule(0.0, 0.1, 0, 20 * 10)
    reference = optax.adamw(schedule, weight_decay=0.0)

    def updates(optimizer, grads):
        state, out = optimizer.init(params), []
        for g in grads:
            update, state = optimizer.update(g, state, params)
            out.append(np.asarray(update["w"]))
        return out

    ours = updates(training.make_optimizer(config, steps_per_epoch=10), gradients)
    for a, b in zip(ours, updates(reference, clipped), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    unclipped = updates(reference, gradients)
    assert not np.allclose(ours[1], unclipped[1])


def test_vmapped_seeds_equal_single_seed_runs(data):
    """Early stopping included: seeds stop at different epochs."""
    X, y, X_val, y_val = data
    config = dataclasses.replace(CONFIG, epochs=12, patience=2)
    # Noisy validation targets, so that seeds stop at different epochs.
    noisy = y_val + 2.0 * np.random.default_rng(1).normal(size=y_val.shape)
    seeds = [0, 1, 2]
    results = training.train_seeds(mlp_factory, X, y, X_val, noisy, config, seeds)
    for seed, result in zip(seeds, results, strict=True):
        single = training.train(
            mlp_factory, X, y, X_val, noisy, dataclasses.replace(config, seed=seed)
        )
        assert result.best_epoch == single.best_epoch
        np.testing.assert_allclose(result.train_losses, single.train_losses, rtol=1e-9)
        np.testing.assert_allclose(result.val_losses, single.val_losses, rtol=1e-9)
        for a, b in zip(_params(result.model), _params(single.model), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)
    assert len({len(result.val_losses) for result in results}) > 1


def test_checkpoint_round_trip(data, tmp_path):
    X, y, X_val, y_val = data
    result = training.train(mlp_factory, X, y, X_val, y_val, CONFIG)
    metadata = {"config": dataclasses.asdict(CONFIG), "hidden": [16]}
    checkpoints.save_checkpoint(tmp_path / "model", result.model, metadata)
    model, restored_metadata = checkpoints.load_checkpoint(
        tmp_path / "model", mlp_factory
    )
    assert restored_metadata == metadata
    assert checkpoints.read_checkpoint_metadata(tmp_path / "model") == metadata
    before, after = (
        training.predict(result.model, X_val),
        training.predict(model, X_val),
    )
    np.testing.assert_array_equal(before.mean, after.mean)
    np.testing.assert_array_equal(before.log_scale, after.log_scale)
    with pytest.raises(FileExistsError):
        checkpoints.save_checkpoint(tmp_path / "model", result.model)


def test_predict_does_not_depend_on_batch_size(data):
    model = mlp_factory(nnx.Rngs(0))
    X_val = data[2]
    whole = model(jnp.asarray(X_val))
    for batch_size in (7, 128, 1000):
        forecast = training.predict(model, X_val, batch_size)
        np.testing.assert_allclose(forecast.mean, whole.mean, rtol=1e-12)
        np.testing.assert_allclose(forecast.log_scale, whole.log_scale, rtol=1e-12)


def test_bad_settings_and_data_fail_clearly(data):
    with pytest.raises(ValueError, match="loss"):
        training.TrainConfig(loss="mae")
    with pytest.raises(ValueError, match="patience"):
        training.TrainConfig(patience=0)
    with pytest.raises(TypeError):
        training.TrainConfig(learning_rat=0.1)
    X, y, X_val, y_val = data
    with pytest.raises(ValueError, match="y_train"):
        training.train(linear_factory, X, y[:-1], X_val, y_val, CONFIG)


SHARDED_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec
    from flax import nnx
    from neuroflux.forecasting import training
    from neuroflux.models import forecasters

    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 4, 3))
    y = X[:, -1] @ np.array([0.5, -1.0, 2.0]) + 0.1 * rng.normal(size=160)
    data = (X[:128], y[:128], X[128:], y[128:])

    def factory(rngs):
        return forecasters.TransformerForecaster(
            3, lookback=4, d_model=8, heads=2, layers=1, ff=16, dropout=0.1,
            param_dtype=jnp.float64, rngs=rngs,
        )

    config = training.TrainConfig(learning_rate=0.01, epochs=3, batch_size=32)
    mesh = training.make_data_mesh()
    one = training.train(factory, *data, config)
    four = training.train(factory, *data, config, mesh=mesh)
    np.testing.assert_allclose(four.train_losses, one.train_losses, rtol=1e-6)
    np.testing.assert_allclose(four.val_losses, one.val_losses, rtol=1e-6)
    leaf = jax.tree.leaves(nnx.state(four.model, nnx.Param))[0]
    assert len(leaf.sharding.device_set) == 4

    # The minibatches are split over the devices: gradients are all-reduced.
    optimizer = training.make_optimizer(config, steps_per_epoch=4)
    graphdef, rest, carry = training._init(factory, 0, optimizer)
    epoch = jax.jit(training._make_epoch(graphdef, config, optimizer, 128, mesh))
    args = jax.device_put(
        (carry, rest, *map(jnp.asarray, data)), NamedSharding(mesh, PartitionSpec())
    )
    assert "all-reduce" in epoch.lower(*args).compile().as_text()

    try:
        training.train(factory, *data, config.__class__(batch_size=30), mesh=mesh)
    except ValueError as error:
        assert "multiple of the 4 devices" in str(error)
    else:
        raise AssertionError("batch_size 30 over 4 devices should fail")
    print("sharded ok")
    """
)


def test_data_parallel_equals_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    completed = subprocess.run(
        [sys.executable, "-c", "import neuroflux\n" + SHARDED_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "sharded ok" in completed.stdout
