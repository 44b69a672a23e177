"""Trading agents as pure JAX: PPO, a neural policy, evolution, a swarm and flux.

Every agent decides through a step function ``step(state, bar, params) -> (state,
action)`` (:class:`~neuroflux.strategies.steps.StepStrategy`), which the backtest
drives with ``lax.scan`` and the live runner calls bar by bar:

* :mod:`~neuroflux.agents.ppo`: PPO on :class:`~neuroflux.envs.TradingEnv`
  (``make_train(config, env)`` returns one jittable ``train(key, env_params)``);
* :mod:`~neuroflux.agents.neural`: a policy network trained by gradient ascent on the
  differentiable backtest's net Sharpe ratio;
* :mod:`~neuroflux.agents.evolution`: the same network evolved by an evolution
  strategy whose fitness is the net Sharpe ratio after costs;
* :mod:`~neuroflux.agents.swarm`: decision fusion of several step strategies;
* :mod:`~neuroflux.agents.flux`: the market-state estimator in [0, 1] and position
  sizing by it.
"""

from neuroflux.agents.evolution import (
    EvolutionConfig,
    antithetic_noise,
    centred_ranks,
    evolve,
    fitness_config,
    search_gradient,
)
from neuroflux.agents.flux import (
    FluxAdaptedParams,
    FluxAdaptedState,
    FluxConfig,
    FluxParams,
    FluxState,
    flux_adapted_positions,
    flux_components,
    make_flux_adapted_step,
    make_flux_step,
    market_flux,
)
from neuroflux.agents.networks import (
    Layers,
    init_mlp,
    mlp,
)
from neuroflux.agents.neural import (
    NeuralPolicyConfig,
    init_neural_policy,
    make_neural_step,
    net_sharpe,
    neural_decide,
    policy_positions,
    train_neural_policy,
    walk_forward_neural,
)
from neuroflux.agents.policies import (
    Decide,
    make_policy_step,
)
from neuroflux.agents.ppo import (
    PPOConfig,
    PPOParams,
    PPOResult,
    clipped_losses,
    generalized_advantages,
    init_ppo_params,
    make_ppo_step,
    make_train,
    ppo_decide,
)
from neuroflux.agents.swarm import (
    FUSIONS,
    SwarmParams,
    SwarmState,
    bayesian_fusion,
    confidence_weighted,
    fuse_actions,
    make_swarm_step,
    probabilities_up,
    update_weights,
    weighted_majority,
)

__all__ = [
    "FUSIONS",
    "Decide",
    "EvolutionConfig",
    "FluxAdaptedParams",
    "FluxAdaptedState",
    "FluxConfig",
    "FluxParams",
    "FluxState",
    "Layers",
    "NeuralPolicyConfig",
    "PPOConfig",
    "PPOParams",
    "PPOResult",
    "SwarmParams",
    "SwarmState",
    "antithetic_noise",
    "bayesian_fusion",
    "centred_ranks",
    "clipped_losses",
    "confidence_weighted",
    "evolve",
    "fitness_config",
    "flux_adapted_positions",
    "flux_components",
    "fuse_actions",
    "generalized_advantages",
    "init_mlp",
    "init_neural_policy",
    "init_ppo_params",
    "make_flux_adapted_step",
    "make_flux_step",
    "make_neural_step",
    "make_policy_step",
    "make_ppo_step",
    "make_swarm_step",
    "make_train",
    "market_flux",
    "mlp",
    "net_sharpe",
    "neural_decide",
    "policy_positions",
    "ppo_decide",
    "probabilities_up",
    "search_gradient",
    "train_neural_policy",
    "update_weights",
    "walk_forward_neural",
    "weighted_majority",
]
