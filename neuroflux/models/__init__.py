"""Forecasting networks in flax.nnx: transformer encoder, MLP and linear model."""

from neuroflux.models.forecasters import (
    Forecast,
    LinearForecaster,
    MLPForecaster,
    TransformerForecaster,
    gaussian_nll,
    mse_loss,
    sinusoidal_encoding,
)

__all__ = [
    "Forecast",
    "LinearForecaster",
    "MLPForecaster",
    "TransformerForecaster",
    "gaussian_nll",
    "mse_loss",
    "sinusoidal_encoding",
]
