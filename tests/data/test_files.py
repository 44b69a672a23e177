import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuroflux.data import OHLCV_COLUMNS, DataValidationError, read_ohlcv, repair_ohlcv


def valid_bars(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, rows)))
    open_ = close * np.exp(rng.normal(0, 0.005, rows))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, rows))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, rows))
    volume = rng.uniform(0, 1e6, rows).round(2)
    index = pd.date_range("2021-03-01", periods=rows, freq="h", tz="UTC")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=pd.DatetimeIndex(index, name="timestamp"),
    )


def write(frame: pd.DataFrame, path, fmt: str):
    """Writes timestamps as ISO strings so that single cells can be broken."""
    table = frame.astype(object).copy()
    table.insert(0, "timestamp", frame.index.strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    table = table.reset_index(drop=True)
    if fmt == "csv":
        table.to_csv(path, index=False)
    else:
        table.astype(str).to_parquet(path)
    return path


DEFECTS = [
    "high_below_body",
    "low_above_body",
    "negative_volume",
    "non_positive_price",
    "missing_value",
    "unparsable_value",
    "duplicate_timestamp",
    "unsorted_timestamp",
    "naive_timestamp",
    "other_offset",
]


def break_row(table: pd.DataFrame, defect: str, row: int, column: str):
    """Breaks one row and returns the (row, column) the error must name."""
    o, c = float(table.at[row, "open"]), float(table.at[row, "close"])
    if defect == "high_below_body":
        table.at[row, "high"] = max(o, c) * 0.999
        return row, "high"
    if defect == "low_above_body":
        table.at[row, "low"] = min(o, c) * 1.001
        return row, "low"
    if defect == "negative_volume":
        table.at[row, "volume"] = -1.0
        return row, "volume"
    if defect == "non_positive_price":
        table.at[row, column] = 0.0
        return row, column
    if defect == "missing_value":
        table.at[row, column] = ""
        return row, column
    if defect == "unparsable_value":
        table.at[row, column] = "12,5x"
        return row, column
    stamps = table["timestamp"]
    if defect == "duplicate_timestamp":
        table.at[row, "timestamp"] = stamps[row - 1]
        return row, "timestamp"
    if defect == "unsorted_timestamp":
        table.loc[[row - 1, row], "timestamp"] = [stamps[row], stamps[row - 1]]
        return row, "timestamp"
    if defect == "naive_timestamp":
        table.at[row, "timestamp"] = stamps[row].replace("+00:00", "")
        return row, "timestamp"
    table.at[row, "timestamp"] = stamps[row].replace("+00:00", "+01:00")
    return row, "timestamp"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.integers(3, 40),
    seed=st.integers(0, 2**16),
    defect=st.sampled_from(DEFECTS),
    fmt=st.sampled_from(["csv", "parquet"]),
    position=st.floats(0, 1, exclude_max=True),
    column=st.sampled_from(["open", "high", "low", "close"]),
)
def test_each_broken_file_names_the_row_and_column(
    tmp_path, rows, seed, defect, fmt, position, column
):
    table = valid_bars(rows, seed).astype(object)
    table.insert(0, "timestamp", table.index.strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    table = table.reset_index(drop=True)
    row = 1 + int(position * (rows - 1))
    broken_row, broken_column = break_row(table, defect, row, column)
    path = tmp_path / f"bars.{fmt}"
    if fmt == "csv":
        table.to_csv(path, index=False)
    else:
        table.astype(str).to_parquet(path)

    with pytest.raises(DataValidationError) as error:
        read_ohlcv(path)

    first = error.value.violations[0]
    assert first["row"] == broken_row + 1
    assert first["column"] == broken_column
    assert first["line"] == (broken_row + 2 if fmt == "csv" else None)
    message = str(error.value)
    assert str(path) in message
    assert f"column '{broken_column}'" in message
    assert (f"line {broken_row + 2}" if fmt == "csv" else f"row {broken_row + 1}") in (
        message
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_valid_file_round_trips_exactly(tmp_path, fmt):
    bars = valid_bars(50, seed=1)
    loaded = read_ohlcv(write(bars, tmp_path / f"ok.{fmt}", fmt))
    pd.testing.assert_frame_equal(loaded, bars, check_exact=True, check_freq=False)
    assert loaded.attrs["source"].endswith(f"ok.{fmt}")


def test_parquet_written_by_pandas_with_a_utc_index(tmp_path):
    bars = valid_bars(20, seed=2)
    bars.to_parquet(tmp_path / "indexed.parquet")
    loaded = read_ohlcv(tmp_path / "indexed.parquet")
    pd.testing.assert_frame_equal(loaded, bars, check_freq=False)


def test_naive_datetime_column_needs_an_explicit_timezone(tmp_path):
    bars = valid_bars(10, seed=3)
    naive = bars.tz_localize(None)
    naive.to_parquet(tmp_path / "naive.parquet")
    with pytest.raises(DataValidationError, match="assume_timezone"):
        read_ohlcv(tmp_path / "naive.parquet")
    loaded = read_ohlcv(tmp_path / "naive.parquet", assume_timezone="America/New_York")
    assert loaded.index[0] == pd.Timestamp("2021-03-01 05:00", tz="UTC")


def test_date_only_csv_with_assumed_timezone(tmp_path):
    path = tmp_path / "daily.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2020-01-02,10,11,9,10.5,100\n"
        "2020-01-03,10.5,12,10,11,200\n"
    )
    with pytest.raises(DataValidationError, match=r"line 2 \(row 1\).*'timestamp'"):
        read_ohlcv(path)
    bars = read_ohlcv(path, assume_timezone="UTC")
    assert list(bars.columns) == list(OHLCV_COLUMNS)
    assert bars.index.tz is not None and str(bars.index.tz) == "UTC"
    np.testing.assert_array_equal(bars["close"], [10.5, 11.0])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("timestamp,open,high,low,close", r"missing columns \['volume'\]"),
        ("timestamp,open,high,low,close,volume,vwap", r"extra columns \['vwap'\]"),
        ("open,high,low,close,volume,when", "no timestamp column"),
    ],
)
def test_missing_and_extra_columns_are_named(tmp_path, header, expected):
    path = tmp_path / "columns.csv"
    path.write_text(header + "\n")
    with pytest.raises(DataValidationError, match=expected) as error:
        read_ohlcv(path)
    assert str(path) in str(error.value)


