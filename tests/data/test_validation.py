import numpy as np
import pandas as pd
import pytest

from neuroflux.data import DataValidationError, load_sample, validate_ohlcv


def test_valid_frame_is_returned_unchanged():
    bars = load_sample("ibm").iloc[:100]
    assert validate_ohlcv(bars) is bars


def test_frame_needs_a_utc_datetime_index():
    bars = load_sample("ibm").iloc[:10]
    with pytest.raises(DataValidationError, match=r"ibm: index: expected a UTC"):
        validate_ohlcv(bars.tz_convert("America/New_York"))
    with pytest.raises(DataValidationError, match="found RangeIndex"):
        validate_ohlcv(bars.reset_index(drop=True), source="ibm")


def test_frame_needs_every_column():
    bars = load_sample("ibm").iloc[:10].drop(columns="volume")
    with pytest.raises(DataValidationError, match=r"missing columns \['volume'\]"):
        validate_ohlcv(bars)


def test_frame_violations_name_row_timestamp_and_column():
    bars = load_sample("ibm").iloc[:10].copy()
    bars.iloc[7, bars.columns.get_loc("low")] = np.nan
    with pytest.raises(DataValidationError) as error:
        validate_ohlcv(bars, source="my frame")
    (violation,) = error.value.violations
    assert violation["row"] == 8 and violation["line"] is None
    assert violation["column"] == "low"
    assert violation["timestamp"] == bars.index[7].isoformat()
    assert str(error.value).startswith("my frame: 1 problem: row 8, ")


def test_each_rule_reports_its_first_rows_and_counts_all():
    bars = load_sample("sp500").iloc[:40].copy()
    bars["volume"] = -1.0
    bars.iloc[3, 0] = 0.0  # open
    with pytest.raises(DataValidationError, match="42 problems") as error:
        validate_ohlcv(bars)
    columns = [v["column"] for v in error.value.violations]
    # The zero open also puts low above min(open, close).
    assert columns.count("volume") == 5 and columns.count("open") == 1
    assert columns.count("low") == 1
    assert error.value.violations[0]["row"] == 1


def test_duplicate_and_unsorted_timestamps():
    bars = load_sample("sp500").iloc[:6]
    shuffled = bars.iloc[[0, 1, 1, 3, 2, 5]]
    with pytest.raises(DataValidationError) as error:
        validate_ohlcv(shuffled)
    found = [(v["row"], v["expected"]) for v in error.value.violations]
    assert found == [
        (3, "a timestamp after the previous row's"),
        (5, "timestamps in increasing order"),
    ]
    assert isinstance(error.value, ValueError)
    assert pd.Timestamp(error.value.violations[1]["timestamp"]) == bars.index[2]
