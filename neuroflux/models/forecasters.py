"""Forecasters in flax.nnx: a transformer encoder, an MLP and a linear model.

All three share one interface. A model maps a window of past bars
``x [batch, lookback, features]`` to a :class:`Forecast` of the next target: a
Gaussian with ``mean [batch]`` (the point forecast) and ``log_scale [batch]`` (log of
its standard deviation). Train the mean alone with :func:`mse_loss`, or the mean and
the scale together with :func:`gaussian_nll`.

Calling conventions:

* ``model(x)`` is inference: dropout is off and nothing random happens.
* ``model(x, rngs=rngs)`` is a training call: dropout (the transformer's, where
  ``dropout > 0``) draws from ``rngs.dropout``. The models keep no random state of
  their own, so their whole state is their parameters (``nnx.Param``): it splits,
  vmaps, shards and checkpoints as one pytree.
* Inputs are cast to ``param_dtype`` (float32 by default, as models train in float32;
  pass ``jnp.float64`` for exact comparisons in tests).

Every window lies entirely in the past of its target (the windowing guarantees it),
so the transformer attends over the whole window without a causal mask and reads the
forecast from the last token, the most recent bar.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx, struct

__all__ = [
    "Forecast",
    "LinearForecaster",
    "MLPForecaster",
    "TransformerForecaster",
    "gaussian_nll",
    "mse_loss",
    "sinusoidal_encoding",
]


@struct.dataclass
class Forecast:
    """A Gaussian forecast of the next target.

    Attributes:
        mean: Point forecast ``[batch]``.
        log_scale: Log of the standard deviation ``[batch]``.
    """

    mean: jax.Array
    log_scale: jax.Array


def gaussian_nll(forecast: Forecast, y: jax.Array) -> jax.Array:
    """Mean Gaussian negative log-likelihood of targets under a forecast.

    ``log_scale + (y - mean)^2 / (2 exp(2 log_scale)) + log(2 pi) / 2``, averaged.

    Args:
        forecast: Forecast with ``mean`` and ``log_scale`` ``[batch]``.
        y: Targets ``[batch]``.

    Returns:
        Scalar loss, in the forecast's dtype.
    """
    y = jnp.asarray(y, forecast.mean.dtype)
    standardized = (y - forecast.mean) * jnp.exp(-forecast.log_scale)
    nll = forecast.log_scale + 0.5 * standardized**2 + 0.5 * math.log(2 * math.pi)
    return jnp.mean(nll)


def mse_loss(forecast: Forecast, y: jax.Array) -> jax.Array:
    """Mean squared error of the point forecast ``[batch]`` against ``y [batch]``."""
    y = jnp.asarray(y, forecast.mean.dtype)
    return jnp.mean((forecast.mean - y) ** 2)


def sinusoidal_encoding(length: int, d_model: int, dtype=jnp.float32) -> jax.Array:
    """Sinusoidal positional encoding ``[length, d_model]`` (Vaswani et al., 2017).

    ``PE[t, 2i] = sin(t / 10000^(2i/d))`` and ``PE[t, 2i+1] = cos(...)``; an odd
    ``d_model`` drops the last cosine.
    """
    position = jnp.arange(length, dtype=dtype)[:, None]
    frequency = jnp.exp(
        -math.log(10000.0) * jnp.arange(0, d_model, 2, dtype=dtype) / d_model
    )
    angle = position * frequency
    encoding = jnp.stack([jnp.sin(angle), jnp.cos(angle)], axis=-1)
    return encoding.reshape(length, -1)[:, :d_model]


def _check_window(x: jax.Array, lookback: int, features: int) -> None:
    if x.ndim != 3 or x.shape[1:] != (lookback, features):
        raise ValueError(
            f"x must have shape [batch, lookback={lookback}, features={features}], "
            f"got {x.shape}"
        )


class _EncoderBlock(nnx.Module):
    """Pre-norm transformer encoder block: ``x + attn(ln(x))``, ``x + mlp(ln(x))``."""

    def __init__(self, d_model, heads, ff, dropout, *, param_dtype, rngs):
        self.attention_norm = nnx.LayerNorm(d_model, param_dtype=param_dtype, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            num_heads=heads,
            in_features=d_model,
            dropout_rate=dropout,
            decode=False,
            param_dtype=param_dtype,
            keep_rngs=False,
            rngs=rngs,
        )
        self.mlp_norm = nnx.LayerNorm(d_model, param_dtype=param_dtype, rngs=rngs)
        self.hidden = nnx.Linear(d_model, ff, param_dtype=param_dtype, rngs=rngs)
        self.output = nnx.Linear(ff, d_model, param_dtype=param_dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    def __call__(self, x, rngs):
        deterministic = rngs is None
        attended = self.attention(
            self.attention_norm(x), deterministic=deterministic, rngs=rngs
        )
        x = x + self.dropout(attended, deterministic=deterministic, rngs=rngs)
        mixed = self.output(nnx.gelu(self.hidden(self.mlp_norm(x))))
        return x + self.dropout(mixed, deterministic=deterministic, rngs=rngs)


class TransformerForecaster(nnx.Module):
    """Transformer encoder over the bars of a window.

    Each bar becomes a token (a linear embedding of its features plus a sinusoidal
    positional encoding); ``layers`` pre-norm encoder blocks mix the tokens; the last
    token, after a final layer norm, feeds a point head and a scale head.

    Args:
        features: Features per bar.
        lookback: Bars per window.
        d_model: Token width (divisible by ``heads``).
        heads: Attention heads.
        layers: Encoder blocks.
        ff: Hidden width of each block's MLP.
        dropout: Dropout rate in attention and after each residual branch (training
            calls only).
        pooling: ``"last"`` (the most recent bar's token) or ``"mean"`` over tokens.
        param_dtype: Parameter and compute dtype.
        rngs: Initialisation randomness.
    """

    def __init__(
        self,
        features: int,
        *,
        lookback: int,
        d_model: int = 32,
        heads: int = 4,
        layers: int = 2,
        ff: int = 64,
        dropout: float = 0.0,
        pooling: str = "last",
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be divisible by heads={heads}")
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        self.features, self.lookback, self.d_model = features, lookback, d_model
        self.pooling, self.param_dtype = pooling, param_dtype
        self.embedding = nnx.Linear(
            features, d_model, param_dtype=param_dtype, rngs=rngs
        )
        self.blocks = nnx.List(
            [
                _EncoderBlock(
                    d_model, heads, ff, dropout, param_dtype=param_dtype, rngs=rngs
                )
                for _ in range(layers)
            ]
        )
        self.final_norm = nnx.LayerNorm(d_model, param_dtype=param_dtype, rngs=rngs)
        self.mean_head = nnx.Linear(d_model, 1, param_dtype=param_dtype, rngs=rngs)
        self.scale_head = nnx.Linear(d_model, 1, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> Forecast:
        """Forecast from windows ``x [batch, lookback, features]``."""
        _check_window(x, self.lookback, self.features)
        x = jnp.asarray(x, self.param_dtype)
        tokens = self.embedding(x) + sinusoidal_encoding(
            self.lookback, self.d_model, self.param_dtype
        )
        for block in self.blocks:
            tokens = block(tokens, rngs)
        tokens = self.final_norm(tokens)
        pooled = tokens[:, -1] if self.pooling == "last" else tokens.mean(axis=1)
        return Forecast(
            mean=self.mean_head(pooled)[:, 0], log_scale=self.scale_head(pooled)[:, 0]
        )


class MLPForecaster(nnx.Module):
    """MLP on the flattened window, with a point and a scale output.

    Args:
        features: Features per bar.
        lookback: Bars per window.
        hidden: Widths of the hidden layers (GELU).
        param_dtype: Parameter and compute dtype.
        rngs: Initialisation randomness.
    """

    def __init__(
        self,
        features: int,
        *,
        lookback: int,
        hidden: Sequence[int] = (64, 64),
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.features, self.lookback, self.param_dtype = features, lookback, param_dtype
        widths = [lookback * features, *hidden]
        self.layers = nnx.List(
            [
                nnx.Linear(width_in, width_out, param_dtype=param_dtype, rngs=rngs)
                for width_in, width_out in itertools.pairwise(widths)
            ]
        )
        self.head = nnx.Linear(widths[-1], 2, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> Forecast:
        """Forecast from windows ``x [batch, lookback, features]`` (``rngs`` unused)."""
        _check_window(x, self.lookback, self.features)
        h = jnp.asarray(x, self.param_dtype).reshape(x.shape[0], -1)
        for layer in self.layers:
            h = nnx.gelu(layer(h))
        out = self.head(h)
        return Forecast(mean=out[:, 0], log_scale=out[:, 1])


class LinearForecaster(nnx.Module):
    """One linear map of the flattened window; a constant learned scale.

    Args:
        features: Features per bar.
        lookback: Bars per window.
        param_dtype: Parameter and compute dtype.
        rngs: Initialisation randomness.
    """

    def __init__(
        self, features: int, *, lookback: int, param_dtype=jnp.float32, rngs: nnx.Rngs
    ):
        self.features, self.lookback, self.param_dtype = features, lookback, param_dtype
        self.linear = nnx.Linear(
            lookback * features, 1, param_dtype=param_dtype, rngs=rngs
        )
        self.log_scale = nnx.Param(jnp.zeros((), param_dtype))

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> Forecast:
        """Forecast from windows ``x [batch, lookback, features]`` (``rngs`` unused)."""
        _check_window(x, self.lookback, self.features)
        flat = jnp.asarray(x, self.param_dtype).reshape(x.shape[0], -1)
        mean = self.linear(flat)[:, 0]
        return Forecast(
            mean=mean, log_scale=jnp.broadcast_to(self.log_scale[...], mean.shape)
        )
