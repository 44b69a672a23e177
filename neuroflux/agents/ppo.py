"""Proximal policy optimisation on :class:`~neuroflux.envs.TradingEnv`, in pure JAX.

The shape of purejaxrl's ``ppo.py`` (Lu et al., "Discovered policy optimisation",
NeurIPS 2022): :func:`make_train` returns one pure ``train(key, env_params)`` whose
every loop (rollout, epochs, minibatches, updates) is a ``lax.scan``, so it compiles
once and ``jax.vmap`` runs it over seeds. With the rollout's rewards ``r_t``, values
``V_t`` and episode ends ``d_t`` (the environment restarts itself, so the value after
an end belongs to a new episode and is masked out):

* generalised advantages (Schulman et al., "High-dimensional continuous control using
  generalized advantage estimation", ICLR 2016):
  ``delta_t = r_t + gamma (1 - d_t) V_{t+1} - V_t``,
  ``A_t = delta_t + gamma lambda (1 - d_t) A_{t+1}``, value targets ``A_t + V_t``;
* the clipped surrogate (Schulman et al., "Proximal policy optimization algorithms",
  2017) on minibatch-normalised advantages ``Â = (A - mean A) / (std A + 1e-8)``:
  ``L_pi = -mean(min(rho Â, clip(rho, 1 - eps, 1 + eps) Â))`` with
  ``rho = exp(log pi - log pi_old)``;
* the clipped value loss ``L_V = 0.5 mean(max((V - G)^2, (V_old + clip(V - V_old,
  -eps, eps) - G)^2))``;
* the loss ``L_pi + c_V L_V - c_H H``, ``H`` the policy's entropy; gradients clipped
  to a global norm, then Adam (eps 1e-5) with the learning rate annealed linearly to
  0 over the updates; ``approx_kl = mean((rho - 1) - log rho)`` (Schulman's unbiased
  low-variance estimator of KL(old || new)).

Policies: ``"discrete"`` actions are independent categoricals over short/flat/long for
each asset (the actor outputs ``3 A`` logits, log-probabilities and entropies summed
over assets); ``"continuous"`` actions are Gaussian with state-independent
``log_std`` [A] (the sampled action goes to the environment, which clips it to
[-1, 1]). :func:`ppo_decide` is the greedy policy, and :func:`make_ppo_step` drives it
bar by bar, seeing exactly the environment's observation. Networks train in float32.
Episodes cut by ``episode_length`` are treated as ended (as purejaxrl does), not
bootstrapped.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax import lax

from neuroflux._arrays import as_count
from neuroflux.agents import networks, policies
from neuroflux.envs.trading import EnvConfig, EnvParams, TradingEnv
from neuroflux.strategies.steps import StepStrategy

__all__ = [
    "PPOConfig",
    "PPOParams",
    "PPOResult",
    "clipped_losses",
    "generalized_advantages",
    "init_ppo_params",
    "make_ppo_step",
    "make_train",
    "ppo_decide",
]

_CHOICES = 3  # short, flat, long


@dataclasses.dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """Static PPO settings (hashable; a ``jit`` static argument).

    Attributes:
        num_envs: Environments stepped in parallel.
        num_steps: Steps of each environment per rollout (one update).
        total_timesteps: Environment steps in all; ``num_updates`` rollouts.
        update_epochs: Passes over each rollout.
        num_minibatches: Minibatches per pass.
        gamma: Discount factor.
        gae_lambda: GAE's lambda.
        clip_eps: Clipping range of the ratio and of the value change.
        entropy_coef: Weight of the entropy bonus.
        value_coef: Weight of the value loss.
        max_grad_norm: Global norm the gradients are clipped to.
        learning_rate: Adam's (initial) learning rate.
        anneal_lr: Anneal the learning rate linearly to 0 over the updates.
        hidden_sizes: Hidden layer widths of the actor and of the critic.
    """

    num_envs: int = 64
    num_steps: int = 64
    total_timesteps: int = 262_144
    update_epochs: int = 4
    num_minibatches: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    entropy_coef: float = 0.01
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    hidden_sizes: tuple[int, ...] = (64, 64)

    def __post_init__(self) -> None:
        as_count(self.num_envs, "num_envs", 1)
        as_count(self.num_steps, "num_steps", 1)
        as_count(self.total_timesteps, "total_timesteps", 1)
        as_count(self.update_epochs, "update_epochs", 1)
        as_count(self.num_minibatches, "num_minibatches", 1)
        # A list would make the config unhashable (no longer a static argument).
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        for size in self.hidden_sizes:
            as_count(size, "hidden_sizes entry", 1)
        if not isinstance(self.anneal_lr, bool):
            raise TypeError(f"anneal_lr must be a bool; got {self.anneal_lr!r}")
        for name, low, high in (
            ("gamma", 0.0, 1.0),
            ("gae_lambda", 0.0, 1.0),
            ("clip_eps", 0.0, math.inf),
            ("entropy_coef", 0.0, math.inf),
            ("value_coef", 0.0, math.inf),
            ("max_grad_norm", 0.0, math.inf),
            ("learning_rate", 0.0, math.inf),
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and low <= value <= high):
                raise ValueError(
                    f"{name} must be a number in [{low}, {high}]; got {value!r}"
                )
        batch = self.num_envs * self.num_steps
        if batch % self.num_minibatches:
            raise ValueError(
                f"num_envs * num_steps = {batch} must be divisible by "
                f"num_minibatches = {self.num_minibatches}"
            )
        if self.num_updates == 0:
            raise ValueError(
                f"total_timesteps={self.total_timesteps} is less than one rollout of "
                f"num_envs * num_steps = {batch} steps"
            )

    @property
    def num_updates(self) -> int:
        """Rollouts (and updates): ``total_timesteps // (num_envs * num_steps)``."""
        return self.total_timesteps // (self.num_envs * self.num_steps)

    @property
    def minibatch_size(self) -> int:
        return self.num_envs * self.num_steps // self.num_minibatches


