"""Real daily market data that ships inside PyPI wheels, ready to use offline.

- ``sp500``, ``nasdaq``: S&P 500 and NASDAQ Composite indices, 1999 – 2018, from the
  example data of the ``arch`` package (``arch.data``; NCSA licence).
- ``aapl``, ``ibm``, ``msft`` (2000 – 2013) and ``goog`` (2004 – 2013): US stocks from
  ``bokeh_sampledata.stocks`` (Quandl WIKI prices, public domain).
- ``us_stocks``: the four stocks as a panel, on the dates all four trade (2004 – 2013).
- ``us_indices``: ``sp500`` and ``nasdaq`` as a panel.

Single-asset samples are frames with a UTC DatetimeIndex named ``timestamp`` and float64
columns ``open high low close volume``. Panels have two column levels, ``(field,
symbol)``, so ``panel["close"]`` is a ``[T, A]`` frame of closes.

The stock prices are split- and dividend-adjusted by default: open, high, low and close
are multiplied by the source's ``adj_close / close`` ratio and volume divided by it, so
returns have no split jumps. ``adjusted=False`` gives the prices as printed that day.
The frame's ``attrs`` record the source, licence and whether prices are adjusted.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import pandas as pd

from neuroflux.data.validation import OHLCV_COLUMNS


@dataclass(frozen=True, kw_only=True)
class _Sample:
    description: str
    source: str
    license: str
    members: tuple[str, ...] = ()


_ARCH_SOURCE = (
    "arch package, arch.data.{module}: the daily bars arch ships for its examples"
)
_BOKEH_SOURCE = (
    "bokeh_sampledata.stocks: Quandl WIKI prices (public domain), archived copy"
)

SAMPLES: dict[str, _Sample] = {
    "sp500": _Sample(
        description="S&P 500 index, daily, 1999-01-04 to 2018-12-31",
        source=_ARCH_SOURCE.format(module="sp500"),
        license="NCSA (arch package)",
    ),
    "nasdaq": _Sample(
        description="NASDAQ Composite index, daily, 1999-01-04 to 2018-12-31",
        source=_ARCH_SOURCE.format(module="nasdaq"),
        license="NCSA (arch package)",
    ),
    **{
        ticker.lower(): _Sample(
            description=f"{ticker} common stock, daily, {span}",
            source=_BOKEH_SOURCE,
            license="public domain",
        )
        for ticker, span in [
            ("AAPL", "2000-03-01 to 2013-03-01"),
            ("IBM", "2000-03-01 to 2013-03-01"),
            ("MSFT", "2000-03-01 to 2013-03-01"),
            ("GOOG", "2004-08-19 to 2013-03-01"),
        ]
    },
    "us_stocks": _Sample(
        description="AAPL, IBM, MSFT and GOOG as one panel on the dates all four trade",
        source=_BOKEH_SOURCE,
        license="public domain",
        members=("aapl", "ibm", "msft", "goog"),
    ),
    "us_indices": _Sample(
        description="S&P 500 and NASDAQ Composite as one panel",
        source=_ARCH_SOURCE.format(module="sp500, nasdaq"),
        license="NCSA (arch package)",
        members=("sp500", "nasdaq"),
    ),
}


def list_samples() -> pd.DataFrame:
    """The embedded samples: name, description, source, licence and kind."""
    rows = [
        {
            "name": name,
            "kind": "panel" if sample.members else "single",
            "description": sample.description,
            "source": sample.source,
            "license": sample.license,
        }
        for name, sample in SAMPLES.items()
    ]
    return pd.DataFrame(rows).set_index("name")


def load_sample(name: str, *, adjusted: bool = True) -> pd.DataFrame:
    """Loads an embedded sample of real daily market data.

    Args:
        name: one of ``list_samples().index`` (case-insensitive).
        adjusted: stocks only: split- and dividend-adjust OHLC and volume.

    Returns:
        A ``[T, 5]`` OHLCV frame, or for a panel a ``[T, 5 * A]`` frame with columns
        ``(field, symbol)``; index ``timestamp`` in UTC; ``attrs`` name the source.

    Raises:
        KeyError: for an unknown name, listing the valid ones.
    """
    key = name.lower()
    if key not in SAMPLES:
        raise KeyError(f"unknown sample {name!r}; expected one of {', '.join(SAMPLES)}")
    sample = SAMPLES[key]
    if sample.members:
        frame = _aligned_panel(
            {
                member: load_sample(member, adjusted=adjusted)
                for member in sample.members
            }
        )
    elif key in ("sp500", "nasdaq"):
        frame = _arch_index(key)
    else:
        frame = _bokeh_stock(key.upper(), adjusted=adjusted)
    frame.attrs = {
        **frame.attrs,
        "name": key,
        "description": sample.description,
        "source": sample.source,
        "license": sample.license,
        "synthetic": False,
        "timestamp_convention": "session date at 00:00 UTC",
        "adjusted": adjusted and key not in ("sp500", "nasdaq", "us_indices"),
        **({"symbols": list(sample.members)} if sample.members else {}),
    }
    return frame


def _arch_index(key: str) -> pd.DataFrame:
    raw = importlib.import_module(f"arch.data.{key}").load()
    frame = raw[["Open", "High", "Low", "Close", "Volume"]].copy()
    frame.columns = list(OHLCV_COLUMNS)
    return _with_utc_index(frame.astype("float64"), raw.index)


def _bokeh_stock(ticker: str, *, adjusted: bool) -> pd.DataFrame:
    stocks = importlib.import_module("bokeh_sampledata.stocks")
    raw = pd.DataFrame(getattr(stocks, ticker))
    frame = raw[list(OHLCV_COLUMNS)].astype("float64")
    if adjusted:
        factor = raw["adj_close"] / raw["close"]
        frame[["open", "high", "low", "close"]] = frame[
            ["open", "high", "low", "close"]
        ].mul(factor, axis=0)
        frame["volume"] = frame["volume"] / factor
    return _with_utc_index(frame, pd.to_datetime(raw["date"]))


def _with_utc_index(frame: pd.DataFrame, dates: pd.Index | pd.Series) -> pd.DataFrame:
    frame.index = pd.DatetimeIndex(dates, name="timestamp").tz_localize("UTC")
    return frame


def _aligned_panel(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Joins single-asset frames on the timestamps they all share.

    The dates one member lacks are dropped for all, never filled, so every value in the
    panel is one the source printed; ``attrs["rows_per_symbol"]`` keeps what was there.
    """
    panel = pd.concat(frames, axis=1, join="inner", names=["symbol", "field"])
    panel = panel.swaplevel(axis=1).sort_index(axis=1, level=0, sort_remaining=False)
    panel = panel.reindex(
        columns=pd.MultiIndex.from_product([OHLCV_COLUMNS, list(frames)]),
    )
    panel.columns.names = ["field", "symbol"]
    panel.attrs["rows_per_symbol"] = {name: len(f) for name, f in frames.items()}
    return panel
