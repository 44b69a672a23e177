"""The `neuroflux` command.

Errors print one line and exit non-zero (2 for invalid data, 1 otherwise); ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import structlog
import typer
from rich.console import Console
from rich.table import Table

from neuroflux import settings
from neuroflux.live import commands as live_commands

app = typer.Typer(
    help="NeuroFlux: research notebooks, backtests and live trading in JAX.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(
    help="Market data: samples, files and downloads.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
report_app = typer.Typer(
    help="Research reports: run notebooks with papermill into offline HTML.",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")
console = Console(highlight=False)


class _CurrentStderr:
    """``sys.stderr`` as it is when a line is logged (a test runner may swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """NeuroFlux: research notebooks, backtests and live trading in JAX."""
    # Logs (retries, warnings) go to stderr so that stdout stays the command's output.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()))


@app.command()
def doctor() -> None:
    """Check Python, locked packages, JAX devices, x64, folders and Chromium."""
    from neuroflux.doctor import run_checks

    checks = run_checks()
    table = Table("check", "status", "detail", title="neuroflux doctor")
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    for check in checks:
        table.add_row(
            check.name, f"[{colours[check.status]}]{check.status}[/]", check.detail
        )
    console.print(table)
    if any(check.status == "fail" for check in checks):
        raise typer.Exit(1)


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when inside it (shorter tables)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _notebook_parameters(args: list[str]) -> dict:
    import datetime

    import yaml

    parameters = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter") or len(rest) < 2:
            raise typer.BadParameter(
                f"expected -p NAME VALUE after the notebook name; got {flag!r}",
                param_hint="-p",
            )
        name, text = rest.pop(0), rest.pop(0)
        value = yaml.safe_load(text)
        # YAML reads 1999-01-01 as a date; notebooks take dates as strings.
        parameters[name] = text if isinstance(value, datetime.date) else value
    return parameters


@data_app.command("samples")
def data_samples() -> None:
    """List the real market data embedded in the installed packages."""
    from neuroflux.data import list_samples

    table = Table("name", "kind", "description", "source", "license")
    for name, row in list_samples().iterrows():
        table.add_row(
            name, row["kind"], row["description"], row["source"], row["license"]
        )
    console.print(table, markup=False)


@data_app.command("summary")
def data_summary(
    output: Annotated[
        Path | None, typer.Option(help="CSV file for the table (default: reports/).")
    ] = None,
) -> None:
    """Summarize every embedded sample: coverage, return, volatility, fat tails."""
    from neuroflux.data.summary import summarize_samples

    summary = summarize_samples()
    output = output or settings.reports_dir() / "data_summary.csv"
    output.parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(output)
    typer.echo(summary.to_string(float_format=lambda value: f"{value:.4g}"))
    typer.echo(f"written to {output}")


@data_app.command("validate")
def data_validate(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet OHLCV file.")],
    assume_timezone: Annotated[
        str | None, typer.Option(help="Zone of timestamps without a UTC offset.")
    ] = None,
) -> None:
    """Check an OHLCV file; name the row and column of each problem (exit 2)."""
    from neuroflux.data import DataValidationError, read_ohlcv

    try:
        bars = read_ohlcv(path, assume_timezone=assume_timezone)
    except DataValidationError as error:
        typer.echo(f"invalid: {error}", err=True)
        raise typer.Exit(2) from None
    step = bars.index.to_series().diff().median()
    typer.echo(
        f"valid: {path}: {len(bars)} bars from {bars.index[0]} to {bars.index[-1]}, "
        f"median bar {step}, last close {bars['close'].iloc[-1]:.6g}"
    )


@data_app.command("fetch")
def data_fetch(
    exchange: Annotated[str, typer.Argument(help="ccxt exchange id, e.g. binance.")],
    symbol: Annotated[str, typer.Argument(help="Market symbol, e.g. BTC/USDT.")],
    timeframe: Annotated[str, typer.Argument(help="Bar size, e.g. 1m, 1h, 1d.")],
    since: Annotated[str, typer.Option(help="Start (UTC), e.g. 2024-01-01.")],
    until: Annotated[str, typer.Option(help="End, exclusive (UTC).")],
    cache_dir: Annotated[
        Path | None, typer.Option(help="Parquet cache folder.")
    ] = None,
) -> None:
    """Download OHLCV bars through ccxt into the Parquet cache (only what is new)."""
    from neuroflux.data.downloads import fetch_ohlcv

    bars = fetch_ohlcv(
        exchange, symbol, timeframe, since, until, cache_dir=cache_dir, progress=True
    )
    typer.echo(
        f"{exchange} {symbol} {timeframe}: {len(bars)} bars"
        + (f" from {bars.index[0]} to {bars.index[-1]}" if len(bars) else "")
    )


_DATA_HELP = (
    "sample:NAME (an embedded single-asset sample), "
    "download:EXCHANGE:SYMBOL:TIMEFRAME:SINCE:UNTIL (a ccxt market, cached) "
    "or a CSV/Parquet path."
)
_PARAM_HELP = "Strategy parameter NAME=VALUE (repeatable), e.g. fast=10."


def _strategy_params(strategy: str, pairs: list[str]) -> dict:
    from neuroflux.research import parse_param

    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(
                f"expected NAME=VALUE; got {pair!r}", param_hint="--param"
            )
        params[name.strip()] = parse_param(strategy, name.strip(), value)
    return params


def _simulation_options(
    *, cash, commission, fill, size, compat, stop_loss, take_profit, trailing_stop
) -> dict:
    if compat is not None:
        conflicts = [
            f"--{flag} {value}"
            for flag, value, implied in (
                ("fill", fill, "next_open"),
                ("size", size, "whole"),
            )
            if value not in (None, implied)
        ]
        if conflicts:
            raise typer.BadParameter(
                f"--compat {compat} fills at the next open in whole units; "
                f"drop {' and '.join(conflicts)}",
                param_hint="--compat",
            )
    return {
        "cash": cash,
        "commission": commission,
        "fill": fill or "close",
        "units": size or "fractional",
        "compat": compat,
        "stop_loss": stop_loss,
        "take_profit": take_profit,
        "trailing_stop": trailing_stop,
    }


def _plain(value):
    """A JSON-ready scalar: Python int/float/bool/str, NaN and infinities as None."""
    import enum
    import math

    import numpy as np

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _format(value) -> str:
    import pandas as pd

    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d" if value == value.normalize() else "%F %T")
    if isinstance(value, pd.Timedelta):
        return str(value).removesuffix(" 00:00:00")
    value = _plain(value)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


Data = Annotated[str, typer.Option(help=_DATA_HELP)]
StrategyName = Annotated[str, typer.Option(help="Registered strategy name.")]
Cash = Annotated[float, typer.Option(help="Initial cash.")]
Commission = Annotated[
    float, typer.Option(help="Fee per order, a fraction of its value.")
]
Fill = Annotated[
    str | None, typer.Option(help="close (same bar) or next_open. [default: close]")
]
Size = Annotated[
    str | None, typer.Option(help="fractional or whole units. [default: fractional]")
]
Compat = Annotated[
    str | None,
    typer.Option(help="backtesting.py: its sizing, next-open fills and whole units."),
]
StopLoss = Annotated[float | None, typer.Option(help="Stop-loss fraction, e.g. 0.05.")]
TakeProfit = Annotated[float | None, typer.Option(help="Take-profit fraction.")]
TrailingStop = Annotated[float | None, typer.Option(help="Trailing-stop fraction.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@app.command()
def backtest(
    data: Data,
    strategy: StrategyName,
    param: Annotated[list[str] | None, typer.Option(help=_PARAM_HELP)] = None,
    cash: Cash = 10_000.0,
    commission: Commission = 0.0,
    fill: Fill = None,
    size: Size = None,
    compat: Compat = None,
    stop_loss: StopLoss = None,
    take_profit: TakeProfit = None,
    trailing_stop: TrailingStop = None,
    trades: Annotated[
        int, typer.Option(help="How many of the last trades to show.")
    ] = 10,
    json_output: Json = False,
) -> None:
    """Backtest a strategy on one asset; print its statistics and last trades.

    Extra strategy inputs (neuro_composite's flux) come from a column of that name in
    the data; without one the strategy's default (zeros) is used.
    """
    import json

    from neuroflux.research import load_data, run_backtest

    params = _strategy_params(strategy, param or [])
    options = _simulation_options(
        cash=cash,
        commission=commission,
        fill=fill,
        size=size,
        compat=compat,
        stop_loss=stop_loss,
        take_profit=take_profit,
        trailing_stop=trailing_stop,
    )
    frame = load_data(data)
    run = run_backtest(frame, strategy, params, **options)
    stats = run.stats()
    missing_inputs = [
        name for name in _inputs_of(strategy) if name not in frame.columns
    ]
    if json_output:
        document = {name: _plain(value) for name, value in stats.items()}
        document["strategy"] = strategy
        document["params"] = {
            name: _plain(getattr(run.params, name)) for name in _fields(run.params)
        }
        document["bars"] = len(frame)
        document["defaulted_inputs"] = missing_inputs
        typer.echo(json.dumps(document, allow_nan=False))
        return
    table = Table("statistic", "value", title=f"{strategy} on {data}")
    for name, value in stats.items():
        table.add_row(name, _format(value))
    console.print(table)
    columns = ["entry_time", "exit_time", "direction", "size", "entry_price"]
    columns += ["exit_price", "pnl", "return_pct", "is_open"]
    shown = run.trades()[columns].tail(trades)
    if len(shown):
        trade_table = Table(*shown.columns, title=f"last {len(shown)} trades")
        for row in shown.itertuples(index=False):
            trade_table.add_row(*(_format(value) for value in row))
        console.print(trade_table)
    for name in missing_inputs:
        console.print(f"note: no {name!r} column in the data; {strategy} used zeros")


def _inputs_of(strategy: str) -> tuple[str, ...]:
    from neuroflux.strategies import get_strategy

    return get_strategy(strategy).inputs


def _fields(params) -> list[str]:
    import dataclasses

    return [field.name for field in dataclasses.fields(params)]


@app.command()
def sweep(
    data: Data,
    strategy: StrategyName,
    grid: Annotated[
        list[str],
        typer.Option(
            help="NAME=START:STOP:STEP (inclusive) or NAME=V1,V2,... (repeatable)."
        ),
    ],
    param: Annotated[
        list[str] | None, typer.Option(help="Fixed parameter NAME=VALUE.")
    ] = None,
    sample: Annotated[
        int | None, typer.Option(help="Sweep N random combinations.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --sample.")] = 0,
    sort: Annotated[
        str, typer.Option(help="Statistic to rank by (descending).")
    ] = "sharpe_ratio",
    top: Annotated[int, typer.Option(help="How many of the best rows to print.")] = 10,
    output: Annotated[
        Path | None, typer.Option(help="CSV file for the full table.")
    ] = None,
    cash: Cash = 10_000.0,
    commission: Commission = 0.0,
    fill: Fill = None,
    size: Size = None,
    compat: Compat = None,
    stop_loss: StopLoss = None,
    take_profit: TakeProfit = None,
    trailing_stop: TrailingStop = None,
    json_output: Json = False,
) -> None:
    """Backtest every combination of a parameter grid; print the best rows."""
    import json

    from neuroflux.backtest import STATISTICS
    from neuroflux.research import load_data, parse_grid_values, run_sweep

    if sort not in STATISTICS:
        raise typer.BadParameter(
            f"unknown statistic {sort!r}; valid: {', '.join(STATISTICS)}",
            param_hint="--sort",
        )
    values = {}
    for spec in grid:
        name, sep, text = spec.partition("=")
        if not sep:
            raise typer.BadParameter(
                f"expected NAME=VALUES; got {spec!r}", param_hint="--grid"
            )
        values[name.strip()] = parse_grid_values(strategy, name.strip(), text)
    params = _strategy_params(strategy, param or [])
    options = _simulation_options(
        cash=cash,
        commission=commission,
        fill=fill,
        size=size,
        compat=compat,
        stop_loss=stop_loss,
        take_profit=take_profit,
        trailing_stop=trailing_stop,
    )
    table = run_sweep(
        load_data(data),
        strategy,
        values,
        params=params,
        sample=sample,
        seed=seed,
        **options,
    )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(output)
    best = table.sort_values(sort, ascending=False, na_position="last").head(top)
    if json_output:
        rows = [
            {"combination": int(index), **{k: _plain(v) for k, v in row.items()}}
            for index, row in zip(best.index, best.to_dict("records"), strict=True)
        ]
        document = {
            "strategy": strategy,
            "combinations": len(table),
            "sort": sort,
            "rows": rows,
            "output": None if output is None else str(output),
        }
        typer.echo(json.dumps(document, allow_nan=False))
        return
    shown = [
        *values,
        "equity_final",
        "return_pct",
        "sharpe_ratio",
        "max_drawdown_pct",
        "trades",
        "win_rate_pct",
    ]
    shown = list(dict.fromkeys([*shown, sort]))
    rich_table = Table(
        "#", *shown, title=f"{strategy}: best {len(best)} of {len(table)} by {sort}"
    )
    for index, *row in best[shown].itertuples():
        rich_table.add_row(str(index), *(_format(value) for value in row))
    console.print(rich_table)
    if output is not None:
        typer.echo(f"written to {output}")


forecast_app = typer.Typer(
    help="Forecasters judged against baselines, walk-forward and out of sample.",
    no_args_is_help=True,
)
app.add_typer(forecast_app, name="forecast")


@forecast_app.command("evaluate")
def forecast_evaluate(
    data: Data,
    target: Annotated[
        str, typer.Option(help="return (forward log return) or volatility.")
    ],
    horizon: Annotated[int, typer.Option(help="Bars ahead.")] = 1,
    lookback: Annotated[int, typer.Option(help="Bars per window.")] = 20,
    models: Annotated[
        str, typer.Option(help="Comma-separated: transformer, mlp, linear.")
    ] = "transformer,mlp,linear",
    seeds: Annotated[int, typer.Option(help="Seeds per model (0..N-1).")] = 5,
    epochs: Annotated[int, typer.Option(help="Most training epochs.")] = 20,
    train: Annotated[int, typer.Option(help="Bars per training span.")] = 1000,
    test: Annotated[int, typer.Option(help="Bars per test block.")] = 250,
    folds: Annotated[
        int | None, typer.Option(help="Keep the last N folds. [default: all]")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="First date kept, e.g. 2010-01-01.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Last date kept.")] = None,
    commission: Commission = 0.001,
    json_output: Json = False,
) -> None:
    """Evaluate forecasters against baselines on one asset; print the scores."""
    import json

    from neuroflux.forecasting import TrainConfig
    from neuroflux.research import load_data
    from neuroflux.research.forecasts import evaluate_forecasters

    names = [name.strip() for name in models.split(",") if name.strip()]
    frame = load_data(data).loc[since:until]
    evaluation = evaluate_forecasters(
        frame,
        target=target,
        horizon=horizon,
        lookback=lookback,
        train=train,
        test=test,
        folds=folds,
        models=names,
        seeds=range(seeds),
        config=TrainConfig(epochs=epochs),
        commission=commission,
        progress=not json_output,
    )
    tables = {
        "metrics": evaluation.metrics,
        "dm_tests": evaluation.dm_tests,
        "backtests": evaluation.backtests,
    }
    if json_output:
        document = {
            name: {
                row: {key: _plain(value) for key, value in values.items()}
                for row, values in table.to_dict("index").items()
            }
            for name, table in tables.items()
        }
        document["verdict"] = evaluation.verdict()
        typer.echo(json.dumps(document, allow_nan=False))
        return
    for name, table in tables.items():
        rich_table = Table(table.index.name, *table.columns, title=name)
        for row, values in table.iterrows():
            rich_table.add_row(str(row), *(_format(value) for value in values))
        console.print(rich_table)
    typer.echo(evaluation.verdict())


agents_app = typer.Typer(
    help="Trading agents: train over seeds, then backtest them out of sample.",
    no_args_is_help=True,
)
app.add_typer(agents_app, name="agents")


def _agent_options(pairs: list[str]) -> dict:
    """``--set ppo.total_timesteps=65536 --set fusion=majority`` as nested options."""
    import json

    options: dict = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(
                f"expected NAME=VALUE or SECTION.NAME=VALUE; got {pair!r}",
                param_hint="--set",
            )
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        section, _, field = name.strip().rpartition(".")
        target = options.setdefault(section, {}) if section else options
        target[field] = value
    return options


def _print_rows(rows: dict, title: str) -> None:
    columns = list(next(iter(rows.values())))
    table = Table("", *columns, title=title)
    for name, values in rows.items():
        table.add_row(name, *(_format(values[column]) for column in columns))
    console.print(table)


@agents_app.command("train")
def agents_train(
    kind: Annotated[str, typer.Argument(help="ppo, neural, evolution, swarm or flux.")],
    data: Data,
    test_start: Annotated[
        str, typer.Option(help="First bar kept out of training, e.g. 2011-01-01.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Agent folder to write. [default: agents/KIND]")
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds (0..N-1), one agent each.")] = 5,
    commission: Commission = 0.001,
    setting: Annotated[
        list[str],
        typer.Option(
            "--set",
            help="A setting, e.g. ppo.total_timesteps=65536, env.window=8, "
            "neural.steps=200, fusion=majority (repeatable).",
        ),
    ] = [],  # noqa: B006 (typer reads the default; it is never mutated)
    json_output: Json = False,
) -> None:
    """Train an agent per seed on the bars before --test-start; save them."""
    import json

    from neuroflux.research import load_data
    from neuroflux.research.agents import save_agent, train_agent

    trained = train_agent(
        kind,
        load_data(data),
        test_start=test_start,
        seeds=seeds,
        commission=commission,
        **_agent_options(setting),
    )
    path = save_agent(trained, out or Path("agents") / kind)
    final = trained.history.iloc[-1] if len(trained.history) else None
    summary = {
        "kind": kind,
        "path": str(path),
        "seeds": list(trained.seeds),
        "train_start": trained.train_start.isoformat(),
        "train_end": trained.train_end.isoformat(),
        "final_training_score": None
        if final is None
        else {column: _plain(value) for column, value in final.items()},
        "settings": trained.settings,
    }
    if json_output:
        typer.echo(json.dumps(summary, allow_nan=False))
        return
    typer.echo(
        f"trained {len(trained.seeds)} {kind} agent(s) on "
        f"{_format(trained.train_start)} .. {_format(trained.train_end)}; saved to "
        f"{_shown(path)}"
    )


@agents_app.command("evaluate")
def agents_evaluate(
    path: Annotated[Path, typer.Argument(help="Agent folder (agents train --out).")],
    data: Data,
    start: Annotated[
        str | None,
        typer.Option(help="First test bar. [default: the bar after training]"),
    ] = None,
    commission: Commission = 0.001,
    json_output: Json = False,
) -> None:
    """Backtest a saved agent out of sample, each seed and buy-and-hold."""
    import json

    import numpy as np
    import pandas as pd

    from neuroflux import metrics
    from neuroflux.research import load_data
    from neuroflux.research.agents import (
        backtest_agent,
        backtest_positions,
        load_agent,
    )

    agent = load_agent(path)
    frame = load_data(data)
    first = start or frame.index[frame.index > agent.train_end][0]
    runs = backtest_agent(agent, frame, start=first, commission=commission)
    hold = backtest_positions(
        frame,
        pd.Series(1.0, index=frame.index),
        "buy_and_hold",
        start=runs[0].index[0],
        commission=commission,
    )
    columns = ("sharpe_ratio", "return_pct", "max_drawdown_pct", "trades")
    rows = {}
    for run in [*runs, hold]:
        stats = run.stats()
        rows[run.strategy] = {name: _plain(stats[name]) for name in columns}
        psr = metrics.probabilistic_sharpe_ratio(np.asarray(run.result.returns))
        rows[run.strategy]["psr"] = _plain(float(psr))
    sharpes = [rows[run.strategy]["sharpe_ratio"] for run in runs]
    summary = {
        "kind": agent.kind,
        "test_start": runs[0].index[0].isoformat(),
        "test_end": runs[0].index[-1].isoformat(),
        "runs": rows,
        "sharpe_ratio_mean": float(np.mean(sharpes)),
        "sharpe_ratio_std": float(np.std(sharpes, ddof=1)) if len(runs) > 1 else 0.0,
    }
    if json_output:
        typer.echo(json.dumps(summary, allow_nan=False))
        return
    _print_rows(rows, f"{agent.kind} out of sample, after costs")
    typer.echo(
        f"mean Sharpe over {len(runs)} seed(s): {summary['sharpe_ratio_mean']:.3f} "
        f"± {summary['sharpe_ratio_std']:.3f}; buy-and-hold "
        f"{rows['buy_and_hold']['sharpe_ratio']:.3f}"
    )


_NOTEBOOKS_HELP = "Folder of the notebooks."


@report_app.command("list")
def report_list(
    notebooks_dir: Annotated[Path, typer.Option(help=_NOTEBOOKS_HELP)] = Path(
        "notebooks"
    ),
) -> None:
    """List the notebooks and their parameters (name, type, default, help)."""
    from neuroflux.reporting import list_notebooks

    table = Table("notebook", "parameter", "type", "default", "help")
    for name, parameters in list_notebooks(notebooks_dir).items():
        if not parameters:
            table.add_row(name, "-", "", "", "")
        for position, parameter in enumerate(parameters):
            table.add_row(
                name if position == 0 else "",
                parameter.name,
                parameter.type,
                parameter.default,
                parameter.help,
            )
    console.print(table, markup=False)


@report_app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def report_run(
    ctx: typer.Context,
    notebook: Annotated[str, typer.Argument(help="Notebook name (file stem).")],
    hide_code: Annotated[
        bool, typer.Option("--hide-code", help="Leave code out of the HTML.")
    ] = False,
    notebooks_dir: Annotated[Path, typer.Option(help=_NOTEBOOKS_HELP)] = Path(
        "notebooks"
    ),
    reports_dir: Annotated[
        Path | None, typer.Option(help="Report root (default: reports/).")
    ] = None,
) -> None:
    """Run a notebook into reports/NOTEBOOK/RUN-ID/; exit 1 if the notebook failed.

    Parameters follow the notebook name as -p NAME VALUE (repeatable, as papermill's
    -p); VALUE is read as a YAML scalar: 10, 0.5, true, null, 2024-01-01, text.
    """
    from neuroflux.reporting import run_notebook

    parameters = _notebook_parameters(ctx.args)
    record = run_notebook(
        notebook,
        parameters,
        notebooks_dir=notebooks_dir,
        reports_dir=reports_dir,
        hide_code=hide_code,
    )
    typer.echo(f"{record.status}: {record.report}")
    if record.status != "ok":
        typer.echo(f"error: {record.error}", err=True)
        raise typer.Exit(1)


Workers = Annotated[
    int, typer.Option(min=1, help="Notebooks run at once (worker processes).")
]
ReportsDir = Annotated[
    Path | None, typer.Option(help="Report root (default: reports/).")
]


@report_app.command("batch")
def report_batch(
    file: Annotated[Path, typer.Argument(help="YAML file with a list under runs:.")],
    workers: Workers = 2,
    notebooks_dir: Annotated[Path, typer.Option(help=_NOTEBOOKS_HELP)] = Path(
        "notebooks"
    ),
    reports_dir: ReportsDir = None,
) -> None:
    """Run the notebook runs of FILE in parallel; exit 1 if any failed.

    FILE: runs: [{notebook: NAME, parameters: {...}, grid: {NAME: [v1, v2]}}, ...];
    a grid makes one run per combination.
    """
    from neuroflux.reporting import load_batch

    specs = load_batch(file, notebooks_dir=notebooks_dir)
    _run_reports(specs, workers, notebooks_dir, reports_dir)


@report_app.command("all")
def report_all(
    workers: Workers = 2,
    notebooks_dir: Annotated[Path, typer.Option(help=_NOTEBOOKS_HELP)] = Path(
        "notebooks"
    ),
    reports_dir: ReportsDir = None,
) -> None:
    """Run every notebook with its defaults (embedded data); exit 1 if any failed."""
    from neuroflux.reporting import default_runs

    _run_reports(default_runs(notebooks_dir), workers, notebooks_dir, reports_dir)


def _run_reports(specs, workers: int, notebooks_dir: Path, reports_dir) -> None:
    import json

    from neuroflux.reporting import run_batch

    root = reports_dir if reports_dir is not None else settings.reports_dir()
    records = run_batch(
        specs, workers=workers, notebooks_dir=notebooks_dir, reports_dir=root
    )
    from rich.table import Column

    table = Table(
        "notebook",
        Column("parameters", overflow="fold"),
        "status",
        Column("seconds", justify="right"),
        Column("report", overflow="fold"),
    )
    for record in records:
        table.add_row(
            record.notebook,
            json.dumps(record.parameters, default=str) if record.parameters else "-",
            record.status,
            f"{record.seconds:.1f}",
            _shown(record.report),
        )
    console.print(table, markup=False)
    typer.echo(f"index: {(Path(root) / 'index.html').resolve()}")
    failed = [record for record in records if record.status != "ok"]
    if failed:
        typer.echo(f"{len(failed)} of {len(records)} runs failed:", err=True)
        for record in failed:
            typer.echo(f"  {record.notebook} {record.run_id}: {record.error}", err=True)
        raise typer.Exit(1)


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(help="TCP port.")] = 5006,
    address: Annotated[
        str,
        typer.Option(
            help="Interface to bind; anything but loopback needs a login "
            "(NEUROFLUX_DASHBOARD_PASSWORD or --auth-file)."
        ),
    ] = "127.0.0.1",
    reports_dir: ReportsDir = None,
    auth_file: Annotated[
        Path | None,
        typer.Option(help='Basic-auth users, JSON {"user": "password"}.'),
    ] = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(help="Extra HOST:PORT a browser may connect from (repeatable)."),
    ] = None,
) -> None:
    """Serve the dashboards: strategy explorer, market overview, report browser.

    Loopback binds are open to this machine only; any other address needs a basic-auth
    login (password from NEUROFLUX_DASHBOARD_PASSWORD, or users from --auth-file).
    """
    from neuroflux.dashboards import is_loopback, serve_dashboards

    def announce(url: str) -> None:
        access = (
            "loopback only, no login"
            if is_loopback(address)
            else f"reachable from the network on {address}, basic-auth login required"
        )
        typer.echo(f"dashboards: {url} ({access}); Ctrl+C stops")

    serve_dashboards(
        address=address,
        port=port,
        reports_dir=reports_dir,
        auth_file=auth_file,
        allow_origins=allow_origin or (),
        on_start=announce,
    )


