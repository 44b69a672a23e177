"""Swarm decision fusion: NumPy references, properties, a swarm of rule strategies."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import neuroflux  # noqa: F401  (64-bit mode)
from neuroflux.agents import swarm
from neuroflux.agents.swarm import (
    FUSIONS,
    SwarmParams,
    bayesian_fusion,
    confidence_weighted,
    fuse_actions,
    make_swarm_step,
    update_weights,
    weighted_majority,
)
from neuroflux.data import load_sample
from neuroflux.research.agents import agent_bars
from neuroflux.strategies import make_params
from neuroflux.strategies.steps import STEP_STRATEGIES, Bar, StepStrategy, run_steps

RULES = ("sma_cross", "ema_cross", "rsi_reversion")
actions_strategy = hnp.arrays(
    np.float64, st.integers(1, 8), elements=st.floats(-1, 1, allow_subnormal=False)
)


def _logit(p):
    return np.log(p) - np.log1p(-p)


def reference_weights(member_actions, close, beta, share=0.05):
    """Weighted majority with fixed share, flat members abstaining: [T, N]."""
    length, count = member_actions.shape
    weights, history = np.full(count, 1 / count), []
    for t in range(length):
        if t > 0:
            side = np.sign(member_actions[t - 1])
            wrong = (side != 0) & (side != np.sign(close[t] - close[t - 1]))
            weights = np.where(wrong, beta * weights, weights)
            weights = (1 - share) * weights / weights.sum() + share / count
        history.append(weights)
    return np.array(history)


def reference_fusion(actions, weights, fusion):
    if fusion == "confidence":
        confidences = weights * np.abs(actions)
        total = confidences.sum()
        return 0.0 if total == 0 else (confidences * actions).sum() / total
    if fusion == "majority":
        return np.sign((weights * np.sign(actions)).sum())
    p = np.clip((1 + actions) / 2, 0.01, 0.99)
    log_odds = (len(actions) * weights * _logit(p)).sum()
    return 2 / (1 + np.exp(-log_odds)) - 1


def replay_step() -> StepStrategy:
    """A member that plays back the actions in its params, one per bar."""

    def init(params):
        return jnp.zeros((), jnp.int32)

    def step(state, bar, params):
        return state + 1, params[state]

    return StepStrategy(init, step)


@functools.cache
def sp500_bars() -> Bar:
    return agent_bars(load_sample("sp500"))


def test_fusion_rules_against_numpy():
    actions = np.array([0.5, -1.0, 1.0, 0.0])
    confidences = np.array([2.0, 1.0, 0.5, 3.0])
    np.testing.assert_allclose(
        confidence_weighted(actions, confidences), (1.0 - 1.0 + 0.5) / 6.5
    )
    assert float(confidence_weighted(actions, np.zeros(4))) == 0.0
    assert float(weighted_majority(actions, [1.0, 2.5, 1.0, 9.0])) == -1.0
    assert float(weighted_majority(actions, [1.0, 2.0, 1.0, 9.0])) == 0.0
    assert float(weighted_majority(actions, [1.0, 1.0, 1.0, 9.0])) == 1.0
    p = np.array([0.7, 0.6, 0.2])
    for prior in (0.5, 0.3):
        expected_odds = _logit(p).sum() - 2 * _logit(prior)
        np.testing.assert_allclose(
            bayesian_fusion(p, prior), 1 / (1 + np.exp(-expected_odds)), rtol=1e-13
        )
    np.testing.assert_allclose(bayesian_fusion([0.8], 0.3), 0.8, rtol=1e-13)
    np.testing.assert_allclose(bayesian_fusion([0.8, 0.8]), 16 / 17, rtol=1e-13)
    weights = np.array([0.5, 2.0, 0.0])
    weighted_odds = _logit(0.4) + (weights * (_logit(p) - _logit(0.4))).sum()
    np.testing.assert_allclose(
        bayesian_fusion(p, 0.4, weights), 1 / (1 + np.exp(-weighted_odds)), rtol=1e-13
    )
    np.testing.assert_allclose(
        swarm.probabilities_up([1.0, 0.0, -0.5]), [0.99, 0.5, 0.25]
    )
    for fusion in FUSIONS:
        np.testing.assert_allclose(
            fuse_actions(actions, confidences / confidences.sum(), fusion),
            reference_fusion(actions, confidences / confidences.sum(), fusion),
            rtol=1e-13,
        )


def test_update_weights_round():
    weights = np.array([0.5, 0.25, 0.25])
    got = update_weights(weights, [1.0, -0.5, 0.0], 0.02, beta=0.5)
    np.testing.assert_allclose(got, np.array([0.5, 0.125, 0.25]) / 0.875)
    np.testing.assert_array_equal(
        update_weights(weights, [1.0, -1.0, 0.0], jnp.nan), weights
    )
    # an unchanged close: both positions were wrong, the flat member abstained
    unchanged = update_weights(weights, [1.0, -1.0, 0.0], 0.0, beta=0.5)
    np.testing.assert_allclose(unchanged, np.array([0.25, 0.125, 0.25]) / 0.625)
    # a flat member keeps its weight on a move; fixed share mixes in 1/N
    mixed = update_weights(weights, [1.0, -1.0, 0.0], -0.01, beta=0.5, share=0.3)
    expected = np.array([0.25, 0.25, 0.25]) / 0.75
    np.testing.assert_allclose(mixed, 0.7 * expected + 0.3 / 3)


def test_weights_over_a_sequence_match_numpy():
    rng = np.random.default_rng(7)
    length, count = 60, 4
    close = 100 + np.cumsum(rng.normal(0, 1, length))
    close[10] = close[9]  # an unchanged close: every position was wrong
    member_actions = rng.choice([-1.0, -0.3, 0.0, 0.6, 1.0], size=(length, count))
    strategy = make_swarm_step((replay_step(),) * count, "confidence")
    params = SwarmParams(members=tuple(member_actions.T), beta=0.8)
    bars = Bar.from_arrays(close)

    @jax.jit
    def weights_and_actions(params):
        def body(state, bar):
            state, action = strategy.step(state, bar, params)
            return state, (state.weights, action)

        return jax.lax.scan(body, strategy.init(params), bars)[1]

    weights, fused = weights_and_actions(params)
    expected = reference_weights(member_actions, close, 0.8)
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    expected_fused = [
        reference_fusion(member_actions[t], expected[t], "confidence")
        for t in range(length)
    ]
    np.testing.assert_allclose(fused, expected_fused, rtol=1e-12, atol=1e-15)
    # beta = 1 never moves the weights
    unchanged, _ = weights_and_actions(params.replace(beta=1.0))
    np.testing.assert_allclose(unchanged, 0.25)


@settings(max_examples=40, deadline=None)
@given(actions=actions_strategy, data=st.data())
def test_confidence_weighted_between_extremes(actions, data):
    confidences = data.draw(
        hnp.arrays(np.float64, actions.shape, elements=st.floats(0, 10))
    )
    fused = float(confidence_weighted(actions, confidences))
    if confidences.sum() == 0:
        assert fused == 0.0
    else:
        assert actions.min() - 1e-12 <= fused <= actions.max() + 1e-12


@settings(max_examples=30, deadline=None)
@given(
    action=st.floats(-1, 1, allow_subnormal=False),
    count=st.integers(1, 6),
    data=st.data(),
)
def test_identical_members_return_their_action(action, count, data):
    weights = data.draw(hnp.arrays(np.float64, count, elements=st.floats(0.01, 1)))
    weights = weights / weights.sum()
    actions = np.full(count, action)
    np.testing.assert_allclose(
        fuse_actions(actions, weights, "confidence"), action, rtol=1e-12, atol=1e-15
    )
    assert float(fuse_actions(actions, weights, "majority")) == np.sign(action)
    bayes = float(fuse_actions(actions, weights, "bayes"))
    single = 2 * np.clip((1 + action) / 2, 0.01, 0.99) - 1
    if count == 1:
        np.testing.assert_allclose(bayes, single, rtol=1e-12, atol=1e-12)
    # independent agreeing experts compound: same side, at least as sure
    assert np.sign(bayes) == np.sign(single) or abs(single) < 1e-12
    assert abs(bayes) >= abs(single) - 1e-12
    assert -1 <= bayes <= 1


def test_validation_errors():
    member = STEP_STRATEGIES["sma_cross"]
    with pytest.raises(ValueError, match="fusion must be one of"):
        make_swarm_step((member,), "vote")
    with pytest.raises(ValueError, match="at least one"):
        make_swarm_step((), "bayes")
    with pytest.raises(ValueError, match=r"members\[1\] must be a StepStrategy"):
        make_swarm_step((member, "ema_cross"), "bayes")
    strategy = make_swarm_step((member, member), "majority")
    with pytest.raises(ValueError, match="must hold 2 parameter sets"):
        strategy.init(SwarmParams(members=(make_params("sma_cross"),)))
    with pytest.raises(ValueError, match="beta must be in"):
        strategy.init(SwarmParams(members=(make_params("sma_cross"),) * 2, beta=0.0))
    with pytest.raises(ValueError, match="share must be in"):
        strategy.init(SwarmParams(members=(make_params("sma_cross"),) * 2, share=1.0))
    with pytest.raises(ValueError, match="actions must have shape"):
        confidence_weighted(np.ones((2, 2)), np.ones(2))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_swarm_of_rule_strategies_on_sp500(fusion):
    bars = sp500_bars()
    members = tuple(STEP_STRATEGIES[name] for name in RULES)
    member_params = tuple(make_params(name) for name in RULES)
    run = jax.jit(run_steps, static_argnums=0)
    member_actions = np.stack(
        [
            np.asarray(run(m, p, bars)[1])
            for m, p in zip(members, member_params, strict=True)
        ],
        1,
    )
    strategy = make_swarm_step(members, fusion)
    final, fused = run(strategy, SwarmParams(members=member_params), bars)
    fused = np.asarray(fused)
    weights = reference_weights(member_actions, np.asarray(bars.close), 0.9)
    np.testing.assert_allclose(final.weights, weights[-1], rtol=1e-9)
    expected = [
        reference_fusion(member_actions[t], weights[t], fusion)
        for t in range(0, len(fused), 97)
    ]
    np.testing.assert_allclose(fused[::97], expected, rtol=1e-9, atol=1e-12)
    assert np.isfinite(fused).all() and (np.abs(fused) <= 1).all()
    assert np.abs(fused).max() > 0.5  # the swarm does take positions


def test_swarm_vmaps_over_beta():
    bars = jax.tree.map(lambda x: x[:400], sp500_bars())
    members = tuple(STEP_STRATEGIES[name] for name in RULES)
    strategy = make_swarm_step(members, "majority")
    params = SwarmParams(members=tuple(make_params(name) for name in RULES))
    betas = jnp.array([0.5, 0.9, 1.0])

    def actions(params, beta):
        return run_steps(strategy, params.replace(beta=beta), bars)[1]

    mapped = jax.jit(jax.vmap(actions, in_axes=(None, 0)))(params, betas)
    for index, beta in enumerate(betas):
        single = run_steps(strategy, params.replace(beta=float(beta)), bars)[1]
        np.testing.assert_array_equal(mapped[index], single)
