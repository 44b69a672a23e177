"""Orders, fills and the exchange contract the live runner trades through.

Every exchange the runner uses (:class:`neuroflux.live.paper.PaperExchange`, the ccxt
adapter :class:`neuroflux.live.ccxt_exchange.CcxtExchange`) implements
:class:`Exchange`:

==========================================  ========================================
method                                      contract
==========================================  ========================================
``create_order(request)``                   a market order; idempotent on
                                            ``request.client_order_id`` (a second
                                            call with the same id returns the order
                                            already placed)
``fetch_order(symbol, client_order_id)``    the order, or ``None`` when the exchange
                                            never accepted it
``fetch_open_orders(symbol=None)``          orders not yet filled or canceled
``cancel_order(symbol, client_order_id)``   cancels what is not filled; returns the
                                            order after it
``fetch_balance()``                         total of every asset held (negative:
                                            short)
``on_bar(bar)``                             the bar the runner just saw (a paper
                                            exchange prices its fills from it; a
                                            real one ignores it)
``close()``                                 releases connections
==========================================  ========================================

A client order id is derived from what the order is for (:func:`client_order_id`), so
that a retry after a timeout sends the same id and the exchange refuses a duplicate.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from typing import Literal, Protocol

__all__ = [
    "BarEvent",
    "Exchange",
    "Fill",
    "Order",
    "OrderRequest",
    "client_order_id",
]

Side = Literal["buy", "sell"]
Status = Literal["open", "closed", "canceled", "rejected"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class BarEvent:
    """One closed OHLCV bar of one symbol; ``time`` is its open time in UTC ms."""

    symbol: str
    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderRequest:
    """A market order to send: ``amount`` > 0 units of ``symbol``'s base asset."""

    client_order_id: str
    symbol: str
    side: Side
    amount: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class Fill:
    """One execution of an order (an order may fill in several)."""

    client_order_id: str
    trade_id: str
    symbol: str
    side: Side
    amount: float
    price: float
    fee: float
    fee_currency: str
    time: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Order:
    """An order as the exchange last reported it.

    Attributes:
        filled: Units executed so far (``amount - filled`` remain while open).
        average: Average fill price (NaN before any fill).
        fills: Executions known so far.
        exchange_id: The exchange's own id ('' before the exchange accepted it).
    """

    client_order_id: str
    symbol: str
    side: Side
    amount: float
    status: Status
    filled: float = 0.0
    average: float = float("nan")
    fee: float = 0.0
    time: int = 0
    exchange_id: str = ""
    fills: tuple[Fill, ...] = ()

    @property
    def remaining(self) -> float:
        return self.amount - self.filled


class Exchange(Protocol):
    """The contract of the module docstring's table."""

    name: str

    async def create_order(self, request: OrderRequest) -> Order: ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order | None: ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order: ...

    async def fetch_balance(self) -> dict[str, float]: ...

    async def on_bar(self, bar: BarEvent) -> None: ...

    async def close(self) -> None: ...


def client_order_id(
    strategy: str, symbol: str, bar_time: int, sequence: int = 0
) -> str:
    """The id of the ``sequence``-th order for ``symbol`` decided at ``bar_time``.

    32 characters from ``[A-Za-z0-9_-]`` (Binance allows 36), the same on every retry
    and after a restart, different for any other strategy, symbol, bar or sequence.
    """
    key = f"{strategy}|{symbol}|{bar_time}|{sequence}".encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(key).digest()).decode()
    return "nf" + digest[:30]