@app.command()
def voila(
    notebook: Annotated[
        str,
        typer.Argument(
            help="Dashboard name in notebooks/dashboards/ (e.g. strategy_tear_sheet) "
            "or a notebook path."
        ),
    ],
    port: Annotated[int, typer.Option(help="TCP port.")] = 8866,
    address: Annotated[
        str,
        typer.Option(
            help="Interface to bind; anything but loopback needs a token "
            "(NEUROFLUX_VOILA_TOKEN)."
        ),
    ] = "127.0.0.1",
) -> None:
    """Serve a dashboard notebook with Voila: widgets and charts, no code.

    Loopback binds are open to this machine only; any other address needs a token
    (NEUROFLUX_VOILA_TOKEN), which visitors pass as ?token=...
    """
    from neuroflux.dashboards import is_loopback
    from neuroflux.dashboards.voila import TOKEN_VARIABLE, serve_voila

    def announce(url: str) -> None:
        access = (
            "loopback only, no token"
            if is_loopback(address)
            else f"reachable from the network on {address}, token from "
            f"{TOKEN_VARIABLE} required"
        )
        typer.echo(f"voila: {url} ({access}); Ctrl+C stops")

    serve_voila(notebook, port=port, address=address, on_start=announce)


# promote, strategies list|show, live run|stop|audit verify
live_commands.register(app)


def main() -> None:
    """Entry point: one clear line per error unless ``--debug``."""
    try:
        app()
    except Exception as error:
        if "--debug" in sys.argv:
            raise
        from neuroflux.data import DataValidationError

        first_line = (str(error).strip().splitlines() or [""])[0]
        typer.echo(f"error: {type(error).__name__}: {first_line}", err=True)
        sys.exit(2 if isinstance(error, DataValidationError) else 1)
