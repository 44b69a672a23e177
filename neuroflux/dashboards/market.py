"""Market overview: a panel of assets at a glance, with high-volatility regimes shaded.

Pick a panel sample (``us_stocks``, ``us_indices``) and a date range; the page shows
prices rebased to 100, daily log returns, the correlation matrix of those returns,
the annualised rolling volatility of each asset and the periods when the panel's
average volatility is high (:func:`regime_mask`). Every chart keeps its bokeh figure
and only has its data replaced when a control moves.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, LinearColorMapper, Span
from bokeh.palettes import Category10_10, RdBu11
from bokeh.plotting import figure

from neuroflux import features
from neuroflux.data import list_samples, load_sample

__all__ = [
    "MarketOverview",
    "correlation_matrix",
    "panel_samples",
    "panel_volatility",
    "rebased_prices",
    "regime_mask",
    "regime_spans",
    "regime_threshold",
]

TRADING_DAYS = 252
# The jitted volatility compiles once per input shape (seconds); padding every panel to
# whole blocks gives all samples one shape. Edge padding after the last row leaves the
# trailing windows of the real rows untouched.
_ROW_BLOCK = 8192
_COLUMN_BLOCK = 8

_volatility = jax.jit(
    jax.vmap(features.rolling_volatility, in_axes=(1, None, None), out_axes=1)
)


def panel_samples() -> list[str]:
    """Names of the embedded samples that hold several assets (kind ``panel``)."""
    samples = list_samples()
    return list(samples.index[samples["kind"] == "panel"])


def rebased_prices(close: np.ndarray) -> np.ndarray:
    """Prices rebased to 100 at the first row: ``100 * close / close[0]``.

    Args:
        close: Closes [T, A].

    Returns:
        [T, A] rebased prices.
    """
    return 100.0 * close / close[0]


def panel_volatility(close: np.ndarray, window: int) -> np.ndarray:
    """Annualised rolling volatility of every asset (252 trading days a year).

    ``features.rolling_volatility`` per column: the rolling sample std of daily log
    returns over ``window`` returns, times ``sqrt(252)``.

    Args:
        close: Closes [T, A], positive.
        window: Returns per window, >= 2.

    Returns:
        [T, A] volatility; NaN over the first ``window`` rows.
    """
    rows, columns = close.shape
    padded = np.pad(
        close,
        ((0, -rows % _ROW_BLOCK), (0, -columns % _COLUMN_BLOCK)),
        mode="edge",
    )
    return np.asarray(_volatility(padded, window, TRADING_DAYS))[:rows, :columns]


def regime_threshold(volatility: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of the panel's average volatility, over the days it is defined.

    Args:
        volatility: Rolling volatility [T, A]; NaN over the warm-up.
        quantile: In [0, 1] (NumPy's linear interpolation).

    Returns:
        The threshold; NaN when the average is nowhere defined.
    """
    average = volatility.mean(axis=1)
    defined = average[~np.isnan(average)]
    return float(np.quantile(defined, quantile)) if defined.size else np.nan


def regime_mask(volatility: np.ndarray, quantile: float) -> np.ndarray:
    """Days of a high-volatility regime.

    With ``v[t] = mean over assets of volatility[t, a]`` (the panel's average rolling
    volatility) and ``q`` the ``quantile`` of ``v`` over the days where it is defined
    (:func:`regime_threshold`), day ``t`` is in the regime when ``v[t] > q``.

    Args:
        volatility: Rolling volatility [T, A]; NaN over the warm-up.
        quantile: In [0, 1]; 0.8 marks the most volatile fifth of the days.

    Returns:
        [T] bool; False where ``v`` is NaN.
    """
    average = volatility.mean(axis=1)
    threshold = regime_threshold(volatility, quantile)
    return ~np.isnan(average) & (np.nan_to_num(average, nan=-np.inf) > threshold)


