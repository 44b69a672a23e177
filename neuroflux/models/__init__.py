"""Forecasting networks in flax.nnx: transformer encoder, MLP and linear model."""
