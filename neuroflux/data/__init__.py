"""Market data: embedded real samples, synthetic generators, files and downloads."""

from neuroflux.data.files import REPAIRS, RepairedBars, read_ohlcv, repair_ohlcv
from neuroflux.data.samples import OHLCV_COLUMNS, list_samples, load_sample
from neuroflux.data.validation import DataValidationError, validate_ohlcv

__all__ = [
    "OHLCV_COLUMNS",
    "REPAIRS",
    "DataValidationError",
    "RepairedBars",
    "list_samples",
    "load_sample",
    "read_ohlcv",
    "repair_ohlcv",
    "validate_ohlcv",
]
