"""The live runner: promoted strategies trading through ccxt, paper or live.

* :mod:`~neuroflux.live.artifacts`: promotion of a report run, config or agent to a
  versioned, checksummed artifact (``neuroflux promote``, ``neuroflux strategies``).
* :mod:`~neuroflux.live.orders`: orders, fills and the :class:`Exchange` contract;
  :class:`PaperExchange` and :class:`CcxtExchange` implement it.
* :mod:`~neuroflux.live.feeds`: bars from stored data (:class:`ReplayFeed`) or an
  exchange (:class:`CcxtFeed`, REST polling; :class:`CcxtStreamFeed`, ccxt.pro
  websocket streams).
* :mod:`~neuroflux.live.runner`: the cycle per bar, with the agents' pure step
  functions (:mod:`~neuroflux.live.decisions`), the risk gate and circuit breaker
  (:mod:`~neuroflux.live.risk`), and the SQLite :class:`Journal` with its hash-chained
  audit log.
* :mod:`~neuroflux.live.analytics` and :mod:`~neuroflux.live.api`: live P&L, risk and
  health, served over HTTP, Prometheus and a websocket.
"""

import importlib
from typing import Any

# Imported on first use: a child process that only needs the journal does not pay for
# ccxt, aiohttp and the research stack.
_EXPORTS = {
    "AlertThresholds": "analytics",
    "AnalyticsEngine": "analytics",
    "Artifact": "artifacts",
    "ArtifactTampered": "artifacts",
    "list_artifacts": "artifacts",
    "load_artifact": "artifacts",
    "promote": "artifacts",
    "CcxtExchange": "ccxt_exchange",
    "make_ccxt_exchange": "ccxt_exchange",
    "Agent": "decisions",
    "Event": "events",
    "EventBus": "events",
    "CcxtFeed": "feeds",
    "ReplayFeed": "feeds",
    "CcxtStreamFeed": "streams",
    "Journal": "journal",
    "verify_audit": "audit",
    "Exchange": "orders",
    "Order": "orders",
    "OrderRequest": "orders",
    "client_order_id": "orders",
    "PaperExchange": "paper",
    "BreakerState": "risk",
    "CircuitBreaker": "risk",
    "RiskLimits": "risk",
    "RunSummary": "runner_config",
    "Runner": "runner",
    "RunnerConfig": "runner_config",
}
__all__ = sorted(_EXPORTS, key=str.lower)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'neuroflux.live' has no attribute {name!r}")
    return getattr(importlib.import_module(f"neuroflux.live.{_EXPORTS[name]}"), name)
