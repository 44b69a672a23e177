"""Synthetic market data: seeded OHLCV generators with the stylized facts of returns.

Everything here is SYNTHETIC: simulated from a random seed, never market data. Each
frame says so in ``df.attrs`` (``"synthetic": True``, ``"source"``, ``"seed"`` and the
generating parameters) and is reproducible bit for bit from its seed.

Model, per bar ``t`` and asset, in log prices (Merton jump-diffusion whose diffusive
variance follows a GARCH(1,1) with standardized Student-t shocks):

    r_t = (mu - lambda k) dt - h_t / 2 + sqrt(h_t) z_t + J_t
    h_t = omega + alpha h_{t-1} z_{t-1}^2 + beta h_{t-1}

``z_t`` has unit variance (Student-t scaled by ``sqrt((nu - 2) / nu)``), ``J_t`` is a
sum of ``Poisson(lambda dt)`` normal jumps ``N(jump_mean, jump_std^2)``, and
``k = exp(jump_mean + jump_std^2 / 2) - 1`` compensates the jumps. ``omega`` is set by
variance targeting so that the total variance (diffusion plus jumps) is
``annual_volatility^2`` per year. The ``-h_t / 2`` term is the Gaussian Ito correction.

Bars: the open is the previous close (times an optional gap); high and low are the
extremes of a Brownian bridge from open to close with variance ``h_t``, drawn
independently of each other given open and close, which overstates the Parkinson
range variance by about 2-3%; volume grows with the bar's absolute return.

Periods per year: bars are counted on a 24/7 calendar, as crypto trades: a year is
365.25 days of 86,400 s, so ``"1min"`` is 525,960 bars a year and ``"1D"`` 365.25.

References:
    Bollerslev (1986), "Generalized autoregressive conditional heteroskedasticity".
    Bollerslev (1987), conditionally t-distributed GARCH shocks.
    Bollerslev (1990), constant conditional correlation (the panel's dependence).
    Engle and Mezrich (1996), variance targeting.
    Merton (1976), "Option pricing when underlying stock returns are discontinuous".
    Glasserman (2004), Monte Carlo Methods in Financial Engineering, sec. 6.4: the
    maximum of a Brownian bridge, used for the intrabar high and low.
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from neuroflux.data.validation import OHLCV_COLUMNS

SOURCE = "neuroflux synthetic generator (seeded; not market data)"

_SECONDS_PER_YEAR = 365.25 * 86_400.0


def _require(condition: bool, field: str, expected: str, value: object) -> None:
    if not condition:
        raise ValueError(f"{field} must be {expected}; got {value!r}")


def _require_bounds(
    config: object, relation: str, bound: float, *fields: str, prefix: str = ""
) -> None:
    for field in fields:
        value = getattr(config, field)
        inside = value > bound if relation == ">" else value >= bound
        expected = f"finite and {relation} {bound}"
        _require(math.isfinite(value) and inside, prefix + field, expected, value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GarchParams:
    """GARCH(1,1) news and persistence coefficients of the per-bar variance.

    ``omega`` is not a field: variance targeting sets it to
    ``(1 - alpha - beta) * diffusive variance per bar``; attrs record it.

    Attributes:
        alpha: Weight of the last squared shock (reaction to news), >= 0.
        beta: Weight of the last variance (persistence), >= 0; alpha + beta < 1.
            Returns have a finite fourth moment (kurtosis) only when
            ``beta^2 + 2 alpha beta + alpha^2 E[z^4] < 1``; the defaults with
            ``degrees_of_freedom=6`` (``E[z^4] = 6``) give 0.992.
    """

    alpha: float = 0.08
    beta: float = 0.90

    def __post_init__(self) -> None:
        _require_bounds(self, ">=", 0, "alpha", "beta", prefix="garch.")
        total = self.alpha + self.beta
        _require(total < 1, "garch.alpha + garch.beta", "< 1 (stationary)", total)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyntheticMarketConfig:
    """Dynamics of one synthetic asset; annual figures on the 24/7 calendar.

    Attributes:
        annual_drift: Expected arithmetic return per year (``E[S_T] = S_0 e^{mu T}``
            for Gaussian shocks).
        annual_volatility: Total volatility of log returns per year, jumps included.
        garch: GARCH(1,1) coefficients, or None for a constant diffusive variance.
        degrees_of_freedom: Student-t degrees of freedom (> 2) of the shocks, or None
            for Gaussian shocks.
        jump_intensity: Expected number of jumps per year.
        jump_mean: Mean log size of one jump.
        jump_std: Standard deviation of the log size of one jump.
        open_gap_std: Standard deviation of the log gap between the previous close
            and the open (0: open equals previous close); closes are unaffected.
        volume_mean: Typical volume per bar.
        volume_return_sensitivity: Volume grows as ``1 + sensitivity * |r| / sigma``
            with ``sigma`` the per-bar volatility (volume surprise).
        volume_noise: Standard deviation of the lognormal volume noise.
    """

    annual_drift: float = 0.0
    annual_volatility: float = 0.6
    garch: GarchParams | None = dataclasses.field(default_factory=GarchParams)
    degrees_of_freedom: float | None = 6.0
    jump_intensity: float = 10.0
    jump_mean: float = 0.0
    jump_std: float = 0.02
    open_gap_std: float = 0.0
    volume_mean: float = 1_000.0
    volume_return_sensitivity: float = 1.0
    volume_noise: float = 0.25

    def __post_init__(self) -> None:
        _require_bounds(self, ">", 0, "annual_volatility")
        _require_bounds(self, ">", -math.inf, "annual_drift", "jump_mean")
        _require_bounds(self, ">=", 0, "jump_intensity", "jump_std", "open_gap_std")
        _require_bounds(self, ">=", 0, "volume_mean", "volume_noise")
        _require_bounds(self, ">=", 0, "volume_return_sensitivity")
        if self.garch is not None and not isinstance(self.garch, GarchParams):
            raise TypeError(f"garch must be GarchParams or None; got {self.garch!r}")
        if self.degrees_of_freedom is not None:
            _require_bounds(self, ">", 2, "degrees_of_freedom")
        total_variance = self.annual_volatility**2
        expected = (
            f"< annual_volatility**2 = {total_variance:.6g} (jumps are part of it)"
        )
        field = "jump_intensity * (jump_mean**2 + jump_std**2)"
        _require(
            self.jump_variance < total_variance, field, expected, self.jump_variance
        )

    @property
    def jump_variance(self) -> float:
        """Annual variance contributed by jumps: ``lambda (mu_J^2 + sigma_J^2)``."""
        return self.jump_intensity * (self.jump_mean**2 + self.jump_std**2)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VenueConfig:
    """How one venue quotes the shared efficient price.

    Attributes:
        name: Venue name, the key of the returned dict.
        spread_bps: Full bid/ask spread around the mid, in basis points (> 0).
        lag_bars: Bars by which the venue's quotes trail the efficient price.
        fee_bps: Taker fee in basis points; recorded in attrs, not applied.
        noise_bps: Standard deviation of the venue's i.i.d. log mid noise, in bps.
        volume_share: Venue volume as a multiple of the efficient volume.
    """

    name: str
    spread_bps: float = 2.0
    lag_bars: int = 0
    fee_bps: float = 10.0
    noise_bps: float = 1.0
    volume_share: float = 1.0

    def __post_init__(self) -> None:
        _require(bool(self.name), "venue name", "a non-empty string", self.name)
        prefix = f"venue {self.name!r}: "
        lag = self.lag_bars
        _require(isinstance(lag, int | np.integer), prefix + "lag_bars", "an int", lag)
        _require_bounds(self, ">", 0, "spread_bps", prefix=prefix)
        _require_bounds(self, ">=", 0, "lag_bars", "fee_bps", prefix=prefix)
        _require_bounds(self, ">=", 0, "noise_bps", "volume_share", prefix=prefix)


_VENUE_FIELDS = [field.name for field in dataclasses.fields(VenueConfig)]
VENUE_PRESETS: Mapping[str, VenueConfig] = {
    row[0]: VenueConfig(**dict(zip(_VENUE_FIELDS, row, strict=True)))
    for row in [  # name, spread_bps, lag_bars, fee_bps, noise_bps, volume_share
        ("binance", 1.0, 0, 10.0, 0.5, 1.0),
        ("coinbase", 2.0, 1, 60.0, 1.0, 0.4),
        ("kraken", 4.0, 2, 26.0, 2.0, 0.2),
    ]
}
"""Illustrative venue settings by name; not the venues' actual fees or latencies."""


