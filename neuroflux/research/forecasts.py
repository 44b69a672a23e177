"""Walk-forward evaluation of neural forecasters against baselines, after costs.

:func:`evaluate_forecasters` judges the forecasters of :mod:`neuroflux.models` on one
asset's OHLCV bars; :func:`~neuroflux.research.panel_ic.evaluate_panel_ic` judges them
by information coefficient on a panel. Both fit everything on the training part of
each purged walk-forward fold and score it on the fold's test block only.

Per fold (one asset):

* Samples: :func:`~neuroflux.forecasting.feature_matrix` (with the calendar
  columns), :func:`~neuroflux.forecasting.make_targets` and
  :func:`~neuroflux.forecasting.make_windows`; folds from
  :func:`~neuroflux.forecasting.purged_walk_forward` over the bars.
* The last 15% of the training span validates early stopping; the ``horizon`` bars
  before it are purged, so no training target reaches into it. The remaining
  *training* samples alone fit the feature scaler, the networks (every seed in one
  ``vmap``) and the baselines. The test block is never used to tune anything.
* Networks learn a standardised target (``(z - mean) / std`` over the training
  samples), with ``z = y`` for returns and ``z = sqrt(y)`` for the volatility target
  (realized variance ``y``; a forward volatility). That target needs the Gaussian NLL
  loss: the forecast ``N(m, s²)`` of ``z`` gives the variance forecast ``E[z²] = m² +
  s²``, positive as QLIKE requires and free of the exponentials that blow up a
  log-variance model's extrapolations. (For ``horizon=1`` and ``m = 0`` the NLL is
  QLIKE itself, up to constants.)
* Baselines (:func:`~neuroflux.research.forecast_inputs.default_baselines`) see the same
  training samples; for the volatility target the regressions learn ``log y`` and
  forecast ``exp(pred)`` times Duan's smearing factor, the training mean of
  ``exp(log y - fitted)``. GARCH(1,1) is fitted on the log returns up to the fold's
  last training bar and filtered on; its forecast at bar ``t`` uses returns up to
  ``t`` and is the variance of returns ``t + 1 .. t + horizon``: exactly the target
  of the sample at ``t``.

Scores:

* Returns: MSE, directional accuracy, IC and rank IC. For one asset the IC is a
  correlation over time: Pearson (rank IC: Spearman) of the forecasts and the targets
  over all test samples of all folds.
* Volatility: QLIKE (:func:`~neuroflux.forecasting.qlike`) and MSE.
* A network has one score per seed; the tables show their mean and standard
  deviation (ddof=1) as ``<metric>_mean`` and ``<metric>_std``; a baseline's std is
  NaN. The Diebold-Mariano test compares each network's seed-averaged forecast with
  the baseline of lowest loss (MSE for returns, QLIKE for volatility).
* Backtests: each forecast becomes a target position at the close of its bar,
  traded by :func:`neuroflux.backtest.simulate` (close fills, proportional
  ``commission``) over the test bars of all folds strung together (a bar without a
  sample is skipped, which holds the position through it). Return target: a network
  trained with the Gaussian NLL holds ``clip(mean / (position_scale * scale), -1,
  1)``; a point forecast (baselines, MSE-trained networks) holds ``sign(mean)``.
  Volatility target: long ``min(1, target_volatility / sqrt(periods_per_year *
  forecast / horizon))``, volatility targeting. Buy-and-hold holds 1.

Zero realized variance (an unchanged close, for ``horizon=1``) has no logarithm and
no QLIKE: those samples are left out for the volatility target, and
:attr:`ForecastEvaluation.excluded_bars` lists every test-block bar without a sample.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neuroflux.backtest import Bars, SimulationConfig, SimulationParams
from neuroflux.backtest.simulation import simulate
from neuroflux.data import validate_ohlcv
from neuroflux.features import returns as feature_returns
from neuroflux.forecasting import metrics, training, windows
from neuroflux.forecasting.training import TrainConfig
from neuroflux.research.forecast_inputs import (
    TARGETS,
    Baseline,
    FoldData,
    ForecasterSizes,
    check_choice,
    default_baselines,
    model_factory,
)

__all__ = [
    "MODELS",
    "ForecastEvaluation",
    "evaluate_forecasters",
]

MODELS = ("transformer", "mlp", "linear")
_VALIDATION_FRACTION = 0.15
_FEATURE_WARMUP = 33
_LOSSES = {"return": "mse", "volatility": "qlike"}
_METRICS = {
    "return": ("mse", "directional_accuracy", "ic", "rank_ic"),
    "volatility": ("qlike", "mse"),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Fold:
    """The samples of one fold, by bar, and the scaler fitted on its training ones.

    Attributes:
        train_bars: Bars of the training samples (fit the scaler, networks, baselines).
        validation_bars: Bars of the early-stopping samples.
        test_bars: Bars of the test samples.
        scaler: The feature scaler, fitted on the training windows only.
    """

    train_bars: np.ndarray
    validation_bars: np.ndarray
    test_bars: np.ndarray
    scaler: windows.Scaler


@dataclasses.dataclass(frozen=True, eq=False)
class ForecastEvaluation:
    """Out-of-sample forecasts of one asset, their scores, tests and backtests.

    Attributes:
        target: ``"return"`` or ``"volatility"``.
        models: Networks evaluated.
        baselines: Baselines evaluated.
        seeds: Seeds of every network.
        predictions: Per test bar (index: timestamps): ``actual``, one column per
            baseline and one per network and seed (``"transformer/seed=0"``).
        positions: Target positions of the backtests, a column per forecast and
            ``buy_and_hold``.
        metrics: A row per network and baseline, ``<metric>_mean``/``_std``.
        dm_tests: A row per network: its seed-averaged forecast against the best
            baseline (``loss``, ``baseline``, ``model_loss``, ``baseline_loss``,
            ``statistic``, ``p_value``); a positive statistic: the network loses more.
        backtests: A row per network, baseline and ``buy_and_hold``: out-of-sample
            ``sharpe_ratio``/``return_pct`` after costs, ``_mean``/``_std`` over seeds.
        folds: The folds' samples and scalers.
        excluded_bars: Test-block bars without a sample (no finite window or target,
            or zero realized variance).
    """

    target: str
    models: tuple[str, ...]
    baselines: tuple[str, ...]
    seeds: tuple[int, ...]
    predictions: pd.DataFrame
    positions: pd.DataFrame
    metrics: pd.DataFrame
    dm_tests: pd.DataFrame
    backtests: pd.DataFrame
    folds: list[Fold]
    excluded_bars: pd.DatetimeIndex

    def verdict(self) -> str:
        """One plain sentence: does the best network beat the best baseline?"""
        return _verdict(self.target, self.dm_tests)


def _verdict(target: str, dm_tests: pd.DataFrame) -> str:
    if dm_tests.empty:
        return f"{target} target: no network was evaluated."
    best = dm_tests.sort_values("model_loss").iloc[0]
    loss = best["loss"].upper()
    numbers = (
        f"{best.name} {loss} {best['model_loss']:.4g} vs "
        f"{best['baseline']} {best['baseline_loss']:.4g}"
    )
    p_value = best["p_value"]
    if best["model_loss"] < best["baseline_loss"]:
        significant = "significant" if p_value < 0.05 else "not significant"
        return (
            f"{target} target: the best network ({numbers}) beats the best baseline, "
            f"and the Diebold-Mariano test says the difference is {significant} at "
            f"5% (p = {p_value:.3g})."
        )
    return (
        f"{target} target: the best network ({numbers}) does not beat the best "
        f"baseline (Diebold-Mariano p = {p_value:.3g})."
    )


def check_models(models: Sequence[str]) -> tuple[str, ...]:
    models = tuple(models)
    for name in models:
        check_choice(name, MODELS, "models")
    if len(set(models)) != len(models):
        raise ValueError(f"models: each at most once, got {models}")
    return models


def split_samples(times: np.ndarray, split, horizon: int):
    """Boolean masks (train, validation, test) over samples at ``times``."""
    span = np.asarray(split.train)
    validation_start = span[int(len(span) * (1 - _VALIDATION_FRACTION))]
    in_span = np.isin(times, span)
    train = in_span & (times < validation_start - horizon)
    validation = in_span & (times >= validation_start)
    test = np.isin(times, split.test)
    for name, mask in (("training", train), ("validation", validation)):
        if not mask.any():
            raise ValueError(f"train: a fold has no {name} samples; use more bars")
    return train, validation, test


def train_networks(
    models: Sequence[str],
    X_train: np.ndarray,
    z_train: np.ndarray,
    X_validation: np.ndarray,
    z_validation: np.ndarray,
    X_test: np.ndarray,
    *,
    seeds: Sequence[int],
    config: TrainConfig,
    sizes: ForecasterSizes,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train every network for every seed; ``name -> (mean, scale)`` [S, M] of z."""
    location, spread = z_train.mean(), z_train.std()

    def standard(z):
        return jnp.asarray((z - location) / spread, jnp.float32)

    as_input = functools.partial(jnp.asarray, dtype=jnp.float32)
    out = {}
    for name in models:
        factory = model_factory(name, X_train.shape[2], X_train.shape[1], sizes)
        results = training.train_seeds(
            factory,
            as_input(X_train),
            standard(z_train),
            as_input(X_validation),
            standard(z_validation),
            config,
            seeds,
        )
        forecasts = [training.predict(r.model, as_input(X_test)) for r in results]
        mean = np.stack([np.asarray(f.mean, np.float64) for f in forecasts])
        log_scale = np.stack([np.asarray(f.log_scale, np.float64) for f in forecasts])
        out[name] = (location + spread * mean, spread * np.exp(log_scale))
    return out


