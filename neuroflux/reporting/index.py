"""The report index: ``reports/index.html``, rebuilt from the run folders on disk.

The folders are the truth: every ``<notebook>/<run-id>/run.json`` is a row, so deleting
a run folder drops its row at the next rebuild. Plain HTML with inline CSS: it opens
offline and from a file share.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from neuroflux import settings

__all__ = ["build_index"]

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
td.ok { color: #11772d; } td.failed { color: #b00020; font-weight: bold; }
code { font-size: 12px; }
"""


def build_index(reports_dir: str | Path | None = None) -> Path:
    """Rewrite ``<reports_dir>/index.html`` from every ``*/*/run.json``, newest first.

    Args:
        reports_dir: Report root; ``settings.reports_dir()`` when ``None``.

    Returns:
        The path of ``index.html``.

    Raises:
        ValueError: A ``run.json`` that is not valid JSON (names the file).
    """
    root = Path(reports_dir) if reports_dir is not None else settings.reports_dir()
    root.mkdir(parents=True, exist_ok=True)
    runs = sorted(
        (_read_run(path) for path in root.glob("*/*/run.json")),
        key=lambda run: (run.get("started", ""), run.get("run_id", "")),
        reverse=True,
    )
    rows = "\n".join(_row(run) for run in runs) or (
        '<tr><td colspan="7">no runs yet</td></tr>'
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>NeuroFlux reports</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>NeuroFlux reports</h1>
<p>{len(runs)} run{"" if len(runs) == 1 else "s"}, newest first.</p>
<table>
<thead><tr><th>notebook</th><th>run</th><th>started (UTC)</th><th>parameters</th>
<th>status</th><th>key metrics</th><th>report</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""
    path = root / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _read_run(path: Path) -> dict[str, Any]:
    try:
        run = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    metrics_path = path.with_name("metrics.json")
    run["metrics"] = (
        json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    )
    run["folder"] = path.parent
    return run


def _row(run: dict[str, Any]) -> str:
    folder: Path = run["folder"]
    status = str(run.get("status", "?"))
    report = folder / "report.html"
    link = (
        f'<a href="{html.escape(f"{folder.parent.name}/{folder.name}/report.html")}">'
        "report.html</a>"
        if report.exists()
        else "-"
    )
    error = run.get("error")
    status_cell = html.escape(status) + (
        f"<br><code>{html.escape(str(error))}</code>" if error else ""
    )
    cells = [
        html.escape(str(run.get("notebook", folder.parent.name))),
        html.escape(str(run.get("run_id", folder.name))),
        html.escape(str(run.get("started", ""))),
        _pairs(run.get("parameters") or {}),
        status_cell,
        _pairs(run["metrics"]),
        link,
    ]
    tds = "".join(
        f'<td class="{html.escape(status)}">{cell}</td>'
        if index == 4
        else f"<td>{cell}</td>"
        for index, cell in enumerate(cells)
    )
    return f"<tr>{tds}</tr>"


def _pairs(values: dict[str, Any]) -> str:
    if not values:
        return "-"
    return "<br>".join(
        f"{html.escape(str(key))} = {html.escape(_format(value))}"
        for key, value in values.items()
    )


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value, default=str) if not isinstance(value, str) else value
