"""From bars to supervised samples: features, forward targets, windows, splits, scaling.

The pipeline for one asset (a panel runs the first two steps under ``jax.vmap``)::

    features = feature_matrix(open, high, low, close, volume)      # [T, F], names
    target = make_targets(close, horizon=5, kind="return")          # [T]
    X, y, index = make_windows(features.values, target, lookback=64)
    for train_times, test_times in purged_walk_forward(T, 1000, 250, horizon=5,
                                                       lookback=64, embargo=64):
        train = np.isin(index, train_times)
        scaler = fit_scaler(X[train])
        ...  # fit on scaler.transform(X[train]), y[train]; evaluate on the test rows

Time conventions: bar ``t`` is known at its close. The features at ``t`` use bars
``<= t``; the target at ``t`` uses bars ``t + 1 .. t + horizon``; sample ``t`` pairs the
features of bars ``t - lookback + 1 .. t`` with the target at ``t``.

:func:`feature_matrix` and :func:`make_targets` are pure JAX (``jit`` and ``vmap``);
:func:`make_windows`, :func:`make_panel_windows` and :func:`purged_walk_forward` return
as many samples as the data allow, a data-dependent shape, so they run eagerly in
NumPy. :class:`Scaler` is a pytree.

References:
    Marcos López de Prado, "Advances in Financial Machine Learning", 2018, ch. 7
    (purged walk-forward validation and embargo).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.typing import ArrayLike

from neuroflux._arrays import as_count, as_series
from neuroflux.backtest import splits
from neuroflux.features import oscillators, returns, rolling

__all__ = [
    "FeatureMatrix",
    "Scaler",
    "feature_matrix",
    "fit_scaler",
    "make_panel_windows",
    "make_targets",
    "make_windows",
    "purged_walk_forward",
]

_NANOSECONDS_PER_DAY = 86_400 * 10**9
_TARGET_KINDS = ("return", "volatility")


@struct.dataclass
class FeatureMatrix:
    """Per-bar features [T, F] and their names (static, so it passes through ``jit``).

    Unpacks as ``values, names = feature_matrix(...)``.
    """

    values: jnp.ndarray
    names: tuple[str, ...] = struct.field(pytree_node=False)

    def __iter__(self):
        return iter((self.values, self.names))


def _lagged(x: jnp.ndarray, bars: int) -> jnp.ndarray:
    """``x[t - bars]``, NaN for ``t < bars``."""
    bars = min(bars, x.shape[0])
    return jnp.concatenate([jnp.full(bars, jnp.nan, x.dtype), x[: x.shape[0] - bars]])


def _led(x: jnp.ndarray, bars: int) -> jnp.ndarray:
    """``x[t + bars]``, NaN for ``t >= T - bars``."""
    bars = min(bars, x.shape[0])
    return jnp.concatenate([x[bars:], jnp.full(bars, jnp.nan, x.dtype)])


def _day_of_week(timestamps_ns: ArrayLike) -> jnp.ndarray:
    """Day of the week (Monday = 0) of UTC nanosecond timestamps [T]."""
    days = jnp.floor_divide(jnp.asarray(timestamps_ns, jnp.int64), _NANOSECONDS_PER_DAY)
    return (days + 3) % 7  # 1970-01-01 was a Thursday


def feature_matrix(
    open: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    volume: ArrayLike,
    timestamps_ns: ArrayLike | None = None,
) -> FeatureMatrix:
    """Per-bar features of one asset's OHLCV bars, each known at the bar's close.

    Columns, in order (``r_t = log(c_t / c_{t-1})``):

    ============================  ====================================  =========
    name                          value at bar ``t``                    first bar
    ============================  ====================================  =========
    ``log_return_1/5/20``         ``log(c_t / c_{t-k})``, k = 1, 5, 20  k
    ``volatility_5/20``           rolling std of ``r`` (ddof=1), not    5, 20
                                  annualised
    ``log_range``                 ``log(h_t / l_t)``                    0
    ``log_body``                  ``log(c_t / o_t)``                    0
    ``rsi_14``                    ``(RSI_14 - 50) / 50``, in [-1, 1]    14
    ``macd_histogram``            MACD(12, 26, 9) histogram / ``c_t``   33
    ``sma_distance_20``           ``c_t / SMA_20(c)_t - 1``             19
    ``volume_zscore_20``          20-bar z-score of ``log(1 + v)``      19
    ``day_of_week_sin/cos``       ``sin/cos(2 pi d / 7)``, d = weekday  0
                                  (Monday = 0, UTC); only with
                                  ``timestamps_ns``
    ============================  ====================================  =========

    Every column is NaN before its first bar (the warm-up; all columns are finite
    from bar 33 on for finite positive inputs). ``volume_zscore_20`` is also NaN over
    any 20 bars of identical volume (0 / 0), e.g. a series without volume: pass
    ``volume`` with some variation or drop that column. :func:`make_windows` skips
    the windows that hold a NaN and reports which bars it kept.

    Works under ``jax.jit`` (for a fixed T) and ``jax.vmap``: for a panel,
    ``jax.vmap(feature_matrix, in_axes=1, out_axes=1)(o, h, l, c, v)`` gives values
    [T, A, F].

    Args:
        open: Opening prices [T], positive.
        high: Highs [T], positive.
        low: Lows [T], positive.
        close: Closing prices [T], positive.
        volume: Volumes [T], >= 0.
        timestamps_ns: Optional UTC bar times [T] as integer nanoseconds since the
            epoch (``DatetimeIndex.asi8`` in ns units); adds the two calendar columns.

    Returns:
        :class:`FeatureMatrix` with ``values`` [T, F] (F = 11, or 13 with timestamps)
        and ``names`` (F strings).
    """
    bars = {
        "open": as_series(open, "open"),
        "high": as_series(high, "high"),
        "low": as_series(low, "low"),
        "close": as_series(close, "close"),
        "volume": as_series(volume, "volume"),
    }
    if timestamps_ns is not None:
        bars["timestamps_ns"] = jnp.asarray(timestamps_ns)
    shapes = {name: x.shape for name, x in bars.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"every input must have one shape [T]; got {shapes}")
    open, high, low, close, volume = (bars[name] for name in list(bars)[:5])
    log_close = jnp.log(close)
    step_returns = returns.log_returns(close)
    columns = {
        "log_return_1": step_returns,
        "log_return_5": log_close - _lagged(log_close, 5),
        "log_return_20": log_close - _lagged(log_close, 20),
        "volatility_5": rolling.rolling_std(step_returns, 5),
        "volatility_20": rolling.rolling_std(step_returns, 20),
        "log_range": jnp.log(high / low),
        "log_body": jnp.log(close / open),
        "rsi_14": (oscillators.rsi(close, 14) - 50) / 50,
        "macd_histogram": oscillators.macd(close).histogram / close,
        "sma_distance_20": close / rolling.sma(close, 20) - 1,
        "volume_zscore_20": rolling.zscore(jnp.log1p(volume), 20),
    }
    if timestamps_ns is not None:
        angle = 2 * jnp.pi * _day_of_week(timestamps_ns) / 7
        columns["day_of_week_sin"] = jnp.sin(angle).astype(close.dtype)
        columns["day_of_week_cos"] = jnp.cos(angle).astype(close.dtype)
    values = jnp.stack(list(columns.values()), axis=1)
    return FeatureMatrix(values, tuple(columns))


def make_targets(close: ArrayLike, horizon: int, kind: str = "return") -> jnp.ndarray:
    """Forward targets defined at each bar, from the next ``horizon`` log returns.

    With ``r_t = log(c_t / c_{t-1})`` and ``h = horizon``:

    * ``kind="return"``: ``y_t = r_{t+1} + ... + r_{t+h} = log(c_{t+h} / c_t)``;
    * ``kind="volatility"``: realized variance ``y_t = r_{t+1}**2 + ... + r_{t+h}**2``
      (not annualised, not demeaned).

    Works under ``jax.jit`` (``horizon`` and ``kind`` static) and ``jax.vmap``.

    Args:
        close: Closing prices [T], positive.
        horizon: Number of future bars ``h >= 1`` (a Python int).
        kind: ``"return"`` or ``"volatility"``.

    Returns:
        [T] targets; NaN for the last ``h`` bars, whose future is not in the data.
    """
    close = as_series(close, "close")
    horizon = as_count(horizon, "horizon", 1)
    if kind == "return":
        log_close = jnp.log(close)
        return _led(log_close, horizon) - log_close
    if kind == "volatility":
        squares = returns.log_returns(close) ** 2
        # A trailing h-bar sum at t + h covers r_{t+1} .. r_{t+h}.
        return _led(rolling.sma(squares, horizon) * horizon, horizon)
    raise ValueError(f"kind must be one of {_TARGET_KINDS}; got {kind!r}")


def make_windows(
    features: ArrayLike, targets: ArrayLike, lookback: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Supervised samples of one asset: trailing feature windows and their targets.

    Sample for bar ``t``: ``X = features[t - lookback + 1 .. t]``, ``y = targets[t]``.
    A bar gives a sample only if it has a full window (``t >= lookback - 1``) and the
    window and the target are all finite; every other bar (warm-up, a gap, the last
    ``horizon`` bars without a target) is skipped. ``index`` says which bars were kept,
    so nothing is lost silently: ``set(range(T)) - set(index)`` are the skipped ones.

    Runs eagerly in NumPy (the number of samples depends on the data).

    Args:
        features: Per-bar features [T, F].
        targets: Per-bar forward targets [T].
        lookback: Window length in bars, >= 1.

    Returns:
        ``(X, y, index)``: windows [N, lookback, F], targets [N] and the bar of each
        sample [N] (sorted ``int64``).
    """
    features, targets = np.asarray(features), np.asarray(targets)
    if features.ndim != 2:
        raise ValueError(f"features must have shape [T, F]; got {features.shape}")
    if targets.ndim != 1:
        raise ValueError(f"targets must have shape [T]; got {targets.shape}")
    X, y, times, _ = make_panel_windows(
        features[:, None, :], targets[:, None], lookback
    )
    return X, y, times