def periods_per_year(bar: str) -> float:
    """Bars per year for a fixed-length pandas offset alias, on a 24/7 calendar.

    Args:
        bar: Offset alias such as ``"1s"``, ``"1min"``, ``"5min"``, ``"1h"``, ``"1D"``.

    Returns:
        ``365.25 * 86400 / seconds per bar`` (525,960 for ``"1min"``, 365.25 for
        ``"1D"``).
    """
    try:
        seconds = pd.Timedelta(pd.tseries.frequencies.to_offset(bar)).total_seconds()
    except (TypeError, ValueError) as error:
        expected = "a fixed-length pandas offset alias like '1min', '1h' or '1D'"
        raise ValueError(f"bar must be {expected}; got {bar!r}") from error
    _require(seconds > 0, "bar", "a positive duration", bar)
    return _SECONDS_PER_YEAR / seconds


def _market(base: SyntheticMarketConfig | None, fields: dict) -> SyntheticMarketConfig:
    known = [field.name for field in dataclasses.fields(SyntheticMarketConfig)]
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise TypeError(f"unknown market parameter(s) {unknown}; known: {known}")
    return dataclasses.replace(base or SyntheticMarketConfig(), **fields)


def _simulate_bars(
    rng: np.random.Generator,
    n_bars: int,
    market: SyntheticMarketConfig,
    years_per_bar: float,
    log_price: np.ndarray,
    cholesky: np.ndarray,
) -> list[np.ndarray]:
    """Open, high, low, close and volume, each [T, A]; see the module docstring."""
    shape = (n_bars, len(log_price))
    shocks = rng.standard_normal(shape) @ cholesky.T
    if market.degrees_of_freedom is not None:
        # One chi-square mixing draw per bar shared by all assets: a multivariate t
        # keeps the shock correlation at the requested matrix.
        freedom = market.degrees_of_freedom
        shocks *= np.sqrt((freedom - 2.0) / rng.chisquare(freedom, size=(n_bars, 1)))
    diffusive = (market.annual_volatility**2 - market.jump_variance) * years_per_bar
    variance = np.full(shape, diffusive)
    if market.garch is not None:
        alpha, beta = market.garch.alpha, market.garch.beta
        growth = alpha * shocks**2 + beta
        state = variance[0].copy()
        for step in range(n_bars):  # sequential: h_t depends on h_{t-1}
            variance[step] = state
            state = diffusive * (1.0 - alpha - beta) + growth[step] * state
    counts = rng.poisson(market.jump_intensity * years_per_bar, size=shape)
    normal = rng.standard_normal(shape)
    jumps = market.jump_mean * counts + market.jump_std * np.sqrt(counts) * normal
    mean_jump = math.expm1(market.jump_mean + market.jump_std**2 / 2)
    drift = (market.annual_drift - market.jump_intensity * mean_jump) * years_per_bar
    returns = drift - variance / 2 + np.sqrt(variance) * shocks + jumps

    log_close = log_price + np.cumsum(returns, axis=0)
    log_open = np.vstack([log_price, log_close[:-1]])
    log_open += market.open_gap_std * rng.standard_normal(shape)
    move = log_close - log_open
    # The maximum of a Brownian bridge from 0 to x with variance h is
    # (x + sqrt(x^2 - 2 h log U)) / 2 (Glasserman 2004, sec. 6.4); minimum likewise.
    up = np.sqrt(move**2 - 2 * variance * np.log1p(-rng.random(shape)))
    down = np.sqrt(move**2 - 2 * variance * np.log1p(-rng.random(shape)))
    log_high = np.maximum.reduce([log_open + (move + up) / 2, log_open, log_close])
    log_low = np.minimum.reduce([log_open + (move - down) / 2, log_open, log_close])
    surprise = np.abs(returns) / math.sqrt(market.annual_volatility**2 * years_per_bar)
    sensitivity, noise = market.volume_return_sensitivity, market.volume_noise
    lognormal = np.exp(noise * rng.standard_normal(shape) - noise**2 / 2)
    # Divide by the value at E|z| = sqrt(2 / pi) so volume averages near volume_mean.
    scale = market.volume_mean / (1 + sensitivity * math.sqrt(2 / math.pi))
    volume = scale * lognormal * (1 + sensitivity * surprise)
    logs = [log_open, log_high, log_low, log_close]
    return [*np.exp(logs), volume]


