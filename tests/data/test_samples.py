import numpy as np
import pandas as pd
import pytest

from neuroflux.data import OHLCV_COLUMNS, list_samples, load_sample, validate_ohlcv

SINGLE = ["sp500", "nasdaq", "aapl", "ibm", "msft", "goog"]


@pytest.mark.parametrize("name", SINGLE)
def test_single_samples_are_valid_utc_float64_ohlcv(name):
    frame = load_sample(name)
    assert list(frame.columns) == list(OHLCV_COLUMNS)
    assert (frame.dtypes == "float64").all()
    assert frame.index.name == "timestamp" and str(frame.index.tz) == "UTC"
    validate_ohlcv(frame)
    assert frame.attrs["source"] and frame.attrs["license"]
    assert frame.attrs["synthetic"] is False


@pytest.mark.parametrize(
    ("name", "rows", "first", "last", "first_close"),
    [
        ("sp500", 5031, "1999-01-04", "2018-12-31", 1228.099976),
        ("nasdaq", 5031, "1999-01-04", "2018-12-31", 2208.050049),
        ("ibm", 3270, "2000-03-01", "2013-03-01", None),
        ("goog", 2148, "2004-08-19", "2013-03-01", None),
    ],
)
def test_sample_coverage_matches_the_source(name, rows, first, last, first_close):
    frame = load_sample(name)
    assert len(frame) == rows
    assert frame.index[0] == pd.Timestamp(first, tz="UTC")
    assert frame.index[-1] == pd.Timestamp(last, tz="UTC")
    if first_close is not None:
        assert frame["close"].iloc[0] == pytest.approx(first_close, rel=1e-12)


def test_adjustment_removes_split_jumps_and_keeps_raw_prices_on_request():
    raw = load_sample("aapl", adjusted=False)
    adjusted = load_sample("aapl")
    # AAPL split 2:1 on 2005-02-28: the raw close halves overnight.
    day = pd.Timestamp("2005-02-28", tz="UTC")
    before = raw.index[raw.index.get_loc(day) - 1]
    assert raw.at[day, "close"] / raw.at[before, "close"] < 0.55
    assert 0.9 < adjusted.at[day, "close"] / adjusted.at[before, "close"] < 1.1
    # One factor per day scales the prices and divides the volume.
    factor = adjusted["close"] / raw["close"]
    np.testing.assert_allclose(adjusted["open"] / raw["open"], factor, rtol=1e-12)
    np.testing.assert_allclose(raw["volume"] / adjusted["volume"], factor, rtol=1e-12)
    assert raw.attrs["adjusted"] is False and adjusted.attrs["adjusted"] is True


def test_us_stocks_panel_is_aligned_on_common_dates():
    panel = load_sample("us_stocks")
    assert panel.columns.names == ["field", "symbol"]
    assert list(panel["close"].columns) == ["aapl", "ibm", "msft", "goog"]
    assert panel.index[0] == pd.Timestamp("2004-08-19", tz="UTC")
    assert not panel.isna().any().any()
    ibm = load_sample("ibm")
    pd.testing.assert_series_equal(
        panel[("close", "ibm")], ibm["close"].loc[panel.index], check_names=False
    )
    assert panel.attrs["rows_per_symbol"]["goog"] == len(panel)


def test_list_samples_describes_each_sample():
    table = list_samples()
    assert {*SINGLE, "us_stocks", "us_indices"} == set(table.index)
    assert (table.loc["us_indices", "kind"], table.loc["sp500", "kind"]) == (
        "panel",
        "single",
    )


def test_unknown_sample_lists_valid_names():
    with pytest.raises(KeyError, match=r"sp500.*us_stocks"):
        load_sample("spx")
