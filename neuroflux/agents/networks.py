"""Small multilayer perceptrons as parameter pytrees and one pure apply function.

Agents keep their networks as plain pytrees (a list of ``{"w", "b"}`` layers) so that
a population or a batch of seeds is a ``jax.vmap`` over the leaves, an evolution
strategy can perturb them as one flat vector (:func:`jax.flatten_util.ravel_pytree`),
and orbax saves them as they are. Weights are drawn from ``N(0, gain**2 / fan_in)``
with gain ``sqrt(2)`` for hidden layers and ``output_scale`` for the last (a small
output scale starts a policy near uniform: Andrychowicz et al., "What matters in
on-policy reinforcement learning?", 2020). Not the orthogonal initialisation of PPO
practice: it needs a QR factorisation, and XLA:CPU's batched QR (initialising a
population or several seeds inside one ``vmap``) was seen to deadlock on 2 cores.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from neuroflux._arrays import as_count

__all__ = ["Layers", "init_mlp", "mlp"]

Layers = list[dict[str, jax.Array]]


def init_mlp(key: jax.Array, sizes: Sequence[int], output_scale: float = 1.0) -> Layers:
    """Parameters of an MLP with layer widths ``sizes`` (input first), float32.

    Args:
        key: PRNG key.
        sizes: ``[inputs, hidden..., outputs]``, at least two integers >= 1.
        output_scale: Gain of the last layer (0.01 for a policy head starts near
            uniform; 1.0 for a value head).

    Returns:
        A list of ``{"w": [in, out], "b": [out]}``.
    """
    sizes = [as_count(size, "layer size", 1) for size in sizes]
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs input and output sizes; got {sizes}")
    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for index, (key, fan_in, fan_out) in enumerate(
        zip(keys, sizes[:-1], sizes[1:], strict=True)
    ):
        last = index == len(sizes) - 2
        gain = output_scale if last else jnp.sqrt(2.0)
        scale = gain / jnp.sqrt(float(fan_in))
        layers.append(
            {
                "w": scale * jax.random.normal(key, (fan_in, fan_out), jnp.float32),
                "b": jnp.zeros(fan_out, jnp.float32),
            }
        )
    return layers


def mlp(layers: Layers, x: jax.Array) -> jax.Array:
    """Apply the MLP: ``tanh`` between layers, the last layer linear.

    Args:
        layers: From :func:`init_mlp`.
        x: Inputs [..., inputs].

    Returns:
        Outputs [..., outputs].
    """
    for layer in layers[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ layers[-1]["w"] + layers[-1]["b"]