def _index(n_bars: int, bar: str, start: str | pd.Timestamp) -> pd.DatetimeIndex:
    whole = isinstance(n_bars, int | np.integer) and n_bars >= 1
    _require(whole, "n_bars", "an int >= 1", n_bars)
    first = pd.Timestamp(start)
    first = first.tz_localize("UTC") if first.tz is None else first.tz_convert("UTC")
    return pd.date_range(first, periods=n_bars, freq=bar, name="timestamp")


def _attrs(name: str, seed: int, bar: str, index: pd.DatetimeIndex,
           market: SyntheticMarketConfig, **extra: Any) -> dict[str, Any]:  # fmt: skip
    labels = dict(name=name, source=SOURCE, synthetic=True, seed=seed, bar=bar)
    timing = dict(start=index[0].isoformat(), periods_per_year=periods_per_year(bar))
    return labels | timing | dataclasses.asdict(market) | extra


def _correlation_matrix(correlation: float | np.ndarray, n_assets: int) -> np.ndarray:
    matrix = np.array(correlation, dtype=np.float64)
    if matrix.ndim == 0:
        matrix = np.full((n_assets, n_assets), float(correlation))
        np.fill_diagonal(matrix, 1.0)
    expected = f"a scalar or an [A, A] = [{n_assets}, {n_assets}] matrix"
    _require(
        matrix.shape == (n_assets, n_assets), "correlation", expected, matrix.shape
    )
    _require(bool(np.isfinite(matrix).all()), "correlation", "finite", matrix.tolist())
    asymmetry = float(np.abs(matrix - matrix.T).max())
    _require(asymmetry <= 1e-10, "correlation", "symmetric (max |C - C.T|)", asymmetry)
    diagonal = np.diag(matrix).tolist()
    _require(np.allclose(diagonal, 1.0), "correlation", "1 on the diagonal", diagonal)
    try:
        np.linalg.cholesky(matrix)
        return matrix
    except np.linalg.LinAlgError:
        smallest = float(np.linalg.eigvalsh(matrix).min())
        expected = f"positive definite (smallest eigenvalue {smallest:.6g})"
        raise ValueError(
            f"correlation must be {expected}; got {matrix.tolist()}"
        ) from None


