"""The swarm: several step strategies decide together (decision fusion).

Fusion rules over the ``N`` members' actions ``a_i`` in [-1, 1] (vectorised over N):

* **Confidence-weighted mean**: ``sum_i c_i a_i / sum_i c_i`` (0 when every
  confidence is 0), with confidences ``c_i >= 0``. It lies between the smallest and
  the largest action.
* **Weighted majority vote**: ``sign(sum_i w_i sign(a_i))`` in {-1, 0, 1}.
* **Bayesian fusion** of independent experts: each gives ``p_i = P(up | its
  evidence)``; with a common prior ``pi``, conditional independence gives
  ``logit(P(up | all)) = logit(pi) + sum_i (logit(p_i) - logit(pi))``, i.e. the sum of
  the members' log-odds minus ``(N - 1) logit(pi)``. Optional weights ``v_i`` scale
  each member's evidence ``logit(p_i) - logit(pi)`` (``v_i = 1``: the formula above).
  The action is ``2 P(up | all) - 1``. Agreeing experts compound: N identical members
  with ``p > 1/2`` give a posterior above ``p``.

Online weights (:func:`update_weights`): the weighted majority algorithm of
Littlestone and Warmuth with Herbster and Warmuth's fixed share. After each bar, every
member that held a position whose sign differs from the sign of the realised return
(close over previous close) has its weight multiplied by ``beta`` in (0, 1]; a flat
member abstained and keeps its weight. The weights are renormalised to sum to 1 and a
fraction ``share`` of the total is spread evenly, ``w <- (1 - share) w + share / N``,
so that a member that was wrong for a while can regain weight when it turns right
(without it, thousands of bars drive every weight but one to zero for good).

:func:`make_swarm_step` runs the members on the same bar and fuses their actions,
each with its online weight ``w_i`` (summing to 1):

* ``"confidence"``: confidence ``c_i = w_i |a_i|`` (a member's conviction is the size
  of its position);
* ``"majority"``: vote weights ``w_i``;
* ``"bayes"``: ``p_i = clip((1 + a_i) / 2, 0.01, 0.99)`` (a full long is 99% sure of an
  up move, flat is 50%; the clip keeps log-odds finite), prior 1/2, evidence weights
  ``v_i = N w_i`` (1 each while the weights are equal).

References:
    N. Littlestone and M. K. Warmuth, "The weighted majority algorithm", Information
    and Computation 108(2), 212-261, 1994.
    M. Herbster and M. K. Warmuth, "Tracking the best expert", Machine Learning 32,
    151-178, 1998 (fixed share).
    C. Genest and J. V. Zidek, "Combining probability distributions: a critique and
    an annotated bibliography", Statistical Science 1(1), 114-148, 1986.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.typing import ArrayLike

from neuroflux.strategies.steps import Bar, StepStrategy

__all__ = [
    "FUSIONS",
    "SwarmParams",
    "SwarmState",
    "bayesian_fusion",
    "confidence_weighted",
    "fuse_actions",
    "make_swarm_step",
    "probabilities_up",
    "update_weights",
    "weighted_majority",
]

FUSIONS = ("confidence", "majority", "bayes")
_PROBABILITY_BOUNDS = (0.01, 0.99)


def _members(x: ArrayLike, name: str) -> jax.Array:
    values = jnp.asarray(x)
    values = values.astype(jnp.result_type(values, float))
    if values.ndim != 1 or values.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape [N] with N >= 1 members; got {values.shape}"
        )
    return values


def _logit(p: jax.Array) -> jax.Array:
    return jnp.log(p) - jnp.log1p(-p)


def confidence_weighted(actions: ArrayLike, confidences: ArrayLike) -> jax.Array:
    """``sum(c * a) / sum(c)``, 0 when every confidence is 0.

    Args:
        actions: Members' actions [N].
        confidences: Their confidences [N], >= 0.

    Returns:
        Scalar fused action, within [min(a), max(a)] (or 0).
    """
    actions = _members(actions, "actions")
    confidences = _members(confidences, "confidences")
    total = jnp.sum(confidences)
    weighted = jnp.sum(confidences * actions)
    return jnp.where(total > 0, weighted / jnp.where(total > 0, total, 1.0), 0.0)


def weighted_majority(actions: ArrayLike, weights: ArrayLike) -> jax.Array:
    """``sign(sum(w * sign(a)))``: the weighted vote, in {-1, 0, 1}.

    Args:
        actions: Members' actions [N].
        weights: Their vote weights [N], >= 0.
    """
    actions = _members(actions, "actions")
    weights = _members(weights, "weights")
    return jnp.sign(jnp.sum(weights * jnp.sign(actions)))


def bayesian_fusion(
    probabilities_up: ArrayLike,
    prior: ArrayLike = 0.5,
    weights: ArrayLike | None = None,
) -> jax.Array:
    """Posterior probability of an up move from independent experts.

    ``logit(posterior) = logit(prior) + sum_i v_i (logit(p_i) - logit(prior))``; with
    ``v_i = 1`` this is the members' summed log-odds minus ``(N - 1) logit(prior)``.

    Args:
        probabilities_up: Members' ``P(up)`` [N], in (0, 1).
        prior: The common prior ``P(up)``, in (0, 1).
        weights: Evidence weights ``v`` [N]; ones if ``None``.

    Returns:
        Scalar posterior in (0, 1); the action is ``2 * posterior - 1``.
    """
    probabilities_up = _members(probabilities_up, "probabilities_up")
    weights = (
        jnp.ones_like(probabilities_up)
        if weights is None
        else _members(weights, "weights")
    )
    prior_odds = _logit(jnp.asarray(prior, probabilities_up.dtype))
    evidence = jnp.sum(weights * (_logit(probabilities_up) - prior_odds))
    return jax.nn.sigmoid(prior_odds + evidence)


def probabilities_up(actions: ArrayLike) -> jax.Array:
    """A member's ``P(up)`` from its action: ``clip((1 + a) / 2, 0.01, 0.99)`` [N]."""
    return jnp.clip((1 + jnp.asarray(actions)) / 2, *_PROBABILITY_BOUNDS)


