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
console = Console(highlight=False)


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """NeuroFlux: research notebooks, backtests and live trading in JAX."""
    # Logs (retries, warnings) go to stderr so that stdout stays the command's output.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


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
