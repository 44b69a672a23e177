"""The strategy tear sheet of ``notebooks/dashboards/strategy_tear_sheet.ipynb``.

``TearSheet()`` holds the widgets of one Voila page: the data (embedded single-asset
samples), a strategy (those without extra inputs), its parameters (one widget each,
generated from the registry's defaults), the commission, and the outputs: one plotly
``FigureWidget`` with equity against buy-and-hold, drawdown and rolling Sharpe ratio,
the statistics table and the last trades. A widget change reruns
:func:`neuroflux.research.run_backtest` and updates the figure's traces in place.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuroflux import strategies
from neuroflux.dashboards.curves import ROLLING_WINDOW, chart_series
from neuroflux.data import list_samples, load_sample
from neuroflux.research import BacktestRun, run_backtest
from neuroflux.strategies.positions import Direction

__all__ = [
    "TearSheet",
    "parameter_widget",
    "sample_choices",
    "strategy_choices",
]

BENCHMARK = "buy_and_hold"
TRADES_SHOWN = 10
_SERIES = ("equity", "drawdown", "rolling_sharpe")
_WIDE = widgets.Layout(width="100%")
_STYLE = {"description_width": "110px"}
# Tables scroll sideways inside their box instead of widening a phone's page.
_TABLE_CSS = (
    "<style>.nf-table{overflow-x:auto;max-width:100%}"
    ".nf-table table{border-collapse:collapse;font-size:12px}"
    ".nf-table th,.nf-table td{padding:2px 8px;text-align:right;"
    "border-bottom:1px solid #ddd;white-space:nowrap}</style>"
)


def sample_choices() -> list[str]:
    """The embedded single-asset samples."""
    samples = list_samples()
    return list(samples.index[samples["kind"] == "single"])


def strategy_choices() -> list[str]:
    """Registered strategies that need no input beyond the bars."""
    return [name for name, s in strategies.STRATEGIES.items() if not s.inputs]


def parameter_widget(name: str, default: Any, doc: str) -> widgets.ValueWidget:
    """An input for one strategy parameter, typed by its default.

    Directions get a dropdown, bools a checkbox, ints a slider from 1 (0 when the
    default is 0) to ``max(100, 5 * default)``, floats a number field.
    """
    common = {"description": name, "description_tooltip": doc, "style": _STYLE}
    if isinstance(default, Direction):
        return widgets.Dropdown(
            options=[d.value for d in Direction], value=default.value, **common
        )
    if isinstance(default, bool):
        return widgets.Checkbox(value=default, indent=False, **common)
    if isinstance(default, int):
        return widgets.IntSlider(
            value=default,
            min=min(default, 1),
            max=max(100, 5 * default),
            continuous_update=False,
            layout=_WIDE,
            **common,
        )
    return widgets.FloatText(value=float(default), layout=_WIDE, **common)


def _figure(run: BacktestRun, benchmark: BacktestRun) -> go.FigureWidget:
    figure = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        row_heights=[0.5, 0.25, 0.25],
        subplot_titles=("Equity", "Drawdown", f"Rolling Sharpe ({ROLLING_WINDOW})"),
    )
    index = run.index.tz_localize(None)
    colors = {run.strategy: "#1f77b4", BENCHMARK: "#7f7f7f"}
    lines = {run.strategy: chart_series(run), BENCHMARK: chart_series(benchmark)}
    for row, series in enumerate(_SERIES, start=1):
        for name, color in colors.items():
            figure.add_trace(
                go.Scatter(
                    x=index,
                    y=lines[name][series],
                    name=name,
                    legendgroup=name,
                    showlegend=row == 1,
                    mode="lines",
                    line={"color": color, "width": 1.2},
                ),
                row=row,
                col=1,
            )
    figure.update_yaxes(type="log", row=1, col=1)
    figure.update_yaxes(tickformat=".0%", row=2, col=1)
    figure.update_layout(
        height=640,
        margin={"l": 50, "r": 10, "t": 40, "b": 30},
        legend={"orientation": "h", "y": 1.1, "x": 0},
        template="plotly_white",
        hovermode="x unified",
    )
    return go.FigureWidget(figure)


def _cell(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        whole_day = value == value.normalize()
        return value.strftime("%Y-%m-%d" if whole_day else "%Y-%m-%d %H:%M")
    if isinstance(value, pd.Timedelta):
        return str(value).removesuffix(" 00:00:00")
    if isinstance(value, float | np.floating):
        return f"{value:,.4g}"
    return str(value)


def _table(frame: pd.DataFrame) -> str:
    body = frame.map(_cell).to_html(border=0)
    return f'{_TABLE_CSS}<div class="nf-table">{body}</div>'


class TearSheet:
    """The widgets of the tear sheet page and the backtests behind them.

    Attributes:
        data, strategy, commission: The input widgets.
        params: The current strategy's parameter widgets, by parameter name.
        figure: Equity, drawdown and rolling Sharpe; traces strategy, benchmark per row.
            Built with the first backtest's lines (plotly's frontend drops updates
            sent before the figure is shown), updated in place afterwards.
        stats, trades, status: HTML outputs.
        run, benchmark: The latest backtests.
    """

    def __init__(
        self,
        data: str = "sp500",
        strategy: str = "sma_cross",
        commission: float = 0.001,
    ) -> None:
        self.data = widgets.Dropdown(
            options=sample_choices(), value=data, description="data", style=_STYLE
        )
        self.strategy = widgets.Dropdown(
            options=strategy_choices(),
            value=strategy,
            description="strategy",
            style=_STYLE,
        )
        self.commission = widgets.BoundedFloatText(
            value=commission,
            min=0.0,
            max=0.1,
            step=0.0005,
            description="commission",
            description_tooltip="proportional fee per order (fraction of its value)",
            style=_STYLE,
        )
        self.params: dict[str, widgets.ValueWidget] = {}
        self._param_box = widgets.VBox(layout=_WIDE)
        self.figure: go.FigureWidget | None = None
        self.stats = widgets.HTML()
        self.trades = widgets.HTML()
        self.status = widgets.HTML()
        self.run: BacktestRun | None = None
        self.benchmark: BacktestRun | None = None
        self._frame = pd.DataFrame()
        self._new_index = True
        self._load_data()
        self._build_params()
        self.update()
        self.data.observe(self._on_data, "value")
        self.commission.observe(self._on_costs, "value")
        self.strategy.observe(self._on_strategy, "value")

    def values(self) -> dict[str, Any]:
        """The strategy parameters as the widgets set them."""
        return {name: widget.value for name, widget in self.params.items()}

    def view(self) -> widgets.Widget:
        """The page: controls beside the charts, stacked on narrow screens."""
        controls = widgets.VBox(
            [
                widgets.HTML("<b>Backtest</b>"),
                self.data,
                self.strategy,
                self._param_box,
                self.commission,
                self.status,
            ],
            layout=widgets.Layout(flex="1 1 280px", max_width="380px", min_width="0"),
        )
        outputs = widgets.VBox(
            [
                self.figure,
                widgets.HTML("<b>Statistics</b>"),
                self.stats,
                widgets.HTML(f"<b>Last {TRADES_SHOWN} trades</b>"),
                self.trades,
            ],
            layout=widgets.Layout(flex="3 1 320px", min_width="0"),
        )
        return widgets.Box(
            [controls, outputs],
            layout=widgets.Layout(flex_flow="row wrap", width="100%"),
        )

    def update(self, *_: object) -> None:
        """Rerun the strategy's backtest and redraw every output in place."""
        try:
            self.run = run_backtest(
                self._frame,
                self.strategy.value,
                self.values(),
                commission=self.commission.value,
            )
        except ValueError as error:  # e.g. fast >= slow, a level out of range
            self.status.value = f'<span style="color:#b00">{html.escape(str(error))}'
            return
        self.status.value = ""
        self._draw()

    def _load_data(self) -> None:
        self._frame = load_sample(self.data.value)
        self._new_index = True
        self._run_benchmark()

    def _run_benchmark(self) -> None:
        self.benchmark = run_backtest(
            self._frame,
            BENCHMARK,
            {"direction": "long_only"},
            commission=self.commission.value,
        )

    def _build_params(self) -> None:
        name = self.strategy.value
        docs = strategies.get_strategy(name).parameter_docs
        defaults = strategies.make_params(name)
        self.params = {
            field.name: parameter_widget(
                field.name, getattr(defaults, field.name), docs.get(field.name, "")
            )
            for field in dataclasses.fields(defaults)
        }
        for widget in self.params.values():
            widget.observe(self.update, "value")
        self._param_box.children = list(self.params.values())

    def _on_data(self, _: object) -> None:
        self._load_data()
        self.update()

    def _on_costs(self, _: object) -> None:
        self._run_benchmark()
        self.update()

    def _on_strategy(self, _: object) -> None:
        self._build_params()
        self.update()

    def _draw(self) -> None:
        run, benchmark = self.run, self.benchmark
        if self.figure is None:
            self.figure = _figure(run, benchmark)
        else:
            self._update_figure()
        self._new_index = False
        stats = pd.DataFrame({run.strategy: run.stats(), BENCHMARK: benchmark.stats()})
        self.stats.value = _table(stats)
        self.trades.value = _table(run.trades().tail(TRADES_SHOWN))

    def _update_figure(self) -> None:
        run = self.run
        ours, theirs = chart_series(run), chart_series(self.benchmark)
        with self.figure.batch_update():
            traces = iter(self.figure.data)
            for series in _SERIES:
                for values in (ours[series], theirs[series]):
                    trace = next(traces)
                    if self._new_index:
                        trace.x = run.index.tz_localize(None)
                    trace.y = values
            self.figure.data[0].name = run.strategy
