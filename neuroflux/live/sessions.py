"""A live session from a promoted artifact: feed, exchange, journal, runner and API.

``neuroflux live run NAME --paper`` is :func:`open_session` then :func:`run_session`:

* **data**: ``--data sp500`` (an embedded sample), ``--data synthetic`` (generated
  bars), or a CSV/Parquet file replays stored bars through the runner as fast as it
  goes (or ``--speed`` times real time); ``--exchange binance`` trades the exchange's
  bars instead: from its websocket candles (ccxt.pro) where ccxt has them, else (or
  with ``--poll``) by polling its REST klines. A fresh session first warms its agents
  up on the ``--warmup-bars`` closed bars before the start, then trades from the bar
  closing next, taking the position the agents want then.
* **exchange**: with ``--paper`` a :class:`~neuroflux.live.paper.PaperExchange` whose
  account lives beside the journal (``paper.sqlite``), so a restart resumes it; without
  it the ccxt exchange itself, keys from ``NEUROFLUX_<EXCHANGE>_API_KEY`` and
  ``_API_SECRET``.
* **journal**: ``<live dir>/<name>/v<version>/journal.sqlite`` by default; running the
  same artifact version again continues its session after the last committed bar.
* **API**: on ``127.0.0.1:--api-port`` (0: none); another host requires the token in
  ``NEUROFLUX_API_TOKEN``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import structlog

from neuroflux import settings
from neuroflux.live.analytics import AnalyticsEngine
from neuroflux.live.api import make_app, serve
from neuroflux.live.artifacts import Artifact
from neuroflux.live.ccxt_exchange import make_ccxt_exchange, make_market_data_client
from neuroflux.live.decisions import Agent
from neuroflux.live.events import EventBus
from neuroflux.live.feeds import CcxtFeed, Feed, ReplayFeed, timeframe_milliseconds
from neuroflux.live.journal import Journal
from neuroflux.live.paper import PaperExchange
from neuroflux.live.risk import RiskLimits
from neuroflux.live.runner import Runner
from neuroflux.live.runner_config import RunnerConfig, RunSummary
from neuroflux.live.streams import CcxtStreamFeed

__all__ = [
    "SessionOptions",
    "configure_json_logs",
    "journal_path",
    "latest_journal",
    "open_session",
    "run_session",
]

_YEAR_MS = 365.25 * 86_400_000


@dataclasses.dataclass(frozen=True, kw_only=True)
class SessionOptions:
    """How ``neuroflux live run`` runs an artifact (see the module docstring)."""

    paper: bool = True
    data: str | None = None
    exchange: str | None = None
    exchange_url: str | None = None
    stream_url: str | None = None
    poll: bool = False
    warmup_bars: int = 500
    speed: float | None = None
    balance: float = 10_000.0
    journal: Path | None = None
    seed_index: int = 0
    api_host: str = "127.0.0.1"
    api_port: int = 0
    webhook_url: str | None = None

    def __post_init__(self) -> None:
        if self.exchange is None and not self.paper:
            raise ValueError(
                "live trading needs --exchange (a ccxt id); replayed data trades "
                "on --paper only"
            )
        if self.exchange is not None and self.data is not None:
            raise ValueError("give --data (replay) or --exchange (its bars), not both")
        if self.warmup_bars < 0:
            raise ValueError(f"--warmup-bars must be >= 0; got {self.warmup_bars}")


def journal_path(artifact_name: str, version: int) -> Path:
    """The default journal of the sessions of one artifact version (each version is
    a session of its own: its agents, state and client order ids differ)."""
    return settings.live_dir() / artifact_name / f"v{version}" / "journal.sqlite"


def latest_journal(artifact_name: str) -> Path:
    """The default journal of the newest version of ``artifact_name`` that has run.

    Raises:
        FileNotFoundError: No version of it has a journal there.
    """
    folder = settings.live_dir() / artifact_name
    versions = [
        int(path.parent.name[1:])
        for path in folder.glob("v*/journal.sqlite")
        if path.parent.name[1:].isdigit()
    ]
    if not versions:
        raise FileNotFoundError(
            f"no session of {artifact_name} has a journal in {folder}"
        )
    return journal_path(artifact_name, max(versions))


def configure_json_logs() -> None:
    """Log lines as JSON, one per event, UTC timestamps, to the configured stream
    (the command's stderr)."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ]
    )