@struct.dataclass
class PPOParams:
    """Actor and critic networks and the Gaussian policy's log standard deviation.

    Attributes:
        actor: :func:`networks.init_mlp` layers; ``3 A`` logits (discrete, read as
            [A, 3]) or ``A`` means (continuous).
        critic: Layers with one output, the state value.
        log_std: [A] log standard deviations (continuous actions only).
    """

    actor: networks.Layers
    critic: networks.Layers
    log_std: jax.Array


@struct.dataclass
class PPOResult:
    """Trained parameters and per-update metrics, each [num_updates].

    ``metrics``: ``episode_return`` (mean log equity of the episodes that ended in the
    update, NaN if none did), ``reward`` (mean step reward), ``policy_loss``,
    ``value_loss``, ``entropy``, ``approx_kl`` (means over epochs and minibatches),
    ``learning_rate`` (at the update's first step).
    """

    params: PPOParams
    metrics: dict[str, jax.Array]


@struct.dataclass
class _Transition:
    observation: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array
    log_equity: jax.Array


def _is_discrete(params: PPOParams) -> bool:
    """Whether the actor outputs logits (3 per asset) rather than means (1)."""
    return params.actor[-1]["w"].shape[-1] == _CHOICES * params.log_std.shape[-1]


def init_ppo_params(
    key: jax.Array, config: PPOConfig, env: TradingEnv, env_params: EnvParams
) -> PPOParams:
    """Fresh networks for ``env`` over ``env_params``' market (float32).

    The actor's last layer starts at gain 0.01 (a near-uniform or near-zero policy),
    the critic's at 1 (Andrychowicz et al., 2020).
    """
    inputs = env.observation_size(env_params)
    num_assets = env.num_assets(env_params)
    outputs = num_assets * (_CHOICES if env.config.actions == "discrete" else 1)
    actor_key, critic_key = jax.random.split(key)
    return PPOParams(
        actor=networks.init_mlp(
            actor_key, (inputs, *config.hidden_sizes, outputs), output_scale=0.01
        ),
        critic=networks.init_mlp(critic_key, (inputs, *config.hidden_sizes, 1)),
        log_std=jnp.zeros(num_assets, jnp.float32),
    )


def _value(params: PPOParams, observation: jax.Array) -> jax.Array:
    return networks.mlp(params.critic, observation)[..., 0]


def _logits(params: PPOParams, observation: jax.Array) -> jax.Array:
    outputs = networks.mlp(params.actor, observation)
    return outputs.reshape(*outputs.shape[:-1], -1, _CHOICES)


def _sample(params: PPOParams, observation: jax.Array, key: jax.Array):
    """``(action, log_prob)`` of the stochastic policy at observations [..., obs]."""
    if _is_discrete(params):
        logits = _logits(params, observation)
        action = jax.random.categorical(key, logits)
    else:
        mean = networks.mlp(params.actor, observation)
        noise = jax.random.normal(key, mean.shape, mean.dtype)
        action = mean + jnp.exp(params.log_std) * noise
    return action, _log_prob_entropy(params, observation, action)[0]


