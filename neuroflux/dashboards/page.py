"""The template every dashboard page shares: title, navigation, theme toggle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import panel as pn

__all__ = ["ACCENT", "PAGES", "dashboard_page"]

ACCENT = "#1f77b4"

# Route -> navigation label, in the order the navigation lists them.
PAGES: Mapping[str, str] = {
    "explorer": "Strategy explorer",
    "market": "Market overview",
    "reports": "Report browser",
    "live": "Live monitor",
}


def dashboard_page(route: str, controls: list, main: list) -> pn.template.BaseTemplate:
    """A page of the dashboards: ``controls`` in the sidebar, ``main`` in the body.

    The template's toggle switches between the light and dark themes (the page reloads
    with ``?theme=dark``); its layout collapses the sidebar on narrow screens.
    """
    navigation = pn.pane.HTML(
        "".join(
            f'<a class="nf-nav{" nf-current" if slug == route else ""}" '
            f'href="./{slug}">{label}</a>'
            for slug, label in PAGES.items()
        ),
        stylesheets=[_NAV_STYLE],
        sizing_mode="stretch_width",
    )
    return pn.template.FastListTemplate(
        title=f"NeuroFlux · {PAGES[route]}",
        # One sidebar root: bokeh re-indexes the document for every root added.
        sidebar=[pn.Column(navigation, *controls, sizing_mode="stretch_width")],
        main=main,
        accent=ACCENT,
        theme_toggle=True,
        design=Fast,
        main_layout=None,
        sidebar_width=300,
        raw_css=[_NARROW_SCREEN],
    )


class Fast(pn.theme.Fast):
    """panel's Fast design in system fonts, without the web font it would fetch.

    Same class name, so panel finds the design's bundled files.
    """

    _resources: ClassVar[dict] = {
        kind: files
        for kind, files in pn.theme.Fast._resources.items()
        if kind != "font"
    }


_NAV_STYLE = """
a.nf-nav { display: block; padding: 4px 0; color: inherit; text-decoration: none; }
a.nf-nav.nf-current { font-weight: bold; }
"""

# Below 700 px the sidebar stacks above the charts instead of beside them, so a phone
# shows the page without horizontal scrolling.
_NARROW_SCREEN = """
@media (max-width: 700px) {
  #content { flex-direction: column; }
  #content > #sidebar {
    min-width: 100%; max-width: 100%; height: auto; box-sizing: border-box;
  }
  #header { box-sizing: border-box; max-width: 100vw; }
  #header-items { width: auto; }
  #header .title {
    font-size: 1em; min-width: 0; white-space: nowrap; overflow: hidden;
    text-overflow: ellipsis;
  }
}
"""
