"""An evolution strategy over the neural policy's weights, scored by the backtest.

OpenAI-ES (Salimans et al., "Evolution strategies as a scalable alternative to
reinforcement learning", 2017) on the flat parameter vector ``theta`` [D] of the
:mod:`~neuroflux.agents.neural` policy (:func:`jax.flatten_util.ravel_pytree`). Each
generation, with ``P = population`` (even) and ``sigma``:

* antithetic noise ``eps_i ~ N(0, I)`` for ``i < P/2`` and ``eps_{i + P/2} = -eps_i``;
* fitness ``f_i = S(theta + sigma eps_i)``: the net Sharpe ratio of the member's
  positions on the given bars (:func:`neuroflux.agents.neural.net_sharpe`) with exact
  costs ``fees * |p_t - p_{t-1}|`` (no smoothing: no gradient is taken), the whole
  population in one ``jax.vmap``;
* centred-rank shaping ``u_i = rank(f_i) / (P - 1) - 1/2`` in [-1/2, 1/2] (rank 0
  for the lowest fitness; ties broken by position);
* the search gradient ``g = sum_i u_i eps_i / (P sigma)``, ascended by Adam
  (Kingma and Ba, 2015) on ``theta``.

Generations run in a ``lax.scan``. The key is used as ``init_key, loop_key =
split(key)``; ``init_key`` draws the initial layers exactly as
:func:`~neuroflux.agents.neural.train_neural_policy` does, and generation ``k`` draws
its noise from ``split(loop_key, generations)[k]``. The result is an ordinary layers
pytree for :func:`~neuroflux.agents.neural.make_neural_step`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from jax import flatten_util, lax
from jax.typing import ArrayLike

from neuroflux._arrays import as_count, as_series
from neuroflux.agents import networks, neural

__all__ = [
    "EvolutionConfig",
    "antithetic_noise",
    "centred_ranks",
    "evolve",
    "fitness_config",
    "search_gradient",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvolutionConfig:
    """Static settings of the evolution strategy (hashable).

    Attributes:
        population: Members per generation (even: antithetic pairs).
        generations: Updates of the mean.
        sigma: Standard deviation of the parameter noise.
        learning_rate: Adam's learning rate on the mean.
        hidden_sizes: Hidden layer widths of the policy's MLP.
        window: Feature rows the policy reads.
        fees: Proportional cost per unit of position traded.
        periods_per_year: Bars in a year, to annualise the Sharpe ratio.
    """

    population: int = 64
    generations: int = 50
    sigma: float = 0.02
    learning_rate: float = 0.02
    hidden_sizes: tuple[int, ...] = (32,)
    window: int = 16
    fees: float = 0.001
    periods_per_year: float = 252.0

    def __post_init__(self) -> None:
        population = as_count(self.population, "population", 2)
        if population % 2:
            raise ValueError(
                f"population must be even (antithetic pairs); got {population}"
            )
        as_count(self.generations, "generations", 1)
        # The policy's own checks cover window, hidden sizes, fees and the year.
        fitness_config(self)
        for name in ("sigma", "learning_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number; got {value!r}")
            if not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a finite number > 0; got {value}")


def fitness_config(config: EvolutionConfig) -> neural.NeuralPolicyConfig:
    """The :class:`~neuroflux.agents.neural.NeuralPolicyConfig` that scores members:
    the same policy, exact (unsmoothed) costs."""
    return neural.NeuralPolicyConfig(
        window=config.window,
        hidden_sizes=config.hidden_sizes,
        fees=config.fees,
        turnover_smoothing=0.0,
        periods_per_year=config.periods_per_year,
    )


def centred_ranks(fitness: ArrayLike) -> jax.Array:
    """Centred ranks [P] of ``fitness`` [P]: ``rank / (P - 1) - 1/2``."""
    fitness = as_series(fitness, "fitness")
    size = fitness.shape[0]
    if size < 2:
        raise ValueError(f"fitness needs at least 2 members; got {size}")
    ranks = jnp.argsort(jnp.argsort(fitness, stable=True), stable=True)
    return ranks / (size - 1) - 0.5


def antithetic_noise(key: jax.Array, population: int, dimension: int) -> jax.Array:
    """Standard normal noise [P, D] whose second half is minus its first (float32)."""
    population = as_count(population, "population", 2)
    if population % 2:
        raise ValueError(f"population must be even; got {population}")
    dimension = as_count(dimension, "dimension", 1)
    half = jax.random.normal(key, (population // 2, dimension), jnp.float32)
    return jnp.concatenate([half, -half])


def search_gradient(noise: ArrayLike, fitness: ArrayLike, sigma: float) -> jax.Array:
    """The ES gradient estimate ``sum_i u_i eps_i / (P sigma)`` [D].

    Args:
        noise: ``eps`` [P, D].
        fitness: Raw fitness [P] (shaped here by :func:`centred_ranks`).
        sigma: Noise standard deviation.
    """
    noise = jnp.asarray(noise)
    shaped = centred_ranks(fitness).astype(noise.dtype)
    return shaped @ noise / (noise.shape[0] * sigma)


@functools.partial(jax.jit, static_argnames="config")
def evolve(
    key: jax.Array,
    close: ArrayLike,
    features: ArrayLike,
    config: EvolutionConfig,
) -> tuple[networks.Layers, jax.Array]:
    """Evolve the policy's weights to maximise the net Sharpe ratio on the bars.

    Args:
        key: PRNG key (see the module notes for how it is split).
        close: Training prices [T].
        features: Their :func:`neuroflux.envs.bar_features` rows [T, F].
        config: :class:`EvolutionConfig` (static).

    Returns:
        ``(layers, history)``: the final mean's float32 layers, and the fitness of
        the mean before each generation's update [generations].
    """
    close = as_series(close, "close")
    scoring = fitness_config(config)
    init_key, loop_key = jax.random.split(key)
    layers = neural.init_neural_policy(init_key, config.window, config.hidden_sizes)
    theta, unravel = flatten_util.ravel_pytree(layers)
    optimizer = optax.adam(config.learning_rate)

    def fitness(vector: jax.Array) -> jax.Array:
        return neural.net_sharpe(unravel(vector), close, features, scoring)

    def generation(carry, generation_key):
        theta, state = carry
        noise = antithetic_noise(generation_key, config.population, theta.shape[0])
        scores = jax.vmap(fitness)(theta + config.sigma * noise)
        gradient = search_gradient(noise, scores, config.sigma)
        updates, state = optimizer.update(-gradient, state, theta)
        return (optax.apply_updates(theta, updates), state), fitness(theta)

    keys = jax.random.split(loop_key, config.generations)
    (theta, _), history = lax.scan(generation, (theta, optimizer.init(theta)), keys)
    return unravel(theta), history