def _log_prob_entropy(params: PPOParams, observation: jax.Array, action: jax.Array):
    """Log-probability of ``action`` and entropy, both summed over assets."""
    if _is_discrete(params):
        log_probs = jax.nn.log_softmax(_logits(params, observation))
        chosen = jnp.take_along_axis(log_probs, action[..., None], axis=-1)[..., 0]
        entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)
        return chosen.sum(-1), entropy.sum(-1)
    mean = networks.mlp(params.actor, observation)
    log_std = params.log_std
    z = (action - mean) * jnp.exp(-log_std)
    log_prob = -0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
    entropy = jnp.broadcast_to(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e), mean.shape)
    return log_prob.sum(-1), entropy.sum(-1)


def ppo_decide(params: PPOParams, observation: jax.Array) -> jax.Array:
    """The greedy policy's target positions [..., A] at observations [..., obs].

    ``argmax - 1`` of each asset's logits (discrete) or ``clip(mean, -1, 1)``
    (continuous); which one is read from the actor's output size (``3 A`` or ``A``).
    """
    if _is_discrete(params):
        return jnp.argmax(_logits(params, observation), axis=-1).astype(float) - 1.0
    return jnp.clip(networks.mlp(params.actor, observation), -1.0, 1.0).astype(float)


def make_ppo_step(env_config: EnvConfig, num_assets: int = 1) -> StepStrategy:
    """The greedy PPO policy as a step strategy over :class:`PPOParams`.

    Args:
        env_config: The training environment's config (its ``window`` and
            ``actions``).
        num_assets: A (static).

    Returns:
        :func:`policies.make_policy_step` of :func:`ppo_decide`.

    Raises:
        ValueError: (when traced) params whose actor does not match
            ``env_config.actions``.
    """

    def decide(params: PPOParams, observation: jax.Array) -> jax.Array:
        kind = "discrete" if _is_discrete(params) else "continuous"
        if kind != env_config.actions:
            raise ValueError(
                f"the PPO params have a {kind} actor; env_config.actions is "
                f"{env_config.actions!r}"
            )
        return ppo_decide(params, observation)

    return policies.make_policy_step(
        decide, window=env_config.window, num_assets=num_assets
    )


