"""Backtests as pure JAX functions over a time axis [T] (or a panel [T, N]).

:func:`from_signals` simulates long-only entry/exit signals filled at the close with
vectorbt's ``Portfolio.from_signals`` arithmetic; :func:`simulate` is its one-series
kernel, driven by ``jax.lax.scan`` over an explicit :class:`SignalsState`. See
:mod:`neuroflux.backtest.signals` for the conventions. :func:`walk_forward_splits`
gives train/test index windows with purge and embargo.
"""

from neuroflux.backtest.signals import (
    SignalsResult,
    SignalsState,
    Trades,
    from_signals,
    simulate,
)
from neuroflux.backtest.splits import Split, walk_forward_splits

__all__ = [
    "SignalsResult",
    "SignalsState",
    "Split",
    "Trades",
    "from_signals",
    "simulate",
    "walk_forward_splits",
]
