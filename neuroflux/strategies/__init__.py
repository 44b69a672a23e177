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
    "STRATEGIES",
    "BollingerBreakoutParams",
    "BuyAndHoldParams",
    "Direction",
    "EmaCrossParams",
    "MacdCrossParams",
    "NeuroCompositeParams",
    "RsiReversionParams",
    "Signals",
    "SmaCrossParams",
    "Strategy",
    "bollinger_breakout",
    "buy_and_hold",
    "crossover_positions",
    "ema_cross",
    "get_strategy",
    "hysteresis_positions",
    "macd_cross",
    "make_params",
    "neuro_composite",
    "neuro_score",
    "positions_to_signals",
    "rsi_reversion",
    "sma_cross",
]
