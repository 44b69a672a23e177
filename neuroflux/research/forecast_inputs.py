"""The inputs of the forecaster evaluations: network sizes, fold data and baselines.

:class:`ForecasterSizes` sizes the networks and :func:`model_factory` builds them;
:class:`FoldData` is what a :data:`Baseline` sees of one fold, and
:func:`default_baselines` is the table of baselines a forecaster must beat. The
evaluations themselves are in :mod:`neuroflux.research.forecasts` and
:mod:`neuroflux.research.panel_ic`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from neuroflux.forecasting import training
from neuroflux.models import forecasters
from neuroflux.research import forecast_baselines

__all__ = [
    "TARGETS",
    "Baseline",
    "FoldData",
    "ForecasterSizes",
    "default_baselines",
]

TARGETS = ("return", "volatility")
_NAIVE_BARS = 20  # bars before every feature column is finite


@dataclasses.dataclass(frozen=True, kw_only=True)
class ForecasterSizes:
    """Sizes of the networks evaluated (hashable; unknown keys fail).

    Attributes:
        d_model, heads, layers, ff, dropout: The transformer's
            (:class:`~neuroflux.models.TransformerForecaster`).
        hidden: The MLP's hidden widths.
    """

    d_model: int = 32
    heads: int = 4
    layers: int = 2
    ff: int = 64
    dropout: float = 0.0
    hidden: tuple[int, ...] = (64, 64)


def model_factory(
    name: str, features: int, lookback: int, sizes: ForecasterSizes
) -> training.ModelFactory:
    if name == "transformer":
        return lambda rngs: forecasters.TransformerForecaster(
            features,
            lookback=lookback,
            d_model=sizes.d_model,
            heads=sizes.heads,
            layers=sizes.layers,
            ff=sizes.ff,
            dropout=sizes.dropout,
            rngs=rngs,
        )
    if name == "mlp":
        return lambda rngs: forecasters.MLPForecaster(
            features, lookback=lookback, hidden=sizes.hidden, rngs=rngs
        )
    return lambda rngs: forecasters.LinearForecaster(
        features, lookback=lookback, rngs=rngs
    )


@dataclasses.dataclass(frozen=True, eq=False)
class FoldData:
    """What a baseline sees of one fold.

    Attributes:
        X_train: Scaled training windows [N, lookback, F].
        y_train: Their targets [N] (returns or realized variances).
        X_test: Scaled test windows [M, lookback, F].
        train_bars: Bar (time) index of each training sample [N].
        test_bars: Bar (time) index of each test sample [M].
        log_returns: The asset's log returns [T] (NaN at bar 0); ``None`` for a
            panel. A forecast at bar ``t`` may read them up to ``t`` only.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    train_bars: np.ndarray
    test_bars: np.ndarray
    log_returns: np.ndarray | None = None


Baseline = Callable[[FoldData], np.ndarray]
"""A baseline: one fold's data to forecasts of its test samples [M]."""


def ridge(fold: FoldData) -> np.ndarray:
    return forecast_baselines.ridge_forecast(fold.X_train, fold.y_train, fold.X_test)


def _boosting(fold: FoldData) -> np.ndarray:
    return forecast_baselines.boosting_forecast(fold.X_train, fold.y_train, fold.X_test)


def _zero(fold: FoldData) -> np.ndarray:
    return forecast_baselines.zero_forecast(fold.X_test)


def _log_variance(forecast: Callable) -> Baseline:
    """A regression of ``log y``, back to a variance with the log-normal mean."""

    def baseline(fold: FoldData) -> np.ndarray:
        log_y = np.log(fold.y_train)
        fitted = forecast(fold.X_train, log_y, fold.X_train)
        residual_variance = np.mean((log_y - fitted) ** 2)
        return np.exp(
            forecast(fold.X_train, log_y, fold.X_test) + residual_variance / 2
        )

    return baseline


def _naive_variance(horizon: int) -> Baseline:
    """``horizon`` times the mean squared return of the last 20 bars, up to the bar.

    A 20-bar window rather than the last ``horizon`` bars alone: a single unchanged
    close would make that forecast 0, which QLIKE cannot score.
    """

    def baseline(fold: FoldData) -> np.ndarray:
        squares = fold.log_returns**2
        lags = range(_NAIVE_BARS)
        return horizon * np.mean([squares[fold.test_bars - lag] for lag in lags], 0)

    return baseline


def _garch(horizon: int) -> Baseline:
    """GARCH(1,1) fitted up to the last training bar, forecast at each test bar."""

    def baseline(fold: FoldData) -> np.ndarray:
        last_train = int(fold.train_bars.max())
        # log_returns[1:] drops bar 0's NaN: position j holds bar j + 1, so fitting
        # on the first `last_train` positions uses the returns of bars 1..last_train,
        # and forecast k is made at bar last_train + k.
        forecast = forecast_baselines.garch_variance_forecast(
            fold.log_returns[1:], last_train, horizon
        )
        return forecast[fold.test_bars - last_train]

    return baseline


def default_baselines(target: str, horizon: int = 1) -> dict[str, Baseline]:
    """The baselines of a target: what a forecaster must beat.

    Returns: ``zero``, ``ridge``, ``boosting``. Volatility: ``naive`` (``horizon``
    times the last 20 bars' mean squared return), ``ridge`` and ``boosting`` on the log
    variance (see the notes of :mod:`neuroflux.research.forecasts`) and ``garch``.
    """
    check_choice(target, TARGETS, "target")
    if target == "return":
        return {"zero": _zero, "ridge": ridge, "boosting": _boosting}
    return {
        "naive": _naive_variance(horizon),
        "ridge": _log_variance(forecast_baselines.ridge_forecast),
        "boosting": _log_variance(forecast_baselines.boosting_forecast),
        "garch": _garch(horizon),
    }


def check_choice(value, valid: Sequence[str], name: str) -> None:
    if value not in valid:
        raise ValueError(f"{name}: expected one of {tuple(valid)}, got {value!r}")
