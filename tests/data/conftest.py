"""Fixtures for the data edge: a loopback Binance and a real ccxt client aimed at it."""

from collections.abc import Iterator

import ccxt
import pytest

try:
    from .binance_server import BinanceServer
except ImportError:  # tests/data is not a package: pytest put it on sys.path.
    from binance_server import BinanceServer


def make_binance_client(server: BinanceServer, timeout_ms: int = 5000) -> ccxt.binance:
    """A real ccxt binance client that talks only to ``server``'s spot routes."""
    client = ccxt.binance(
        {
            "enableRateLimit": True,
            "timeout": timeout_ms,
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
        }
    )
    return server.point_client(client)


@pytest.fixture
def binance_server() -> Iterator[BinanceServer]:
    with BinanceServer() as server:
        yield server


@pytest.fixture
def binance_client(binance_server: BinanceServer) -> ccxt.binance:
    return make_binance_client(binance_server)