def column(model: str, seed: int) -> str:
    return f"{model}/seed={seed}"


def _score(target: str, forecast: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    if target == "volatility":
        return {
            "qlike": float(metrics.qlike(forecast, actual)),
            "mse": float(metrics.mse(forecast, actual)),
        }
    return {
        "mse": float(metrics.mse(forecast, actual)),
        "directional_accuracy": float(metrics.directional_accuracy(forecast, actual)),
        "ic": float(metrics.information_coefficient(forecast[None], actual[None])[0]),
        "rank_ic": float(
            metrics.rank_information_coefficient(forecast[None], actual[None])[0]
        ),
    }


def _losses(target: str, forecast: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per-sample loss: squared error (returns) or the QLIKE term (volatility)."""
    if target == "volatility":
        ratio = actual / forecast
        return ratio - np.log(ratio) - 1
    return (forecast - actual) ** 2


def summaries(
    per_column: Mapping[str, Mapping[str, float]],
    models: Sequence[str],
    baselines: Sequence[str],
    seeds: Sequence[int],
) -> pd.DataFrame:
    """A row per network (mean, std over seeds) and per baseline (std NaN)."""
    rows = {}
    for name in baselines:
        rows[name] = {f"{k}_mean": v for k, v in per_column[name].items()}
        rows[name] |= {f"{k}_std": np.nan for k in per_column[name]}
    for name in models:
        table = pd.DataFrame([per_column[column(name, seed)] for seed in seeds])
        rows[name] = {f"{k}_mean": table[k].mean() for k in table}
        rows[name] |= {f"{k}_std": table[k].std() for k in table}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "forecaster"
    return frame


def _dm_tests(
    target: str,
    predictions: pd.DataFrame,
    models: Sequence[str],
    baselines: Sequence[str],
    seeds: Sequence[int],
    horizon: int,
) -> pd.DataFrame:
    actual = predictions["actual"].to_numpy()
    loss_name = _LOSSES[target]

    def losses(forecast):
        return _losses(target, np.asarray(forecast), actual)

    baseline = min(baselines, key=lambda name: losses(predictions[name]).mean())
    baseline_losses = losses(predictions[baseline])
    rows = {}
    for name in models:
        ensemble = predictions[[column(name, seed) for seed in seeds]].mean(axis=1)
        model_losses = losses(ensemble)
        statistic, p_value = metrics.diebold_mariano(
            model_losses, baseline_losses, horizon
        )
        rows[name] = {
            "loss": loss_name,
            "baseline": baseline,
            "model_loss": model_losses.mean(),
            "baseline_loss": baseline_losses.mean(),
            "statistic": float(statistic),
            "p_value": float(p_value),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model"
    return frame


@functools.partial(jax.jit, static_argnames="periods_per_year")
def _backtest_stats(close, positions, commission, periods_per_year):
    """Sharpe ratio and total return of each column of ``positions`` [T, K]."""

    def run(target):
        result = simulate(
            Bars.from_close(close),
            target,
            SimulationParams(fees=commission),
            SimulationConfig(),
        )
        stats = result.stats(periods_per_year)
        return stats["sharpe_ratio"], stats["return_pct"]

    return jax.vmap(run, in_axes=1)(positions)


def _positions(
    target: str,
    predictions: pd.DataFrame,
    scales: Mapping[str, np.ndarray],
    *,
    horizon: int,
    position_scale: float,
    target_volatility: float,
    periods_per_year: float,
) -> pd.DataFrame:
    forecasts = predictions.drop(columns="actual")
    if target == "volatility":
        volatility = np.sqrt(periods_per_year * forecasts / horizon)
        positions = np.minimum(1.0, target_volatility / volatility)
    else:
        positions = np.sign(forecasts)
        for column, scale in scales.items():
            ratio = forecasts[column] / (position_scale * scale)
            positions[column] = np.clip(ratio, -1.0, 1.0)
    positions["buy_and_hold"] = 1.0
    return positions


def _backtests(
    close: np.ndarray,
    positions: pd.DataFrame,
    models: Sequence[str],
    baselines: Sequence[str],
    seeds: Sequence[int],
    commission: float,
    periods_per_year: float,
) -> pd.DataFrame:
    sharpe, total = _backtest_stats(
        jnp.asarray(close),
        jnp.asarray(positions.to_numpy(np.float64)),
        commission,
        periods_per_year,
    )
    per_column = {
        column: {"sharpe_ratio": float(s), "return_pct": float(r)}
        for column, s, r in zip(positions.columns, sharpe, total, strict=True)
    }
    return summaries(per_column, models, [*baselines, "buy_and_hold"], seeds)


def evaluate_forecasters(
    data: pd.DataFrame,
    *,
    target: str,
    horizon: int = 1,
    lookback: int = 20,
    train: int = 1000,
    test: int = 250,
    embargo: int | None = None,
    folds: int | None = None,
    models: Sequence[str] = MODELS,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    config: TrainConfig | None = None,
    sizes: ForecasterSizes | None = None,
    baselines: Mapping[str, Baseline] | None = None,
    progress: bool = True,
    commission: float = 0.001,
    position_scale: float = 0.1,
    target_volatility: float = 0.10,
    periods_per_year: float = 252.0,
) -> ForecastEvaluation:
    """Walk-forward evaluation of networks and baselines on one asset's bars.

    The procedure and every convention are in the module notes.

    Args:
        data: One asset's OHLCV frame with a UTC DatetimeIndex (validated).
        target: ``"return"`` (forward log return) or ``"volatility"`` (forward
            realized variance), over ``horizon`` bars.
        horizon: Bars ahead, >= 1.
        lookback: Bars per window, >= 1.
        train: Bars in each training span (its last 15% validates).
        test: Bars in each test block (folds step by ``test``).
        embargo: Bars after a test block that later training skips; ``None``:
            ``lookback - 1 + 33``, the windows and the features' warm-up.
        folds: Keep only the last ``folds`` folds; ``None``: all.
        models: Networks among :data:`MODELS`.
        seeds: Seeds of every network.
        config: Training settings (``TrainConfig()`` if ``None``).
        sizes: Network sizes (``ForecasterSizes()`` if ``None``).
        baselines: Name to :data:`Baseline`; ``None``:
            :func:`~neuroflux.research.forecast_inputs.default_baselines`.
        progress: Show a tqdm bar over the folds (stderr).
        commission: Proportional fee per order of the backtests.
        position_scale: ``k`` of the return positions ``mean / (k * scale)``.
        target_volatility: Annualised volatility aimed at by the volatility target's
            positions.
        periods_per_year: Bars per year (Sharpe ratios, volatility targeting).

    Returns:
        The :class:`ForecastEvaluation`.

    Raises:
        ValueError: An unknown target or model, too few bars for one fold (naming
            the argument), or no baseline.
        DataValidationError: Bad OHLCV data (naming the row and column).
    """
    check_choice(target, TARGETS, "target")
    models = check_models(models)
    seeds = tuple(int(seed) for seed in seeds)
    config = TrainConfig() if config is None else config
    sizes = ForecasterSizes() if sizes is None else sizes
    baselines = dict(
        default_baselines(target, horizon) if baselines is None else baselines
    )
    if not baselines:
        raise ValueError("baselines: expected at least one baseline")
    if target == "volatility" and config.loss != "gaussian_nll":
        raise ValueError(
            f"config.loss: the volatility target needs 'gaussian_nll' (the variance "
            f"forecast is mean² + scale²), got {config.loss!r}"
        )
    embargo = lookback - 1 + _FEATURE_WARMUP if embargo is None else embargo
    frame = validate_ohlcv(data, source=str(data.attrs.get("name", "<frame>")))
    needed = lookback - 1 + train + 2 * horizon + test
    if len(frame) < needed:
        raise ValueError(
            f"data: {len(frame)} bars are too short for one fold; lookback - 1 + "
            f"train + 2 * horizon + test = {needed} are needed"
        )
    close = frame["close"].to_numpy(np.float64)
    features = windows.feature_matrix(
        *(frame[c].to_numpy(np.float64) for c in ("open", "high", "low", "close")),
        frame["volume"].to_numpy(np.float64),
        timestamps_ns=frame.index.as_unit("ns").asi8,
    ).values
    targets = np.asarray(windows.make_targets(close, horizon, target))
    if target == "volatility":
        targets = np.where(targets > 0, targets, np.nan)
    X, y, sample_bars = windows.make_windows(features, targets, lookback)
    log_returns = np.asarray(feature_returns.log_returns(close))
    splits = windows.purged_walk_forward(
        len(frame), train, test, horizon=horizon, lookback=lookback, embargo=embargo
    )
    splits = splits[-folds:] if folds else splits
    columns = {name: [] for name in ["actual", *baselines]}
    columns |= {column(m, s): [] for m in models for s in seeds}
    scales = {column(m, s): [] for m in models for s in seeds}
    records, test_span = [], []
    for split in tqdm(splits, desc="folds", unit="fold", disable=not progress):
        train_mask, validation_mask, test_mask = split_samples(
            sample_bars, split, horizon
        )
        scaler = windows.fit_scaler(X[train_mask])
        scaled = np.asarray(scaler.transform(X))
        records.append(
            Fold(
                sample_bars[train_mask],
                sample_bars[validation_mask],
                sample_bars[test_mask],
                scaler,
            )
        )
        test_span.append(np.asarray(split.test))
        z = np.sqrt(y) if target == "volatility" else y
        networks = train_networks(
            models,
            scaled[train_mask],
            z[train_mask],
            scaled[validation_mask],
            z[validation_mask],
            scaled[test_mask],
            seeds=seeds,
            config=config,
            sizes=sizes,
        )
        for name, (mean, scale) in networks.items():
            if target == "volatility":
                mean = mean**2 + scale**2
            for row, seed in enumerate(seeds):
                columns[column(name, seed)].append(mean[row])
                scales[column(name, seed)].append(scale[row])
        fold = FoldData(
            scaled[train_mask],
            y[train_mask],
            scaled[test_mask],
            sample_bars[train_mask],
            sample_bars[test_mask],
            log_returns,
        )
        for name, baseline in baselines.items():
            columns[name].append(np.asarray(baseline(fold), np.float64))
        columns["actual"].append(y[test_mask])
    test_bars = np.concatenate([record.test_bars for record in records])
    predictions = pd.DataFrame(
        {name: np.concatenate(parts) for name, parts in columns.items()},
        index=frame.index[test_bars],
    )
    excluded = np.setdiff1d(np.concatenate(test_span), test_bars)
    point_only = config.loss == "mse"
    positions = _positions(
        target,
        predictions,
        {} if point_only else {k: np.concatenate(v) for k, v in scales.items()},
        horizon=horizon,
        position_scale=position_scale,
        target_volatility=target_volatility,
        periods_per_year=periods_per_year,
    )
    actual = predictions["actual"].to_numpy()
    per_column = {
        column: _score(target, predictions[column].to_numpy(), actual)
        for column in predictions.columns.drop("actual")
    }
    return ForecastEvaluation(
        target=target,
        models=models,
        baselines=tuple(baselines),
        seeds=seeds,
        predictions=predictions,
        positions=positions,
        metrics=summaries(per_column, models, baselines, seeds),
        dm_tests=_dm_tests(target, predictions, models, baselines, seeds, horizon),
        backtests=_backtests(
            close[test_bars],
            positions,
            models,
            baselines,
            seeds,
            commission,
            periods_per_year,
        ),
        folds=records,
        excluded_bars=frame.index[excluded],
    )