def test_every_violation_is_counted_and_first_ones_shown(tmp_path):
    table = valid_bars(30, seed=4)
    table["volume"] = -1.0
    with pytest.raises(DataValidationError, match=r"30 problems.*and 25 more") as error:
        read_ohlcv(write(table, tmp_path / "volume.csv", "csv"))
    assert [v["line"] for v in error.value.violations] == [2, 3, 4, 5, 6]


def test_repairs_only_what_is_asked_and_reports_every_change(tmp_path):
    table = valid_bars(8, seed=5).astype(object)
    table.insert(0, "timestamp", table.index.strftime("%Y-%m-%dT%H:%M:%SZ"))
    table = table.reset_index(drop=True)
    table.at[2, "close"] = ""  # missing
    table.at[5, "timestamp"] = table.at[4, "timestamp"]  # duplicate of row 4
    original_high = float(table.at[6, "high"])
    table.at[6, "high"] = float(table.at[6, "close"]) * 0.99  # below the body
    path = tmp_path / "repair.csv"
    table.to_csv(path, index=False)

    with pytest.raises(DataValidationError):
        repair_ohlcv(path, ["drop_missing", "drop_duplicate_timestamps"])

    repaired = repair_ohlcv(
        path, ["widen_high_low", "drop_missing", "drop_duplicate_timestamps"]
    )
    changes = repaired.changes
    assert list(changes["repair"]) == [
        "drop_missing",
        "drop_duplicate_timestamps",
        "widen_high_low",
    ]
    assert list(changes["line"]) == [4, 7, 8]
    assert changes.iloc[0]["column"] == "close"
    widened = changes.iloc[2]
    assert widened["column"] == "high"
    assert widened["after"] == pytest.approx(
        max(table.at[6, "open"], table.at[6, "close"])
    )
    assert widened["after"] != original_high
    assert len(repaired.bars) == 6


