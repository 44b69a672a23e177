"""Forecasting: feature windows, purged walk-forward splits, training and forecast metrics."""
