"""A trading loopback Binance and a real :class:`CcxtExchange` aimed at it.

The server is ``tests/data/binance_server.py`` (tests are not a package, so its folder
goes on ``sys.path``). Credentials are canaries set in the environment, the only
place :func:`make_ccxt_exchange` reads them from, so a test can scan logs, reprs and
errors for them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from neuroflux.live.ccxt_exchange import CcxtExchange, make_ccxt_exchange

_DATA_TESTS = str(Path(__file__).resolve().parents[1] / "data")
if _DATA_TESTS not in sys.path:
    sys.path.insert(0, _DATA_TESTS)

from binance_server import BinanceServer, Fault  # noqa: E402

__all__ = [
    "CANARY_KEY",
    "CANARY_SECRET",
    "BinanceServer",
    "Fault",
    "binance_exchange",
    "trading_server",
]

CANARY_KEY = "NF-CANARY-KEY-3b9d0c7e51a24f68"
CANARY_SECRET = "NF-CANARY-SECRET-a81f6e2d09c3b547"
BALANCES = {"USDT": "1000000", "BTC": "100", "ETH": "1000"}


@pytest.fixture
def trading_server() -> Iterator[BinanceServer]:
    """A loopback Binance funded with ``BALANCES``, BTCUSDT at 30,000."""
    with BinanceServer() as server:
        server.set_balances(BALANCES)
        server.set_price("BTCUSDT", "30000")
        yield server


def binance_exchange(
    server: BinanceServer,
    monkeypatch: pytest.MonkeyPatch,
    *,
    timeout_ms: int = 2_000,
    retries: int = 6,
    backoff: float = 0.01,
    max_backoff: float = 0.2,
) -> CcxtExchange:
    """A CcxtExchange on ``server`` with the canary keys from the environment."""
    monkeypatch.setenv("NEUROFLUX_BINANCE_API_KEY", CANARY_KEY)
    monkeypatch.setenv("NEUROFLUX_BINANCE_API_SECRET", CANARY_SECRET)
    return make_ccxt_exchange(
        "binance",
        api_url=server.base_url,
        timeout_ms=timeout_ms,
        rate_limit=False,
        retries=retries,
        backoff=backoff,
        max_backoff=max_backoff,
    )