def generalized_advantages(
    rewards: jax.Array,
    values: jax.Array,
    dones: jax.Array,
    last_value: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> tuple[jax.Array, jax.Array]:
    """GAE over a rollout, time first, with episode ends masked.

    Args:
        rewards: [T, ...] rewards of the steps.
        values: [T, ...] values of the observations the steps were taken from.
        dones: [T, ...] whether the episode ended with the step.
        last_value: [...] value of the observation after the last step.
        gamma: Discount factor.
        gae_lambda: GAE's lambda.

    Returns:
        ``(advantages [T, ...], value targets [T, ...])``.
    """
    not_done = 1.0 - dones.astype(rewards.dtype)

    def backward(carry, step):
        advantage, next_value = carry
        reward, value, alive = step
        delta = reward + gamma * alive * next_value - value
        advantage = delta + gamma * gae_lambda * alive * advantage
        return (advantage, value), advantage

    _, advantages = lax.scan(
        backward,
        (jnp.zeros_like(last_value), last_value),
        (rewards, values, not_done),
        reverse=True,
    )
    return advantages, advantages + values


def clipped_losses(
    log_prob: jax.Array,
    old_log_prob: jax.Array,
    advantages: jax.Array,
    value: jax.Array,
    old_value: jax.Array,
    targets: jax.Array,
    clip_eps: float,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """PPO's clipped surrogate and value losses over a minibatch [B].

    Returns:
        ``(policy_loss, value_loss, approx_kl)``, scalars (formulas in the module
        docstring; advantages are normalised over the minibatch).
    """
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    normalised = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    surrogate = ratio * normalised
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * normalised
    policy_loss = -jnp.minimum(surrogate, clipped).mean()
    value_clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
    value_loss = (
        0.5 * jnp.maximum((value - targets) ** 2, (value_clipped - targets) ** 2).mean()
    )
    approx_kl = ((ratio - 1.0) - log_ratio).mean()
    return policy_loss, value_loss, approx_kl


def make_train(config: PPOConfig, env: TradingEnv):
    """``train(key, env_params) -> PPOResult``: PPO from scratch, one pure function.

    ``train`` runs ``config.num_updates`` rollouts of ``num_envs`` environments for
    ``num_steps`` steps, each followed by ``update_epochs`` passes of
    ``num_minibatches`` shuffled minibatches. It works under ``jax.jit`` and
    ``jax.vmap(train, in_axes=(0, None))`` (seeds).
    """
    num_updates = config.num_updates
    batch_size = config.num_envs * config.num_steps
    steps_per_update = config.update_epochs * config.num_minibatches

    def schedule(count: jax.Array) -> jax.Array:
        done = (count // steps_per_update).astype(jnp.float32)
        return config.learning_rate * (1.0 - done / num_updates)

    optimizer = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(schedule if config.anneal_lr else config.learning_rate, eps=1e-5),
    )
    reset = jax.vmap(env.reset, in_axes=(0, None))
    env_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def loss(params: PPOParams, batch: _Transition, advantages, targets):
        log_prob, entropy = _log_prob_entropy(params, batch.observation, batch.action)
        value = _value(params, batch.observation)
        policy_loss, value_loss, approx_kl = clipped_losses(
            log_prob,
            batch.log_prob,
            advantages,
            value,
            batch.value,
            targets,
            config.clip_eps,
        )
        entropy = entropy.mean()
        total = (
            policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
        )
        return total, (policy_loss, value_loss, entropy, approx_kl)

    def train(key: jax.Array, env_params: EnvParams) -> PPOResult:
        key, init_key, reset_key = jax.random.split(key, 3)
        params = init_ppo_params(init_key, config, env, env_params)
        opt_state = optimizer.init(params)
        observation, env_state = reset(
            jax.random.split(reset_key, config.num_envs), env_params
        )

        def rollout_step(carry, _):
            params, env_state, observation, key = carry
            key, action_key, step_key = jax.random.split(key, 3)
            action, log_prob = _sample(params, observation, action_key)
            value = _value(params, observation)
            next_observation, env_state, reward, done, info = env_step(
                jax.random.split(step_key, config.num_envs),
                env_state,
                action,
                env_params,
            )
            transition = _Transition(
                observation=observation,
                action=action,
                log_prob=log_prob,
                value=value,
                reward=reward.astype(jnp.float32),
                done=done,
                log_equity=info["log_equity"],
            )
            return (params, env_state, next_observation, key), transition

        def minibatch_update(carry, minibatch):
            params, opt_state = carry
            batch, advantages, targets = minibatch
            grads, stats = jax.grad(loss, has_aux=True)(
                params, batch, advantages, targets
            )
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), stats

        def epoch(carry, _):
            params, opt_state, key, rollout = carry
            key, shuffle_key = jax.random.split(key)
            order = jax.random.permutation(shuffle_key, batch_size)
            minibatches = jax.tree.map(
                lambda x: jnp.take(
                    x.reshape(batch_size, *x.shape[2:]), order, axis=0
                ).reshape(config.num_minibatches, -1, *x.shape[2:]),
                rollout,
            )
            (params, opt_state), stats = lax.scan(
                minibatch_update, (params, opt_state), minibatches
            )
            return (params, opt_state, key, rollout), stats

        def update(carry, index):
            params, opt_state, env_state, observation, key = carry
            (_, env_state, observation, key), transitions = lax.scan(
                rollout_step,
                (params, env_state, observation, key),
                None,
                config.num_steps,
            )
            advantages, targets = generalized_advantages(
                transitions.reward,
                transitions.value,
                transitions.done,
                _value(params, observation),
                config.gamma,
                config.gae_lambda,
            )
            learning_rate = (
                schedule(index * steps_per_update)
                if config.anneal_lr
                else jnp.float32(config.learning_rate)
            )
            key, epoch_key = jax.random.split(key)
            (params, opt_state, _, _), stats = lax.scan(
                epoch,
                (params, opt_state, epoch_key, (transitions, advantages, targets)),
                None,
                config.update_epochs,
            )
            policy_loss, value_loss, entropy, approx_kl = jax.tree.map(jnp.mean, stats)
            ended = transitions.done
            finished = jnp.sum(ended)
            episode_return = jnp.where(
                finished > 0,
                jnp.sum(jnp.where(ended, transitions.log_equity, 0.0))
                / jnp.maximum(finished, 1),
                jnp.nan,
            )
            metrics = {
                "episode_return": episode_return,
                "reward": transitions.reward.mean(),
                "policy_loss": policy_loss,
                "value_loss": value_loss,
                "entropy": entropy,
                "approx_kl": approx_kl,
                "learning_rate": learning_rate,
            }
            return (params, opt_state, env_state, observation, key), metrics

        (params, *_), metrics = lax.scan(
            update,
            (params, opt_state, env_state, observation, key),
            jnp.arange(num_updates),
        )
        return PPOResult(params=params, metrics=metrics)

    return train
