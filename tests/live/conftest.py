"""Fixtures for the live edge.

``live_binance_server``: the loopback Binance of ``tests/data/binance_server.py`` with
its clock stopped at ``LIVE_NOW_MS`` (tests move ``server.now_ms`` to close bars).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/data is not a package; its conftest imports the server as ``binance_server``
# too, so both directories share one module object.
_DATA_TESTS = str(Path(__file__).resolve().parents[1] / "data")
if _DATA_TESTS not in sys.path:
    sys.path.insert(0, _DATA_TESTS)
from binance_server import LISTING_MS, BinanceServer  # noqa: E402

LIVE_NOW_MS = LISTING_MS + 10_000 * 60_000 + 30_000  # half-way through a 1m bar


@pytest.fixture
def live_binance_server() -> Iterator[BinanceServer]:
    with BinanceServer(now_ms=LIVE_NOW_MS) as server:
        yield server