def synthetic_ohlcv(
    n_bars: int = 10_000,
    *,
    bar: str = "1min",
    start: str | pd.Timestamp = "2024-01-01",
    seed: int = 0,
    price: float = 100.0,
    name: str = "synthetic",
    market: SyntheticMarketConfig | None = None,
    **market_fields: Any,
) -> pd.DataFrame:
    """One SYNTHETIC asset's OHLCV bars (seeded simulation, not market data).

    Args:
        n_bars: Number of bars T.
        bar: Fixed-length pandas offset alias of one bar ("1s", "1min", "1h", "1D").
        start: First bar's timestamp; naive means UTC.
        seed: Seed of ``np.random.default_rng``; equal seeds give equal frames.
        price: Close before the first bar (> 0).
        name: Stored in ``attrs["name"]``.
        market: Dynamics; defaults to ``SyntheticMarketConfig()``.
        **market_fields: Overrides of ``market``'s fields, e.g. ``garch=None``,
            ``degrees_of_freedom=None``, ``jump_intensity=0.0``, ``annual_volatility``.

    Returns:
        [T, 5] frame, float64 columns ``open high low close volume``, UTC index named
        "timestamp". Open is the previous close (times an optional gap), high/low
        are Brownian-bridge extremes between open and close, volume rises with the
        bar's absolute return. ``attrs`` holds the labels and every parameter.
    """
    options = dict(bar=bar, start=start, seed=seed, price=price, market=market)
    panel = synthetic_panel(n_bars, [name], name=name, **options, **market_fields)
    frame = panel.xs(name, axis="columns", level="symbol")
    frame.columns.name = None
    del panel.attrs["symbols"], panel.attrs["correlation"]
    frame.attrs = panel.attrs | {"price": float(price)}
    return frame