def update_weights(
    weights: ArrayLike,
    previous_actions: ArrayLike,
    realized_return: ArrayLike,
    beta: ArrayLike = 0.9,
    share: ArrayLike = 0.0,
) -> jax.Array:
    """One round of the weighted majority algorithm with fixed share.

    Args:
        weights: Current weights [N].
        previous_actions: The actions taken before the return [N].
        realized_return: The return that followed (any scale: only its sign counts);
            NaN (no previous bar) leaves the weights unchanged.
        beta: Penalty factor in (0, 1].
        share: Fraction of the total weight spread evenly after the update, in
            [0, 1) (0: plain weighted majority).

    Returns:
        [N] weights, summing to 1: the wrong (non-flat) members' multiplied by
        ``beta``, then mixed with ``share`` of the uniform weights.
    """
    weights = _members(weights, "weights")
    previous_actions = _members(previous_actions, "previous_actions")
    realized_return = jnp.asarray(realized_return, weights.dtype)
    side = jnp.sign(previous_actions)
    wrong = (side != 0) & (side != jnp.sign(realized_return))
    penalised = weights * jnp.where(wrong, beta, 1.0)
    updated = (1 - share) * penalised / jnp.sum(penalised) + share / weights.shape[0]
    return jnp.where(jnp.isnan(realized_return), weights, updated)


def fuse_actions(actions: ArrayLike, weights: ArrayLike, fusion: str) -> jax.Array:
    """The swarm's action from its members' actions [N] and weights [N].

    Args:
        actions: Members' actions [N] in [-1, 1].
        weights: Their online weights [N] (summing to 1).
        fusion: One of :data:`FUSIONS` (module docstring for each rule).

    Returns:
        Scalar action in [-1, 1].
    """
    _check_fusion(fusion)
    actions = _members(actions, "actions")
    weights = _members(weights, "weights")
    if fusion == "confidence":
        return confidence_weighted(actions, weights * jnp.abs(actions))
    if fusion == "majority":
        return weighted_majority(actions, weights)
    evidence_weights = actions.shape[0] * weights
    return 2 * bayesian_fusion(probabilities_up(actions), 0.5, evidence_weights) - 1


