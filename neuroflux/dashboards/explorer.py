"""Strategy explorer: backtest a strategy as its parameters move, sweep two of them.

Pick a market (an embedded sample, a cached download or a CSV/Parquet file), a
registered strategy and its parameters; the equity against buy-and-hold (same costs),
the drawdown, the rolling Sharpe ratio, the trades and the statistics update in place.
A sweep over two parameters draws a heatmap of one statistic; clicking a cell loads
that parameter set. A button runs the tear-sheet notebook (``02_strategy_backtest``)
for the current choice into the reports folder and links the report.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import ccxt
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, LinearColorMapper, TapTool
from bokeh.plotting import figure

from neuroflux import strategies
from neuroflux.dashboards.curves import ROLLING_WINDOW, chart_series
from neuroflux.data import list_samples, periods_per_year, query_ohlcv_cache
from neuroflux.reporting import run_notebook
from neuroflux.research import BacktestRun, load_data, run_backtest, run_sweep
from neuroflux.strategies.positions import Direction

__all__ = [
    "SWEEP_STATISTICS",
    "StrategyExplorer",
    "bars_per_year",
    "market_choices",
    "sweep_values",
]

SWEEP_STATISTICS = (
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "return_pct",
    "max_drawdown_pct",
)
TEAR_SHEET = "02_strategy_backtest"
_SWEEP_SIZE = 12
_SPEC_TIME = "%Y-%m-%dT%H%M%S"  # no colons: they separate a spec's fields


def market_choices() -> dict[str, str]:
    """Label -> data spec of the embedded single-asset samples and cached downloads.

    A cached market's spec spans its first to its last cached bar, so it loads from the
    cache (a gap inside that span would be downloaded).
    """
    samples = list_samples()
    choices = {
        f"{name} (sample)": f"sample:{name}"
        for name in samples.index[samples["kind"] == "single"]
    }
    cached = query_ohlcv_cache(
        "SELECT exchange, symbol, timeframe, min(timestamp) AS first, "
        "max(timestamp) AS last FROM ohlcv GROUP BY ALL ORDER BY ALL"
    )
    for row in cached.itertuples():
        bar = pd.Timedelta(seconds=ccxt.Exchange.parse_timeframe(row.timeframe))
        since, until = (
            time.strftime(_SPEC_TIME) for time in (row.first, row.last + bar)
        )
        label = f"{row.symbol} {row.timeframe} ({row.exchange}, cached)"
        choices[label] = (
            f"download:{row.exchange}:{row.symbol}:{row.timeframe}:{since}:{until}"
        )
    return choices


def sweep_values(value: float) -> list:
    """Twelve values around a parameter's current ``value`` for the sweep heatmap.

    Integers (windows, periods) are spaced geometrically from value/4 to value·4;
    floats linearly from value/4 to value·1.75 (0 to 1 when the value is 0).
    """
    if isinstance(value, int):
        spread = np.geomspace(max(1.0, value / 4), max(4.0, value * 4.0), _SWEEP_SIZE)
        return sorted({int(v) for v in np.round(spread)})
    if value == 0:
        return [float(v) for v in np.linspace(0.0, 1.0, _SWEEP_SIZE)]
    spread = np.linspace(value / 4, value * 1.75, _SWEEP_SIZE)
    return [float(v) for v in np.round(spread, 6)]


def bars_per_year(frame: pd.DataFrame) -> float:
    """252 for daily bars (trading days); for intraday bars, a 24/7 year of them."""
    step = frame.index.to_series().diff().median()
    if step >= pd.Timedelta(days=1):
        return 252.0
    return periods_per_year(f"{int(step.total_seconds())}s")


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Direction) else value


def _defaults(strategy: str) -> dict[str, Any]:
    params = strategies.make_params(strategy)
    return {
        name: _plain(getattr(params, name))
        for name in strategies.get_strategy(strategy).parameter_docs
    }


class StrategyExplorer(pn.viewable.Viewer):
    """Backtest, charts and sweep of one strategy on one market, as its state moves."""

    market = param.Selector(
        check_on_set=False, doc="Data spec: sample:NAME, download:... or a file path"
    )
    strategy = param.Selector(
        objects=[
            name for name, chosen in strategies.STRATEGIES.items() if not chosen.inputs
        ],
        default="sma_cross",
        doc="Registered strategy",
    )
    parameters = param.Dict(default={}, doc="The strategy's parameter values by name")
    commission = param.Number(
        default=0.001, bounds=(0.0, 0.05), step=0.0005, doc="Fee per order (fraction)"
    )
    fill = param.Selector(
        objects=["next_open", "close"], default="next_open", doc="Order fill price"
    )
    rolling_window = param.Integer(
        default=ROLLING_WINDOW, bounds=(10, 504), doc="Bars in the rolling Sharpe ratio"
    )
    sweep_x = param.Selector(doc="Parameter on the heatmap's x axis")
    sweep_y = param.Selector(doc="Parameter on the heatmap's y axis")
    sweep_statistic = param.Selector(
        objects=list(SWEEP_STATISTICS), default="sharpe_ratio", doc="Heatmap colour"
    )
    error = param.String(default="", doc="The last problem, shown until fixed")
    report_status = param.String(default="", doc="The tear-sheet run, as HTML")

    def __init__(
        self,
        *,
        reports_dir: str | Path = "reports",
        notebooks_dir: str | Path = "notebooks",
        files_url: str = "./report-files",
        **params: Any,
    ):
        self.param.market.objects = market_choices()
        params.setdefault("market", "sample:sp500")
        self.reports_dir = Path(reports_dir)
        self.notebooks_dir = Path(notebooks_dir)
        self.files_url = files_url
        self._frame: pd.DataFrame | None = None
        self.run: BacktestRun | None = None
        self.benchmark: BacktestRun | None = None
        self.sweep: pd.DataFrame | None = None
        self._charts = _Charts()
        super().__init__(**params)
        self._parameter_widgets = pn.Column(sizing_mode="stretch_width")
        self._tabs = pn.Tabs(
            ("Statistics", self._charts.statistics),
            ("Trades", self._charts.trades),
            ("Sweep", pn.pane.Bokeh(self._charts.sweep, sizing_mode="stretch_width")),
            sizing_mode="stretch_width",
            dynamic=False,
        )
        self._parameter_watchers: list = []
        self._charts.sweep_source.selected.on_change(
            "indices",
            lambda _attr, _old, new: new and self.choose_sweep_cell(new[0]),
        )
        self._load_market()
        self._reset_parameters()

    # State -------------------------------------------------------------------------

    @param.depends("market", watch=True)
    def _load_market(self) -> None:
        try:
            frame = load_data(self.market)
        except Exception as problem:  # shown to the user; the last market stays
            message = str(problem)
            self.error = (
                message if self.market in message else f"{self.market}: {message}"
            )
            return
        self._frame = frame
        self._bars_per_year = bars_per_year(frame)
        self.sweep = None
        self._charts.clear_sweep()
        self._backtest_benchmark()

    @param.depends("strategy", watch=True)
    def _reset_parameters(self) -> None:
        defaults = _defaults(self.strategy)
        numeric = [
            name
            for name, value in defaults.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]
        self.param.sweep_x.objects = numeric
        self.param.sweep_y.objects = numeric
        self.sweep = None
        self._charts.clear_sweep()
        self.param.update(
            sweep_x=numeric[0] if numeric else None,
            sweep_y=numeric[1] if len(numeric) > 1 else None,
        )
        for watcher in self._parameter_watchers:
            self.param.unwatch(watcher)
        self._parameter_watchers = []
        self._parameter_widgets[:] = [
            self._parameter_widget(name, value) for name, value in defaults.items()
        ]
        if self.parameters == defaults:
            self._backtest()
        else:
            self.parameters = defaults

    @param.depends("commission", "fill", watch=True)
    def _backtest_benchmark(self) -> None:
        self.benchmark = run_backtest(
            self._frame,
            "buy_and_hold",
            commission=self.commission,
            fill=self.fill,
            periods_per_year=self._bars_per_year,
        )
        if self.parameters:
            self._backtest()

    @param.depends("parameters", watch=True)
    def _backtest(self) -> None:
        try:
            self.run = run_backtest(
                self._frame,
                self.strategy,
                self.parameters,
                commission=self.commission,
                fill=self.fill,
                periods_per_year=self._bars_per_year,
            )
        except ValueError as problem:
            self.error = str(problem)
            return
        self.error = ""
        self._charts.draw(self.run, self.benchmark, self.rolling_window)

    @param.depends("rolling_window", watch=True)
    def _redraw(self) -> None:
        self._charts.draw(self.run, self.benchmark, self.rolling_window)

    def run_sweep(self) -> pd.DataFrame:
        """Sweep ``sweep_x`` × ``sweep_y`` around their current values; draw the map."""
        if self.sweep_x is None or self.sweep_y is None or self.sweep_x == self.sweep_y:
            raise ValueError("choose two different parameters to sweep")
        grid = {
            name: sweep_values(self.parameters[name])
            for name in (self.sweep_x, self.sweep_y)
        }
        self.sweep = run_sweep(
            self._frame,
            self.strategy,
            grid,
            params=self.parameters,
            progress=False,
            commission=self.commission,
            fill=self.fill,
            periods_per_year=self._bars_per_year,
        )
        self._draw_sweep()
        return self.sweep

    @param.depends("sweep_statistic", watch=True)
    def _draw_sweep(self) -> None:
        if self.sweep is not None:
            self._charts.draw_sweep(
                self.sweep, self.sweep_x, self.sweep_y, self.sweep_statistic
            )

    def choose_sweep_cell(self, row: int) -> None:
        """Load the parameter set of row ``row`` of the sweep table."""
        chosen = self.sweep.iloc[row]
        self.parameters = {
            **self.parameters,
            **{
                name: type(self.parameters[name])(chosen[name])
                for name in (self.sweep_x, self.sweep_y)
            },
        }

    async def run_tear_sheet(self, _event: Any = None) -> None:
        """Run the tear-sheet notebook for the current choice; link its report."""
        self.report_status = "Running the tear sheet…"
        record = await asyncio.to_thread(
            run_notebook,
            TEAR_SHEET,
            {
                "data": self.market,
                "strategy": self.strategy,
                "params": self.parameters,
                "commission": self.commission,
                "fill": self.fill,
                "rolling_window": self.rolling_window,
                "periods_per_year": self._bars_per_year,
            },
            notebooks_dir=self.notebooks_dir,
            reports_dir=self.reports_dir,
            hide_code=True,
        )
        link = f"{self.files_url}/{record.report.relative_to(self.reports_dir)}"
        outcome = "Report" if record.status == "ok" else "Failed run"
        self.report_status = (
            f'<a href="{link}" target="_blank">{outcome} {record.run_id}</a>'
            + (f"<br>{record.error}" if record.error else "")
        )

    # Viewer ------------------------------------------------------------------------

    def _parameter_widget(self, name: str, value: Any):
        doc = strategies.get_strategy(self.strategy).parameter_docs[name]
        if isinstance(value, bool):
            widget = pn.widgets.Checkbox(label=name, value=value)
        elif name == "direction":
            widget = pn.widgets.Select(
                label=name, options=[d.value for d in Direction], value=value
            )
        elif isinstance(value, int):
            widget = pn.widgets.EditableIntSlider(
                label=name, start=1, end=max(4 * value, 200), value=value, fixed_start=1
            )
        else:
            widget = pn.widgets.EditableFloatSlider(
                label=name, start=0.0, end=max(4.0 * value, 1.0), step=0.01, value=value
            )
        widget.param.update(sizing_mode="stretch_width", css_classes=[f"nf-{name}"])
        if "description" in widget.param:  # a tooltip; editable sliders have none
            widget.description = doc

        def update(event):
            self.parameters = {**self.parameters, name: event.new}

        def show(event):
            widget.value = event.new.get(name, widget.value)

        widget.param.watch(update, "value")
        self._parameter_watchers.append(self.param.watch(show, "parameters"))
        return widget

    def controls(self) -> list:
        """Market, strategy, parameters, costs; the sweep and tear-sheet buttons."""
        sweep_button = pn.widgets.Button(
            name="Sweep", button_type="primary", sizing_mode="stretch_width"
        )
        sweep_button.on_click(lambda _: self._guarded(self._sweep_and_show))
        tear_sheet_button = pn.widgets.Button(
            name="Run tear sheet", sizing_mode="stretch_width"
        )
        tear_sheet_button.on_click(self.run_tear_sheet)
        stretch = {"sizing_mode": "stretch_width"}
        return [
            pn.widgets.Select.from_param(self.param.market, name="Market", **stretch),
            pn.widgets.TextInput.from_param(
                self.param.market, name="Data spec or CSV/Parquet file", **stretch
            ),
            pn.widgets.Select.from_param(self.param.strategy, **stretch),
            self._parameter_widgets,
            pn.widgets.FloatInput.from_param(self.param.commission, **stretch),
            pn.widgets.RadioButtonGroup.from_param(self.param.fill, **stretch),
            pn.widgets.IntSlider.from_param(self.param.rolling_window, **stretch),
            pn.pane.Markdown("### Sweep"),
            pn.Row(
                pn.widgets.Select.from_param(self.param.sweep_x, name="x", **stretch),
                pn.widgets.Select.from_param(self.param.sweep_y, name="y", **stretch),
                **stretch,
            ),
            pn.widgets.Select.from_param(
                self.param.sweep_statistic, name="Colour", **stretch
            ),
            sweep_button,
            tear_sheet_button,
            pn.pane.HTML(self.param.report_status, **stretch),
        ]

    def _sweep_and_show(self) -> None:
        self.run_sweep()
        self._tabs.active = 2

    def _guarded(self, action) -> None:
        try:
            action()
        except ValueError as problem:
            self.error = str(problem)

    def __panel__(self):
        charts = self._charts
        return pn.Column(
            pn.pane.Alert(
                self.param.error,
                alert_type="danger",
                visible=self.param.error.rx.pipe(bool),
                sizing_mode="stretch_width",
            ),
            pn.pane.Bokeh(charts.equity, sizing_mode="stretch_width"),
            pn.pane.Bokeh(charts.drawdown, sizing_mode="stretch_width"),
            pn.pane.Bokeh(charts.rolling_sharpe, sizing_mode="stretch_width"),
            self._tabs,
            sizing_mode="stretch_width",
        )


class _Charts:
    """The explorer's figures and tables; ``draw`` replaces their data in place."""

    def __init__(self):
        # Named, so that tests and benchmarks find them in the page.
        self.equity_source = ColumnDataSource(
            {"time": [], "strategy": [], "benchmark": []}, name="nf-equity"
        )
        self.drawdown_source = ColumnDataSource(
            {"time": [], "drawdown": []}, name="nf-drawdown"
        )
        self.rolling_source = ColumnDataSource(
            {"time": [], "sharpe": []}, name="nf-rolling-sharpe"
        )
        self.sweep_source = ColumnDataSource(
            {"x": [], "y": [], "value": [], "text": []}, name="nf-sweep"
        )
        common = {"height": 260, "sizing_mode": "stretch_width"}
        self.equity = figure(
            title="Equity",
            x_axis_type="datetime",
            tools="pan,xwheel_zoom,reset",
            **common,
        )
        self.equity.line(
            "time", "strategy", source=self.equity_source, legend_label="strategy"
        )
        self.equity.line(
            "time",
            "benchmark",
            source=self.equity_source,
            legend_label="buy & hold",
            color="#ff7f0e",
        )
        self.equity.legend.location = "top_left"
        self.drawdown = figure(
            title="Drawdown (%)",
            x_axis_type="datetime",
            x_range=self.equity.x_range,
            tools="pan,xwheel_zoom,reset",
            **common,
        )
        self.drawdown.varea(
            "time", 0, "drawdown", source=self.drawdown_source, fill_alpha=0.5
        )
        self.rolling_sharpe = figure(
            title="Rolling Sharpe ratio",
            x_axis_type="datetime",
            x_range=self.equity.x_range,
            tools="pan,xwheel_zoom,reset",
            **common,
        )
        self.rolling_sharpe.line("time", "sharpe", source=self.rolling_source)
        self.sweep = figure(
            title="Sweep: click a cell to load its parameters",
            x_range=[],
            y_range=[],
            tools="tap",
            height=420,
            sizing_mode="stretch_width",
        )
        self.colors = LinearColorMapper(palette="Viridis256")
        self.sweep.rect(
            "x",
            "y",
            1,
            1,
            source=self.sweep_source,
            fill_color={"field": "value", "transform": self.colors},
            line_color=None,
        )
        self.sweep.text(
            "x",
            "y",
            text="text",
            source=self.sweep_source,
            text_align="center",
            text_baseline="middle",
            text_font_size="8pt",
        )
        self.sweep.add_tools(HoverTool(tooltips=[("value", "@value")]))
        self.sweep.select_one(TapTool).behavior = "select"
        table = {"sizing_mode": "stretch_width", "disabled": True}
        self.statistics = pn.widgets.Tabulator(pd.DataFrame(), **table)
        self.trades = pn.widgets.Tabulator(
            pd.DataFrame(), pagination="local", page_size=15, **table
        )

    def draw(self, run: BacktestRun, benchmark: BacktestRun, window: int) -> None:
        curves = chart_series(run, window)
        time = run.index.tz_localize(None).to_numpy()
        self.equity_source.data = {
            "time": time,
            "strategy": curves["equity"],
            "benchmark": np.asarray(benchmark.result.value),
        }
        self.drawdown_source.data = {"time": time, "drawdown": 100 * curves["drawdown"]}
        self.rolling_source.data = {"time": time, "sharpe": curves["rolling_sharpe"]}
        self.statistics.value = pd.DataFrame(
            {"strategy": run.stats(), "buy & hold": benchmark.stats()}
        ).rename_axis("statistic")
        self.trades.value = run.trades().iloc[::-1].reset_index(drop=True)

    def draw_sweep(self, sweep: pd.DataFrame, x: str, y: str, statistic: str) -> None:
        values = sweep[statistic].to_numpy(float)
        xs = sweep[x].astype(str).tolist()
        ys = sweep[y].astype(str).tolist()
        self.sweep.x_range.factors = list(dict.fromkeys(xs))
        self.sweep.y_range.factors = list(dict.fromkeys(ys))
        self.sweep.xaxis.axis_label = x
        self.sweep.yaxis.axis_label = y
        finite = values[np.isfinite(values)]
        if finite.size:
            self.colors.update(low=float(finite.min()), high=float(finite.max()))
        self.sweep_source.selected.indices = []
        self.sweep_source.data = {
            "x": xs,
            "y": ys,
            "value": values,
            "text": [f"{v:.2f}" for v in values],
        }

    def clear_sweep(self) -> None:
        self.sweep_source.data = {"x": [], "y": [], "value": [], "text": []}
