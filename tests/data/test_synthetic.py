"""Tests of the synthetic market-data generators: labels, invariants, stylized facts.

Statistical thresholds use a two-sided 1% family-wise level over the 10 lags tested
(Bonferroni: z = 3.29); the seeds are fixed, so every run is reproducible.
"""

import math

import numpy as np
import pandas as pd
import pytest
from arch import arch_model
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from neuroflux.data import synthetic
from neuroflux.data.synthetic import (
    SOURCE,
    GarchParams,
    SyntheticMarketConfig,
    VenueConfig,
    periods_per_year,
    synthetic_ohlcv,
    synthetic_panel,
    synthetic_venues,
)

N_BARS = 20_000
LAGS = 10
Z_FAMILY = stats.norm.ppf(1 - 0.01 / (2 * LAGS))  # 3.29
GAUSSIAN_CONSTANT = dict(garch=None, degrees_of_freedom=None, jump_intensity=0.0)


def _log_returns(close: pd.Series | pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(np.asarray(close, dtype=np.float64)), axis=0)


def _autocorrelation(values: np.ndarray, lags: int = LAGS) -> np.ndarray:
    centered = values - values.mean()
    denominator = centered @ centered
    return np.array(
        [centered[k:] @ centered[:-k] / denominator for k in range(1, lags + 1)]
    )


def _robust_standard_error(values: np.ndarray, lags: int = LAGS) -> np.ndarray:
    """Standard error of the sample ACF that stays valid under GARCH (Taylor 1986)."""
    centered = values - values.mean()
    denominator = centered @ centered
    return np.array(
        [
            math.sqrt(np.sum((centered[k:] * centered[:-k]) ** 2)) / denominator
            for k in range(1, lags + 1)
        ]
    )


def _assert_valid_bars(frame: pd.DataFrame) -> None:
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "timestamp"
    assert str(frame.index.tz) == "UTC"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert list(frame.columns[:5]) == ["open", "high", "low", "close", "volume"]
    assert (frame.dtypes == np.float64).all()
    assert np.isfinite(frame.to_numpy()).all()
    prices = frame[["open", "high", "low", "close"]]
    assert (prices > 0).all().all()
    assert (frame["high"] >= prices.max(axis=1)).all()
    assert (frame["low"] <= prices.min(axis=1)).all()
    assert (frame["volume"] >= 0).all()


def _assert_labelled(frame: pd.DataFrame, seed: int) -> None:
    assert frame.attrs["source"] == SOURCE
    assert frame.attrs["synthetic"] is True
    assert frame.attrs["seed"] == seed
    for field in ("annual_volatility", "garch", "degrees_of_freedom", "bar"):
        assert field in frame.attrs


# Determinism and labels -------------------------------------------------------------


def test_same_seed_gives_identical_frames_and_different_seeds_differ() -> None:
    first, again = synthetic_ohlcv(500, seed=7), synthetic_ohlcv(500, seed=7)
    pd.testing.assert_frame_equal(first, again)
    assert first.attrs == again.attrs
    other = synthetic_ohlcv(500, seed=8)
    assert not np.allclose(first["close"], other["close"])

    panel, panel_again = synthetic_panel(300, seed=3), synthetic_panel(300, seed=3)
    pd.testing.assert_frame_equal(panel, panel_again)
    assert not synthetic_panel(300, seed=4).equals(panel)

    venues, venues_again = synthetic_venues(300, seed=5), synthetic_venues(300, seed=5)
    for name, frame in venues.items():
        pd.testing.assert_frame_equal(frame, venues_again[name])
    assert not synthetic_venues(300, seed=6)["kraken"].equals(venues["kraken"])