def _replay(artifact: Artifact, data: str | None, speed: float | None) -> ReplayFeed:
    source = data or _artifact_data(artifact) or "sp500"
    timeframe = artifact.timeframe
    if source == "synthetic":
        return ReplayFeed.synthetic(
            artifact.symbols, bars=2_000, seed=0, timeframe=timeframe, speed=speed
        )
    if len(artifact.symbols) != 1:
        raise ValueError(
            f"--data {source!r} holds one market; {artifact.name} trades "
            f"{list(artifact.symbols)}"
        )
    (symbol,) = artifact.symbols
    if Path(source).suffix in (".csv", ".parquet", ".pq"):
        from neuroflux.data import read_ohlcv

        bars = read_ohlcv(source)
        return ReplayFeed({symbol: bars}, timeframe=timeframe, speed=speed)
    return ReplayFeed.from_sample(source, symbol, speed=speed)


def _artifact_data(artifact: Artifact) -> str | None:
    data = artifact.provenance.get("data")
    if isinstance(data, str) and data.startswith("sample:"):
        return data.removeprefix("sample:")
    return data if isinstance(data, str) and Path(data).exists() else None


def open_session(artifact: Artifact, options: SessionOptions) -> Runner:
    """The runner of ``artifact`` with the feed, exchange and journal of ``options``."""
    decision = artifact.decision(options.seed_index)
    journal_file = options.journal or journal_path(artifact.name, artifact.version)
    journal_file.parent.mkdir(parents=True, exist_ok=True)
    session = f"{artifact.name}@v{artifact.version}"
    _check_session_journal(journal_file, session)
    costs = artifact.costs
    quote = artifact.symbols[0].partition("/")[2]
    timeframe_ms = timeframe_milliseconds(artifact.timeframe)
    trade_from = max_bar_delay = None
    warmup_bars = 0
    feed: Feed
    if options.exchange is None:
        feed = _replay(artifact, options.data, options.speed)
    else:
        urls = {
            "api_url": options.exchange_url,
            "streams": not options.poll,
            "stream_url": options.stream_url,
        }
        if options.paper:
            client = make_market_data_client(options.exchange, **urls)
        else:
            market = make_ccxt_exchange(options.exchange, **urls)
            client = market.client
        if not options.poll and client.has.get("watchOHLCV"):
            feed = CcxtStreamFeed(client, artifact.symbols, artifact.timeframe)
        else:
            feed = CcxtFeed(client, artifact.symbols, artifact.timeframe)
        # from the bar closing next on
        trade_from = int(time.time() * 1e3) // timeframe_ms * timeframe_ms
        warmup_bars = options.warmup_bars
        max_bar_delay = 60.0
    if options.paper:
        exchange: Any = PaperExchange(
            balances={quote: options.balance},
            fees=costs["fees"],
            slippage=costs["slippage"],
            path=journal_file.with_name("paper.sqlite"),
        )
    else:
        exchange = market
    config = RunnerConfig(
        session=session,
        symbols=tuple(artifact.symbols),
        fees=costs["fees"],
        slippage=costs["slippage"],
        limits=RiskLimits.from_dict(dict(artifact.risk)),
        trade_from=trade_from,
        warmup_bars=warmup_bars,
        max_bar_delay=max_bar_delay,
        timeframe_ms=timeframe_ms,
    )
    agent = Agent(
        name=decision.name, strategy=decision.strategy, params=decision.params
    )
    return Runner(
        config,
        [agent],
        feed=feed,
        exchange=exchange,
        journal=Journal(journal_file),
        bus=EventBus(),
        engine=AnalyticsEngine(periods_per_year=_YEAR_MS / timeframe_ms),
        webhook_url=options.webhook_url,
    )


def _check_session_journal(path: Path, session: str) -> None:
    """Refuses a journal that another session wrote (another artifact or version)."""
    with Journal(path) as journal:
        started = journal.events("session")
    if started and started[-1].data["session"] != session:
        raise ValueError(
            f"journal {path} is the journal of session {started[-1].data['session']}"
            f", not of {session}; give this one a journal of its own (--journal)"
        )


async def run_session(runner: Runner, options: SessionOptions) -> RunSummary:
    """Runs ``runner`` with its API served while it runs; closes everything after."""
    api = None
    try:
        if options.api_port:
            token = os.environ.get("NEUROFLUX_API_TOKEN") or None
            app = make_app(runner, runner.bus, token=token)
            api = await serve(
                app, host=options.api_host, port=options.api_port, token=token
            )
        return await runner.run()
    finally:
        if api is not None:
            await api.cleanup()
        await runner.feed.close()
        await runner.exchange.close()
        runner.journal.close()
