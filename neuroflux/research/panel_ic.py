"""Walk-forward evaluation of forecasters by information coefficient on a panel.

:func:`evaluate_panel_ic` trains the networks and baselines of
:mod:`neuroflux.research.forecasts` on the folds of a panel's time axis and scores
their per-period, cross-sectional IC and rank IC on the test periods
(:class:`PanelICEvaluation`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neuroflux.forecasting import metrics, windows
from neuroflux.forecasting.training import TrainConfig
from neuroflux.research.forecast_inputs import (
    Baseline,
    FoldData,
    ForecasterSizes,
    ridge,
)
from neuroflux.research.forecasts import (
    check_models,
    column,
    split_samples,
    summaries,
    train_networks,
)

__all__ = ["PanelICEvaluation", "evaluate_panel_ic"]


@dataclasses.dataclass(frozen=True, eq=False)
class PanelICEvaluation:
    """Per-period information coefficients of forecasts on a panel's test periods.

    Attributes:
        ic: Pearson IC across assets, a row per test period and a column per
            baseline and per network and seed.
        rank_ic: Spearman rank IC, the same layout.
        summary: A row per network and baseline: ``ic``, ``rank_ic`` (means over
            periods) and ``icir``, as ``_mean``/``_std`` over seeds.
    """

    ic: pd.DataFrame
    rank_ic: pd.DataFrame
    summary: pd.DataFrame


def evaluate_panel_ic(
    features: np.ndarray,
    returns: np.ndarray,
    *,
    lookback: int = 1,
    train: int = 500,
    test: int = 250,
    embargo: int = 0,
    models: Sequence[str] = ("linear",),
    seeds: Sequence[int] = (0,),
    config: TrainConfig | None = None,
    sizes: ForecasterSizes | None = None,
    baselines: Mapping[str, Baseline] | None = None,
    progress: bool = True,
) -> PanelICEvaluation:
    """Walk-forward IC evaluation of networks and baselines on a panel.

    Samples are :func:`~neuroflux.forecasting.make_panel_windows` of all assets; the
    folds, the validation split and the scaling are those of
    :func:`~neuroflux.research.forecasts.evaluate_forecasters` over the time axis, with
    ``horizon = 1`` (``returns`` are the forward returns aligned with the features, as
    :func:`~neuroflux.forecasting.planted_signal_panel` draws them). Networks forecast
    the standardised returns; IC and rank IC are cross-sectional, per test period
    (:func:`~neuroflux.forecasting.information_coefficient`), ICIR their mean over
    standard deviation (:func:`~neuroflux.forecasting.icir`).

    Args:
        features: Per-period features [T, A, F].
        returns: Forward returns [T, A].
        lookback: Periods per window.
        train, test, embargo: Fold layout, as
            :func:`~neuroflux.research.forecasts.evaluate_forecasters`.
        models: Networks among :data:`~neuroflux.research.forecasts.MODELS`.
        seeds: Seeds of every network.
        config: Training settings (``TrainConfig()`` if ``None``).
        sizes: Network sizes (``ForecasterSizes()`` if ``None``).
        baselines: Name to :data:`Baseline` (``log_returns`` is ``None``); ``None``:
            ridge regression.
        progress: Show a tqdm bar over the folds (stderr).

    Returns:
        The :class:`PanelICEvaluation`.
    """
    models = check_models(models)
    seeds = tuple(int(seed) for seed in seeds)
    config = TrainConfig() if config is None else config
    sizes = ForecasterSizes() if sizes is None else sizes
    baselines = dict({"ridge": ridge} if baselines is None else baselines)
    X, y, times, assets = windows.make_panel_windows(features, returns, lookback)
    n_times, n_assets = np.shape(returns)
    splits = windows.purged_walk_forward(
        n_times, train, test, horizon=1, lookback=lookback, embargo=embargo
    )
    names = [*baselines, *(column(m, s) for m in models for s in seeds)]
    grids = {name: np.full((n_times, n_assets), np.nan) for name in names}
    test_times = []
    for split in tqdm(splits, desc="folds", unit="fold", disable=not progress):
        train_mask, validation_mask, test_mask = split_samples(times, split, 1)
        scaler = windows.fit_scaler(X[train_mask])
        scaled = np.asarray(scaler.transform(X))
        cells = (times[test_mask], assets[test_mask])
        networks = train_networks(
            models,
            scaled[train_mask],
            y[train_mask],
            scaled[validation_mask],
            y[validation_mask],
            scaled[test_mask],
            seeds=seeds,
            config=config,
            sizes=sizes,
        )
        for name, (mean, _) in networks.items():
            for row, seed in enumerate(seeds):
                grids[column(name, seed)][cells] = mean[row]
        fold = FoldData(
            scaled[train_mask],
            y[train_mask],
            scaled[test_mask],
            times[train_mask],
            times[test_mask],
        )
        for name, baseline in baselines.items():
            grids[name][cells] = baseline(fold)
        test_times.append(np.unique(times[test_mask]))
    periods = np.concatenate(test_times)
    actual = np.asarray(returns, np.float64)[periods]
    ic = pd.DataFrame(
        {
            name: np.asarray(metrics.information_coefficient(grid[periods], actual))
            for name, grid in grids.items()
        },
        index=pd.Index(periods, name="period"),
    )
    rank_ic = pd.DataFrame(
        {
            name: np.asarray(
                metrics.rank_information_coefficient(grid[periods], actual)
            )
            for name, grid in grids.items()
        },
        index=ic.index,
    )
    per_column = {
        name: {
            "ic": float(np.nanmean(ic[name])),
            "rank_ic": float(np.nanmean(rank_ic[name])),
            "icir": float(metrics.icir(ic[name].to_numpy())),
        }
        for name in names
    }
    return PanelICEvaluation(
        ic=ic,
        rank_ic=rank_ic,
        summary=summaries(per_column, models, baselines, seeds),
    )
