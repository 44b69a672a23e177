"""Market data: embedded real samples, synthetic generators, files and downloads."""

from neuroflux.data.downloads import fetch_ohlcv, query_ohlcv_cache
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
