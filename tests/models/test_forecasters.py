"""Forecasters: one interface for three models, losses against NumPy references."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from neuroflux.models import forecasters
from neuroflux.models.forecasters import Forecast

LOOKBACK, FEATURES, BATCH = 6, 3, 5

FACTORIES = {
    "transformer": lambda rngs, **kw: forecasters.TransformerForecaster(
        FEATURES,
        lookback=LOOKBACK,
        d_model=8,
        heads=2,
        layers=2,
        ff=16,
        rngs=rngs,
        **kw,
    ),
    "mlp": lambda rngs, **kw: forecasters.MLPForecaster(
        FEATURES, lookback=LOOKBACK, hidden=(8, 8), rngs=rngs, **kw
    ),
    "linear": lambda rngs, **kw: forecasters.LinearForecaster(
        FEATURES, lookback=LOOKBACK, rngs=rngs, **kw
    ),
}


@pytest.fixture(scope="module")
def windows() -> jax.Array:
    """Random windows ``[BATCH, LOOKBACK, FEATURES]`` in float64."""
    return jax.random.normal(jax.random.key(7), (BATCH, LOOKBACK, FEATURES))


def _params(model) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]


@pytest.mark.parametrize("name", FACTORIES)
def test_shared_interface(name, windows):
    model = FACTORIES[name](nnx.Rngs(0))
    forecast = model(windows)
    assert isinstance(forecast, Forecast)
    assert forecast.mean.shape == forecast.log_scale.shape == (BATCH,)
    assert forecast.mean.dtype == jnp.float32  # float64 windows, float32 model
    assert np.isfinite(forecast.mean).all() and np.isfinite(forecast.log_scale).all()
    # The state is parameters only: nothing random or mutable to carry around.
    everything, params = nnx.state(model), nnx.state(model, nnx.Param)
    assert len(jax.tree.leaves(everything)) == len(jax.tree.leaves(params))
    with pytest.raises(ValueError, match="lookback=6"):
        model(windows[:, 1:])


@pytest.mark.parametrize("name", FACTORIES)
def test_jit_and_vmap_agree_with_eager(name, windows):
    model = FACTORIES[name](nnx.Rngs(0), param_dtype=jnp.float64)
    eager = model(windows)
    assert eager.mean.dtype == jnp.float64
    jitted = nnx.jit(lambda m, x: m(x))(model, windows)
    # vmap over single windows: each gets a batch of one.
    mapped = jax.vmap(lambda x: model(x[None]))(windows)
    for other in (jitted, mapped):
        np.testing.assert_allclose(other.mean.reshape(-1), eager.mean, rtol=1e-12)
        np.testing.assert_allclose(
            other.log_scale.reshape(-1), eager.log_scale, rtol=1e-12
        )


@pytest.mark.parametrize("name", FACTORIES)
def test_forecast_depends_only_on_its_own_window(name, windows):
    """No information flows between the windows of a batch."""
    model = FACTORIES[name](nnx.Rngs(0), param_dtype=jnp.float64)
    changed = windows.at[1:].multiply(-3.0)
    np.testing.assert_array_equal(model(changed).mean[0], model(windows).mean[0])
    assert not np.allclose(model(changed).mean[1:], model(windows).mean[1:])


def test_transformer_reads_every_bar_of_the_window(windows):
    """No mask: the window is all past data, and the last token sees all of it."""
    model = FACTORIES["transformer"](nnx.Rngs(0), param_dtype=jnp.float64)
    base = model(windows).mean
    for t in range(LOOKBACK):
        assert not np.allclose(model(windows.at[:, t].add(1.0)).mean, base)


@pytest.mark.parametrize("name", FACTORIES)
def test_initialisation_is_determined_by_the_seed(name):
    first, again, other = (
        _params(FACTORIES[name](nnx.Rngs(seed))) for seed in (3, 3, 4)
    )
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(first, other, strict=True)
        if a.size > 1
    )


def test_dropout_only_in_training_calls(windows):
    model = forecasters.TransformerForecaster(
        FEATURES, lookback=LOOKBACK, d_model=8, heads=2, dropout=0.3, rngs=nnx.Rngs(0)
    )
    np.testing.assert_array_equal(model(windows).mean, model(windows).mean)
    first = model(windows, rngs=nnx.Rngs(dropout=1)).mean
    np.testing.assert_array_equal(first, model(windows, rngs=nnx.Rngs(dropout=1)).mean)
    assert not np.allclose(first, model(windows).mean)
    assert not np.allclose(first, model(windows, rngs=nnx.Rngs(dropout=2)).mean)


def test_mean_pooling(windows):
    model = forecasters.TransformerForecaster(
        FEATURES,
        lookback=LOOKBACK,
        d_model=8,
        heads=2,
        pooling="mean",
        rngs=nnx.Rngs(0),
    )
    assert model(windows).mean.shape == (BATCH,)
    with pytest.raises(ValueError, match="pooling"):
        forecasters.TransformerForecaster(
            FEATURES, lookback=LOOKBACK, pooling="max", rngs=nnx.Rngs(0)
        )
    with pytest.raises(ValueError, match="divisible"):
        forecasters.TransformerForecaster(
            FEATURES, lookback=LOOKBACK, d_model=10, heads=4, rngs=nnx.Rngs(0)
        )


def test_linear_forecaster_is_linear_with_a_constant_scale(windows):
    model = FACTORIES["linear"](nnx.Rngs(0), param_dtype=jnp.float64)
    kernel = np.asarray(model.linear.kernel[...])[:, 0]
    bias = float(model.linear.bias[...][0])
    expected = np.asarray(windows).reshape(BATCH, -1) @ kernel + bias
    forecast = model(windows)
    np.testing.assert_allclose(forecast.mean, expected, rtol=1e-12)
    np.testing.assert_array_equal(forecast.log_scale, np.zeros(BATCH))


def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    mean, log_scale, y = rng.normal(size=(3, 50))
    forecast = Forecast(mean=jnp.asarray(mean), log_scale=jnp.asarray(log_scale))
    sigma = np.exp(log_scale)
    # The Gaussian log-density, written out.
    log_density = (
        -np.log(sigma) - 0.5 * np.log(2 * np.pi) - (y - mean) ** 2 / (2 * sigma**2)
    )
    nll = jax.jit(forecasters.gaussian_nll)(forecast, y)
    np.testing.assert_allclose(nll, -log_density.mean(), rtol=1e-12)
    mse = jax.jit(forecasters.mse_loss)(forecast, y)
    np.testing.assert_allclose(mse, np.mean((mean - y) ** 2), rtol=1e-12)
    # The NLL is minimised by the true mean and the scale of the errors.
    errors = y - mean
    best = math.log(np.sqrt(np.mean(errors**2)))
    at_best = forecasters.gaussian_nll(
        Forecast(mean=jnp.asarray(mean), log_scale=jnp.full(50, best)), y
    )
    for shift in (-0.1, 0.1):
        off = Forecast(mean=jnp.asarray(mean), log_scale=jnp.full(50, best + shift))
        assert forecasters.gaussian_nll(off, y) > at_best


def test_sinusoidal_encoding_matches_formula():
    length, d_model = 7, 5
    encoding = forecasters.sinusoidal_encoding(length, d_model, jnp.float64)
    expected = np.zeros((length, d_model))
    for t in range(length):
        for i in range(d_model):
            angle = t / 10000 ** (2 * (i // 2) / d_model)
            expected[t, i] = np.sin(angle) if i % 2 == 0 else np.cos(angle)
    np.testing.assert_allclose(encoding, expected, rtol=1e-12, atol=1e-15)
