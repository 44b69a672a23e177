"""Features, targets, windows, purged splits and scaling against pandas/NumPy
references, with properties: no window looks ahead, splits never leak."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neuroflux  # noqa: F401  (turns on 64-bit mode before any array is made)
from neuroflux.data import load_sample, synthetic_ohlcv
from neuroflux.forecasting import windows

OHLCV = ("open", "high", "low", "close", "volume")


@pytest.fixture(scope="module")
def sp500() -> pd.DataFrame:
    return load_sample("sp500")


def _bars(frame: pd.DataFrame) -> list[np.ndarray]:
    return [frame[name].to_numpy(np.float64) for name in OHLCV]


def _timestamps(frame: pd.DataFrame) -> np.ndarray:
    return frame.index.as_unit("ns").asi8


def _reference_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The documented columns, written in pandas."""
    close, volume = frame["close"], frame["volume"]
    step = np.log(close / close.shift(1))
    fast = close.ewm(span=12, adjust=False).mean()
    slow = close.ewm(span=26, adjust=False).mean()
    line = (fast - slow).where(np.arange(len(close)) >= 25)
    histogram = line - line.ewm(span=9, adjust=False, min_periods=9).mean()
    log_volume = np.log1p(volume)
    days = frame.index.day_of_week.to_numpy()
    return pd.DataFrame(
        {
            "log_return_1": step,
            "log_return_5": np.log(close / close.shift(5)),
            "log_return_20": np.log(close / close.shift(20)),
            "volatility_5": step.rolling(5).std(),
            "volatility_20": step.rolling(20).std(),
            "log_range": np.log(frame["high"] / frame["low"]),
            "log_body": np.log(close / frame["open"]),
            "macd_histogram": histogram / close,
            "sma_distance_20": close / close.rolling(20).mean() - 1,
            "volume_zscore_20": (log_volume - log_volume.rolling(20).mean())
            / log_volume.rolling(20).std(),
            "day_of_week_sin": np.sin(2 * np.pi * days / 7),
            "day_of_week_cos": np.cos(2 * np.pi * days / 7),
        }
    )


@pytest.fixture(scope="module", params=["sp500", "synthetic minute bars"])
def market(request, sp500) -> pd.DataFrame:
    """A real daily market and a seeded synthetic intraday one."""
    return sp500 if request.param == "sp500" else synthetic_ohlcv(3000, bar="1min")


def test_feature_matrix_matches_pandas(market):
    values, names = windows.feature_matrix(*_bars(market), _timestamps(market))
    values = np.asarray(values)
    assert values.shape == (len(market), 13) and len(names) == 13
    reference = _reference_features(market)
    for name in reference.columns:
        np.testing.assert_allclose(
            values[:, names.index(name)],
            reference[name].to_numpy(),
            rtol=1e-8,
            atol=1e-12,
            err_msg=name,
        )
    rsi = values[:, names.index("rsi_14")]
    assert np.all(np.isnan(rsi[:14])) and np.all(np.abs(rsi[14:]) <= 1)


def test_feature_warm_up_is_nan_then_finite(sp500):
    values, names = windows.feature_matrix(*_bars(sp500))
    values = np.asarray(values)
    assert "day_of_week_sin" not in names and values.shape[1] == 11
    first = {"log_return_5": 5, "volatility_20": 20, "macd_histogram": 33}
    for name, bar in first.items():
        column = values[:, names.index(name)]
        assert np.all(np.isnan(column[:bar])) and np.isfinite(column[bar]), name
    assert np.all(np.isfinite(values[33:]))


def test_feature_matrix_under_jit_and_vmap(sp500):
    bars = [
        np.stack([x[:600], x[600:1200], x[1200:1800]], axis=1) for x in _bars(sp500)
    ]
    eager = [windows.feature_matrix(*(x[:, a] for x in bars)) for a in range(3)]
    jitted = jax.jit(windows.feature_matrix)(*(x[:, 0] for x in bars))
    np.testing.assert_allclose(jitted.values, eager[0].values, rtol=1e-12, atol=1e-15)
    assert jitted.names == eager[0].names
    panel = jax.jit(jax.vmap(windows.feature_matrix, in_axes=1, out_axes=1))(*bars)
    assert panel.values.shape == (600, 3, 11)
    for asset in range(3):
        np.testing.assert_allclose(
            panel.values[:, asset], eager[asset].values, rtol=1e-12, atol=1e-15
        )


def test_feature_matrix_rejects_mismatched_lengths(sp500):
    bars = _bars(sp500)
    bars[1] = bars[1][:-1]
    with pytest.raises(ValueError, match="high"):
        windows.feature_matrix(*bars)


