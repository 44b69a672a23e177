"""The strategies by name: their signal functions, parameters and documentation.

``get_strategy("sma_cross").signal(close, make_params("sma_cross", fast=5))``. The
registry is read-only; a name or parameter that does not exist is an error that lists
the valid ones and suggests the closest.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Callable, Mapping
from typing import Any

from neuroflux.strategies import composite, reversion, trend
from neuroflux.strategies.positions import Direction

__all__ = ["STRATEGIES", "Strategy", "get_strategy", "make_params"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Strategy:
    """A registered strategy.

    Attributes:
        name: Registry key.
        signal: ``signal(close [T], params, **inputs) -> positions [T]``.
        params_class: The ``flax.struct.dataclass`` of its parameters.
        default_params: ``params_class()``.
        description: One line on the rule.
        parameter_docs: Parameter name -> what it means.
        inputs: Extra keyword series the signal accepts (e.g. ``("flux",)``).
        stateful: Whether positions depend on the path (computed by ``lax.scan``).
    """

    name: str
    signal: Callable[..., Any]
    params_class: type
    default_params: Any
    description: str
    parameter_docs: Mapping[str, str]
    inputs: tuple[str, ...] = ()
    stateful: bool = False


_WAIT_DOC = "flat until the first crossing (static; backtesting.py's crossover entry)"
_DIRECTION_DOC = "'long_short' (positions in {-1, 0, 1}) or 'long_only' ({0, 1})"


def _strategy(
    name: str,
    signal: Callable[..., Any],
    params_class: type,
    description: str,
    parameter_docs: Mapping[str, str],
    **options: Any,
) -> Strategy:
    docs = {**parameter_docs, "direction": _DIRECTION_DOC}
    fields = {field.name for field in dataclasses.fields(params_class)}
    if set(docs) != fields:  # pragma: no cover  (a registry typo, caught at import)
        raise AssertionError(f"{name}: documented {sorted(docs)}, fields {fields}")
    return Strategy(
        name=name,
        signal=signal,
        params_class=params_class,
        default_params=params_class(),
        description=description,
        parameter_docs=types.MappingProxyType(docs),
        **options,
    )


STRATEGIES: Mapping[str, Strategy] = types.MappingProxyType(
    {
        strategy.name: strategy
        for strategy in (
            _strategy(
                "buy_and_hold",
                trend.buy_and_hold,
                trend.BuyAndHoldParams,
                "Long from bar `start` to the end.",
                {"start": "first bar held (flat before it)"},
            ),
            _strategy(
                "sma_cross",
                trend.sma_cross,
                trend.SmaCrossParams,
                "Long while SMA(fast) > SMA(slow), short/flat below.",
                {
                    "fast": "fast SMA window",
                    "slow": "slow SMA window",
                    "wait_for_cross": _WAIT_DOC,
                },
            ),
            _strategy(
                "ema_cross",
                trend.ema_cross,
                trend.EmaCrossParams,
                "Long while EMA(fast) > EMA(slow), short/flat below.",
                {
                    "fast": "fast EMA span",
                    "slow": "slow EMA span",
                    "wait_for_cross": _WAIT_DOC,
                },
            ),
            _strategy(
                "macd_cross",
                trend.macd_cross,
                trend.MacdCrossParams,
                "Long while the MACD line is above its signal line, short/flat below.",
                {
                    "fast": "fast EMA span of the MACD line",
                    "slow": "slow EMA span of the MACD line",
                    "signal": "EMA span of the signal line",
                    "wait_for_cross": _WAIT_DOC,
                },
            ),
            _strategy(
                "bollinger_breakout",
                trend.bollinger_breakout,
                trend.BollingerBreakoutParams,
                "Long above the upper band until below the middle; short below the "
                "lower band until above the middle.",
                {
                    "window": "rolling window of the bands",
                    "num_std": "band width in population standard deviations",
                },
                stateful=True,
            ),
            _strategy(
                "rsi_reversion",
                reversion.rsi_reversion,
                reversion.RsiReversionParams,
                "Long when RSI < lower; flat (long-only) or short when RSI > upper; "
                "hold in between.",
                {
                    "period": "RSI period",
                    "lower": "oversold level (enter long below)",
                    "upper": "overbought level (exit long / enter short above)",
                },
                stateful=True,
            ),
            _strategy(
                "neuro_composite",
                composite.neuro_composite,
                composite.NeuroCompositeParams,
                "Thresholds on 0.3(RSI-50)/50 + 0.4(close-SMA)/SMA + 0.3(MACD-signal), "
                "damped by (1 - 0.2 flux).",
                {
                    "rsi_period": "RSI period",
                    "trend_window": "SMA window of the trend term",
                    "macd_fast": "fast EMA span of the MACD line",
                    "macd_slow": "slow EMA span of the MACD line",
                    "macd_signal": "EMA span of the MACD signal line",
                    "rsi_weight": "weight of (RSI - 50) / 50",
                    "trend_weight": "weight of (close - SMA) / SMA",
                    "macd_weight": "weight of MACD - signal",
                    "flux_weight": "score multiplied by 1 - flux_weight * flux",
                    "entry": "enter long above +entry, short below -entry",
                    "exit": "leave long below +exit, short above -exit",
                    "normalize_macd": "divide MACD - signal by the close (static)",
                },
                inputs=("flux",),
                stateful=True,
            ),
        )
    }
)


def _unknown(kind: str, name: str, valid: list[str]) -> ValueError:
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"unknown {kind} {name!r}.{hint} Valid: {', '.join(sorted(valid))}."
    )


def get_strategy(name: str) -> Strategy:
    """The registered strategy called ``name``.

    Raises:
        ValueError: ``name`` is not registered; the message lists the valid names and
            the closest matches.
    """
    try:
        return STRATEGIES[name]
    except KeyError:
        raise _unknown("strategy", str(name), list(STRATEGIES)) from None


def make_params(name: str, **overrides: Any) -> Any:
    """Default parameters of strategy ``name`` with ``overrides`` applied.

    Values may be arrays (for a ``vmap`` grid). ``direction`` may be given as a
    :class:`Direction` or its string value (``"long_only"``, ``"long_short"``).

    Raises:
        ValueError: Unknown strategy, or a parameter it does not have (the message
            lists the valid parameters and the closest matches).
    """
    strategy = get_strategy(name)
    valid = list(strategy.parameter_docs)
    for key in overrides:
        if key not in valid:
            raise _unknown(f"parameter of {name}", key, valid)
    if "direction" in overrides:
        overrides["direction"] = Direction.parse(overrides["direction"])
    return strategy.default_params.replace(**overrides)
