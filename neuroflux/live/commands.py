"""``neuroflux promote``, ``neuroflux strategies list|show`` and ``neuroflux live``.

``live run NAME --paper`` runs a promoted strategy (:mod:`neuroflux.live.sessions`),
``live stop NAME [--flatten]`` asks a running session to stop through its journal, and
``live audit verify JOURNAL`` checks the journal's hash-chained audit log.

:func:`register` mounts them on the main app (``register(app)`` in
:mod:`neuroflux.cli`). Like the rest of the command, an error prints one line and
exits non-zero: 2 for an invalid source, argument or a tampered artifact, 1 for one
that does not exist; ``--json`` prints one JSON object instead of tables.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["live_app", "promote", "register", "strategies_app"]

strategies_app = typer.Typer(
    help="Promoted strategies: versioned, checksummed artifacts for the live runner.",
    no_args_is_help=True,
)
live_app = typer.Typer(
    help="Run promoted strategies on paper or live, stop them, audit their journals.",
    no_args_is_help=True,
)
audit_app = typer.Typer(
    help="The journal's hash-chained audit log.", no_args_is_help=True
)
live_app.add_typer(audit_app, name="audit")
_console = Console(highlight=False)
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
_SOURCE_HELP = (
    "Report run folder (reports/<notebook>/<run-id>), strategy config file "
    "(YAML/JSON: strategy, params, data) or saved agent folder (agent.json)."
)


def register(app: typer.Typer) -> None:
    """Add ``promote`` and the ``strategies`` group to the main app."""
    app.command("promote")(promote)
    app.add_typer(strategies_app, name="strategies")
    app.add_typer(live_app, name="live")


@contextmanager
def _clean_errors(keep: type[Exception] | None = None) -> Iterator[None]:
    """Expected failures as one line on stderr and an exit code, not a traceback.

    ``keep``: a kind of error to let through to the caller.
    """
    from neuroflux.live.artifacts import ArtifactTampered

    try:
        yield
    except Exception as error:
        if keep is not None and isinstance(error, keep):
            raise
        if not isinstance(error, ValueError | ArtifactTampered | FileNotFoundError):
            raise
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1 if isinstance(error, FileNotFoundError) else 2) from None


def _risk_limits(pairs: list[str]) -> dict[str, float]:
    limits = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = None
        if not separator or not key.strip() or value is None:
            raise typer.BadParameter(
                f"expected NAME=NUMBER (e.g. max_position=0.5); got {pair!r}",
                param_hint="--risk",
            )
        limits[key.strip()] = int(value) if text.strip().isdigit() else value
    return limits


def promote(
    source: Annotated[Path, typer.Argument(help=_SOURCE_HELP)],
    symbol: Annotated[
        list[str], typer.Option("--symbol", help="Market to trade (repeatable).")
    ],
    timeframe: Annotated[str, typer.Option(help="Bar length, e.g. 1d, 1h, 15m.")],
    name: Annotated[
        str | None, typer.Option(help="Artifact name [default: from the source].")
    ] = None,
    risk: Annotated[
        list[str] | None,
        typer.Option(help="Risk limit NAME=NUMBER (repeatable), e.g. max_position=1."),
    ] = None,
    fees: Annotated[float, typer.Option(help="Proportional fee per order.")] = 0.001,
    slippage: Annotated[
        float, typer.Option(help="Fraction added to buys, taken from sells.")
    ] = 0.0,
    data: Annotated[
        str | None,
        typer.Option(help="Data the source was evaluated on (agents), hashed."),
    ] = None,
    json_output: Json = False,
) -> None:
    """Promote a strategy to the next version of a checksummed artifact."""
    from neuroflux.live.artifacts import promote as promote_artifact

    limits = _risk_limits(risk or [])
    with _clean_errors():
        artifact = promote_artifact(
            source,
            name=name,
            symbols=symbol,
            timeframe=timeframe,
            risk=limits,
            fees=fees,
            slippage=slippage,
            data=data,
        )
    if json_output:
        typer.echo(json.dumps(_document(artifact), allow_nan=False))
        return
    typer.echo(
        f"promoted {artifact.name} v{artifact.version} ({artifact.kind}: "
        f"{artifact.strategy}) to {artifact.folder}"
    )


@strategies_app.command("list")
def list_command(json_output: Json = False) -> None:
    """List promoted strategies: latest version, kind, markets, key metrics."""
    from neuroflux import settings
    from neuroflux.live.artifacts import list_artifacts

    summaries = list_artifacts()
    if json_output:
        rows = [
            {
                "name": summary.name,
                "latest_version": summary.latest_version,
                "versions": list(summary.versions),
                "kind": summary.kind,
                "strategy": summary.strategy,
                "symbols": list(summary.symbols),
                "timeframe": summary.timeframe,
                "created": summary.created,
                "metrics": summary.metrics,
                "intact": summary.intact,
                "problem": summary.problem,
            }
            for summary in summaries
        ]
        typer.echo(
            json.dumps({"store": str(settings.strategies_dir()), "artifacts": rows})
        )
        return
    if not summaries:
        typer.echo(f"no promoted strategies in {settings.strategies_dir()}")
        return
    table = Table("name", "version", "kind", "strategy", "symbols", "timeframe")
    table.add_column("sharpe_ratio")
    table.add_column("checksum")
    for summary in summaries:
        sharpe = summary.metrics.get("sharpe_ratio")
        table.add_row(
            summary.name,
            f"v{summary.latest_version} of {len(summary.versions)}",
            summary.kind,
            summary.strategy,
            ", ".join(summary.symbols),
            summary.timeframe,
            "-" if sharpe is None else f"{sharpe:.3f}",
            "ok" if summary.intact else "TAMPERED",
        )
    _console.print(table, markup=False)
    for summary in summaries:
        if not summary.intact:
            typer.echo(f"TAMPERED: {summary.problem}")


@strategies_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Artifact name.")],
    version: Annotated[
        int | None, typer.Option(help="Version [default: latest].")
    ] = None,
    json_output: Json = False,
) -> None:
    """Show an artifact, its provenance and whether it matches its checksum."""
    from neuroflux.live.artifacts import ArtifactTampered, load_artifact

    try:
        with _clean_errors(keep=ArtifactTampered):
            artifact = load_artifact(name, version)
    except ArtifactTampered as error:
        if json_output:  # the verdict as a document too, for scripts
            checksum = {"status": "tampered", "problem": str(error)}
            typer.echo(
                json.dumps({"name": name, "version": version, "checksum": checksum})
            )
        typer.echo(f"checksum: TAMPERED: {error}", err=True)
        raise typer.Exit(2) from None
    if json_output:
        typer.echo(json.dumps(_document(artifact), allow_nan=False))
        return
    table = Table("field", "value", title=f"{artifact.name} v{artifact.version}")
    for key, value in artifact.to_json().items():
        if key != "provenance":
            table.add_row(key, _shown(value))
    table.add_row("folder", str(artifact.folder))
    _console.print(table, markup=False)
    provenance = Table("provenance", "value")
    for key, value in artifact.provenance.items():
        provenance.add_row(key, _shown(value))
    _console.print(provenance, markup=False)
    # a line of its own, unwrapped, so that it can be compared with sha256sum's
    typer.echo(f"checksum: ok, sha256 {artifact.checksum}")


def _document(artifact: Any) -> dict[str, Any]:
    return {
        **artifact.to_json(),
        "folder": str(artifact.folder),
        "checksum": {"status": "ok", "sha256": artifact.checksum},
    }


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


JournalOption = Annotated[
    Path | None,
    typer.Option(
        help="Session journal [default: <live dir>/NAME/v<VERSION>/journal.sqlite]."
    ),
]


@live_app.command("run")
def live_run(
    name: Annotated[str, typer.Argument(help="Promoted strategy (artifact) name.")],
    version: Annotated[
        int | None, typer.Option(help="Version [default: latest].")
    ] = None,
    paper: Annotated[
        bool, typer.Option("--paper/--live", help="Paper account or real orders.")
    ] = True,
    data: Annotated[
        str | None,
        typer.Option(help="Replay: sample name, 'synthetic', or a CSV/Parquet file."),
    ] = None,
    exchange: Annotated[
        str | None, typer.Option(help="ccxt exchange id whose bars to trade on.")
    ] = None,
    exchange_url: Annotated[
        str | None, typer.Option(help="Base URL replacing the exchange's API host.")
    ] = None,
    stream_url: Annotated[
        str | None,
        typer.Option(help="Base URL replacing the exchange's websocket host."),
    ] = None,
    poll: Annotated[
        bool, typer.Option(help="Poll REST for bars instead of the websocket stream.")
    ] = False,
    warmup_bars: Annotated[
        int, typer.Option(help="Closed bars the agents see before trading starts.")
    ] = 500,
    speed: Annotated[
        float | None, typer.Option(help="Replay pace, × real time [default: max].")
    ] = None,
    balance: Annotated[
        float, typer.Option(help="Paper account's starting cash.")
    ] = 10_000.0,
    seed_index: Annotated[
        int, typer.Option(help="Which trained seed of an agent artifact to run.")
    ] = 0,
    journal: JournalOption = None,
    api_port: Annotated[
        int, typer.Option(help="Serve the HTTP API on this port (0: no API).")
    ] = 0,
    api_host: Annotated[
        str, typer.Option(help="API host; off loopback needs NEUROFLUX_API_TOKEN.")
    ] = "127.0.0.1",
    webhook: Annotated[str | None, typer.Option(help="URL to POST alerts to.")] = None,
    json_output: Json = False,
) -> None:
    """Run a promoted strategy bar by bar, journaled; JSON logs on stderr."""
    import asyncio

    from neuroflux.live.artifacts import load_artifact
    from neuroflux.live.sessions import (
        SessionOptions,
        configure_json_logs,
        open_session,
        run_session,
    )

    with _clean_errors():
        artifact = load_artifact(name, version)
        options = SessionOptions(
            paper=paper,
            data=data,
            exchange=exchange,
            exchange_url=exchange_url,
            stream_url=stream_url,
            poll=poll,
            warmup_bars=warmup_bars,
            speed=speed,
            balance=balance,
            seed_index=seed_index,
            journal=journal,
            api_host=api_host,
            api_port=api_port,
            webhook_url=webhook,
        )
        runner = open_session(artifact, options)
    configure_json_logs()
    summary = asyncio.run(run_session(runner, options))
    if json_output:
        typer.echo(json.dumps(dataclasses.asdict(summary)))
        return
    typer.echo(
        f"{name}: {summary.cycles} cycles, {summary.orders} orders, equity "
        f"{summary.equity:,.2f}, breaker {summary.breaker}, ended by "
        f"{summary.stopped_by}"
    )


@live_app.command("stop")
def live_stop(
    name: Annotated[str, typer.Argument(help="Promoted strategy (artifact) name.")],
    flatten: Annotated[
        bool, typer.Option(help="Close every position before stopping.")
    ] = False,
    version: Annotated[
        int | None, typer.Option(help="Version [default: the newest that has run].")
    ] = None,
    journal: JournalOption = None,
) -> None:
    """Ask a running session to stop (kill switch with --flatten)."""
    from neuroflux.live.journal import Journal
    from neuroflux.live.sessions import journal_path, latest_journal

    with _clean_errors():
        path = journal or (
            latest_journal(name) if version is None else journal_path(name, version)
        )
        with Journal(path, create=False) as session:
            seq = session.request_command("stop", {"flatten": flatten})
    typer.echo(f"stop{' --flatten' if flatten else ''} requested (command {seq})")


@audit_app.command("verify")
def audit_verify(
    journal: Annotated[Path, typer.Argument(help="Session journal (SQLite).")],
    json_output: Json = False,
) -> None:
    """Check the audit chain and that every table matches it; exit 1 if not."""
    from neuroflux.live.journal import verify_audit

    with _clean_errors():
        report = verify_audit(journal)
    if json_output:
        typer.echo(json.dumps(dataclasses.asdict(report)))
    else:
        verdict = "intact" if report.ok else "TAMPERED"
        typer.echo(f"{journal}: {report.records} audit records, {verdict}")
        for problem in report.problems:
            typer.echo(f"  {problem}")
    if not report.ok:
        raise typer.Exit(1)