def _check_fusion(fusion: str) -> None:
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}; got {fusion!r}")


@struct.dataclass
class SwarmParams:
    """Parameters of :func:`make_swarm_step`.

    Attributes:
        members: One parameter pytree per member, in the members' order.
        beta: Weighted-majority penalty in (0, 1] (1: weights never change).
        share: Fixed share in [0, 1): the fraction of weight spread evenly each bar.
    """

    members: tuple
    beta: float = 0.9
    share: float = 0.05


@struct.dataclass
class SwarmState:
    """Members' states (tuple), weights [N], last actions [N] and last close."""

    members: tuple
    weights: jax.Array
    actions: jax.Array
    last_close: jax.Array


def _check_weighting(params: SwarmParams) -> None:
    if not isinstance(params.beta, jax.core.Tracer):
        value = np.asarray(params.beta)
        if np.any((value <= 0) | (value > 1)):
            raise ValueError(f"SwarmParams.beta must be in (0, 1]; got {params.beta!r}")
    if not isinstance(params.share, jax.core.Tracer):
        value = np.asarray(params.share)
        if np.any((value < 0) | (value >= 1)):
            raise ValueError(
                f"SwarmParams.share must be in [0, 1); got {params.share!r}"
            )


def make_swarm_step(members: Sequence[StepStrategy], fusion: str) -> StepStrategy:
    """A step strategy that fuses its members' actions with online weights.

    On each bar: the weights are updated with the previous actions and the return
    from the last close to this one (:func:`update_weights`), every member steps on
    the bar, and their actions are fused (:func:`fuse_actions`) with the new weights.

    Args:
        members: The member :class:`~neuroflux.strategies.steps.StepStrategy`
            (static; at least one).
        fusion: ``"confidence"``, ``"majority"`` or ``"bayes"``.

    Returns:
        A :class:`~neuroflux.strategies.steps.StepStrategy` over
        :class:`SwarmParams`; the action is in [-1, 1].

    Raises:
        ValueError: No members, a member that is not a StepStrategy, or an unknown
            fusion.
    """
    members = tuple(members)
    _check_fusion(fusion)
    if not members:
        raise ValueError("members must hold at least one StepStrategy; got none")
    for index, member in enumerate(members):
        if not isinstance(member, StepStrategy):
            raise ValueError(
                f"members[{index}] must be a StepStrategy; got {type(member).__name__}"
            )
    count = len(members)

    def init(params: SwarmParams) -> SwarmState:
        if len(params.members) != count:
            raise ValueError(
                f"SwarmParams.members must hold {count} parameter sets (one per "
                f"member); got {len(params.members)}"
            )
        _check_weighting(params)
        return SwarmState(
            members=tuple(
                member.init(member_params)
                for member, member_params in zip(members, params.members, strict=True)
            ),
            weights=jnp.full(count, 1 / count),
            actions=jnp.zeros(count),
            last_close=jnp.full((), jnp.nan, float),
        )

    def step(state: SwarmState, bar: Bar, params: SwarmParams):
        realized = jnp.asarray(bar.close, float) - state.last_close
        weights = update_weights(
            state.weights, state.actions, realized, params.beta, params.share
        )
        stepped = [
            member.step(member_state, bar, member_params)
            for member, member_state, member_params in zip(
                members, state.members, params.members, strict=True
            )
        ]
        actions = jnp.stack([jnp.asarray(action, float) for _, action in stepped])
        state = SwarmState(
            members=tuple(member_state for member_state, _ in stepped),
            weights=weights,
            actions=actions,
            last_close=jnp.asarray(bar.close, float),
        )
        return state, fuse_actions(actions, weights, fusion)

    return StepStrategy(init, step)
