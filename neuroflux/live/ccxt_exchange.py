"""The :class:`~neuroflux.live.orders.Exchange` contract over a ccxt async client.

:class:`CcxtExchange` sends market orders through ``ccxt.async_support`` and keeps the
one promise the runner relies on: an order is placed at most once per client order
id, however the network behaves.

* **Retries.** Every request is retried on ``ccxt.NetworkError`` (timeouts, refused
  or dropped connections, 5xx, 429/418) with exponential backoff from ``backoff`` to
  ``max_backoff`` seconds, or after the server's ``Retry-After`` when it gives one.
  The adapter wraps the client's ``handle_errors`` so that a 429/418 carries its
  ``Retry-After`` on the exception (ccxt itself drops response headers, and
  ``last_response_headers`` is shared by concurrent requests).
* **Unknown outcomes.** After a failed ``create_order`` whose outcome is unknown (a
  timeout, a dropped connection, a 5xx: Binance may have booked the order) the next
  attempt first asks for the order by client id: if the exchange has it, it is
  adopted and never sent again; only if the exchange says it does not exist is it
  sent again, with the same client id. A "Duplicate order" refusal leads to the
  same look-up. A 429/418 is a refusal, so it alone does not force a look-up.
* **Refusals** (insufficient funds, invalid orders, bad credentials) raise
  :class:`OrderRejected` / :class:`ExchangeRequestError` at once; retries that run
  out raise :class:`ExchangeUnavailable`.
* **Fills.** An order's fills come from ccxt's ``order["trades"]`` (Binance's FULL
  order answer lists them); when those do not add up to ``filled`` (a fetched order
  carries none) they come from ``fetch_my_trades(symbol, params={"orderId": id})``.
  Each :class:`~neuroflux.live.orders.Fill` keeps the exchange's trade id.
* **Secrets.** Keys come only from environment variables (:func:`make_ccxt_exchange`)
  and never reach a log, a repr or an error raised here: log lines carry the error
  class, never its text; ccxt's own debug log (which prints request headers, the API
  key among them) goes to a logger held at INFO; error texts are scrubbed of keys.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import structlog

from neuroflux.live.orders import BarEvent, Fill, Order, OrderRequest

__all__ = [
    "CcxtExchange",
    "ExchangeRequestError",
    "ExchangeUnavailable",
    "OrderRejected",
    "make_ccxt_exchange",
    "make_market_data_client",
]

log = structlog.get_logger(__name__)
Result = TypeVar("Result")

# ccxt's unified statuses; "expired" is Binance's EXPIRED (the unfilled rest of a
# market order canceled by the exchange) and "canceling" is still working.
_STATUSES = {
    "open": "open",
    "canceling": "open",
    "closed": "closed",
    "canceled": "canceled",
    "expired": "canceled",
    "rejected": "rejected",
}
# Binance spot only: no margin, futures or wallet (sapi) calls on load_markets.
_CLIENT_OPTIONS = {
    "binance": {
        "fetchMarkets": {"types": ["spot"]},
        "fetchMargins": False,
        "fetchCurrencies": False,
    }
}
_WIRE_LOGGER = "neuroflux.live.ccxt_wire"
# Errors that say the order itself is unacceptable (OrderRejected, not retried).
_REJECTIONS = (ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadRequest)


class ExchangeRequestError(RuntimeError):
    """The exchange refused a request (``error_class`` names ccxt's error)."""

    def __init__(self, message: str, error_class: str) -> None:
        super().__init__(message)
        self.error_class = error_class


class OrderRejected(ExchangeRequestError):
    """An order the exchange will not take (funds, size, symbol): never retried."""


class ExchangeUnavailable(ExchangeRequestError):
    """A request still failing after every retry."""


class CcxtExchange:
    """An :class:`~neuroflux.live.orders.Exchange` over a ccxt async client.

    The adapter owns ``client``: it wraps its ``handle_errors`` (Retry-After), mutes
    its debug log and closes it in :meth:`close`.

    Args:
        client: A ``ccxt.async_support`` exchange with credentials set.
        retries: Failed attempts tolerated per call before giving up.
        backoff: First retry delay in seconds; doubles per failure.
        max_backoff: Cap of the retry delay in seconds.
    """

    def __init__(
        self,
        client: ccxt_async.Exchange,
        *,
        retries: int = 6,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        if retries < 0 or backoff < 0 or max_backoff < backoff:
            raise ValueError(
                "CcxtExchange: expected retries >= 0 and 0 <= backoff <= max_backoff, "
                f"got retries={retries}, backoff={backoff}, max_backoff={max_backoff}"
            )
        self.client, self.name = client, client.id
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.counts: Counter[str] = Counter()  # retries by error class, adoptions
        client.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        # ccxt logs request headers (the API key) at DEBUG: hold its logger above.
        client.logger = logging.getLogger(_WIRE_LOGGER)
        client.logger.setLevel(logging.INFO)
        client.handle_errors = _with_retry_after(client.handle_errors, client.id)

    def __repr__(self) -> str:
        return f"CcxtExchange(name={self.name!r}, retries={self.retries})"

    async def create_order(self, request: OrderRequest) -> Order:
        """Places ``request`` once, whatever fails on the way (module docstring)."""
        must_look_up, failures = False, 0
        while True:
            try:
                if must_look_up:
                    found = await self._look_up(request)
                    if found is not None:
                        self.counts["adopted"] += 1
                        log.info(
                            "exchange_order_adopted",
                            client_order_id=request.client_order_id,
                            attempt=failures,
                        )
                        return await self._adopt(request, found)
                raw = await self.client.create_order(
                    request.symbol,
                    "market",
                    request.side,
                    request.amount,
                    None,
                    {"clientOrderId": request.client_order_id},
                )
                return await self._to_order(raw, request.symbol, request.side)
            except ccxt.InvalidOrder as error:
                if "Duplicate order" not in str(error):
                    raise self._refusal("create_order", request, error) from None
                must_look_up, failures = True, failures + 1
                self._give_up_after(failures, "create_order", error)
                self._note_retry(
                    "create_order", request.client_order_id, failures, 0.0, error
                )
            except ccxt.NetworkError as error:
                refused = isinstance(
                    error, ccxt.DDoSProtection | ccxt.RateLimitExceeded
                )
                must_look_up = must_look_up or not refused
                failures += 1
                self._give_up_after(failures, "create_order", error)
                delay = self._delay(failures, error)
                self._note_retry(
                    "create_order", request.client_order_id, failures, delay, error
                )
                await asyncio.sleep(delay)
            except ccxt.BaseError as error:
                raise self._refusal("create_order", request, error) from None

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        raw = await self._fetch_raw(symbol, client_order_id)
        return None if raw is None else await self._to_order(raw, symbol)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        raws = await self._read(
            "fetch_open_orders", lambda: self.client.fetch_open_orders(symbol)
        )
        return [await self._to_order(raw, raw["symbol"]) for raw in raws]

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancels what is left; an order already filled or canceled comes back as
        it is (Binance answers "Unknown order sent." for those)."""
        params = {"clientOrderId": client_order_id}
        try:
            await self._read(
                "cancel_order", lambda: self.client.cancel_order(None, symbol, params)
            )
        except ccxt.OrderNotFound:
            pass  # not open any more (or never placed: the fetch below tells)
        order = await self.fetch_order(symbol, client_order_id)
        if order is None:
            raise ExchangeRequestError(
                f"cancel_order: {self.name} has no order {client_order_id} on {symbol}",
                "OrderNotFound",
            )
        return order

    async def fetch_balance(self) -> dict[str, float]:
        raw = await self._read("fetch_balance", self.client.fetch_balance)
        return {
            asset: float(total)
            for asset, total in raw["total"].items()
            if total is not None
        }

    async def on_bar(self, bar: BarEvent) -> None:
        """A real exchange prices its own fills: nothing to do."""

    async def close(self) -> None:
        await self.client.close()

    async def _look_up(self, request: OrderRequest) -> dict | None:
        """One look-up by client id whose failures count against create_order's
        retries (no retry loop of its own)."""
        params = {"clientOrderId": request.client_order_id}
        try:
            return await self.client.fetch_order(None, request.symbol, params)
        except ccxt.OrderNotFound:
            return None

    async def _fetch_raw(self, symbol: str, client_order_id: str) -> dict | None:
        params = {"clientOrderId": client_order_id}
        try:
            return await self._read(
                "fetch_order", lambda: self.client.fetch_order(None, symbol, params)
            )
        except ccxt.OrderNotFound:
            return None

    async def _read(
        self, operation: str, call: Callable[[], Awaitable[Result]]
    ) -> Result:
        """``call()`` retried on network errors; OrderNotFound passes through."""
        failures = 0
        while True:
            try:
                return await call()
            except ccxt.OrderNotFound:
                raise
            except ccxt.NetworkError as error:
                failures += 1
                self._give_up_after(failures, operation, error)
                delay = self._delay(failures, error)
                self._note_retry(operation, None, failures, delay, error)
                await asyncio.sleep(delay)
            except ccxt.BaseError as error:
                raise ExchangeRequestError(
                    f"{operation} on {self.name} failed: {type(error).__name__}: "
                    f"{self._scrub(error)}",
                    type(error).__name__,
                ) from None

    async def _adopt(self, request: OrderRequest, raw: dict) -> Order:
        order = await self._to_order(raw, request.symbol, request.side)
        if order.side != request.side:
            raise ExchangeRequestError(
                f"create_order: client order id {request.client_order_id} already "
                f"names a {order.side} order on {self.name}, not a {request.side}",
                "DuplicateClientOrderId",
            )
        return order

    async def _to_order(self, raw: dict, symbol: str, side: str | None = None) -> Order:
        status = _STATUSES.get(raw.get("status"))
        if status is None:
            raise ExchangeRequestError(
                f"{self.name} order {raw.get('clientOrderId')}: unknown status "
                f"{raw.get('status')!r}, expected one of {sorted(_STATUSES)}",
                "UnknownStatus",
            )
        filled = float(raw.get("filled") or 0.0)
        side = raw.get("side") or side
        trades = raw.get("trades") or []
        if filled > 0 and not _adds_up(trades, filled):
            trades = await self._read(
                "fetch_my_trades",
                lambda: self.client.fetch_my_trades(
                    symbol, params={"orderId": raw["id"]}
                ),
            )
            trades = [t for t in trades if str(t.get("order")) == str(raw["id"])]
        client_id = raw["clientOrderId"]
        time_ms = int(raw.get("timestamp") or 0)
        fills = tuple(_to_fill(t, client_id, symbol, side, time_ms) for t in trades)
        currencies = {fill.fee_currency for fill in fills}
        if len(currencies) > 1:
            raise ExchangeRequestError(
                f"{self.name} order {client_id}: fees in several currencies "
                f"{sorted(currencies)}; Order.fee holds one",
                "MixedFeeCurrencies",
            )
        average = raw.get("average")
        return Order(
            client_order_id=client_id,
            symbol=symbol,
            side=side,
            amount=float(raw["amount"]),
            status=status,
            filled=filled,
            average=float(average) if average and filled > 0 else math.nan,
            fee=sum(fill.fee for fill in fills),
            time=time_ms,
            exchange_id=str(raw["id"]),
            fills=fills,
        )

    def _delay(self, failures: int, error: Exception) -> float:
        retry_after = getattr(error, "retry_after", None)
        exponential = min(self.max_backoff, self.backoff * 2 ** (failures - 1))
        # Jitter spreads concurrent retries so they do not hit the server together.
        delay = exponential * random.uniform(0.5, 1.0)
        return max(delay, retry_after) if retry_after is not None else delay

    def _give_up_after(self, failures: int, operation: str, error: Exception) -> None:
        if failures > self.retries:
            raise ExchangeUnavailable(
                f"{operation} on {self.name}: still failing after {self.retries} "
                f"retries, last {type(error).__name__}: {self._scrub(error)}",
                type(error).__name__,
            ) from None

    def _note_retry(
        self,
        operation: str,
        client_order_id: str | None,
        attempt: int,
        delay: float,
        error: Exception,
    ) -> None:
        self.counts[type(error).__name__] += 1
        log.warning(
            "exchange_retry",
            operation=operation,
            client_order_id=client_order_id,
            attempt=attempt,
            error=type(error).__name__,
            delay_s=round(delay, 3),
        )

    def _refusal(
        self, operation: str, request: OrderRequest, error: Exception
    ) -> ExchangeRequestError:
        kind = OrderRejected if isinstance(error, _REJECTIONS) else ExchangeRequestError
        if isinstance(error, ccxt.InsufficientFunds):
            reason = "insufficient funds"
        elif isinstance(error, ccxt.AuthenticationError):
            reason = "authentication failed (check the API key variables)"
        else:
            reason = "refused"
        return kind(
            f"{operation} {request.side} {request.amount} {request.symbol} "
            f"({request.client_order_id}) on {self.name}: {reason}: "
            f"{type(error).__name__}: {self._scrub(error)}",
            type(error).__name__,
        )

    def _scrub(self, error: Exception) -> str:
        text = str(error)
        for secret in (self.client.apiKey, self.client.secret):
            if secret:
                text = text.replace(secret, "***")
        return text


def make_ccxt_exchange(
    exchange_id: str,
    *,
    api_url: str | None = None,
    streams: bool = False,
    stream_url: str | None = None,
    timeout_ms: int = 10_000,
    key_env: str | None = None,
    rate_limit: bool = True,
    retries: int = 6,
    backoff: float = 0.05,
    max_backoff: float = 2.0,
) -> CcxtExchange:
    """A :class:`CcxtExchange` on a new client (:func:`make_market_data_client`).

    Args:
        exchange_id: ccxt's id, e.g. ``"binance"``.
        api_url: See :func:`make_market_data_client`.
        streams: See :func:`make_market_data_client`.
        stream_url: See :func:`make_market_data_client`.
        timeout_ms: Per-request timeout.
        key_env: Prefix of the credential variables ``{key_env}_API_KEY`` and
            ``{key_env}_API_SECRET``; default ``NEUROFLUX_<EXCHANGE_ID>``.
        rate_limit: ccxt's client-side throttle (off only against a test server).
        retries: See :class:`CcxtExchange`.
        backoff: See :class:`CcxtExchange`.
        max_backoff: See :class:`CcxtExchange`.

    Raises:
        ValueError: Unknown exchange id, or a credential variable unset.
    """
    prefix = key_env or f"NEUROFLUX_{exchange_id.upper()}"
    names = (f"{prefix}_API_KEY", f"{prefix}_API_SECRET")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise ValueError(f"credentials: environment variable(s) {missing} not set")
    client = make_market_data_client(
        exchange_id,
        api_url=api_url,
        streams=streams,
        stream_url=stream_url,
        timeout_ms=timeout_ms,
        rate_limit=rate_limit,
    )
    client.apiKey, client.secret = os.environ[names[0]], os.environ[names[1]]
    return CcxtExchange(
        client, retries=retries, backoff=backoff, max_backoff=max_backoff
    )


def make_market_data_client(
    exchange_id: str,
    *,
    api_url: str | None = None,
    streams: bool = False,
    stream_url: str | None = None,
    timeout_ms: int = 10_000,
    rate_limit: bool = True,
) -> ccxt_async.Exchange:
    """A ccxt asyncio client without credentials: public market data only (the feed
    of a paper session).

    Args:
        exchange_id: ccxt's id, e.g. ``"binance"``.
        api_url: Base URL that replaces the host of every REST API URL (a loopback
            server, a proxy); None keeps ccxt's.
        streams: A ``ccxt.pro`` client (REST and websocket streams) where ccxt.pro
            has the exchange; otherwise, or False, a ``ccxt.async_support`` one.
        stream_url: Base URL (``ws://``, ``wss://``) that replaces the host of every
            websocket URL of a ``ccxt.pro`` client; None keeps ccxt's.

    Raises:
        ValueError: Unknown exchange id.
    """
    if exchange_id not in ccxt_async.exchanges:
        raise ValueError(f"exchange_id: ccxt has no exchange {exchange_id!r}")
    module: Any = ccxt_async
    if streams:
        import ccxt.pro  # loads its websocket stack only when asked

        if exchange_id in ccxt.pro.exchanges:
            module = ccxt.pro
    client = getattr(module, exchange_id)(
        {
            "timeout": timeout_ms,
            "enableRateLimit": rate_limit,
            "options": dict(_CLIENT_OPTIONS.get(exchange_id, {})),
        }
    )
    urls = client.urls["api"]
    websockets = urls.pop("ws", None) if isinstance(urls, dict) else None
    if api_url is not None:
        urls = _pointed(urls, api_url.rstrip("/"))
    if websockets is not None:
        if stream_url is not None:
            websockets = _pointed(websockets, stream_url.rstrip("/"))
        urls["ws"] = websockets
    client.urls["api"] = urls
    # A 429/418 carries the server's Retry-After for the feeds' and orders' retries.
    client.handle_errors = _with_retry_after(client.handle_errors, client.id)
    return client


def _pointed(urls: Any, base_url: str) -> Any:
    if isinstance(urls, dict):
        return {name: _pointed(url, base_url) for name, url in urls.items()}
    return base_url + urlsplit(urls).path if isinstance(urls, str) else urls


def _with_retry_after(
    handle_errors: Callable[..., Any], exchange_id: str
) -> Callable[..., Any]:
    """ccxt's ``handle_errors`` that raises RateLimitExceeded with ``retry_after``
    (seconds, or None) on a 429/418 (``handle_errors`` itself if already so)."""
    if getattr(handle_errors, "reports_retry_after", False):
        return handle_errors

    def handle(
        code: int,
        reason: str,
        url: str,
        method: str,
        headers: dict,
        body: str,
        *rest: Any,
    ) -> Any:
        if code in (418, 429):
            values = {name.lower(): value for name, value in (headers or {}).items()}
            error = ccxt.RateLimitExceeded(f"{exchange_id} {code} {reason} {body}")
            try:
                error.retry_after = max(0.0, float(values["retry-after"]))
            except (KeyError, ValueError):
                error.retry_after = None
            raise error
        return handle_errors(code, reason, url, method, headers, body, *rest)

    handle.reports_retry_after = True  # type: ignore[attr-defined]
    return handle


def _adds_up(trades: list[dict], filled: float) -> bool:
    total = sum(float(trade.get("amount") or 0.0) for trade in trades)
    return math.isclose(total, filled, rel_tol=1e-9, abs_tol=1e-12)


def _to_fill(
    trade: dict, client_id: str, symbol: str, side: str, order_time: int
) -> Fill:
    fee = trade.get("fee") or {}
    return Fill(
        client_order_id=client_id,
        trade_id=str(trade["id"]),
        symbol=symbol,
        side=trade.get("side") or side,
        amount=float(trade["amount"]),
        price=float(trade["price"]),
        fee=float(fee.get("cost") or 0.0),
        fee_currency=fee.get("currency") or "",
        time=int(trade.get("timestamp") or order_time),
    )
