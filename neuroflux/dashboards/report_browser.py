"""Report browser: the report index as a filterable table, the chosen report inline.

One row per ``<reports_dir>/<notebook>/<run_id>/run.json`` (the folders are the truth,
as for ``index.html``), newest first. Selecting a row shows that run's ``report.html``
in a frame served from ``files_url``, and its error if it failed. A ``run.json`` or
``metrics.json`` that cannot be read is a row of status ``invalid`` whose error names
the file: nothing is dropped.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import panel as pn
import param

__all__ = ["COLUMNS", "REPORT_FILE", "ReportBrowser", "read_runs", "run_details"]

REPORT_FILE = "report.html"
COLUMNS = (
    "notebook",
    "run_id",
    "started",
    "status",
    "parameters",
    "metrics",
    "error",
    "report",
)

_HEADER_FILTERS = {
    "notebook": {"type": "list", "valuesLookup": True, "clearable": True},
    "run_id": {"type": "input", "func": "like", "placeholder": "text"},
    "status": {"type": "list", "valuesLookup": True, "clearable": True},
    "parameters": {"type": "input", "func": "like", "placeholder": "text"},
}
_ERROR_STYLE = (
    "border-left: 4px solid #d62728; padding: 0 8px; margin: 8px 0; "
    "white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px"
)
_FRAME_STYLE = "width: 100%; height: 75vh; border: 1px solid #8888; background: white"


def read_runs(reports_dir: Path) -> pd.DataFrame:
    """The report index: one row per ``*/*/run.json`` under ``reports_dir``.

    Args:
        reports_dir: Report root.

    Returns:
        Columns :data:`COLUMNS`, newest first (by ``started``, then ``run_id``):
        parameters and metrics as ``name=value`` text, ``error`` empty when none,
        ``report`` the report's path relative to ``reports_dir`` (URL-quoted; empty
        when there is no report). An unreadable file gives status ``invalid`` and an
        error that names it.
    """
    rows = [_row(path) for path in Path(reports_dir).glob("*/*/run.json")]
    rows.sort(key=lambda row: (row["started"], row["run_id"]), reverse=True)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def run_details(row: pd.Series | None, files_url: str) -> str:
    """HTML for one run of :func:`read_runs`: its error, then its report in a frame."""
    if row is None:
        return "<p>Select a run to show its report.</p>"
    parts = [f"<h3>{html.escape(row['notebook'])} · {html.escape(row['run_id'])}</h3>"]
    if row["error"]:
        parts.append(
            f'<pre class="nf-run-error" style="{_ERROR_STYLE}">'
            f"{html.escape(row['status'])}: {html.escape(row['error'])}</pre>"
        )
    if row["report"]:
        parts.append(
            f'<iframe class="nf-report" title="report" style="{_FRAME_STYLE}" '
            f'src="{html.escape(files_url)}/{html.escape(row["report"])}"></iframe>'
        )
    else:
        parts.append("<p>This run has no report.</p>")
    return "\n".join(parts)


def _row(path: Path) -> dict[str, str]:
    folder = path.parent
    names = {"notebook": folder.parent.name, "run_id": folder.name}
    try:
        run = _read_object(path)
        metrics_path = folder / "metrics.json"
        metrics = _read_object(metrics_path) if metrics_path.exists() else {}
    except ValueError as problem:
        return {
            **dict.fromkeys(COLUMNS, ""),
            **names,
            "status": "invalid",
            "error": str(problem),
        }
    report = folder / REPORT_FILE
    return {
        "notebook": str(run.get("notebook", names["notebook"])),
        "run_id": str(run.get("run_id", names["run_id"])),
        "started": str(run.get("started", "")),
        "status": str(run.get("status", "?")),
        "parameters": _pairs(run.get("parameters") or {}),
        "metrics": _pairs(metrics),
        "error": str(run.get("error") or ""),
        "report": "/".join(quote(part) for part in (*names.values(), REPORT_FILE))
        if report.exists()
        else "",
    }


def _read_object(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise ValueError(
            f"{path}: expected a JSON object, got {type(document).__name__}"
        )
    return document


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={_format(value)}" for key, value in values.items())


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value, default=str)


class ReportBrowser(pn.viewable.Viewer):
    """The report index as a table with header filters; the selected report below."""

    reports_dir = param.ClassSelector(
        class_=Path, constant=True, doc="Report root: <notebook>/<run_id>/run.json"
    )
    files_url = param.String(
        default="./report-files", constant=True, doc="URL that serves reports_dir"
    )
    runs = param.DataFrame(doc="The report index (read_runs), newest first")
    selected = param.String(default="", doc="Shown run as notebook/run_id ('' none)")
    reload = param.Event(label="Reload", doc="Re-read the reports folder")

    def __init__(
        self, *, reports_dir: str | Path, files_url: str = "./report-files", **params
    ):
        super().__init__(reports_dir=Path(reports_dir), files_url=files_url, **params)
        self._reload()

    # State -------------------------------------------------------------------------

    @param.depends("reload", watch=True)
    def _reload(self) -> None:
        self.param.update(selected="", runs=read_runs(self.reports_dir))

    def select(self, position: int | None) -> None:
        """Show the run in row ``position`` of ``runs`` (``None``: none)."""
        if position is None:
            self.selected = ""
        else:
            row = self.runs.iloc[position]
            self.selected = f"{row['notebook']}/{row['run_id']}"

    def selected_row(self) -> pd.Series | None:
        """The row of ``runs`` named by ``selected``, or ``None``."""
        keys = self.runs["notebook"] + "/" + self.runs["run_id"]
        matches = self.runs[keys == self.selected]
        return matches.iloc[0] if self.selected and len(matches) else None

    @param.depends("selected", "runs")
    def details(self) -> str:
        """HTML of the selected run: its error and its report in a frame."""
        return run_details(self.selected_row(), self.files_url)

    # View --------------------------------------------------------------------------

    def controls(self) -> list:
        """The reload button."""
        return [
            pn.widgets.Button.from_param(
                self.param.reload, button_type="primary", sizing_mode="stretch_width"
            )
        ]

    def __panel__(self):
        table = pn.widgets.Tabulator(
            self.param.runs,
            header_filters=_HEADER_FILTERS,
            hidden_columns=["report"],
            show_index=False,
            disabled=True,
            selectable=1,
            pagination="local",
            page_size=25,
            layout="fit_data_stretch",
            sizing_mode="stretch_width",
        )
        table.param.watch(
            lambda event: self.select(event.new[0] if event.new else None),
            "selection",
        )
        self.param.watch(
            lambda event: event.new or table.param.update(selection=[]), "selected"
        )
        return pn.Column(
            table,
            pn.pane.HTML(self.details, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
