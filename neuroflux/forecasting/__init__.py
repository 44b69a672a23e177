"""Forecasting: feature windows, purged walk-forward splits, training, metrics."""
