"""The live runner: one cycle per bar, from market data to journaled fills.

The cycle, for each bar time the feed yields (one bar per symbol):

1. the exchange sees the bars (a paper exchange prices its fills from them);
2. orders left open by the last cycle are refreshed, and what remains is canceled;
3. every agent steps (:class:`~neuroflux.live.decisions.Decisions`), a failing agent is
   isolated and the others go on; the consensus is the target position per symbol;
4. where a symbol's target changed, the orders are those
   :func:`neuroflux.backtest.rebalance_orders` gives for the account the exchange
   reports (cash split evenly between symbols, the bar's close as price): the same
   orders :func:`neuroflux.backtest.simulate` places with close fills, so a replay
   through a paper exchange repeats the backtest's trades;
5. the risk gate shrinks a target past a position or notional limit and the circuit
   breaker blocks what its state forbids (both journaled and published, never silent);
6. each order is journaled before it is sent, under a client order id derived from the
   session, symbol, bar and sequence: a retry, or a restart after ``kill -9``, sends
   the same id and the exchange refuses a second order;
7. equity is marked at the closes, the breaker updated, and the cycle committed to the
   journal with every agent's state, in one transaction.

On start the runner reloads the last committed cycle (agent states, traded targets,
breaker), asks the exchange for every order the journal has not seen finish, and
resumes the feed after the last committed bar. A bar decided but not committed before a
crash is decided again with the same result and the same client order ids.

Commands (``stop``, with or without ``flatten``; ``reset_breaker``) arrive through the
journal, so ``neuroflux live stop --flatten`` works from another process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import jax
import numpy as np
import structlog
from flax import serialization

from neuroflux.backtest import SimulationParams, rebalance_orders
from neuroflux.live.analytics import AnalyticsEngine, post_alert
from neuroflux.live.decisions import Agent, Decisions
from neuroflux.live.events import Event, EventBus
from neuroflux.live.feeds import Feed
from neuroflux.live.journal import Journal
from neuroflux.live.orders import BarEvent, Exchange, Order, OrderRequest
from neuroflux.live.orders import client_order_id as make_client_order_id
from neuroflux.live.risk import CircuitBreaker, gate_target
from neuroflux.live.runner_config import RunnerConfig, RunSummary

__all__ = ["Runner"]

_log = structlog.get_logger("neuroflux.live")
_rebalance = jax.jit(rebalance_orders)
_COMMAND_POLL_SECONDS = 0.25


class Runner:
    """Drives agents bar by bar against an exchange; a ``LiveSource`` for the API."""

    def __init__(
        self,
        config: RunnerConfig,
        agents: Sequence[Agent],
        *,
        feed: Feed,
        exchange: Exchange,
        journal: Journal,
        bus: EventBus | None = None,
        engine: AnalyticsEngine | None = None,
        webhook_url: str | None = None,
    ) -> None:
        self.config = config
        self.feed, self.exchange, self.journal = feed, exchange, journal
        self.bus = bus or EventBus()
        self.engine = engine
        self.webhook_url = webhook_url
        self._webhook: aiohttp.ClientSession | None = None
        self._published_fills: set[tuple[str, str]] = set()
        self._posts: set[asyncio.Future] = set()
        self.decisions = Decisions(
            agents, config.symbols, max_errors=config.max_agent_errors
        )
        self.breaker = CircuitBreaker(config.limits)
        self.traded = dict.fromkeys(config.symbols, 0.0)
        self._blocked: dict[str, tuple[float, str]] = {}  # (target, breaker state)
        self.balances: dict[str, float] = {}
        self.prices: dict[str, float] = {}
        self.last_bar_time: int | None = None
        self.cycles = self.orders_sent = self.failed_cycles = 0
        self.equity = float("nan")
        self._sizing = SimulationParams(fees=config.fees, slippage=config.slippage)
        self._stop: dict[str, Any] | None = None
        self._waiting = False
        self._running = False

    # -- LiveSource ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "session": self.config.session,
            "mode": self.exchange.name,
            "running": self._running,
            "symbols": list(self.config.symbols),
            "cycles": self.cycles,
            "last_bar_time": self.last_bar_time,
            "equity": self.equity,
            "breaker": self.breaker.state.name,
            "agents": {n: h.to_json() for n, h in self.decisions.health.items()},
        }

    def positions(self) -> list[dict[str, Any]]:
        return [
            {
                "symbol": symbol,
                "units": units,
                "price": self.prices.get(symbol, float("nan")),
                "value": units * self.prices.get(symbol, float("nan")),
                "target": self.traded[symbol],
            }
            for symbol, units in self._units().items()
        ]

    def orders(self, limit: int = 100) -> list[dict[str, Any]]:
        return [
            dataclasses.asdict(order) for order in self.journal.latest_orders(limit)
        ]

    def analytics(self) -> dict[str, Any]:
        return self.engine.snapshot() if self.engine else {}

    def request_stop(self, flatten: bool) -> None:
        self.journal.request_command("stop", {"flatten": flatten})

    # -- the run ------------------------------------------------------------------

    async def run(self) -> RunSummary:
        """Reconciles, then runs a cycle per bar until the feed ends or a stop."""
        self._running = True
        if self.webhook_url:
            self._webhook = aiohttp.ClientSession()
        watcher = asyncio.create_task(self._watch_commands())
        try:
            await self._reconcile()
            main = asyncio.current_task()
            assert main is not None
            self._main = main
            after = self.last_bar_time
            if after is None:
                after = self.config.first_bar_after
            async for bars in self.feed.bars(after=after):
                self._waiting = False
                await self._cycle(bars)
                if self._stop is not None or self.breaker.flatten_required:
                    break
                self._waiting = True
        except asyncio.CancelledError:
            if self._stop is None:
                raise
        finally:
            self._waiting = False
            watcher.cancel()
            self._running = False
            if self._webhook is not None:
                if self._posts:  # alerts of the last cycles still on their way
                    await asyncio.wait(self._posts, timeout=10)
                await self._webhook.close()
        stopped_by = "feed ended"
        if self.breaker.flatten_required or (self._stop or {}).get("flatten"):
            await self._flatten("emergency" if self._stop is None else "stop")
            stopped_by = "emergency" if self._stop is None else "stop --flatten"
        elif self._stop is not None:
            stopped_by = "stop"
        self._publish("status", {"stopped_by": stopped_by, **self.status()})
        return RunSummary(
            cycles=self.cycles,
            orders=self.orders_sent,
            last_bar_time=self.last_bar_time,
            equity=self.equity,
            breaker=self.breaker.state.name,
            stopped_by=stopped_by,
        )

    async def _watch_commands(self) -> None:
        """Polls the journal for commands; an error (a journal locked past the busy
        timeout) is logged and the next poll tries again, so the kill switch stays."""
        while True:
            try:
                self._take_commands()
            except Exception as error:
                _log.error(
                    "command_watch_failed", error=f"{type(error).__name__}: {error}"
                )
            await asyncio.sleep(_COMMAND_POLL_SECONDS)

    def _take_commands(self) -> None:
        for command in self.journal.pending_commands():
            if command.command == "stop":
                self._stop = dict(command.data)
                if self._waiting:  # between bars: do not wait for the next one
                    self._main.cancel()
            elif command.command == "reset_breaker":
                self._transition(self.breaker.reset("reset_breaker command"))
            self.journal.complete_command(command.seq)
        if self.engine is not None:
            self._alerts(self.engine.check())  # staleness: no bar for too long

    async def _reconcile(self) -> None:
        last = self.journal.last_cycle()
        if last is not None:
            saved = serialization.msgpack_restore(last.state)
            self.decisions.load_state_dict(saved["decisions"])
            self.traded = {s: float(v) for s, v in saved["traded"].items()}
            flattened = self.journal.events("flattened")
            if flattened and flattened[-1].time > last.created:
                # Flattened after its last cycle: nothing is traded any more, so the
                # first bar traded after the restart takes the agents' position.
                self.traded = dict.fromkeys(self.config.symbols, 0.0)
            self.breaker = CircuitBreaker.from_state_dict(
                self.config.limits, saved["breaker"]
            )
            self.last_bar_time, self.cycles = last.bar_time, int(saved["cycles"])
        found = []
        for record in self.journal.unfinished_orders():
            order = await self.exchange.fetch_order(
                record.symbol, record.client_order_id
            )
            if order is None:  # journaled, then the process died before sending it
                order = dataclasses.replace(
                    record.to_order(), status="rejected", fills=()
                )
            self.journal.record_order(order, bar_time=record.bar_time)
            found.append(
                {"client_order_id": order.client_order_id, "status": order.status}
            )
        self.balances = await self.exchange.fetch_balance()
        data = {
            "orders": found,
            "balances": self.balances,
            "resumed_after": self.last_bar_time,
        }
        config = self.config
        self.journal.record_event(
            "session",
            {
                "session": config.session,
                "symbols": list(config.symbols),
                "fees": config.fees,
                "slippage": config.slippage,
                "exchange": self.exchange.name,
                "limits": dataclasses.asdict(config.limits),
                "trade_from": config.trade_from,
            },
        )
        self.journal.record_event("reconciled", data)
        _log.info("reconciled", orders=len(found), resumed_after=self.last_bar_time)

    async def _cycle(self, bars: Sequence[BarEvent]) -> None:
        started = time.perf_counter()
        by_symbol = {bar.symbol: bar for bar in bars}
        bar_time = bars[0].time
        errors = 0
        for bar in bars:
            await self.exchange.on_bar(bar)
            self.prices[bar.symbol] = bar.close
            self._publish("bar", dataclasses.asdict(bar))
        errors += await self._settle_open_orders()
        targets = self.decisions.decide(by_symbol)
        for name, agent_targets in self.decisions.targets.items():
            latency = self.decisions.health[name].latency_ms
            for symbol, target in agent_targets.items():
                self._publish(
                    "decision",
                    {
                        "symbol": symbol,
                        "agent": name,
                        "target": target,
                        "latency_ms": latency,
                    },
                )
        # An isolated agent is out of the consensus: counting it would fail every
        # later cycle and halt the breaker for good. With none left, every cycle fails.
        health = self.decisions.health.values()
        errors += any(h.consecutive_errors and not h.isolated for h in health) or all(
            h.isolated for h in health
        )
        trading = self.config.trade_from is None or bar_time >= self.config.trade_from
        for symbol, target in targets.items():
            if trading and target is not None and target != self.traded[symbol]:
                errors += await self._trade(symbol, target, bar_time)
        try:
            self.balances = await self.exchange.fetch_balance()
        except Exception as error:  # marked with the last balances it reported
            errors += 1
            self._incident("balance_failed", error=f"{type(error).__name__}: {error}")
        self.equity = self._equity()
        self.failed_cycles = self.failed_cycles + 1 if errors else 0
        self._transition(
            self.breaker.update(
                time_ms=bar_time,
                equity=self.equity,
                errors=self.failed_cycles,
                stale_bars=self._stale_bars(bar_time),
            )
        )
        self.cycles += 1
        self.last_bar_time = bar_time
        self.journal.commit_cycle(
            bar_time=bar_time,
            equity=self.equity,
            cash=self.balances.get(self.config.quote, 0.0),
            positions=self._units(),
            prices=dict(self.prices),
            state=self._state_bytes(),
        )
        self._publish(
            "cycle",
            {
                "bar_time": bar_time,
                "equity": self.equity,
                "cash": self.balances.get(self.config.quote, 0.0),
                "positions": self._units(),
                "prices": dict(self.prices),
                "exposure": self._exposure(),
                "latency_ms": (time.perf_counter() - started) * 1e3,
                "agents": {n: h.to_json() for n, h in self.decisions.health.items()},
                "breaker": self.breaker.state.name,
            },
        )

    async def _trade(self, symbol: str, target: float, bar_time: int) -> int:
        """Sends the orders toward ``target``; the number of orders that failed.

        The target counts as traded once its orders went through; blocked by the
        breaker or failed, it is tried again at the next bar.
        """
        units = self._units()[symbol]
        price = self.prices[symbol]
        cash = self.balances.get(self.config.quote, 0.0) / len(self.config.symbols)
        closing, adjusting = (
            float(x)
            for x in _rebalance(
                cash, units, self.traded[symbol], target, price, self._sizing
            )
        )
        wanted = units + closing + adjusting
        gate = gate_target(symbol, wanted, price, self.config.limits)
        if gate.reason is not None:
            self._incident(
                "risk_gate",
                symbol=symbol,
                wanted=wanted,
                allowed=gate.units,
                reason=gate.reason,
            )
            flips = np.sign(gate.units) != np.sign(units)
            closing = -units if flips else 0.0
            adjusting = gate.units - units - closing
        if not self.breaker.permits(units, units + closing + adjusting):
            block = (target, self.breaker.state.name)
            if self._blocked.get(symbol) != block:  # journaled once, not every bar
                self._blocked[symbol] = block
                self._incident(
                    "breaker_blocked",
                    symbol=symbol,
                    target=target,
                    units=units,
                    wanted=units + closing + adjusting,
                    breaker=self.breaker.state.name,
                )
            return 0
        self._blocked.pop(symbol, None)
        # Fixed sequences: after a restart the closing order keeps its id even if
        # the re-decided bar no longer needs it, so the opening one never takes it.
        failed = await self._send(symbol, {0: closing, 1: adjusting}, bar_time)
        if not failed:
            self.traded[symbol] = target
        return failed

    async def _send(
        self, symbol: str, amounts: Mapping[int, float], bar_time: int
    ) -> int:
        """Sends the non-zero ``{sequence: signed units}`` orders, in order."""
        failed = 0
        for sequence, amount in amounts.items():
            if amount == 0.0:
                continue
            request = OrderRequest(
                client_order_id=make_client_order_id(
                    self.config.session, symbol, bar_time, sequence
                ),
                symbol=symbol,
                side="buy" if amount > 0 else "sell",
                amount=abs(amount),
            )
            journaled = None
            if not self.journal.record_intent(request, bar_time=bar_time):
                journaled = self.journal.order(request.client_order_id)
            if journaled is not None and journaled.status in (
                "open",
                "closed",
                "canceled",
            ):
                # Placed before a restart (reconciled at start): the bar is decided
                # again from the account after that fill, so never send it twice.
                continue
            try:
                order = await self.exchange.create_order(request)
            except Exception as error:  # journaled as rejected; the cycle goes on
                order = Order(
                    client_order_id=request.client_order_id,
                    symbol=symbol,
                    side=request.side,
                    amount=request.amount,
                    status="rejected",
                )
                self._incident(
                    "order_failed",
                    symbol=symbol,
                    error=f"{type(error).__name__}: {error}",
                )
            self.journal.record_order(order, bar_time=bar_time)
            self.orders_sent += 1
            self._publish_order(order)
            if order.status == "rejected":  # raised, or answered by the exchange
                failed += 1
                break  # the second order assumed the first one went through
        return failed

    async def _settle_open_orders(self) -> int:
        """Refreshes orders still open; cancels their remainder (a new bar decides)."""
        failed = 0
        for record in self.journal.unfinished_orders():
            try:
                order = await self.exchange.fetch_order(
                    record.symbol, record.client_order_id
                )
                if order is not None and order.status == "open":
                    order = await self.exchange.cancel_order(
                        record.symbol, record.client_order_id
                    )
            except Exception as error:
                failed += 1
                self._incident(
                    "settle_failed",
                    client_order_id=record.client_order_id,
                    error=f"{type(error).__name__}: {error}",
                )
                continue
            if order is not None:
                self.journal.record_order(order, bar_time=record.bar_time)
                self._publish_order(order)
        return failed

    async def _flatten(self, reason: str) -> None:
        """Closes every position (kill switch or emergency)."""
        bar_time = (self.last_bar_time or 0) + 1  # ids apart from any bar's orders
        self.balances = await self.exchange.fetch_balance()
        for symbol, units in self._units().items():
            if units != 0.0:
                await self._send(symbol, {0: -units}, bar_time)
            self.traded[symbol] = 0.0
        self.balances = await self.exchange.fetch_balance()
        self.equity = self._equity()
        self.journal.record_event(
            "flattened", {"reason": reason, "positions": self._units()}
        )

    # -- bookkeeping --------------------------------------------------------------

    def _units(self) -> dict[str, float]:
        return {
            s: self.balances.get(s.partition("/")[0], 0.0) for s in self.config.symbols
        }

    def _equity(self) -> float:
        cash = self.balances.get(self.config.quote, 0.0)
        return cash + sum(u * self.prices.get(s, 0.0) for s, u in self._units().items())

    def _exposure(self) -> dict[str, float]:
        values = [u * self.prices.get(s, 0.0) for s, u in self._units().items()]
        equity = self.equity if self.equity else float("nan")
        return {"gross": sum(map(abs, values)) / equity, "net": sum(values) / equity}

    def _stale_bars(self, bar_time: int) -> int:
        """Bars' worth of time this bar came after its close plus ``max_bar_delay``."""
        if self.config.max_bar_delay is None:
            return 0
        due = (bar_time + self.config.timeframe_ms) / 1e3 + self.config.max_bar_delay
        late = time.time() - due
        return 0 if late <= 0 else 1 + int(late * 1e3 // self.config.timeframe_ms)

    def _state_bytes(self) -> bytes:
        return serialization.msgpack_serialize(
            {
                "decisions": self.decisions.state_dict(),
                "traded": self.traded,
                "breaker": self.breaker.state_dict(),
                "cycles": self.cycles,
            }
        )

    def _transition(self, transition: Any) -> None:
        if transition is None:
            return
        data = transition.to_json()
        self.journal.record_event("breaker", data)
        self._publish("breaker", data)
        _log.warning("circuit breaker", **data)

    def _incident(self, name: str, **data: Any) -> None:
        self.journal.record_event(name, data)
        self._publish("alert", {"name": name, "level": "warning", "message": str(data)})
        _log.warning(name, **data)

    def _publish_order(self, order: Order) -> None:
        fields = (
            "client_order_id",
            "symbol",
            "side",
            "amount",
            "status",
            "filled",
            "average",
        )
        self._publish("order", {f: getattr(order, f) for f in fields})
        for fill in order.fills:
            key = (fill.client_order_id, fill.trade_id)
            if key not in self._published_fills:
                self._published_fills.add(key)
                self._publish("fill", dataclasses.asdict(fill))

    def _publish(self, kind: str, data: Mapping[str, Any]) -> None:
        event = Event(kind=kind, data=dict(data))
        self.bus.publish(event)
        if self.engine is not None:
            self._alerts(self.engine.update(event))

    def _alerts(self, alerts: Sequence[Event]) -> None:
        for alert in alerts:
            self.journal.record_event("alert", alert.data)
            self.bus.publish(alert)
            _log.warning("alert", **alert.data)
            if self._webhook is not None:
                task = asyncio.ensure_future(
                    post_alert(self._webhook, self.webhook_url, alert)
                )
                self._posts.add(task)
                task.add_done_callback(self._posts.discard)
