"""Technical features of price series: pure JAX functions over a time axis [T].

Every function takes one series (time axis first, shape [T]) and returns arrays of the
same length, with NaN over the warm-up as in pandas and TA-Lib. All of them work under
``jax.jit`` and ``jax.vmap``:

* over assets: ``jax.vmap(sma, in_axes=(1, None), out_axes=1)(panel, 20)`` for a panel
  [T, A];
* over parameters: windows, spans and periods may be traced integers, so
  ``jax.vmap(sma, in_axes=(None, 0))(close, jnp.arange(2, 1002))`` computes 1000
  moving averages [1000, T] in one call.

Numbers: importing :mod:`neuroflux` turns on 64-bit mode, so float64 is the default and
results match pandas/NumPy references to about 1e-12 relative (rolling sums, means and
standard deviations are correctly rounded up to a few ulps). Outputs keep the input
dtype: a GPU user who wants float32 passes ``jnp.asarray(close, jnp.float32)`` and gets
float32 back. Rolling sums still accumulate in float64 inside (a float32 variance of a
quiet window would lose most of its digits), recursive averages run in float32. Integer
inputs are promoted to the default float. For speed, call the functions under
``jax.jit``: eagerly, JAX dispatches them op by op (milliseconds per call).

Inputs are assumed finite. The exceptions are leading NaNs (the warm-up of another
indicator), which the recursive averages skip as pandas does, and NaNs in rolling
windows, which make just the windows that hold them NaN.

Modules: :mod:`~neuroflux.features.returns`, :mod:`~neuroflux.features.rolling`
(moving statistics and Bollinger bands), :mod:`~neuroflux.features.averages`,
:mod:`~neuroflux.features.oscillators` (RSI, MACD) and
:mod:`~neuroflux.features.volatility` (true range, ATR, annualised volatility).
"""

from neuroflux.features.averages import ema, wilder_average
from neuroflux.features.oscillators import MACD, macd, rsi
from neuroflux.features.returns import log_returns, simple_returns
from neuroflux.features.rolling import (
    BollingerBands,
    bollinger_bands,
    rolling_max,
    rolling_min,
    rolling_std,
    sma,
    zscore,
)
from neuroflux.features.volatility import atr, rolling_volatility, true_range

__all__ = [
    "MACD",
    "BollingerBands",
    "atr",
    "bollinger_bands",
    "ema",
    "log_returns",
    "macd",
    "rolling_max",
    "rolling_min",
    "rolling_std",
    "rolling_volatility",
    "rsi",
    "simple_returns",
    "sma",
    "true_range",
    "wilder_average",
    "zscore",
]