def test_frames_are_labelled_synthetic_with_their_parameters() -> None:
    frame = synthetic_ohlcv(50, bar="5min", seed=11, annual_volatility=0.3)
    _assert_valid_bars(frame)
    _assert_labelled(frame, seed=11)
    assert frame.shape == (50, 5)
    assert frame.attrs["annual_volatility"] == 0.3
    assert frame.attrs["garch"] == {"alpha": 0.08, "beta": 0.9}
    assert frame.attrs["periods_per_year"] == pytest.approx(365.25 * 24 * 12)
    assert frame.index[1] - frame.index[0] == pd.Timedelta("5min")
    assert frame.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert frame["open"].iloc[0] == pytest.approx(100.0, rel=1e-12)  # starting price
    for function in (synthetic_ohlcv, synthetic_panel, synthetic_venues):
        assert "SYNTHETIC" in function.__doc__
    assert "SYNTHETIC" in synthetic.__doc__


def test_periods_per_year_uses_a_24_7_calendar() -> None:
    assert periods_per_year("1min") == 525_960.0
    assert periods_per_year("1D") == 365.25
    assert periods_per_year("1h") == 8_766.0
    assert periods_per_year("1s") == 31_557_600.0
    with pytest.raises(ValueError, match="bar must be a fixed-length"):
        periods_per_year("ME")


# Invariants over parameter draws ----------------------------------------------------

market_configs = st.builds(
    SyntheticMarketConfig,
    annual_drift=st.floats(-1.0, 1.0),
    annual_volatility=st.floats(0.05, 1.5),
    garch=st.none()
    | st.builds(GarchParams, alpha=st.floats(0.0, 0.2), beta=st.floats(0.0, 0.79)),
    degrees_of_freedom=st.none() | st.floats(3.0, 50.0),
    jump_intensity=st.floats(0.0, 50.0),
    jump_mean=st.floats(-0.005, 0.005),
    jump_std=st.floats(0.0, 0.005),
    open_gap_std=st.floats(0.0, 0.01),
    volume_mean=st.floats(0.0, 1e6),
    volume_return_sensitivity=st.floats(0.0, 5.0),
    volume_noise=st.floats(0.0, 1.0),
)
bars = st.sampled_from(["1s", "1min", "5min", "1h", "1D"])
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=25, deadline=None)
@given(market=market_configs, bar=bars, seed=seeds, n_bars=st.integers(1, 60))
def test_ohlcv_bars_are_valid_for_any_parameters(market, bar, seed, n_bars) -> None:
    frame = synthetic_ohlcv(n_bars, bar=bar, seed=seed, market=market)
    _assert_valid_bars(frame)
    _assert_labelled(frame, seed)
    assert len(frame) == n_bars
    if market.open_gap_std == 0:
        np.testing.assert_array_equal(frame["open"].iloc[1:], frame["close"].iloc[:-1])


@settings(max_examples=10, deadline=None)
@given(
    market=market_configs,
    seed=seeds,
    correlation=st.floats(-0.45, 0.95),
    lags=st.lists(st.integers(0, 4), min_size=1, max_size=3),
)
def test_panel_and_venue_bars_are_valid(market, seed, correlation, lags) -> None:
    panel = synthetic_panel(40, 3, correlation=correlation, seed=seed, market=market)
    assert panel.shape == (40, 15)
    assert panel.columns.names == ["field", "symbol"]
    for symbol in panel.columns.unique("symbol"):
        _assert_valid_bars(panel.xs(symbol, axis="columns", level="symbol"))
    venues = [
        VenueConfig(name=f"venue_{i}", lag_bars=lag, spread_bps=1.0 + i)
        for i, lag in enumerate(lags)
    ]
    for frame in synthetic_venues(40, venues, seed=seed, market=market).values():
        _assert_valid_bars(frame)
        assert (frame["bid"] < frame["ask"]).all()


# Stylized facts -------------------------------------------------------------------


