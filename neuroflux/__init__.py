"""NeuroFlux: a research-notebook platform for AI trading.

Importing the package turns on JAX's 64-bit mode: money and statistics are computed in
float64. Functions keep the dtype of their inputs, so a model or a GPU workload that
wants float32 passes float32 arrays (``jnp.asarray(x, jnp.float32)``).
"""

from importlib.metadata import version

import jax

jax.config.update("jax_enable_x64", True)

__version__ = version("neuroflux")
__all__ = ["__version__"]