@pytest.mark.parametrize("horizon", [1, 5, 20])
def test_targets_match_pandas(sp500, horizon):
    close = sp500["close"]
    step = np.log(close / close.shift(1))
    expected = {
        "return": np.log(close.shift(-horizon) / close),
        "volatility": (step**2).rolling(horizon).sum().shift(-horizon),
    }
    for kind, reference in expected.items():
        target = jax.jit(windows.make_targets, static_argnums=(1, 2))(
            close.to_numpy(), horizon, kind
        )
        np.testing.assert_allclose(
            target, reference.to_numpy(), rtol=1e-9, err_msg=kind
        )
        assert np.all(np.isnan(target[-horizon:]))
        assert np.all(np.isfinite(target[:-horizon]))


def test_targets_reject_bad_arguments():
    with pytest.raises(ValueError, match="horizon"):
        windows.make_targets(np.ones(10), 0)
    with pytest.raises(ValueError, match="kind"):
        windows.make_targets(np.ones(10), 1, kind="price")


def _reference_windows(features, targets, lookback):
    X, y, index = [], [], []
    for t in range(lookback - 1, len(targets)):
        window = features[t - lookback + 1 : t + 1]
        if np.all(np.isfinite(window)) and np.isfinite(targets[t]):
            X.append(window)
            y.append(targets[t])
            index.append(t)
    return np.array(X), np.array(y), np.array(index, dtype=np.int64)


@st.composite
def series_with_gaps(draw):
    length = draw(st.integers(1, 40))
    n_features = draw(st.integers(1, 3))
    lookback = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(length, n_features))
    features[rng.random(features.shape) < draw(st.sampled_from([0, 0.02, 0.1]))] = (
        np.nan
    )
    targets = rng.normal(size=length)
    targets[rng.random(length) < 0.1] = np.nan
    return features, targets, lookback


@settings(max_examples=150, deadline=None)
@given(series_with_gaps())
def test_windows_match_reference_and_never_look_ahead(case):
    features, targets, lookback = case
    X, y, index = windows.make_windows(features, targets, lookback)
    expected = _reference_windows(features, targets, lookback)
    np.testing.assert_array_equal(index, expected[2])
    assert (
        X.shape == (len(index), lookback, features.shape[1]) and y.shape == index.shape
    )
    if len(index):
        np.testing.assert_array_equal(X, expected[0])
        np.testing.assert_array_equal(y, expected[1])
    # Bars after t never reach sample t: scramble the future, sample t stays.
    for i, t in enumerate(index):
        changed = features.copy()
        changed[t + 1 :] = -features[t + 1 :] + 7
        X_changed, _, index_changed = windows.make_windows(changed, targets, lookback)
        assert t in index_changed
        np.testing.assert_array_equal(X_changed[index_changed.tolist().index(t)], X[i])