def test_default_returns_have_fat_tails_and_volatility_clustering() -> None:
    returns = _log_returns(synthetic_ohlcv(N_BARS, seed=1)["close"])
    assert stats.kurtosis(returns) > 1.0
    band = Z_FAMILY / math.sqrt(len(returns))
    absolute_acf = _autocorrelation(np.abs(returns))
    assert (absolute_acf > max(0.1, band)).all(), absolute_acf
    # Returns themselves are serially uncorrelated; GARCH widens the ACF's sampling
    # spread, so the band uses the heteroskedasticity-robust standard error.
    acf = _autocorrelation(returns)
    robust = _robust_standard_error(returns)
    assert (np.abs(acf) < Z_FAMILY * robust).all(), acf / robust


def test_gaussian_constant_volatility_has_neither_fat_tails_nor_clustering() -> None:
    frame = synthetic_ohlcv(N_BARS, seed=1, **GAUSSIAN_CONSTANT)
    returns = _log_returns(frame["close"])
    standard_error = math.sqrt(24 / len(returns))  # of excess kurtosis under N(0, 1)
    assert abs(stats.kurtosis(returns)) < Z_FAMILY * standard_error
    band = Z_FAMILY / math.sqrt(len(returns))
    assert (np.abs(_autocorrelation(np.abs(returns))) < band).all()
    assert (np.abs(_autocorrelation(returns)) < band).all()


def test_arch_recovers_the_garch_parameters() -> None:
    garch = GarchParams(alpha=0.1, beta=0.85)
    frame = synthetic_ohlcv(
        N_BARS, seed=2, garch=garch, degrees_of_freedom=8.0, jump_intensity=0.0
    )
    returns = _log_returns(frame["close"])
    model = arch_model(returns / returns.std(), mean="Constant", dist="t")
    fit = model.fit(disp="off")
    assert fit.params["alpha[1]"] == pytest.approx(garch.alpha, abs=0.03)
    assert fit.params["beta[1]"] == pytest.approx(garch.beta, abs=0.03)
    assert abs(fit.params["nu"] - 8.0) < 4 * fit.std_err["nu"]


JUMP_HEAVY = dict(jump_intensity=50.0, jump_std=0.05)  # half the variance in jumps


@pytest.mark.parametrize(
    ("bar", "bars_per_year", "fields"),
    [("1min", 525_960, {}), ("1D", 365.25, {}), ("1D", 365.25, JUMP_HEAVY)],
)
def test_realized_volatility_matches_the_requested_annual_volatility(
    bar, bars_per_year, fields
) -> None:
    frame = synthetic_ohlcv(N_BARS, bar=bar, seed=3, annual_volatility=0.5, **fields)
    returns = _log_returns(frame["close"])
    realized = returns.std() * math.sqrt(bars_per_year)
    # The sample variance of GARCH-t returns with jumps varies by about 5% over
    # 20k bars (measured over 40 seeds), i.e. about 2.5% in volatility.
    assert realized == pytest.approx(0.5, rel=0.1)


def test_jumps_alone_give_fat_tails() -> None:
    frame = synthetic_ohlcv(N_BARS, bar="1D", seed=3, **GAUSSIAN_CONSTANT | JUMP_HEAVY)
    assert stats.kurtosis(_log_returns(frame["close"])) > 1.0


def test_high_low_range_matches_the_bar_variance() -> None:
    frame = synthetic_ohlcv(N_BARS, bar="1h", seed=4, **GAUSSIAN_CONSTANT)
    parkinson = np.mean(np.log(frame["high"] / frame["low"]) ** 2) / (4 * math.log(2))
    assert parkinson * periods_per_year("1h") == pytest.approx(0.36, rel=0.06)


def test_open_gap_moves_only_the_open() -> None:
    plain = synthetic_ohlcv(N_BARS, seed=6)
    gapped = synthetic_ohlcv(N_BARS, seed=6, open_gap_std=0.001)
    pd.testing.assert_series_equal(gapped["close"], plain["close"])
    gaps = np.log(gapped["open"].to_numpy()[1:] / gapped["close"].to_numpy()[:-1])
    assert gaps.std() == pytest.approx(0.001, rel=0.05)
    _assert_valid_bars(gapped)


