"""``neuroflux dashboard``: the Panel apps on one server, behind a login off loopback.

Routes: ``/explorer`` (strategy explorer), ``/market`` (market overview), ``/reports``
(report browser; the reports themselves under ``/report-files/``), ``/live`` (live
monitor of a running session: ``/live?api=http://127.0.0.1:8765``, its token from
``NEUROFLUX_API_TOKEN``); ``/`` redirects to the explorer. Bound to a loopback address
the server is open; bound to anything else it refuses to start unless a basic-auth
password (``NEUROFLUX_DASHBOARD_PASSWORD``) or a users file is configured.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

import panel as pn
from tornado.web import RedirectHandler

from neuroflux import settings
from neuroflux.dashboards.page import PAGES, dashboard_page
from neuroflux.data import list_samples, load_sample

__all__ = [
    "PASSWORD_VARIABLE",
    "DashboardAuthError",
    "dashboard_pages",
    "is_loopback",
    "serve_dashboards",
]

PASSWORD_VARIABLE = "NEUROFLUX_DASHBOARD_PASSWORD"
REPORT_FILES = "report-files"


class DashboardAuthError(ValueError):
    """A non-loopback bind without a configured login."""


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an IP or ``localhost``) only accepts local connections."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def dashboard_pages(reports_dir: Path) -> dict[str, Callable[[], object]]:
    """Route -> a function that builds that page for one browser session."""

    def explorer():
        from neuroflux.dashboards.explorer import StrategyExplorer

        return StrategyExplorer(reports_dir=reports_dir)

    def market():
        from neuroflux.dashboards.market import MarketOverview

        return MarketOverview()

    def reports():
        from neuroflux.dashboards.report_browser import ReportBrowser

        return ReportBrowser(reports_dir=reports_dir, files_url=f"./{REPORT_FILES}")

    def live():
        from neuroflux.dashboards.live_monitor import LiveMonitor

        return LiveMonitor.for_session()

    apps = {"explorer": explorer, "market": market, "reports": reports, "live": live}

    def page(route: str) -> Callable[[], object]:
        def build():
            app = apps[route]()
            return dashboard_page(route, app.controls(), [app])

        return build

    return {route: page(route) for route in PAGES}


def serve_dashboards(
    *,
    address: str = "127.0.0.1",
    port: int = 5006,
    reports_dir: str | Path | None = None,
    auth_file: str | Path | None = None,
    allow_origins: Sequence[str] = (),
    on_start: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboards until interrupted.

    Args:
        address: Interface to bind. Anything but loopback needs a login.
        port: TCP port.
        reports_dir: Report root the report browser lists and the explorer writes to
            (``settings.reports_dir()`` when ``None``).
        auth_file: JSON file ``{"user": "password", ...}`` for basic auth; otherwise
            the password in ``$NEUROFLUX_DASHBOARD_PASSWORD`` (any user name), if set.
        allow_origins: Extra ``host:port`` values browsers may connect from (the
            websocket origin check), e.g. the machine's public name.
        on_start: Called with the URL once the server listens.

    Raises:
        DashboardAuthError: ``address`` is not loopback and no login is configured.
        FileNotFoundError: ``auth_file`` does not exist.
    """
    basic_auth = _basic_auth(auth_file)
    if basic_auth is None and not is_loopback(address):
        raise DashboardAuthError(
            f"refusing to serve on {address}: off loopback the dashboards need a "
            f"login; set {PASSWORD_VARIABLE} or pass --auth-file users.json "
            '({"user": "password"}), or bind 127.0.0.1'
        )
    root = Path(reports_dir) if reports_dir is not None else settings.reports_dir()
    root.mkdir(parents=True, exist_ok=True)
    # The first load of a sample parses its file (seconds); later loads are cached.
    for name in list_samples().index:
        load_sample(name)
    origins = [f"{host}:{port}" for host in (address, "127.0.0.1", "localhost")]
    server = pn.serve(
        dashboard_pages(root.resolve()),
        address=address,
        port=port,
        websocket_origin=sorted(set(origins) | set(allow_origins)),
        static_dirs={REPORT_FILES: str(root.resolve())},
        extra_patterns=[(r"/", RedirectHandler, {"url": "/explorer"})],
        basic_auth=basic_auth,
        cookie_secret=secrets.token_urlsafe(32) if basic_auth else None,
        title={route: f"NeuroFlux · {label}" for route, label in PAGES.items()},
        show=False,
        start=False,
        warm=True,
    )
    if on_start is not None:
        on_start(f"http://{address}:{server.port}/explorer")
    server.start()
    server.io_loop.start()


def _basic_auth(auth_file: str | Path | None) -> str | None:
    if auth_file is not None:
        path = Path(auth_file)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such users file for --auth-file")
        return str(path.resolve())
    return os.environ.get(PASSWORD_VARIABLE) or None
