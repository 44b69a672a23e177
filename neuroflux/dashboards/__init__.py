"""Live research dashboards: Panel apps (``neuroflux dashboard``) and Voila pages.

Each app keeps its state in a ``param.Parameterized`` class and is drawn by a thin
``pn.viewable.Viewer``; :func:`serve_dashboards` serves them under one template with a
dark/light toggle, on loopback unless a password is configured.
"""

from neuroflux.dashboards.live_monitor import LiveMonitor
from neuroflux.dashboards.server import (
    PASSWORD_VARIABLE,
    DashboardAuthError,
    is_loopback,
    serve_dashboards,
)

__all__ = [
    "PASSWORD_VARIABLE",
    "DashboardAuthError",
    "LiveMonitor",
    "is_loopback",
    "serve_dashboards",
]
