"""One backtest of a registered strategy on an OHLCV frame, with pandas-facing results.

``run_backtest(load_sample("goog"), "sma_cross", {"fast": 10, "slow": 30})`` validates
the frame, computes the strategy's target positions, runs
:func:`neuroflux.backtest.simulate` and returns a :class:`BacktestRun`: statistics as a
Series, per-bar holdings and trades as frames, and a vectorbt replay of its orders.

Extra inputs of a strategy (``neuro_composite``'s ``flux``) are read from the frame's
column of that name; without one the strategy's default applies (zeros for ``flux``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from neuroflux import strategies
from neuroflux.backtest import STATISTICS, Bars, SimulationConfig, SimulationParams
from neuroflux.backtest.simulation import Result, simulate
from neuroflux.data import list_samples, load_sample, read_ohlcv, validate_ohlcv
from neuroflux.strategies.positions import Direction

__all__ = [
    "COMPAT",
    "BacktestRun",
    "load_data",
    "make_simulation",
    "parse_param",
    "run_backtest",
]

COMPAT = ("backtesting.py",)
_PRICES = ("open", "high", "low", "close")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


_DOWNLOAD = "download:EXCHANGE:SYMBOL:TIMEFRAME:SINCE:UNTIL"


def load_data(spec: str) -> pd.DataFrame:
    """An OHLCV frame from an embedded sample, a downloaded market or a file.

    ``"sample:NAME"`` is an embedded sample; ``"download:EXCHANGE:SYMBOL:TIMEFRAME:
    SINCE:UNTIL"`` (e.g. ``download:binance:BTC/USDT:1h:2024-01-01:2024-02-01``) is
    :func:`neuroflux.data.fetch_ohlcv`'s market, served from its cache when the range
    is there and downloaded otherwise; anything else is a CSV/Parquet path.

    Raises:
        KeyError: Unknown sample (the message lists them).
        ValueError: A download spec without its five fields.
        FileNotFoundError, DataValidationError: From :func:`read_ohlcv`.
    """
    if spec.startswith("sample:"):
        return load_sample(spec.removeprefix("sample:"))
    if spec.startswith("download:"):
        fields = spec.removeprefix("download:").split(":")
        if len(fields) != 5:
            raise ValueError(
                f"{spec!r}: expected {_DOWNLOAD}, e.g. "
                "download:binance:BTC/USDT:1h:2024-01-01:2024-02-01"
            )
        from neuroflux.data import fetch_ohlcv

        return fetch_ohlcv(*fields)
    return read_ohlcv(spec)


def _single_samples() -> list[str]:
    samples = list_samples()
    return list(samples.index[samples["kind"] == "single"])


def _checked_frame(data: pd.DataFrame) -> pd.DataFrame:
    name = str(data.attrs.get("name", "<frame>"))
    if isinstance(data.columns, pd.MultiIndex):
        raise ValueError(
            f"{name} is a panel (columns {list(data.columns.names)}); a backtest takes "
            "one asset: pick one, e.g. data.xs('goog', axis=1, level=1), or a "
            f"single-asset sample: {', '.join(_single_samples())}"
        )
    return validate_ohlcv(data, source=name)


def parse_param(strategy: str, name: str, text: str) -> Any:
    """The value of parameter ``name`` of ``strategy`` parsed from ``text``.

    The type is the default's: int, float, bool (true/false, 1/0, yes/no, on/off) or a
    direction (``long_only``, ``long_short``).

    Raises:
        ValueError: Unknown strategy or parameter (listing the valid ones), or a value
            that does not parse, naming the parameter and the type expected.
    """
    if name not in strategies.get_strategy(strategy).parameter_docs:
        strategies.make_params(strategy, **{name: text})  # raises the registry error
    default = getattr(strategies.make_params(strategy), name)
    text = text.strip()
    if isinstance(default, Direction):
        return Direction.parse(text).value
    if isinstance(default, bool):
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        expected = "a boolean (true/false)"
    elif isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            expected = "an integer"
    else:
        try:
            return float(text)
        except ValueError:
            expected = "a number"
    raise ValueError(
        f"parameter {name!r} of {strategy}: expected {expected}, got {text!r}"
    )


def make_simulation(
    *,
    cash: float = 10_000.0,
    commission: float = 0.0,
    fixed_fees: float = 0.0,
    slippage: float = 0.0,
    fill: str = "close",
    units: str = "fractional",
    compat: str | None = None,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    trailing_stop: float | None = None,
    close_at_end: bool = False,
) -> tuple[SimulationParams, SimulationConfig]:
    """The simulation parameters and config of :func:`run_backtest`'s options."""
    if compat is not None:
        if compat not in COMPAT:
            raise ValueError(f"compat must be one of {COMPAT} or None; got {compat!r}")
        config = dataclasses.replace(
            SimulationConfig.backtesting_py(), close_at_end=close_at_end
        )
    else:
        config = SimulationConfig(fill=fill, units=units, close_at_end=close_at_end)
    params = SimulationParams(
        init_cash=float(cash),
        fees=float(commission),
        fixed_fees=float(fixed_fees),
        slippage=float(slippage),
        stop_loss=np.inf if stop_loss is None else float(stop_loss),
        take_profit=np.inf if take_profit is None else float(take_profit),
        trailing_stop=np.inf if trailing_stop is None else float(trailing_stop),
    )
    return params, config