def test_panel_windows_equal_per_asset_windows():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(50, 4, 3))
    features[rng.random(features.shape) < 0.03] = np.nan
    targets = rng.normal(size=(50, 4))
    targets[-2:] = np.nan
    X, y, times, assets = windows.make_panel_windows(features, targets, 6)
    assert np.all(np.diff(times * 4 + assets) > 0)  # time-major order
    for asset in range(4):
        expected = windows.make_windows(features[:, asset], targets[:, asset], 6)
        rows = assets == asset
        for got, want in zip((X[rows], y[rows], times[rows]), expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_windows_reject_bad_arguments():
    features, targets = np.zeros((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match="lookback"):
        windows.make_windows(features, targets, 0)
    with pytest.raises(ValueError, match="targets"):
        windows.make_windows(features, targets[:-1], 3)
    with pytest.raises(ValueError, match="features"):
        windows.make_windows(targets, targets, 3)
    with pytest.raises(ValueError, match="targets"):
        windows.make_panel_windows(features[:, None], targets, 3)


@st.composite
def split_layouts(draw):
    horizon = draw(st.integers(1, 6))
    lookback = draw(st.integers(1, 10))
    train = draw(st.integers(1, 40))
    test = draw(st.integers(1, 15))
    embargo = draw(st.integers(0, 10))
    step = draw(st.one_of(st.none(), st.integers(1, 20)))
    minimum = lookback - 1 + train + 2 * horizon + test
    n_times = draw(st.integers(minimum, minimum + 120))
    return {
        "n_times": n_times,
        "train": train,
        "test": test,
        "horizon": horizon,
        "lookback": lookback,
        "embargo": embargo,
        "step": step,
        "expanding": draw(st.booleans()),
    }


@settings(max_examples=300, deadline=None)
@given(split_layouts())
def test_purged_splits_never_leak(layout):
    try:
        folds = windows.purged_walk_forward(**layout)
    except ValueError as error:
        assert "embargo" in str(error)  # only an embargo may empty a training set
        return
    horizon, embargo = layout["horizon"], layout["embargo"]
    step = layout["step"] or layout["test"]
    assert folds
    for k, (train, test) in enumerate(folds):
        assert len(train) and len(test) == layout["test"]
        # Every sample has a full window behind it and a known target ahead.
        assert train[0] >= layout["lookback"] - 1
        assert test[-1] + horizon <= layout["n_times"] - 1
        # Purge: every training target (bars up to t + horizon) ends before the test.
        assert train[-1] + horizon < test[0]
        assert not np.isin(train, test).any()
        if k:
            assert test[0] - folds[k - 1].test[0] == step
        for earlier in folds[:k]:
            gap = np.arange(earlier.test[-1] + 1, earlier.test[-1] + 1 + embargo)
            assert not np.isin(train, gap).any()
        if not layout["expanding"]:
            assert len(train) <= layout["train"]


def test_purged_splits_layout_by_hand():
    folds = windows.purged_walk_forward(
        40, 10, 5, horizon=2, lookback=3, embargo=2, step=5
    )
    first_train, first_test = folds[0]
    np.testing.assert_array_equal(first_train, np.arange(2, 12))
    np.testing.assert_array_equal(first_test, np.arange(14, 19))
    second_train, second_test = folds[1]
    np.testing.assert_array_equal(second_train, np.arange(7, 17))
    np.testing.assert_array_equal(second_test, np.arange(19, 24))
    third_train = folds[2][0]
    # The embargo after the first test block (14..18) is 19..20, inside span 12..21.
    np.testing.assert_array_equal(third_train, [12, 13, 14, 15, 16, 17, 18, 21])
    assert folds[-1][1][-1] <= 40 - 1 - 2


@pytest.mark.parametrize(
    ("argument", "value", "error"),
    [
        ("n_times", 0, ValueError),
        ("train", 0, ValueError),
        ("test", -1, ValueError),
        ("horizon", 0, ValueError),
        ("lookback", 0, ValueError),
        ("embargo", -1, ValueError),
        ("step", 0, ValueError),
        ("train", 2.5, TypeError),
        ("expanding", 1, TypeError),
    ],
)
def test_purged_splits_name_the_bad_argument(argument, value, error):
    arguments = {
        "n_times": 100,
        "train": 20,
        "test": 10,
        "horizon": 2,
        "lookback": 5,
        "embargo": 3,
    }
    arguments[argument] = value
    with pytest.raises(error, match=argument):
        windows.purged_walk_forward(**arguments)


def test_purged_splits_too_short_says_why():
    with pytest.raises(ValueError, match="n_times=30 is too short"):
        windows.purged_walk_forward(30, 20, 10, horizon=2, lookback=5, embargo=0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30))
def test_scaler_is_fitted_on_train_only(seed, n_train):
    rng = np.random.default_rng(seed)
    X = rng.normal(3, 2, size=(n_train + 20, 4, 3))
    X[:, :, 2] = 5.0  # a constant feature
    scaler = windows.fit_scaler(X[:n_train])
    changed = X.copy()
    changed[n_train:] = rng.normal(100, 50, size=changed[n_train:].shape)
    refit = windows.fit_scaler(changed[:n_train])
    np.testing.assert_array_equal(scaler.mean, refit.mean)
    np.testing.assert_array_equal(scaler.std, refit.std)
    np.testing.assert_allclose(scaler.mean, X[:n_train].mean(axis=(0, 1)))
    expected_std = X[:n_train].std(axis=(0, 1))
    np.testing.assert_allclose(scaler.std[:2], expected_std[:2], rtol=1e-12)
    assert scaler.std[2] == 1  # zero variance -> std 1, so it maps to 0
    scaled = np.asarray(scaler.transform(X[:n_train]))
    np.testing.assert_allclose(scaled.mean(axis=(0, 1)), 0, atol=1e-12)
    assert np.all(scaled[..., 2] == 0)
    if n_train > 1:
        np.testing.assert_allclose(scaled[..., :2].std(axis=(0, 1)), 1, rtol=1e-12)


def test_scaler_under_jit():
    X = np.random.default_rng(0).normal(size=(30, 5, 2))
    scaler = jax.jit(windows.fit_scaler)(X)
    np.testing.assert_allclose(
        jax.jit(lambda s, x: s.transform(x))(scaler, X),
        windows.fit_scaler(X).transform(X),
    )


def test_pipeline_on_real_data(sp500):
    features, names = windows.feature_matrix(*_bars(sp500), _timestamps(sp500))
    target = windows.make_targets(sp500["close"].to_numpy(), 5, "volatility")
    X, y, index = windows.make_windows(features, target, 30)
    bars = len(sp500)
    # Warm-up (33 bars of features, 29 more of window) and the last 5 bars go.
    np.testing.assert_array_equal(index, np.arange(33 + 29, bars - 5))
    assert X.shape == (bars - 5 - 62, 30, len(names)) and y.shape == index.shape
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(y)) and np.all(y >= 0)
    folds = windows.purged_walk_forward(
        bars, 1000, 250, horizon=5, lookback=30, embargo=30
    )
    for train_times, test_times in folds:
        train, test = np.isin(index, train_times), np.isin(index, test_times)
        assert train.any() and test.any()
        assert index[train].max() + 5 < index[test].min()
        scaler = windows.fit_scaler(X[train])
        assert np.all(np.isfinite(scaler.transform(X[test])))