def test_volume_rises_with_absolute_return_only_when_asked() -> None:
    sensitive = synthetic_ohlcv(N_BARS, seed=5, volume_return_sensitivity=2.0)
    returns = np.abs(np.log(sensitive["close"] / sensitive["open"]))
    assert stats.spearmanr(returns, sensitive["volume"]).statistic > 0.3
    assert sensitive["volume"].mean() == pytest.approx(1_000.0, rel=0.1)
    flat = synthetic_ohlcv(N_BARS, seed=5, volume_return_sensitivity=0.0)
    returns = np.abs(np.log(flat["close"] / flat["open"]))
    rank = stats.spearmanr(returns, flat["volume"]).statistic
    assert abs(rank) < Z_FAMILY / math.sqrt(N_BARS)


# Panel ----------------------------------------------------------------------------

CORRELATION = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, -0.2], [0.3, -0.2, 1.0]])


def test_panel_shape_and_gaussian_return_correlation() -> None:
    panel = synthetic_panel(
        N_BARS, ["X", "Y", "Z"], correlation=CORRELATION, seed=6, **GAUSSIAN_CONSTANT
    )
    assert panel["close"].shape == (N_BARS, 3)
    assert list(panel["close"].columns) == ["X", "Y", "Z"]
    assert list(panel.columns.unique("field")) == list(synthetic.OHLCV_COLUMNS)
    assert panel.attrs["correlation"] == CORRELATION.tolist()
    sample = np.corrcoef(_log_returns(panel["close"]), rowvar=False)
    standard_error = (1 - CORRELATION**2) / math.sqrt(N_BARS)
    np.testing.assert_array_less(
        np.abs(sample - CORRELATION), 4 * standard_error + 1e-12
    )


def test_panel_conditional_correlation_under_garch() -> None:
    panel = synthetic_panel(
        N_BARS, ["X", "Y", "Z"], correlation=CORRELATION, seed=7, jump_intensity=0.0
    )
    returns = _log_returns(panel["close"])
    standardized = []
    for column in returns.T:
        model = arch_model(column / column.std(), mean="Constant", dist="t")
        standardized.append(model.fit(disp="off").std_resid)
    sample = np.corrcoef(standardized)
    # Sampling spread measured over 8 seeds: about 0.008; 0.03 is about 4 of them.
    np.testing.assert_allclose(sample, CORRELATION, atol=0.03)


@pytest.mark.parametrize(
    ("correlation", "message"),
    [
        (-0.6, "positive definite"),
        ([[1.0, 0.9, 0.9], [0.9, 1.0, -0.9], [0.9, -0.9, 1.0]], "positive definite"),
        ([[1.0, 0.5, 0.0], [0.4, 1.0, 0.0], [0.0, 0.0, 1.0]], "symmetric"),
        ([[1.0, 0.5], [0.5, 1.0]], r"\[3, 3\]"),
        ([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]], "diagonal"),
    ],
)
def test_panel_rejects_a_bad_correlation_matrix(correlation, message) -> None:
    with pytest.raises(ValueError, match=rf"correlation must be .*{message}"):
        synthetic_panel(10, 3, correlation=correlation)


# Venues ---------------------------------------------------------------------------


def test_venue_quotes_spread_fees_and_lags() -> None:
    venues = synthetic_venues(N_BARS, seed=8)
    assert list(venues) == ["binance", "kraken", "coinbase"]
    leader = venues["binance"]
    leader_mid = _log_returns((leader["bid"] + leader["ask"]) / 2)
    for name, frame in venues.items():
        preset = synthetic.VENUE_PRESETS[name]
        assert frame.shape == (N_BARS, 7)
        assert frame.index.equals(leader.index)
        assert frame.attrs["fee_bps"] == preset.fee_bps
        assert frame.attrs["lag_bars"] == preset.lag_bars
        assert (frame["bid"] < frame["ask"]).all()
        mid = (frame["bid"] + frame["ask"]) / 2
        spread_bps = (frame["ask"] - frame["bid"]) / mid * 1e4
        np.testing.assert_allclose(spread_bps, preset.spread_bps, rtol=1e-9)
        returns = _log_returns(mid)
        cross = [
            np.corrcoef(leader_mid[: len(returns) - shift], returns[shift:])[0, 1]
            for shift in range(6)
        ]
        assert int(np.argmax(cross)) == preset.lag_bars, cross
        assert max(cross) > 0.9


