"""Market data: embedded real samples, synthetic generators, files and downloads.

``fetch_ohlcv`` and ``query_ohlcv_cache`` load ccxt and DuckDB on first use, so that
reading samples and files stays quick to import.
"""

import importlib

from neuroflux.data.files import REPAIRS, RepairedBars, read_ohlcv, repair_ohlcv
from neuroflux.data.samples import list_samples, load_sample
from neuroflux.data.synthetic import (
    VENUE_PRESETS,
    GarchParams,
    SyntheticMarketConfig,
    VenueConfig,
    periods_per_year,
    synthetic_ohlcv,
    synthetic_panel,
    synthetic_venues,
)
from neuroflux.data.validation import (
    OHLCV_COLUMNS,
    DataValidationError,
    validate_ohlcv,
)

_DOWNLOADS = ("fetch_ohlcv", "query_ohlcv_cache")


def __getattr__(name: str):
    if name in _DOWNLOADS:
        return getattr(importlib.import_module("neuroflux.data.downloads"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "OHLCV_COLUMNS",
    "REPAIRS",
    "VENUE_PRESETS",
    "DataValidationError",
    "GarchParams",
    "RepairedBars",
    "SyntheticMarketConfig",
    "VenueConfig",
    "fetch_ohlcv",
    "list_samples",
    "load_sample",
    "periods_per_year",
    "query_ohlcv_cache",
    "read_ohlcv",
    "repair_ohlcv",
    "synthetic_ohlcv",
    "synthetic_panel",
    "synthetic_venues",
    "validate_ohlcv",
]
