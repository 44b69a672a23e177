"""Trading strategies as pure signal functions ``(close [T], params) -> positions [T]``.

A position is the target holding at a bar's close: 1 long, -1 short, 0 flat. Functions
are pure JAX, NaN-free (flat during indicator warm-up) and work under ``jax.jit`` and
``jax.vmap``. Parameters are ``flax.struct.dataclass`` pytrees whose numeric fields are
leaves, so a parameter grid is one ``jax.vmap(signal, in_axes=(None, 0))(close, grid)``
with array-valued fields; ``direction`` (and the composite's ``normalize_macd``) are
static fields shared by a whole grid.

Stateless (vectorised comparisons): buy-and-hold, SMA, EMA and MACD crosses. Stateful
(hysteresis, one ``lax.scan`` by :func:`hysteresis_positions`): Bollinger breakout, RSI
mean reversion and the neuro composite.

:data:`STRATEGIES` names them all; :func:`get_strategy` and :func:`make_params` look
them up with errors that list the valid names. :func:`positions_to_signals` turns
positions into vectorbt-style entry and exit flags.

Step strategies (:mod:`neuroflux.strategies.steps`) are the same rules as a pure
``step(state, bar, params) -> (state, action)`` that a live runner calls bar by bar;
:func:`run_steps` drives one with ``lax.scan`` and gives exactly the signal function's
positions (:data:`STEP_STRATEGIES`: SMA and EMA cross, RSI reversion).
"""

from neuroflux.strategies.composite import (
    NeuroCompositeParams,
    neuro_composite,
    neuro_score,
)
from neuroflux.strategies.positions import (
    Direction,
    Signals,
    crossover_positions,
    hysteresis_positions,
    positions_to_signals,
)
from neuroflux.strategies.registry import (
    STRATEGIES,
    Strategy,
    get_strategy,
    make_params,
)
from neuroflux.strategies.reversion import RsiReversionParams, rsi_reversion
from neuroflux.strategies.steps import (
    STEP_STRATEGIES,
    Bar,
    StepStrategy,
    make_ema_cross_step,
    make_rsi_reversion_step,
    make_sma_cross_step,
    run_steps,
)
from neuroflux.strategies.trend import (
    BollingerBreakoutParams,
    BuyAndHoldParams,
    EmaCrossParams,
    MacdCrossParams,
    SmaCrossParams,
    bollinger_breakout,
    buy_and_hold,
    ema_cross,
    macd_cross,
    sma_cross,
)

__all__ = [
    "STEP_STRATEGIES",
    "STRATEGIES",
    "Bar",
    "BollingerBreakoutParams",
    "BuyAndHoldParams",
    "Direction",
    "EmaCrossParams",
    "MacdCrossParams",
    "NeuroCompositeParams",
    "RsiReversionParams",
    "Signals",
    "SmaCrossParams",
    "StepStrategy",
    "Strategy",
    "bollinger_breakout",
    "buy_and_hold",
    "crossover_positions",
    "ema_cross",
    "get_strategy",
    "hysteresis_positions",
    "macd_cross",
    "make_ema_cross_step",
    "make_params",
    "make_rsi_reversion_step",
    "make_sma_cross_step",
    "neuro_composite",
    "neuro_score",
    "positions_to_signals",
    "rsi_reversion",
    "run_steps",
    "sma_cross",
]