def regime_spans(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index of every run of consecutive True values in ``mask`` [T]."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


def correlation_matrix(returns: np.ndarray) -> np.ndarray:
    """Pearson correlation [A, A] of the columns of ``returns`` [T, A] (no NaN)."""
    return np.corrcoef(returns, rowvar=False)


class MarketOverview(pn.viewable.Viewer):
    """Prices, returns, correlations and volatility regimes of a panel sample."""

    sample = param.Selector(doc="Panel sample shown (several assets)")
    period = param.DateRange(doc="First and last day shown")
    window = param.Integer(
        default=63, bounds=(5, 252), doc="Volatility window (trading days)"
    )
    quantile = param.Number(
        default=0.8,
        bounds=(0.5, 0.99),
        step=0.01,
        doc="Regime: average volatility above this quantile of the period",
    )

    def __init__(self, **params: Any):
        self.param.sample.objects = panel_samples()
        params.setdefault("sample", "us_stocks")
        self._charts = _Charts()
        self._close = pd.DataFrame()
        self._volatility = np.empty((0, 0))
        super().__init__(**params)
        self._load_sample()

    # State -------------------------------------------------------------------------

    @param.depends("sample", watch=True)
    def _load_sample(self) -> None:
        close = load_sample(self.sample)["close"]
        self._close = close.set_axis(close.index.tz_convert(None))
        first, last = (day.to_pydatetime() for day in self._close.index[[0, -1]])
        self._volatility = panel_volatility(self._close.to_numpy(), self.window)
        self.param.period.bounds = (first, last)
        if self.period == (first, last):
            self._draw()
        else:
            self.period = (first, last)

    @param.depends("window", watch=True)
    def _compute_volatility(self) -> None:
        self._volatility = panel_volatility(self._close.to_numpy(), self.window)
        self._draw()

    @param.depends("period", "quantile", watch=True)
    def _draw(self) -> None:
        rows = self.visible_rows()
        close = self._close.to_numpy()[rows]
        volatility = self._volatility[rows]
        self._charts.draw(
            times=self._close.index[rows],
            symbols=list(self._close.columns),
            close=close,
            volatility=volatility,
            quantile=self.quantile,
        )

    def visible_rows(self) -> slice:
        """Rows of the sample inside ``period`` (at least two)."""
        first, last = (pd.Timestamp(day) for day in self.period)
        start = self._close.index.searchsorted(first, "left")
        stop = self._close.index.searchsorted(last, "right")
        return slice(min(start, len(self._close) - 2), max(stop, start + 2))

    # View --------------------------------------------------------------------------

    def controls(self) -> list:
        """Sample, date range, volatility window and regime quantile."""
        stretch = {"sizing_mode": "stretch_width"}
        return [
            pn.widgets.Select.from_param(self.param.sample, name="Sample", **stretch),
            pn.widgets.DateRangeSlider.from_param(
                self.param.period, name="Period", **stretch
            ),
            pn.widgets.IntSlider.from_param(
                self.param.window, name="Volatility window (days)", **stretch
            ),
            pn.widgets.FloatSlider.from_param(
                self.param.quantile, name="Regime quantile", **stretch
            ),
        ]

    def __panel__(self):
        charts = self._charts
        return pn.Column(
            *(
                pn.pane.Bokeh(chart, sizing_mode="stretch_width")
                for chart in (
                    charts.prices,
                    charts.returns,
                    charts.volatility,
                    charts.correlation,
                )
            ),
            sizing_mode="stretch_width",
        )


class _Charts:
    """The overview's figures; ``draw`` replaces their data in place."""

    def __init__(self):
        self.prices_source = ColumnDataSource(
            {"xs": [], "ys": [], "symbol": [], "color": []}, name="nf-prices"
        )
        self.returns_source = ColumnDataSource(
            {"xs": [], "ys": [], "symbol": [], "color": []}, name="nf-returns"
        )
        self.volatility_source = ColumnDataSource(
            {"xs": [], "ys": [], "symbol": [], "color": []}, name="nf-volatility"
        )
        self.regime_source = ColumnDataSource(
            {"start": [], "end": []}, name="nf-regime"
        )
        self.correlation_source = ColumnDataSource(
            {"x": [], "y": [], "value": [], "text": [], "text_color": []},
            name="nf-correlation",
        )
        self.threshold = Span(
            dimension="width",
            line_dash="dashed",
            line_color="gray",
            line_width=1.5,
            name="nf-threshold",
        )
        common = {
            "height": 260,
            "sizing_mode": "stretch_width",
            "x_axis_type": "datetime",
            "tools": "pan,xwheel_zoom,box_zoom,reset",
        }
        self.prices = figure(
            title="Prices rebased to 100 (log scale)", y_axis_type="log", **common
        )
        shared = {"x_range": self.prices.x_range, **common}
        self.returns = figure(title="Daily log returns (%)", **shared)
        self.volatility = figure(title="Annualised rolling volatility (%)", **shared)
        for chart, source in (
            (self.prices, self.prices_source),
            (self.returns, self.returns_source),
            (self.volatility, self.volatility_source),
        ):
            chart.multi_line(
                "xs", "ys", source=source, line_color="color", legend_field="symbol"
            )
            chart.legend.location = "top_left"
            chart.legend.background_fill_alpha = 0.5
        for chart in (self.prices, self.volatility):
            chart.vstrip(
                "start",
                "end",
                source=self.regime_source,
                fill_color="gray",
                fill_alpha=0.25,
                line_alpha=0,
            )
        self.volatility.add_layout(self.threshold)
        self.correlation = _correlation_figure(self.correlation_source)

    def draw(
        self,
        *,
        times: pd.DatetimeIndex,
        symbols: list[str],
        close: np.ndarray,
        volatility: np.ndarray,
        quantile: float,
    ) -> None:
        """Show ``close`` and ``volatility`` [T, A] of ``symbols`` at ``times`` [T]."""
        returns = np.diff(np.log(close), axis=0)
        self.prices_source.data = _lines(times, symbols, rebased_prices(close))
        self.returns_source.data = _lines(times[1:], symbols, 100 * returns)
        self.volatility_source.data = _lines(times, symbols, 100 * volatility)
        starts, ends = regime_spans(regime_mask(volatility, quantile))
        day = pd.Timedelta(days=1)
        self.regime_source.data = {
            "start": times[starts].to_numpy(),
            "end": (times[ends] + day).to_numpy(),
        }
        threshold = regime_threshold(volatility, quantile)
        self.threshold.location = None if np.isnan(threshold) else 100 * threshold
        self._draw_correlation(symbols, correlation_matrix(returns))

    def _draw_correlation(self, symbols: list[str], matrix: np.ndarray) -> None:
        self.correlation.x_range.factors = symbols
        self.correlation.y_range.factors = symbols[::-1]
        values = matrix.ravel()
        self.correlation_source.data = {
            "x": [x for _ in symbols for x in symbols],
            "y": [y for y in symbols for _ in symbols],
            "value": values,
            "text": [f"{value:.2f}" for value in values],
            "text_color": ["white" if abs(v) > 0.6 else "black" for v in values],
        }


def _lines(
    times: pd.DatetimeIndex, symbols: list[str], values: np.ndarray
) -> dict[str, list]:
    """Multi-line data: one line of ``values`` [T, A] per symbol."""
    x = times.to_numpy()
    return {
        "xs": [x] * len(symbols),
        "ys": [values[:, column] for column in range(len(symbols))],
        "symbol": symbols,
        "color": [Category10_10[i % 10] for i in range(len(symbols))],
    }


def _correlation_figure(source: ColumnDataSource):
    """Heatmap of the correlation matrix with each value written in its cell."""
    chart = figure(
        title="Correlation of daily returns",
        x_range=[],
        y_range=[],
        height=320,
        sizing_mode="stretch_width",
        tools="hover",
        tooltips=[("pair", "@x / @y"), ("correlation", "@text")],
        toolbar_location=None,
    )
    colors = LinearColorMapper(palette=list(RdBu11), low=-1, high=1)
    chart.rect(
        "x",
        "y",
        width=1,
        height=1,
        source=source,
        fill_color={"field": "value", "transform": colors},
        line_alpha=0,
    )
    chart.text(
        "x",
        "y",
        text="text",
        source=source,
        text_align="center",
        text_baseline="middle",
        text_color="text_color",
    )
    chart.grid.visible = False
    chart.axis.major_tick_line_color = None
    return chart
