"""The registry: lookups, errors that list valid names, parameter overrides."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import pytest

from neuroflux.strategies import STRATEGIES, Direction, get_strategy, make_params

EXPECTED = {
    "buy_and_hold",
    "sma_cross",
    "ema_cross",
    "macd_cross",
    "bollinger_breakout",
    "rsi_reversion",
    "neuro_composite",
}


def test_every_strategy_is_registered_and_documented():
    assert set(STRATEGIES) == EXPECTED
    for name, strategy in STRATEGIES.items():
        assert strategy.name == name and strategy.description
        fields = {f.name for f in dataclasses.fields(strategy.params_class)}
        assert set(strategy.parameter_docs) == fields
        assert isinstance(strategy.default_params, strategy.params_class)
        assert strategy.default_params.direction in set(Direction)


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        STRATEGIES["mine"] = STRATEGIES["sma_cross"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        STRATEGIES["sma_cross"].name = "other"  # type: ignore[misc]


def test_unknown_strategy_lists_names_and_suggests():
    with pytest.raises(ValueError, match="unknown strategy 'sma_crosss'") as error:
        get_strategy("sma_crosss")
    message = str(error.value)
    assert "Did you mean 'sma_cross'" in message
    for name in EXPECTED:
        assert name in message.split("Valid:")[1]


def test_unknown_strategy_without_close_match():
    with pytest.raises(ValueError) as error:
        get_strategy("zzzz")
    assert "Did you mean" not in str(error.value)
    assert "rsi_reversion" in str(error.value)


def test_unknown_parameter_lists_valid_ones_and_suggests():
    with pytest.raises(ValueError, match="unknown parameter of sma_cross 'fsat'") as e:
        make_params("sma_cross", fsat=5)
    message = str(e.value)
    assert "Did you mean 'fast'" in message
    assert "Valid: direction, fast, slow, wait_for_cross." in message


def test_make_params_applies_overrides():
    params = make_params("rsi_reversion", period=7, direction="long_only")
    assert params.period == 7 and params.lower == 30.0
    assert params.direction is Direction.LONG_ONLY
    grid = make_params("ema_cross", fast=jnp.arange(3, 6))
    assert grid.fast.shape == (3,) and grid.slow == 26
    with pytest.raises(ValueError, match="unknown strategy"):
        make_params("nope", fast=1)
    with pytest.raises(ValueError, match="direction must be one of"):
        make_params("sma_cross", direction="up")
