"""Every dashboard page: theme toggle, a phone-width viewport; and who may connect.

The login tests start the real ``neuroflux dashboard`` command: bound off loopback it
must refuse to start without a configured password, and with one it must ask for it.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest

from neuroflux.dashboards import is_loopback
from neuroflux.dashboards.page import PAGES

ROUTES = list(PAGES)
FIGURES = {"explorer": 3, "market": 3, "reports": 0, "live": 1}
# Relative luminance of the page background: near 1 in the light theme, near 0 dark.
BACKGROUND_LUMINANCE = """() => {
    const [r, g, b] = getComputedStyle(document.body).backgroundColor
        .match(/\\d+/g).map(Number);
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}"""


def load(open_page, url, route, **size):
    opened = open_page(f"{url}/{route}", **size)
    if FIGURES[route]:
        opened.wait_for_figures(FIGURES[route])
    else:
        opened.page.locator(".tabulator").first.wait_for(timeout=20_000)
    return opened


@pytest.mark.parametrize("route", ROUTES)
def test_the_theme_toggle_switches_to_dark(dashboard_url, open_page, route):
    opened = load(open_page, dashboard_url, route)
    assert opened.page.evaluate(BACKGROUND_LUMINANCE) > 0.8
    opened.page.locator("#theme-switch").click()
    opened.page.wait_for_url("**theme=dark**")
    if FIGURES[route]:
        opened.wait_for_figures(FIGURES[route])
    assert opened.page.evaluate(BACKGROUND_LUMINANCE) < 0.2
    assert not opened.errors, opened.errors
    opened.screenshot(f"{route}-dark")


@pytest.mark.parametrize("route", ROUTES)
def test_a_phone_width_viewport_has_no_horizontal_scroll(
    dashboard_url, open_page, route
):
    opened = load(open_page, dashboard_url, route, width=390, height=844)
    width = opened.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    assert not opened.errors, opened.errors
    opened.screenshot(f"{route}-phone")


def test_the_root_opens_the_explorer(dashboard_url):
    with urllib.request.urlopen(dashboard_url) as response:
        assert response.url.endswith("/explorer")


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("example.org", False),
    ],
)
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_an_open_bind_off_loopback_is_refused(dashboard):
    process, _ = dashboard("--address", "0.0.0.0")
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "refusing to serve on 0.0.0.0" in output
    assert "NEUROFLUX_DASHBOARD_PASSWORD" in output


def test_an_auth_file_that_does_not_exist_is_named(dashboard, tmp_path):
    missing = tmp_path / "users.json"
    process, _ = dashboard("--address", "0.0.0.0", "--auth-file", str(missing))
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1
    assert str(missing) in output


def test_off_loopback_the_dashboards_ask_for_the_password(
    dashboard, wait_until_serving
):
    process, port = dashboard("--address", "0.0.0.0", password="correct horse")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/login", process)
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(CookieJar())
        )
        with opener.open(f"{base}/explorer") as response:
            assert "/login" in response.url  # redirected to the login form
        wrong = urllib.parse.urlencode({"username": "u", "password": "wrong"})
        with opener.open(f"{base}/login", data=wrong.encode()) as response:
            assert "error" in response.url
        right = urllib.parse.urlencode({"username": "u", "password": "correct horse"})
        with opener.open(f"{base}/login", data=right.encode()) as response:
            assert response.url.endswith("/explorer")
            assert "NeuroFlux · Strategy explorer" in response.read().decode()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "basic-auth login required" in output
    assert "correct horse" not in output
