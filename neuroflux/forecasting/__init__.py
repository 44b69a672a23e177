"""Forecasting: feature windows, purged walk-forward splits, training, metrics."""

from neuroflux.forecasting.metrics import (
    diebold_mariano,
    directional_accuracy,
    icir,
    information_coefficient,
    mse,
    qlike,
    rank_information_coefficient,
)
from neuroflux.forecasting.synthetic import PlantedPanel, planted_signal_panel
from neuroflux.forecasting.training import (
    ModelFactory,
    TrainConfig,
    TrainResult,
    make_data_mesh,
    make_optimizer,
    predict,
    train,
    train_seeds,
)
from neuroflux.forecasting.windows import (
    FeatureMatrix,
    Scaler,
    feature_matrix,
    fit_scaler,
    make_panel_windows,
    make_targets,
    make_windows,
    purged_walk_forward,
)

__all__ = [
    "FeatureMatrix",
    "ModelFactory",
    "PlantedPanel",
    "Scaler",
    "TrainConfig",
    "TrainResult",
    "diebold_mariano",
    "directional_accuracy",
    "feature_matrix",
    "fit_scaler",
    "icir",
    "information_coefficient",
    "make_data_mesh",
    "make_optimizer",
    "make_panel_windows",
    "make_targets",
    "make_windows",
    "mse",
    "planted_signal_panel",
    "predict",
    "purged_walk_forward",
    "qlike",
    "rank_information_coefficient",
    "train",
    "train_seeds",
]