def synthetic_panel(
    n_bars: int = 10_000,
    symbols: Sequence[str] | int = ("A", "B", "C"),
    *,
    correlation: float | np.ndarray = 0.5,
    bar: str = "1min",
    start: str | pd.Timestamp = "2024-01-01",
    seed: int = 0,
    price: float | Sequence[float] = 100.0,
    name: str = "synthetic_panel",
    market: SyntheticMarketConfig | None = None,
    **market_fields: Any,
) -> pd.DataFrame:
    """A SYNTHETIC multi-asset panel with correlated shocks (not market data).

    Shocks are ``L g`` with ``L`` the Cholesky factor of ``correlation`` (Student-t
    through one chi-square mixing draw per bar shared by all assets); each asset runs
    its own GARCH state: constant conditional correlation (Bollerslev 1990). The
    requested matrix is the correlation of the standardized shocks; the raw return
    correlation is pulled toward 0 (by about 5-10% with the default GARCH, as the
    assets' variances differ bar by bar), and further by jumps, which are
    independent across assets.

    Args:
        n_bars: Number of bars T.
        symbols: Names of the A assets, or A itself (named ``asset_0`` ...).
        correlation: Constant off-diagonal correlation or an [A, A] symmetric
            positive-definite matrix with unit diagonal.
        bar, start, seed, name, market, **market_fields: As in ``synthetic_ohlcv``.
        price: Starting price, one for all or one per symbol.

    Returns:
        [T, 5 * A] frame with MultiIndex columns ``(field, symbol)`` (levels named
        "field" and "symbol", fields in the order open high low close volume), so
        ``panel["close"]`` is the [T, A] close frame.
    """
    if isinstance(symbols, int | str):
        symbols = [symbols] if isinstance(symbols, str) else range(symbols)
    names = [f"asset_{name}" if isinstance(name, int) else name for name in symbols]
    unique = len(names) >= 1 and len(set(names)) == len(names)
    _require(unique, "symbols", "unique names, at least one", names)
    natural = isinstance(seed, int | np.integer) and seed >= 0
    _require(natural, "seed", "an int >= 0", seed)
    prices = np.broadcast_to(np.asarray(price, dtype=np.float64), (len(names),))
    _require(bool((prices > 0).all()), "price", "> 0 for every symbol", price)
    config = _market(market, market_fields)
    matrix = _correlation_matrix(correlation, len(names))
    index = _index(n_bars, bar, start)
    rng = np.random.default_rng(seed)
    years_per_bar = 1.0 / periods_per_year(bar)
    bars = _simulate_bars(
        rng,
        len(index),
        config,
        years_per_bar,
        np.log(prices),
        np.linalg.cholesky(matrix),
    )
    values = np.hstack(bars)
    if not (np.isfinite(values).all() and (values[:, : 4 * len(names)] > 0).all()):
        message = "prices overflowed; lower annual_volatility, garch or jump_std"
        raise ValueError(message)
    columns = pd.MultiIndex.from_product(
        [OHLCV_COLUMNS, names], names=["field", "symbol"]
    )
    panel = pd.DataFrame(values, index=index, columns=columns)
    extra = dict(symbols=names, correlation=matrix.tolist(), price=prices.tolist())
    if config.garch is not None:
        persistence = config.garch.alpha + config.garch.beta
        diffusive = config.annual_volatility**2 - config.jump_variance
        extra["garch_omega"] = diffusive * years_per_bar * (1 - persistence)
    panel.attrs = _attrs(name, seed, bar, index, config, **extra)
    return panel