def make_panel_windows(
    features: ArrayLike, targets: ArrayLike, lookback: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Supervised samples of a panel, as :func:`make_windows` for every asset.

    Samples are ordered by time, then asset.

    Args:
        features: Per-bar features [T, A, F].
        targets: Per-bar forward targets [T, A].
        lookback: Window length in bars, >= 1.

    Returns:
        ``(X, y, time_index, asset_index)``: windows [N, lookback, F], targets [N], and
        the bar and the asset of each sample [N] (``int64``).
    """
    features, targets = np.asarray(features), np.asarray(targets)
    lookback = as_count(lookback, "lookback", 1)
    if features.ndim != 3:
        raise ValueError(f"features must have shape [T, A, F]; got {features.shape}")
    if targets.shape != features.shape[:2]:
        raise ValueError(
            f"targets must have shape [T, A] = {features.shape[:2]}; "
            f"got {targets.shape}"
        )
    bar_finite = np.all(np.isfinite(features), axis=2)  # [T, A]
    # Non-finite bars among the last `lookback`, from running counts.
    bad = np.cumsum(~bar_finite, axis=0)
    bad_before = np.concatenate([np.zeros((lookback, bad.shape[1]), bad.dtype), bad])
    window_finite = (bad - bad_before[: bad.shape[0]]) == 0
    window_finite[: lookback - 1] = False
    time_index, asset_index = np.nonzero(window_finite & np.isfinite(targets))
    offsets = np.arange(1 - lookback, 1)
    X = features[time_index[:, None] + offsets, asset_index[:, None]]
    y = targets[time_index, asset_index]
    return X, y, time_index.astype(np.int64), asset_index.astype(np.int64)


def purged_walk_forward(
    n_times: int,
    train: int,
    test: int,
    *,
    horizon: int,
    lookback: int,
    embargo: int,
    step: int | None = None,
    expanding: bool = False,
) -> list[splits.Split]:
    """Walk-forward (train, test) splits of sample times, purged and embargoed.

    The splits are over time indices (bars), so they serve one series and a panel
    alike: select the samples whose ``index`` (or ``time_index``) is in a set.

    * Only bars that can carry a sample are laid out: ``lookback - 1 .. n_times -
      horizon - 1`` (a full window behind, a known target ahead).
    * Purge: the last ``horizon`` bars before each test block are in neither set.
      Their targets reach into the test block; with them out, every training
      target ``y_t`` (bars up to ``t + horizon``) ends before the first test bar.
    * Embargo: the ``embargo`` bars after each test block are left out of every
      later training set, since their windows (and features with long warm-ups)
      still hold test bars; ``embargo >= lookback - 1`` covers the windows.

    Layout otherwise as :func:`neuroflux.backtest.splits.walk_forward_splits`
    (``step`` defaults to ``test``; ``expanding`` grows the training span from the
    first usable bar).

    Args:
        n_times: Length of the time axis.
        train: Bars in the (first) training span, >= 1.
        test: Bars in each test block, >= 1.
        horizon: Bars the targets look ahead, >= 1 (as in :func:`make_targets`).
        lookback: Window length in bars, >= 1 (as in :func:`make_windows`).
        embargo: Bars after each test block that later training sets skip, >= 0.
        step: Bars between test starts, >= 1; ``None`` means ``test``.
        expanding: Training spans start at the first usable bar and grow.

    Returns:
        List of :class:`~neuroflux.backtest.splits.Split` ``(train, test)`` of sorted
        ``int64`` bar indices, in time order.

    Raises:
        TypeError: A count that is not an integer, or ``expanding`` not a bool.
        ValueError: An argument is out of range (the message names it), or the time
            axis is too short for one fold.
    """
    n_times = as_count(n_times, "n_times", 1)
    train = as_count(train, "train", 1)
    test = as_count(test, "test", 1)
    horizon = as_count(horizon, "horizon", 1)
    lookback = as_count(lookback, "lookback", 1)
    embargo = as_count(embargo, "embargo", 0)
    step = test if step is None else as_count(step, "step", 1)
    if not isinstance(expanding, bool):
        raise TypeError(f"expanding must be a bool; got {expanding!r}")
    usable = n_times - horizon - (lookback - 1)
    needed = train + horizon + test
    if usable < needed:
        raise ValueError(
            f"n_times={n_times} is too short for one fold: it needs lookback - 1 + "
            f"train + horizon + test + horizon = {lookback - 1} + {train} + "
            f"{horizon} + {test} + {horizon} = {lookback - 1 + needed + horizon} bars"
        )
    folds = splits.walk_forward_splits(
        usable,
        train_size=train,
        test_size=test,
        step=step,
        purge=horizon,
        embargo=embargo,
        expanding=expanding,
    )
    first = lookback - 1
    return [splits.Split(fold.train + first, fold.test + first) for fold in folds]


@struct.dataclass
class Scaler:
    """Per-feature standardisation ``(x - mean) / std``, with ``mean``, ``std`` [F]."""

    mean: jnp.ndarray
    std: jnp.ndarray

    def transform(self, X: ArrayLike) -> jnp.ndarray:
        """Standardise ``X`` [..., F] with the fitted statistics."""
        return (jnp.asarray(X) - self.mean) / self.std


def fit_scaler(X_train: ArrayLike) -> Scaler:
    """Mean and standard deviation of each feature over the training samples only.

    Statistics run over every axis but the last (samples and window positions alike;
    a bar shared by overlapping windows counts once per window). The standard
    deviation is the population one (ddof=0); a feature with a single value (zero
    variance) gets std 1, so it maps to 0 rather than to NaN. Fit on the training
    rows of a split and apply the same scaler to its test rows: test data never moves
    the statistics.

    Args:
        X_train: Training samples [..., F], finite (as from :func:`make_windows`).

    Returns:
        :class:`Scaler` with ``mean`` and ``std`` [F].
    """
    X_train = jnp.asarray(X_train)
    axes = tuple(range(X_train.ndim - 1))
    mean = jnp.mean(X_train, axis=axes)
    std = jnp.std(X_train, axis=axes)
    # Tested on the values, not on std > 0: the mean of identical values can round,
    # leaving a std of a few ulps that would blow rounding noise up to O(1).
    constant = jnp.max(X_train, axis=axes) == jnp.min(X_train, axis=axes)
    return Scaler(mean, jnp.where(constant, 1, std))