def test_sort_repair_reports_moved_rows(tmp_path):
    bars = valid_bars(5, seed=6)
    shuffled = bars.iloc[[0, 2, 1, 3, 4]]
    path = write(shuffled, tmp_path / "shuffled.csv", "csv")
    with pytest.raises(DataValidationError, match="increasing order"):
        read_ohlcv(path)
    repaired = repair_ohlcv(path, ["sort_timestamps"])
    pd.testing.assert_frame_equal(repaired.bars, bars, check_freq=False)
    moved = repaired.changes[["line", "before", "after"]].to_numpy().tolist()
    assert moved == [[4, 3, 2], [3, 2, 3]]


def test_unknown_repair_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="widen_high_low"):
        repair_ohlcv(tmp_path / "x.csv", ["fill_forward"])


def test_header_only_file_is_an_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("timestamp,open,high,low,close,volume\n")
    with pytest.raises(DataValidationError, match="no data rows"):
        read_ohlcv(path)


def test_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01T00:00:00Z,10,11,9,10.5,100\n"
        "\n"
        "2024-01-03T00:00:00Z,10,11,9,10.5,-1\n"
    )
    with pytest.raises(DataValidationError) as error:
        read_ohlcv(path)
    assert (error.value.violations[0]["line"], error.value.violations[0]["row"]) == (
        3,
        2,
    )  # the blank line itself is row 2, on line 3
    path.write_text(
        path.read_text().replace("\n\n", '\n"2024-01-02T00:00:00Z",10,11,9,10.5,100\n')
    )
    with pytest.raises(DataValidationError, match=r"line 4 \(row 3\)"):
        read_ohlcv(path)


def test_rows_keep_their_file_numbers_after_a_repair(tmp_path):
    table = valid_bars(8, seed=7)
    table.iloc[1, 3] = np.nan  # row 2: missing close, dropped by the repair
    table.iloc[5, 4] = -1.0  # row 6: negative volume, not repairable
    table.to_parquet(tmp_path / "bars.parquet")
    with pytest.raises(DataValidationError) as error:
        repair_ohlcv(tmp_path / "bars.parquet", ["drop_missing"])
    (violation,) = error.value.violations
    assert (violation["row"], violation["line"], violation["column"]) == (
        6,
        None,
        "volume",
    )


def test_columns_differing_only_in_case_are_an_error(tmp_path):
    path = tmp_path / "case.csv"
    path.write_text("timestamp,open,Open,high,low,close,volume\n")
    with pytest.raises(DataValidationError, match=r"\['open', 'Open'\]"):
        read_ohlcv(path)


def test_unreadable_files_are_data_errors_naming_the_file(tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("timestamp,open,high,low,close,volume\n1,2,3,4,5,6,7,8\n")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    for path in (ragged, garbage):
        with pytest.raises(
            DataValidationError, match=r"line 2: expected 6|readable"
        ) as error:
            read_ohlcv(path)
        assert str(path) in str(error.value)


def test_local_times_skipped_or_repeated_by_dst_are_errors(tmp_path):
    path = tmp_path / "dst.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-03-10T01:30:00,10,11,9,10.5,100\n"
        "2024-03-10T02:30:00,10,11,9,10.5,100\n"
    )
    with pytest.raises(DataValidationError, match=r"line 3 \(row 2\)") as error:
        read_ohlcv(path, assume_timezone="America/New_York")
    assert "exists once in America/New_York" in str(error.value)
    with pytest.raises(DataValidationError, match="not a known time zone"):
        read_ohlcv(path, assume_timezone="Mars/Olympus_Mons")


def test_message_counts_every_unparsable_value(tmp_path):
    table = valid_bars(12, seed=8).astype(object)
    table["open"] = "n/a?"
    with pytest.raises(DataValidationError, match=r"12 problems.*and 7 more"):
        read_ohlcv(
            write(table.astype(float, errors="ignore"), tmp_path / "u.csv", "csv")
        )


def test_parquet_with_an_unnamed_datetime_index(tmp_path):
    bars = valid_bars(5, seed=9).rename_axis(None)
    bars.to_parquet(tmp_path / "unnamed.parquet")
    loaded = read_ohlcv(tmp_path / "unnamed.parquet")
    np.testing.assert_array_equal(loaded["close"], bars["close"])


def test_repairs_must_be_a_list_of_names(tmp_path):
    with pytest.raises(TypeError, match="list of names"):
        repair_ohlcv(tmp_path / "x.csv", "drop_missing")
