"""Events of a live session and the bus that hands them to subscribers.

The runner publishes one :class:`Event` per thing that happened (a bar, a decision, an
order, a fill, a cycle's summary, an alert, a circuit-breaker transition); the
analytics engine, the HTTP API's websocket and the Panel monitor subscribe.

Event kinds and their ``data`` (JSON-able dicts):

============  ================================================================
kind          data
============  ================================================================
``bar``       symbol, time, open, high, low, close, volume
``decision``  symbol, agent, target, latency_ms
``order``     client_order_id, symbol, side, amount, status, filled, average
``fill``      client_order_id, trade_id, symbol, side, amount, price, fee
``cycle``     bar_time, equity, cash, positions {symbol: units}, prices
              {symbol: price}, exposure, latency_ms, agents {name: {latency_ms,
              ok, error}}, breaker
``alert``     name, level ("warning"/"critical"), message, value, threshold
``breaker``   previous, state, reason
``health``    agent, score, errors, isolated
``status``    the runner's status when it stops, with stopped_by
============  ================================================================
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

__all__ = ["EVENT_KINDS", "Event", "EventBus", "SubscriberTooSlow", "Subscription"]

# The kinds of the table above, in its order.
EVENT_KINDS = (
    "bar",
    "decision",
    "order",
    "fill",
    "cycle",
    "alert",
    "breaker",
    "health",
    "status",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    """Something that happened; ``time`` is wall-clock UTC seconds when published."""

    kind: str
    data: dict[str, Any]
    time: float = dataclasses.field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "time": self.time, "data": self.data}


class SubscriberTooSlow(RuntimeError):
    """A subscriber fell ``capacity`` events behind; it is cut off, not fed gaps."""


class EventBus:
    """Fan-out of events to asyncio subscribers, each with a bounded queue.

    A subscriber that falls ``capacity`` events behind is cut off with
    :class:`SubscriberTooSlow` rather than silently skipping events.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._queues: set[asyncio.Queue[Event | None]] = set()

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, event: Event) -> None:
        for queue in list(self._queues):
            if queue.qsize() >= self.capacity:
                self._queues.discard(queue)
                queue.put_nowait(None)  # the marker of a subscriber cut off
            else:
                queue.put_nowait(event)

    def subscribe(self) -> Subscription:
        """Events published from the moment of this call, until the caller stops.

        The subscription is registered before the first ``await``, so nothing
        published between this call and the first iteration is missed; the caller
        ends it with ``aclose()``, started or not.

        Raises:
            SubscriberTooSlow: (while iterating) the caller fell ``capacity`` events
                behind.
        """
        queue: asyncio.Queue[Event | None] = asyncio.Queue(self.capacity + 1)
        self._queues.add(queue)
        return Subscription(self, queue)


class Subscription:
    """One subscriber's events from an :class:`EventBus` (an async iterator)."""

    def __init__(self, bus: EventBus, queue: asyncio.Queue[Event | None]) -> None:
        self._bus, self._queue = bus, queue

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:
            raise SubscriberTooSlow(
                f"subscriber fell {self._bus.capacity} events behind"
            )
        return event

    async def aclose(self) -> None:
        """Unsubscribes (a second call does nothing)."""
        self._bus._queues.discard(self._queue)