def test_noise_free_lagged_venue_repeats_the_leader() -> None:
    venues = [
        VenueConfig(name="leader", noise_bps=0.0),
        VenueConfig(name="follower", lag_bars=3, noise_bps=0.0),
    ]
    frames = synthetic_venues(200, venues, seed=9)
    leader, follower = frames["leader"]["close"], frames["follower"]["close"]
    np.testing.assert_allclose(follower.to_numpy()[3:], leader.to_numpy()[:-3])
    assert not np.allclose(follower.to_numpy()[3:], leader.to_numpy()[3:])


def test_cross_venue_price_difference_mean_reverts() -> None:
    venues = synthetic_venues(N_BARS, seed=10)
    difference = np.log(venues["kraken"]["close"] / venues["binance"]["close"])
    acf = _autocorrelation(difference.to_numpy())
    robust = _robust_standard_error(difference.to_numpy())
    # Lag 2 minus lag 0: the difference is minus two efficient returns plus noise,
    # correlated with itself at lag 1 only.
    assert acf[0] > 0.3
    assert (np.abs(acf[1:]) < Z_FAMILY * robust[1:]).all(), acf / robust
    assert abs(difference.mean()) < 1e-3


# Validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"annual_volatility": 0.0}, "annual_volatility must be finite and > 0"),
        ({"annual_volatility": math.nan}, "annual_volatility"),
        ({"degrees_of_freedom": 2.0}, "degrees_of_freedom must be finite and > 2"),
        ({"jump_intensity": -1.0}, "jump_intensity"),
        ({"jump_intensity": 1e4, "jump_std": 0.1}, r"jump_intensity \* \(jump_mean"),
        ({"volume_mean": -1.0}, "volume_mean"),
    ],
)
def test_market_config_errors_name_the_field(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticMarketConfig(**fields)


def test_garch_and_argument_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"garch.alpha \+ garch.beta must be < 1"):
        GarchParams(alpha=0.2, beta=0.8)
    with pytest.raises(ValueError, match=r"garch\.beta must be finite and >= 0"):
        GarchParams(beta=-0.1)
    with pytest.raises(TypeError, match="garch must be GarchParams or None"):
        SyntheticMarketConfig(garch=(0.1, 0.8))
    with pytest.raises(
        TypeError, match=r"unknown market parameter\(s\) \['volatility'\]"
    ):
        synthetic_ohlcv(10, volatility=0.5)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        synthetic_ohlcv(10, seed=-1)
    with pytest.raises(ValueError, match="n_bars must be an int >= 1"):
        synthetic_ohlcv(0)
    with pytest.raises(ValueError, match="bar must be a fixed-length"):
        synthetic_ohlcv(10, bar="ME")
    with pytest.raises(ValueError, match="price must be > 0"):
        synthetic_ohlcv(10, price=-1.0)
    with pytest.raises(ValueError, match="symbols must be unique"):
        synthetic_panel(10, ["A", "A"])
    with pytest.raises(ValueError, match="venues must be VenueConfig or one of"):
        synthetic_venues(10, ["nyse"])
    with pytest.raises(
        ValueError, match="venue 'x': spread_bps must be finite and > 0"
    ):
        VenueConfig(name="x", spread_bps=0.0)
    with pytest.raises(ValueError, match="venue 'x': lag_bars must be an int"):
        VenueConfig(name="x", lag_bars=1.5)
