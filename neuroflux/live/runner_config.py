"""What a live session trades and how (:class:`RunnerConfig`), and how its run
ended (:class:`RunSummary`): the settings of :class:`~neuroflux.live.runner.Runner`."""

from __future__ import annotations

import dataclasses

from neuroflux.live.risk import RiskLimits

__all__ = ["RunSummary", "RunnerConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunnerConfig:
    """What a session trades and how.

    Attributes:
        session: Name in every client order id (e.g. ``sma_cross@v3``): a restart of
            the same session must use the same name.
        symbols: ccxt symbols ``BASE/QUOTE`` sharing one quote asset.
        fees, slippage: As in :class:`~neuroflux.backtest.SimulationParams`; used to
            size orders as the backtest does.
        limits: Risk limits and circuit-breaker thresholds.
        trade_from: Bars before this open time (UTC ms) only warm the agents up:
            their decisions are taken, not traded. The first bar at or after it
            trades to the agents' target, wherever the warm-up left it.
        warmup_bars: Bars before ``trade_from`` that a fresh session's feed starts
            with (a resumed session starts after its last committed bar).
        max_bar_delay: Seconds after a bar's expected close before data counts as
            stale (``None``: replay, never stale).
        timeframe_ms: Bar length, for the staleness check.
        max_agent_errors: Consecutive errors that isolate an agent.
    """

    session: str
    symbols: tuple[str, ...]
    fees: float = 0.0
    slippage: float = 0.0
    limits: RiskLimits = dataclasses.field(default_factory=RiskLimits)
    trade_from: int | None = None
    warmup_bars: int = 0
    max_bar_delay: float | None = None
    timeframe_ms: int = 86_400_000
    max_agent_errors: int = 3

    def __post_init__(self) -> None:
        quotes = {symbol.partition("/")[2] for symbol in self.symbols}
        if not self.symbols or "" in quotes or len(quotes) != 1:
            raise ValueError(
                f"symbols must be BASE/QUOTE with one quote asset; got {self.symbols}"
            )
        if self.warmup_bars < 0 or (self.warmup_bars and self.trade_from is None):
            raise ValueError(
                f"warmup_bars must be >= 0, and given only with trade_from; got "
                f"{self.warmup_bars} with trade_from={self.trade_from}"
            )

    @property
    def first_bar_after(self) -> int | None:
        """The bar time a fresh session's feed starts after (None: the feed's own)."""
        if not self.warmup_bars:
            return None
        assert self.trade_from is not None
        return self.trade_from - (self.warmup_bars + 1) * self.timeframe_ms

    @property
    def quote(self) -> str:
        return self.symbols[0].partition("/")[2]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSummary:
    """How a run ended."""

    cycles: int
    orders: int
    last_bar_time: int | None
    equity: float
    breaker: str
    stopped_by: str
