"""fetch_ohlcv and query_ohlcv_cache: real ccxt client against a loopback Binance."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import ccxt
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroflux.data import downloads
from neuroflux.data.downloads import fetch_ohlcv, query_ohlcv_cache
from neuroflux.data.validation import DataValidationError

try:
    from .binance_server import BinanceServer, Fault
    from .conftest import make_binance_client
except ImportError:  # tests/data is not a package: pytest put it on sys.path.
    from binance_server import BinanceServer, Fault
    from conftest import make_binance_client

MINUTE = 60_000
HOUR = 60 * MINUTE
T0 = 1_706_745_600_000  # 2024-02-01 00:00 UTC
KLINES = "/api/v3/klines"


def ms(moment: str) -> int:
    return pd.Timestamp(moment, tz="UTC").as_unit("ns").value // 1_000_000


def at(milliseconds: int) -> pd.Timestamp:
    return pd.Timestamp(milliseconds, unit="ms", tz="UTC")


def expected_frame(
    server: BinanceServer, symbol: str, timeframe: str, start: int, end: int
) -> pd.DataFrame:
    rows = server.candles(symbol.replace("/", ""), timeframe, start, end)
    frame = pd.DataFrame(
        [row[1:] for row in rows],
        columns=["open", "high", "low", "close", "volume"],
        dtype="float64",
    )
    frame.index = pd.DatetimeIndex(
        pd.to_datetime([row[0] for row in rows], unit="ms", utc=True).as_unit("us"),
        name="timestamp",
    )
    return frame


def fetch(
    client: ccxt.Exchange,
    cache_dir: Path | None,
    start: int,
    end: int,
    symbol: str = "BTC/USDT",
    timeframe: str = "1m",
    **options: object,
) -> pd.DataFrame:
    return fetch_ohlcv(
        "binance",
        symbol,
        timeframe,
        at(start),
        at(end),
        cache_dir=cache_dir,
        client=client,
        retry_delay=0.001,
        **options,
    )


def starts(server: BinanceServer) -> list[tuple[int, int]]:
    """(startTime, limit) of every klines request so far."""
    return [(int(p["startTime"]), int(p["limit"])) for p in server.requests_to(KLINES)]


def cached_bar_count(cache_dir: Path) -> int:
    return int(query_ohlcv_cache("SELECT count(*) AS n FROM ohlcv", cache_dir)["n"][0])


def test_full_download_equals_the_server_candles_across_pages(
    binance_server, binance_client, tmp_path
):
    end = T0 + 2500 * MINUTE
    frame = fetch(binance_client, tmp_path, T0, end)

    expected = expected_frame(binance_server, "BTC/USDT", "1m", T0, end)
    pd.testing.assert_frame_equal(frame, expected, check_freq=False)
    assert len(frame) == 2500 and frame.index[-1] == at(end - MINUTE)
    assert list(frame.dtypes) == [np.float64] * 5
    assert str(frame.index.tz) == "UTC" and frame.index.name == "timestamp"
    assert frame.attrs == {
        "name": "binance:BTC/USDT:1m",
        "source": "ccxt binance (downloaded)",
        "synthetic": False,
    }
    assert starts(binance_server) == [
        (T0, 1000),
        (T0 + 1000 * MINUTE, 1000),
        (T0 + 2000 * MINUTE, 500),
    ]
    assert binance_server.requests_to("/api/v3/exchangeInfo") == [{}]
    assert {r.path for r in binance_server.requests} == {"/api/v3/exchangeInfo", KLINES}


def test_rerun_makes_no_request_and_naive_times_are_utc(
    binance_server, binance_client, tmp_path
):
    first = fetch(binance_client, tmp_path, T0, T0 + 1500 * MINUTE)
    count = len(binance_server.requests)
    again = fetch_ohlcv(
        "binance",
        "BTC/USDT",
        "1m",
        "2024-02-01 00:00",  # naive: UTC
        pd.Timestamp("2024-02-01 21:00", tz="Etc/GMT+4"),  # 2024-02-02 01:00 UTC
        cache_dir=tmp_path,
        client=binance_client,
    )
    pd.testing.assert_frame_equal(again, first)
    assert len(binance_server.requests) == count
    offline = fetch_ohlcv(  # no client: a cached range needs no network at all
        "binance",
        "BTC/USDT",
        "1m",
        at(T0),
        at(T0 + 100 * MINUTE),
        cache_dir=tmp_path,
        max_retries=0,
    )
    pd.testing.assert_frame_equal(offline, first.iloc[:100])


def test_extension_downloads_only_the_new_bars(
    binance_server, binance_client, tmp_path
):
    fetch(binance_client, tmp_path, T0, T0 + 1500 * MINUTE)
    before = len(starts(binance_server))

    frame = fetch(binance_client, tmp_path, T0 - 200 * MINUTE, T0 + 2600 * MINUTE)

    assert starts(binance_server)[before:] == [
        (T0 - 200 * MINUTE, 200),
        (T0 + 1500 * MINUTE, 1000),
        (T0 + 2500 * MINUTE, 100),
    ]
    expected = expected_frame(
        binance_server, "BTC/USDT", "1m", T0 - 200 * MINUTE, T0 + 2600 * MINUTE
    )
    pd.testing.assert_frame_equal(frame, expected, check_freq=False)


@pytest.fixture(scope="module")
def cached_span(tmp_path_factory):
    with BinanceServer() as server:
        client = make_binance_client(server)
        cache_dir = tmp_path_factory.mktemp("cache")
        fetch(client, cache_dir, T0, T0 + 3000 * MINUTE)
        yield server, client, cache_dir


@settings(max_examples=25, deadline=None)
@given(
    start=st.integers(0, 3000 * MINUTE - 1),
    length=st.integers(1, 3000 * MINUTE),
)
def test_any_window_inside_the_cache_is_served_without_requests(
    cached_span, start, length
):
    server, client, cache_dir = cached_span
    count = len(server.requests)
    start = T0 + start
    end = min(start + length, T0 + 3000 * MINUTE)

    frame = fetch(client, cache_dir, start, end)

    assert len(server.requests) == count
    expected = expected_frame(server, "BTC/USDT", "1m", start, end)
    pd.testing.assert_frame_equal(frame, expected, check_freq=False)


def test_stretch_without_trading_is_not_filled_nor_asked_again(
    binance_server, binance_client, tmp_path
):
    binance_server.gaps = [(T0 + 990 * MINUTE, T0 + 1030 * MINUTE)]
    frame = fetch(binance_client, tmp_path, T0, T0 + 1500 * MINUTE)
    assert len(frame) == 1460
    assert not frame.index.isin(
        pd.date_range(at(T0 + 990 * MINUTE), periods=40, freq="min")
    ).any()
    count = len(binance_server.requests)
    fetch(binance_client, tmp_path, T0 + 995 * MINUTE, T0 + 1025 * MINUTE)
    assert len(binance_server.requests) == count


def test_range_from_before_the_listing_starts_at_the_first_bar(
    binance_server, binance_client, tmp_path
):
    listing = ms("2020-01-01")
    frame = fetch(
        binance_client,
        tmp_path,
        listing - 30 * HOUR,
        listing + 20 * HOUR,
        timeframe="1h",
    )
    assert frame.index[0] == at(listing) and len(frame) == 20
    count = len(binance_server.requests)
    fetch(
        binance_client,
        tmp_path,
        listing - 10 * HOUR,
        listing + 5 * HOUR,
        timeframe="1h",
    )
    assert len(binance_server.requests) == count


def test_cache_layout_is_one_file_per_month(binance_server, binance_client, tmp_path):
    start, end = ms("2024-01-30"), ms("2024-02-02")
    fetch(binance_client, tmp_path, start, end, timeframe="1h")

    folder = tmp_path / "ohlcv" / "binance" / "BTC-USDT" / "1h"
    assert sorted(p.name for p in folder.glob("*.parquet")) == [
        "2024-01.parquet",
        "2024-02.parquet",
    ]
    january = pd.read_parquet(folder / "2024-01.parquet")
    assert len(january) == 48 and set(january["symbol"]) == {"BTC/USDT"}
    assert january["timestamp"].max() == pd.Timestamp("2024-01-31 23:00", tz="UTC")
    assert not list(folder.glob("*.tmp"))


@pytest.mark.parametrize(
    "fault",
    [
        Fault(429, retry_after="0"),
        Fault(418, retry_after="0"),
        Fault(500),
        Fault(502),
        Fault(503),
    ],
    ids=lambda fault: str(fault.status),
)
def test_transient_errors_are_retried(binance_server, binance_client, tmp_path, fault):
    binance_server.queue_faults(KLINES, [None, fault, fault])
    frame = fetch(binance_client, tmp_path, T0, T0 + 1500 * MINUTE)

    expected = expected_frame(binance_server, "BTC/USDT", "1m", T0, T0 + 1500 * MINUTE)
    pd.testing.assert_frame_equal(frame, expected, check_freq=False)
    assert [since for since, _ in starts(binance_server)] == [T0] + [
        T0 + 1000 * MINUTE
    ] * 3


def test_market_list_request_is_retried(binance_server, binance_client, tmp_path):
    binance_server.queue_faults("/api/v3/exchangeInfo", [Fault(502), Fault(429)])
    frame = fetch(binance_client, tmp_path, T0, T0 + 10 * MINUTE)
    assert len(frame) == 10
    assert len(binance_server.requests_to("/api/v3/exchangeInfo")) == 3


def test_request_timeout_is_retried(binance_server, tmp_path):
    client = make_binance_client(binance_server, timeout_ms=800)
    binance_server.queue_faults(KLINES, [Fault(delay=1.5)])
    frame = fetch(client, tmp_path, T0, T0 + 500 * MINUTE)
    assert len(frame) == 500
    # Two requests normally; more only if a loaded machine slows a normal answer.
    assert [since for since, _ in starts(binance_server)][:2] == [T0, T0]


def test_retry_after_header_is_honoured(binance_server, binance_client, tmp_path):
    binance_server.queue_faults(KLINES, [Fault(429, retry_after="0.4")])
    began = time.monotonic()
    fetch(binance_client, tmp_path, T0, T0 + 10 * MINUTE)
    assert time.monotonic() - began >= 0.4
    assert len(starts(binance_server)) == 2


def test_long_ban_is_raised_at_once(binance_server, binance_client, tmp_path):
    binance_server.queue_faults(KLINES, [Fault(418, retry_after="3600")])
    with pytest.raises(ccxt.DDoSProtection, match="asks to wait 3600 s"):
        fetch(binance_client, tmp_path, T0, T0 + 10 * MINUTE)
    assert len(starts(binance_server)) == 1


def test_persistent_failure_keeps_completed_pages_and_a_later_run_resumes(
    binance_server, binance_client, tmp_path
):
    end = T0 + 3500 * MINUTE
    binance_server.queue_faults(KLINES, [None, None])
    binance_server.set_persistent_fault(KLINES, Fault(503))
    page_three = at(T0 + 2000 * MINUTE).isoformat()

    with pytest.raises(ccxt.ExchangeNotAvailable) as raised:
        fetch(binance_client, tmp_path, T0, end, max_retries=2)

    message = str(raised.value)
    assert "binance BTC/USDT 1m" in message and page_three in message
    assert "after 2 retries" in message
    assert len(starts(binance_server)) == 2 + 3
    assert cached_bar_count(tmp_path) == 2000
    count = len(binance_server.requests)
    fetch(binance_client, tmp_path, T0, T0 + 2000 * MINUTE)
    assert len(binance_server.requests) == count

    binance_server.set_persistent_fault(KLINES, None)
    frame = fetch(binance_client, tmp_path, T0, end)
    assert starts(binance_server)[5:] == [
        (T0 + 2000 * MINUTE, 1000),
        (T0 + 3000 * MINUTE, 500),
    ]
    expected = expected_frame(binance_server, "BTC/USDT", "1m", T0, end)
    pd.testing.assert_frame_equal(frame, expected, check_freq=False)


def test_unknown_symbol_fails_at_once(binance_server, binance_client, tmp_path):
    with pytest.raises(ccxt.BadSymbol):
        fetch(binance_client, tmp_path, T0, T0 + HOUR, "DOGE/USDT")
    assert binance_server.requests_to(KLINES) == []
    assert len(binance_server.requests_to("/api/v3/exchangeInfo")) == 1


def test_symbol_rejected_by_the_exchange_fails_without_retry(
    binance_server, binance_client, tmp_path
):
    binance_server.set_persistent_fault(
        KLINES, Fault(400, body={"code": -1121, "msg": "Invalid symbol."})
    )
    with pytest.raises(ccxt.BadSymbol):
        fetch(binance_client, tmp_path, T0, T0 + HOUR)
    assert len(starts(binance_server)) == 1


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("high", "100.00", "high >= max(open, close)"),
        ("low", "99999.00", "low <= min(open, close)"),
        ("volume", "-1.0", "volume >= 0"),
        ("open", "0", "a price above 0"),
        ("close", "NaN", "a finite number"),
    ],
)
def test_invalid_candle_raises_with_time_and_column(
    binance_server, binance_client, tmp_path, column, value, problem
):
    bad = T0 + 1234 * MINUTE
    binance_server.overrides[("BTCUSDT", "1m", bad)] = {column: value}

    with pytest.raises(DataValidationError) as raised:
        fetch(binance_client, tmp_path, T0, T0 + 2000 * MINUTE)

    message = str(raised.value)
    assert f"expected {problem}" in message
    assert "binance BTC/USDT 1m" in message
    assert at(bad).isoformat() in message and f"column '{column}'" in message
    assert cached_bar_count(tmp_path) == 1000  # the page before stays cached


def test_identical_duplicate_is_merged_and_conflicting_one_raises(
    binance_server, binance_client, tmp_path
):
    twice = T0 + 30 * MINUTE
    binance_server.duplicates[("BTCUSDT", "1m", twice)] = {}
    frame = fetch(binance_client, tmp_path, T0, T0 + 60 * MINUTE)
    assert len(frame) == 60 and frame.index.is_unique

    binance_server.duplicates[("BTCUSDT", "1m", T0 + 90 * MINUTE)] = {"close": "1.5"}
    with pytest.raises(DataValidationError, match="after the previous") as raised:
        fetch(binance_client, tmp_path, T0, T0 + 120 * MINUTE)
    assert at(T0 + 90 * MINUTE).isoformat() in str(raised.value)


@pytest.mark.parametrize(
    ("offset", "cached"),
    [(30 * MINUTE, 5), (30_000, 4)],  # 30 s after the hour: the last close is too young
    ids=["mid-hour", "just-after-close"],
)
def test_open_candle_is_returned_but_not_cached(monkeypatch, tmp_path, offset, cached):
    hour = T0 + 100 * HOUR
    now = hour + offset
    monkeypatch.setattr(downloads, "_now_milliseconds", lambda: now)
    with BinanceServer(now_ms=now) as server:
        client = make_binance_client(server)
        frame = fetch(
            client, tmp_path, hour - 5 * HOUR, hour + 3 * HOUR, timeframe="1h"
        )
        expected = expected_frame(server, "BTC/USDT", "1h", hour - 5 * HOUR, now + 1)
        pd.testing.assert_frame_equal(frame, expected, check_freq=False)
        assert frame.index[-1] == at(hour) and len(frame) == 6
        assert cached_bar_count(tmp_path) == cached

        count = len(starts(server))
        again = fetch(
            client, tmp_path, hour - 5 * HOUR, hour + 3 * HOUR, timeframe="1h"
        )
        pd.testing.assert_frame_equal(again, frame)
        assert [since for since, _ in starts(server)[count:]] == [
            hour - (5 - cached) * HOUR
        ]


def test_range_entirely_in_the_future_asks_nothing(
    binance_server, binance_client, tmp_path
):
    start = time.time_ns() // 1_000_000 + 10 * HOUR
    frame = fetch(binance_client, tmp_path, start, start + HOUR)
    assert frame.empty and list(frame.columns) == [
        "open",
        "high",
        "low",
        "close",
        "volume",
    ]
    assert str(frame.index.tz) == "UTC"
    assert binance_server.requests == []


def test_duckdb_query_gives_daily_average_close_per_symbol(
    binance_server, binance_client, tmp_path
):
    start, end = ms("2024-03-01"), ms("2024-03-04")
    frames = {
        symbol: fetch(binance_client, tmp_path, start, end, symbol, "1h")
        for symbol in ("BTC/USDT", "ETH/USDT")
    }
    result = query_ohlcv_cache(
        """
        SELECT symbol, date_trunc('day', timestamp) AS day, avg(close) AS mean_close,
               count(*) AS bars, max(high) AS top
        FROM ohlcv WHERE exchange = 'binance' AND timeframe = '1h'
        GROUP BY ALL ORDER BY symbol, day
        """,
        tmp_path,
    )
    assert len(result) == 6 and (result["bars"] == 24).all()
    for symbol, frame in frames.items():
        daily = frame.groupby(frame.index.floor("D")).agg(
            mean_close=("close", "mean"), top=("high", "max")
        )
        mine = result[result["symbol"] == symbol].set_index("day")
        assert list(mine.index) == list(daily.index)
        np.testing.assert_allclose(mine["mean_close"], daily["mean_close"], rtol=1e-12)
        np.testing.assert_array_equal(mine["top"], daily["top"])


def test_query_on_an_empty_cache_sees_an_empty_view(tmp_path):
    result = query_ohlcv_cache("SELECT * FROM ohlcv", tmp_path)
    assert result.empty
    assert list(result.columns) == [
        "exchange",
        "symbol",
        "timeframe",
        "timestamp",
        "open",
        "high",
        "low",
        "close",
        "volume",
    ]


def test_leftover_temporary_file_is_ignored(binance_server, binance_client, tmp_path):
    fetch(binance_client, tmp_path, T0, T0 + 100 * MINUTE)
    folder = tmp_path / "ohlcv" / "binance" / "BTC-USDT" / "1m"
    (folder / ".2024-02.crashed.tmp").write_bytes(b"half a parquet file")

    assert cached_bar_count(tmp_path) == 100
    frame = fetch(binance_client, tmp_path, T0, T0 + 200 * MINUTE)
    assert len(frame) == 200 and cached_bar_count(tmp_path) == 200


def test_progress_bar_counts_the_bars(binance_server, binance_client, tmp_path, capsys):
    fetch(binance_client, tmp_path, T0, T0 + 300 * MINUTE)
    fetch(binance_client, tmp_path, T0, T0 + 1200 * MINUTE, progress=True)
    error_output = capsys.readouterr().err
    assert "binance BTC/USDT 1m" in error_output
    assert "300/1200" in error_output and "1200/1200" in error_output


def test_cache_folder_defaults_to_the_environment(
    binance_server, binance_client, tmp_path, monkeypatch
):
    monkeypatch.setenv("NEUROFLUX_CACHE_DIR", str(tmp_path / "env-cache"))
    fetch(binance_client, None, T0, T0 + 10 * MINUTE)
    assert cached_bar_count(None) == 10
    assert (tmp_path / "env-cache" / "ohlcv" / "binance" / "BTC-USDT" / "1m").is_dir()


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"since": "2024-02-02", "until": "2024-02-01"}, "must be after"),
        ({"timeframe": "1M"}, "no fixed length"),
        ({"timeframe": "fortnight"}, "is not like"),
        ({"timeframe": "7m"}, "has no timeframe '7m'"),
        ({"exchange": "nowhere"}, "not a ccxt exchange"),
        ({"exchange": "kraken"}, "client is a 'binance' exchange"),
        ({"symbol": ".."}, "folder name"),
        ({"since": 1_706_745_600_000}, "bare number has no unit"),
    ],
)
def test_bad_arguments_are_refused(binance_client, tmp_path, arguments, match):
    call = {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1m",
        "since": "2024-02-01",
        "until": "2024-02-01 01:00",
        **arguments,
    }
    with pytest.raises(ValueError, match=match):
        fetch_ohlcv(**call, cache_dir=tmp_path, client=binance_client)


def test_fetch_command_serves_a_cached_range_without_the_network(
    binance_server, binance_client, tmp_path
):
    fetch(binance_client, tmp_path, T0, T0 + 1500 * MINUTE)
    requests_before = len(binance_server.requests)
    command = Path(sys.executable).with_name("neuroflux")
    result = subprocess.run(
        [
            *(command, "data", "fetch", "binance", "BTC/USDT", "1m"),
            *("--since", "2024-02-01", "--until", "2024-02-01T10:00Z"),
            *("--cache-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "binance BTC/USDT 1m: 600 bars from 2024-02-01 00:00:00+00:00" in result.stdout
    )
    assert len(binance_server.requests) == requests_before


def test_a_downloaded_market_loads_by_its_spec_from_the_cache(
    binance_server, binance_client, tmp_path, monkeypatch
):
    from neuroflux.research import load_data

    first = fetch(binance_client, tmp_path, T0, T0 + 1500 * MINUTE)
    count = len(binance_server.requests)
    monkeypatch.setenv("NEUROFLUX_CACHE_DIR", str(tmp_path))
    frame = load_data("download:binance:BTC/USDT:1m:2024-02-01:2024-02-02")
    pd.testing.assert_frame_equal(frame, first.iloc[:1440])
    assert len(binance_server.requests) == count  # served offline, from the cache
    with pytest.raises(ValueError, match="download:EXCHANGE:SYMBOL"):
        load_data("download:binance:BTC/USDT:1m")


def test_the_strategy_explorer_offers_cached_markets_that_load_offline(
    binance_server, binance_client, tmp_path, monkeypatch
):
    from neuroflux.dashboards.explorer import market_choices
    from neuroflux.research import load_data

    first = fetch(binance_client, tmp_path, T0, T0 + 1500 * MINUTE)
    count = len(binance_server.requests)
    monkeypatch.setenv("NEUROFLUX_CACHE_DIR", str(tmp_path))
    spec = market_choices()["BTC/USDT 1m (binance, cached)"]
    assert spec == "download:binance:BTC/USDT:1m:2024-02-01T000000:2024-02-02T010000"
    pd.testing.assert_frame_equal(load_data(spec), first)
    assert len(binance_server.requests) == count  # served from the cache


def test_downloaded_bars_become_forecasting_windows(binance_client, tmp_path):
    from neuroflux.forecasting import feature_matrix, make_targets, make_windows

    frame = fetch(binance_client, tmp_path, T0, T0 + 600 * MINUTE)
    bars = [frame[name].to_numpy() for name in ("open", "high", "low", "close")]
    features, names = feature_matrix(*bars, frame["volume"].to_numpy())
    target = make_targets(frame["close"].to_numpy(), horizon=5, kind="volatility")
    X, y, index = make_windows(features, target, lookback=16)
    assert X.shape == (len(index), 16, len(names)) and len(y) == len(index)
    assert np.isfinite(X).all() and np.isfinite(y).all()
    assert index[0] >= 33 + 15 and index[-1] == len(frame) - 6  # warm-up, horizon
