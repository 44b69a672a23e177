"""The peer of bench_dashboards.py: the explorer's equity chart written the usual way.

A ``pn.bind`` of an hvplot line to an integer input, in the same template: every change
reruns the same backtest and hvplot renders a new plot, which Panel replaces in the
page. Served by ``panel serve bench/dashboard_peer_app.py``.
"""

import hvplot.pandas  # noqa: F401
import pandas as pd
import panel as pn

from neuroflux.dashboards.page import dashboard_page
from neuroflux.data import load_sample
from neuroflux.research import run_backtest

DATA = load_sample("sp500")
OPTIONS = {"commission": 0.001, "fill": "next_open"}
BENCHMARK = run_backtest(DATA, "buy_and_hold", **OPTIONS).to_frame()["value"]


def equity_chart(fast: int):
    run = run_backtest(DATA, "sma_cross", {"fast": fast, "slow": 50}, **OPTIONS)
    frame = pd.DataFrame(
        {"strategy": run.to_frame()["value"], "buy & hold": BENCHMARK}
    ).tz_localize(None)
    return frame.hvplot.line(height=260, responsive=True, title="Equity")


fast = pn.widgets.IntInput(name="fast", value=10, start=1, css_classes=["nf-fast"])
dashboard_page(
    "explorer", [fast], [pn.pane.HoloViews(pn.bind(equity_chart, fast))]
).servable()
