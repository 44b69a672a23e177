"""Trading agents as pure JAX: PPO, a neural policy, a swarm and the flux estimator.

Every agent decides through a step function ``step(state, bar, params) -> (state,
action)`` (:class:`~neuroflux.strategies.steps.StepStrategy`), which the backtest
drives with ``lax.scan`` and the live runner calls bar by bar.
"""