def _bars(frame: pd.DataFrame) -> Bars:
    return Bars(*(jnp.asarray(frame[c].to_numpy(np.float64)) for c in _PRICES))


def _inputs(frame: pd.DataFrame, strategy: strategies.Strategy) -> dict[str, Any]:
    return {
        name: jnp.asarray(frame[name].to_numpy(np.float64))
        for name in strategy.inputs
        if name in frame.columns
    }


@functools.partial(jax.jit, static_argnames=("signal", "config", "stops_off"))
def _backtest(bars, strategy_params, params, inputs, *, signal, config, stops_off):
    if stops_off:
        params = params.replace(
            stop_loss=np.inf, take_profit=np.inf, trailing_stop=np.inf
        )
    return simulate(bars, signal(bars.close, strategy_params, **inputs), params, config)


@jax.jit
def _statistics(result: Result, periods_per_year) -> dict:
    return result.stats(periods_per_year)


@dataclasses.dataclass(frozen=True, eq=False)
class BacktestRun:
    """A backtest and its inputs; pandas views of the pure :class:`Result`.

    Attributes:
        index: Bar timestamps [T] (UTC).
        bars: The prices simulated.
        strategy: Registry name of the strategy.
        params: Its parameters (the registry's parameter dataclass).
        simulation_params: Cash, costs and stops.
        config: Fill, units and sizing.
        result: The pure result.
        periods_per_year: Bars per year, for annualised statistics.
    """

    index: pd.DatetimeIndex
    bars: Bars
    strategy: str
    params: Any
    simulation_params: SimulationParams
    config: SimulationConfig
    result: Result
    periods_per_year: float = 252.0

    def stats(self) -> pd.Series:
        """The statistics, keyed as :data:`neuroflux.backtest.STATISTICS`."""
        stats = _statistics(self.result, self.periods_per_year)
        values = {name: np.asarray(stats[name]).item() for name in STATISTICS}
        values["trades"] = int(values["trades"])
        values["max_drawdown_bars"] = int(values["max_drawdown_bars"])
        return pd.Series(values, dtype=object, name=self.strategy)

    def to_frame(self) -> pd.DataFrame:
        """Per bar: close, target, units, cash, value, returns and fees."""
        result = self.result
        columns = {
            "close": self.bars.close,
            "target": result.target,
            "units": result.units,
            "cash": result.cash,
            "value": result.value,
            "returns": result.returns,
            "fees": result.fees,
        }
        return pd.DataFrame(
            {name: np.asarray(values) for name, values in columns.items()},
            index=self.index,
        )

    def trades(self) -> pd.DataFrame:
        """The trades (closed ones, then the open one if any), one row each."""
        log = self.result.trades
        real = np.asarray(log.entry_index) >= 0
        entry = np.asarray(log.entry_index)[real]
        exit_ = np.asarray(log.exit_index)[real]
        frame = pd.DataFrame(
            {
                "entry_time": self.index[entry],
                "exit_time": self.index[exit_],
                "direction": np.where(
                    np.asarray(log.direction)[real] > 0, "long", "short"
                ),
                "size": np.asarray(log.size)[real],
                "entry_price": np.asarray(log.entry_price)[real],
                "exit_price": np.asarray(log.exit_price)[real],
                "fees": np.asarray(log.fees)[real],
                "pnl": np.asarray(log.pnl)[real],
                "return_pct": 100.0 * np.asarray(log.returns)[real],
                "is_open": np.asarray(log.is_open)[real],
            }
        )
        frame.insert(2, "duration", frame["exit_time"] - frame["entry_time"])
        return frame

    def orders(self) -> pd.DataFrame:
        """Net order of each bar: units traded, average fill price and fees.

        The fill price is recovered from the cash: ``-(cash change + fees) / units
        change``, so it is the size-weighted price of the bar's orders (a close and an
        open at once, or a fill and a stop).

        Raises:
            ValueError: A bar whose orders net to zero units but move cash (a position
                opened and stopped out within one bar): one net order cannot stand for
                it.
        """
        result = self.result
        init_cash = float(self.simulation_params.init_cash)
        units = np.asarray(result.units)
        cash = np.asarray(result.cash)
        fees = np.asarray(result.fees)
        traded = np.diff(units, prepend=0.0)
        cash_change = np.diff(cash, prepend=init_cash)
        netted = (traded == 0) & ((cash_change != 0) | (fees != 0))
        if netted.any():
            stamps = ", ".join(str(t) for t in self.index[netted][:3])
            raise ValueError(
                f"{int(netted.sum())} bar(s) trade and net to zero units (first: "
                f"{stamps}); one net order per bar cannot replay them"
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            price = np.where(traded != 0, -(cash_change + fees) / traded, np.nan)
        return pd.DataFrame(
            {"size": traded, "price": price, "fees": fees}, index=self.index
        )

    def to_vectorbt(self, **options: Any):
        """The same orders replayed by ``vectorbt.Portfolio.from_orders``.

        One order per bar of the net units traded, at the bar's fill price
        (:meth:`orders`), with the bar's fees charged as a fixed fee; its ``value()``
        equals ``result.value``. ``options`` go to ``from_orders`` (e.g. ``freq``).
        """
        import vectorbt as vbt

        orders = self.orders()
        close = pd.Series(np.asarray(self.bars.close), index=self.index, name="close")
        trading = orders["size"] != 0
        return vbt.Portfolio.from_orders(
            close,
            size=orders["size"].where(trading, np.nan),
            price=orders["price"].where(trading, close),
            size_type="amount",
            direction="both",
            fees=0.0,
            fixed_fees=orders["fees"],
            slippage=0.0,
            init_cash=float(self.simulation_params.init_cash),
            **options,
        )


def run_backtest(
    data: pd.DataFrame,
    strategy: str,
    params: Mapping[str, Any] | None = None,
    *,
    cash: float = 10_000.0,
    commission: float = 0.0,
    fixed_fees: float = 0.0,
    slippage: float = 0.0,
    fill: str = "close",
    units: str = "fractional",
    compat: str | None = None,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    trailing_stop: float | None = None,
    close_at_end: bool = False,
    periods_per_year: float = 252.0,
) -> BacktestRun:
    """Backtest a registered strategy on one asset's OHLCV bars.

    Args:
        data: OHLCV frame with a UTC DatetimeIndex (:func:`load_sample`,
            :func:`read_ohlcv`); validated (finite positive prices, ordered index).
        strategy: Registry name (:data:`neuroflux.strategies.STRATEGIES`).
        params: Parameter overrides (``direction`` may be a string).
        cash: Initial cash.
        commission: Proportional fee per order (fraction of its value).
        fixed_fees: Fixed fee per order.
        slippage: Fraction added to buys and taken from sells.
        fill: ``"close"`` or ``"next_open"``.
        units: ``"fractional"`` or ``"whole"``.
        compat: ``"backtesting.py"``: its next-open fills, whole units and sizing
            (``fill`` and ``units`` are then ignored).
        stop_loss, take_profit, trailing_stop: Fractions, ``None`` for off.
        close_at_end: Close the position at the last possible fill.
        periods_per_year: Bars per year for annualised statistics.

    Returns:
        The :class:`BacktestRun`.

    Raises:
        ValueError: Unknown strategy or parameter (the registry's error, listing the
            valid names), a panel frame, or bad options.
        DataValidationError: Missing columns, NaN or non-positive prices (naming the
            row and column).
    """
    chosen = strategies.get_strategy(strategy)
    strategy_params = strategies.make_params(strategy, **dict(params or {}))
    frame = _checked_frame(data)
    simulation_params, config = make_simulation(
        cash=cash,
        commission=commission,
        fixed_fees=fixed_fees,
        slippage=slippage,
        fill=fill,
        units=units,
        compat=compat,
        stop_loss=stop_loss,
        take_profit=take_profit,
        trailing_stop=trailing_stop,
        close_at_end=close_at_end,
    )
    bars = _bars(frame)
    result = _backtest(
        bars,
        strategy_params,
        simulation_params,
        _inputs(frame, chosen),
        signal=chosen.signal,
        config=config,
        stops_off=stop_loss is None and take_profit is None and trailing_stop is None,
    )
    return BacktestRun(
        index=frame.index,
        bars=bars,
        strategy=strategy,
        params=strategy_params,
        simulation_params=simulation_params,
        config=config,
        result=result,
        periods_per_year=float(periods_per_year),
    )