def synthetic_venues(
    n_bars: int = 10_000,
    venues: Sequence[str | VenueConfig] = ("binance", "kraken", "coinbase"),
    *,
    bar: str = "1min",
    start: str | pd.Timestamp = "2024-01-01",
    seed: int = 0,
    price: float = 100.0,
    asset: str = "SYNTH/USD",
    market: SyntheticMarketConfig | None = None,
    **market_fields: Any,
) -> dict[str, pd.DataFrame]:
    """One SYNTHETIC asset quoted on several venues (simulated, not market data).

    A shared efficient price follows ``synthetic_ohlcv``'s model. Venue ``v`` at bar
    ``t`` shows the efficient bar ``t - lag_v`` with its own i.i.d. log noise:
    ``log close_v(t) = log efficient close(t - lag_v) + noise_bps * 1e-4 * e_v(t)``;
    its open is its previous close, its high/low the efficient extremes moved by the
    same noise and widened to cover its open and close. A later arbitrage study can
    rely on:

    * the log mid difference of two venues is minus the efficient return between
      their lags plus noise: stationary and mean-reverting, its autocorrelation is
      zero from lag ``max(|lag_a - lag_b|, 1)`` on;
    * a lagged venue's mid returns follow the leader's with exactly the lag
      difference, where their cross-correlation peaks;
    * ``bid = close * (1 - spread_bps / 2e4)`` and ``ask = close * (1 + spread_bps /
      2e4)``, quotes at the bar close (mid = close); fees are recorded, not applied.

    Args:
        n_bars: Number of bars T (the efficient price starts max lag bars earlier).
        venues: Names from ``VENUE_PRESETS`` or ``VenueConfig`` objects.
        bar, start, seed, price, market, **market_fields: As in ``synthetic_ohlcv``.
        asset: Stored in each frame's ``attrs["asset"]``.

    Returns:
        Venue name -> [T, 7] frame with float64 columns ``open high low close volume
        bid ask`` and a UTC "timestamp" index; attrs add the venue's ``spread_bps``,
        ``lag_bars``, ``fee_bps``, ``noise_bps`` and ``volume_share``.
    """
    for venue in venues:
        known = isinstance(venue, VenueConfig) or venue in VENUE_PRESETS
        _require(
            known, "venues", f"VenueConfig or one of {sorted(VENUE_PRESETS)}", venue
        )
    configs = [VENUE_PRESETS[v] if isinstance(v, str) else v for v in venues]
    names = [venue.name for venue in configs]
    unique = len(names) >= 1 and len(set(names)) == len(names)
    _require(unique, "venues", "unique names, at least one", names)
    warm_up = max(venue.lag_bars for venue in configs)
    index = _index(n_bars, bar, start)
    options = dict(bar=bar, start=start, seed=seed, price=price, market=market)
    efficient = synthetic_ohlcv(len(index) + warm_up, **options, **market_fields)
    logs = np.log(efficient[["open", "high", "low", "close"]].to_numpy())
    efficient_volume = efficient["volume"].to_numpy()
    rng = np.random.default_rng([seed, 1])  # its own stream, beside the efficient one
    frames = {}
    for venue in configs:
        window = slice(warm_up - venue.lag_bars, len(logs) - venue.lag_bars)
        log_open, log_high, log_low, log_close = logs[window].T
        draws = rng.standard_normal((2, len(index)))
        noise = venue.noise_bps * 1e-4 * draws[0]
        log_open = np.concatenate([log_open[:1], log_close[:-1] + noise[:-1]])
        log_high = np.maximum.reduce([log_high + noise, log_open, log_close + noise])
        log_low = np.minimum.reduce([log_low + noise, log_open, log_close + noise])
        log_close = log_close + noise
        spread = efficient.attrs["volume_noise"]
        lognormal = np.exp(spread * draws[1] - spread**2 / 2)
        volume = efficient_volume[window] * venue.volume_share * lognormal
        half_spread = venue.spread_bps / 2e4
        close = np.exp(log_close)
        quotes = [close * (1 - half_spread), close * (1 + half_spread)]
        values = [*np.exp([log_open, log_high, log_low]), close, volume, *quotes]
        columns = [*OHLCV_COLUMNS, "bid", "ask"]
        frame = pd.DataFrame(np.column_stack(values), index=index, columns=columns)
        labels = {"asset": asset, "start": index[0].isoformat()}
        frame.attrs = efficient.attrs | dataclasses.asdict(venue) | labels
        frames[venue.name] = frame
    return frames
