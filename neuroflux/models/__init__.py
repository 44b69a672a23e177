"""Forecasting networks in flax.nnx: a transformer encoder, an MLP and a linear model."""
