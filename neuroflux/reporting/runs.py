"""Run a notebook with papermill into a report folder: executed notebook, HTML, JSON.

``run_notebook("sma_study", {"fast": 10})`` executes ``notebooks/sma_study.ipynb`` into
``reports/sma_study/<run-id>/`` and rebuilds ``reports/index.html``. A notebook that
raises is a *recorded* outcome, not an exception: the record says ``status="failed"``
with the error, and the folder keeps the partially executed notebook and its HTML.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import difflib
import json
import re
import secrets
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import jinja2
import nbformat
import panel
import papermill
import structlog
from jupyter_client.manager import AsyncKernelManager
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError

import neuroflux
from neuroflux import settings
from neuroflux.reporting import index

__all__ = [
    "METRICS_MIMETYPE",
    "NotebookParameter",
    "RunRecord",
    "list_notebooks",
    "run_notebook",
]

METRICS_MIMETYPE = "application/vnd.neuroflux.metrics+json"
"""Mimetype of key metrics: ``display({METRICS_MIMETYPE: {...}}, raw=True)``."""

_log = structlog.get_logger(__name__)

# Where notebooks run: the repository root, so that relative paths in a notebook mean
# the same thing in JupyterLab, in pytest --nbval-lax and here.
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]

# The JupyterLab page without its CDN scripts (require.js, MathJax, mermaid): a report
# must open offline. Plots carry their own JavaScript inline.
_OFFLINE_TEMPLATE = """\
{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
_EXTERNAL_TAG = re.compile(
    r"<(?:script[^>]*\ssrc|link[^>]*\shref)\s*=\s*[\"']?(?:https?:)?//[^\"'\s>]+",
    re.IGNORECASE,
)
_PLOT_CDN = re.compile(r"https?://cdn\.(?:bokeh|holoviz)\.org/[^\"'\s<>]+")
# Panel writes its stylesheets and module shim into plot outputs as CDN addresses even
# with pn.config.inline; the same files ship in the panel wheel and are inlined.
_PANEL_CDN = re.compile(
    r"https?://cdn\.holoviz\.org/panel/[^/\"']+/dist/([^\"'\s<>?]+)(?:\?v=[^\"'\s<>]*)?"
)
_MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class NotebookParameter:
    """One variable of a notebook's ``parameters`` cell (``papermill --help-notebook``).

    Attributes:
        name: Variable name.
        type: Annotated type as written (``"int"``), ``"None"`` when unannotated.
        default: Default value as written in the cell (source text).
        help: The trailing comment.
    """

    name: str
    type: str
    default: str
    help: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunRecord:
    """The outcome of one run, as written to ``run.json`` (less ``folder``).

    Attributes:
        notebook: Notebook name (file stem).
        run_id: ``20261124T071530Z-3f9a1c``: UTC start time and a random suffix.
        parameters: The parameters passed (the notebook's defaults fill the rest).
        status: ``"ok"`` or ``"failed"``.
        error: What failed (``None`` when ok).
        started: UTC start, ISO 8601.
        finished: UTC end, ISO 8601.
        seconds: Wall time of the run.
        neuroflux_version: Version of the package that ran it.
        folder: The run folder ``reports/<notebook>/<run_id>/``.
    """

    notebook: str
    run_id: str
    parameters: dict[str, Any]
    status: Literal["ok", "failed"]
    error: str | None
    started: str
    finished: str
    seconds: float
    neuroflux_version: str
    folder: Path

    @property
    def report(self) -> Path:
        """The HTML report, ``folder / "report.html"``."""
        return self.folder / "report.html"

    @property
    def metrics(self) -> dict[str, Any]:
        """Key metrics found in the executed notebook (``metrics.json``)."""
        path = self.folder / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def to_json(self) -> dict[str, Any]:
        """The ``run.json`` document."""
        document = dataclasses.asdict(self)
        del document["folder"]
        return document


def list_notebooks(
    notebooks_dir: str | Path = "notebooks",
) -> dict[str, tuple[NotebookParameter, ...]]:
    """The runnable notebooks and their parameters, by name (sorted).

    Args:
        notebooks_dir: Folder of ``*.ipynb`` files.

    Returns:
        Notebook name (file stem) -> its ``parameters`` cell variables, in cell order
        (empty when the notebook has no ``parameters`` cell).

    Raises:
        FileNotFoundError: ``notebooks_dir`` does not exist.
    """
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"no notebooks folder {str(folder)!r}")
    return {path.stem: _parameters_of(path) for path in sorted(folder.glob("*.ipynb"))}


def run_notebook(
    name: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    notebooks_dir: str | Path = "notebooks",
    reports_dir: str | Path | None = None,
    hide_code: bool = False,
    rebuild_index: bool = True,
) -> RunRecord:
    """Execute a notebook with papermill and write its report folder and the index.

    The run folder ``<reports_dir>/<name>/<run-id>/`` gets ``notebook.ipynb``
    (executed), ``report.html`` (self-contained, no CDN), ``parameters.json``,
    ``metrics.json`` (outputs of mimetype ``METRICS_MIMETYPE``; ``{}`` if none) and
    ``run.json``. Then ``<reports_dir>/index.html`` is rebuilt.

    A notebook that raises does not raise here: the returned record has
    ``status="failed"`` and the error, and the folder keeps the partially executed
    notebook and its HTML. So does a report whose HTML would load resources from the
    network (e.g. BokehJS from its CDN: use ``hv.extension("bokeh", inline=True)``).

    Args:
        name: Notebook file stem in ``notebooks_dir``.
        parameters: Values for the notebook's ``parameters`` cell, by name.
        notebooks_dir: Folder of ``*.ipynb`` files.
        reports_dir: Report root; ``settings.reports_dir()`` when ``None``.
        hide_code: Leave code cells' input out of the HTML.
        rebuild_index: Rebuild ``index.html`` after the run (a batch rebuilds it once
            at the end instead, so that no worker reads another's unfinished run).

    Returns:
        The run's record (as in ``run.json``).

    Raises:
        ValueError: Unknown notebook or parameter name; the message lists the valid
            ones and the closest matches.
    """
    parameters = dict(parameters or {})
    path = _notebook_path(name, notebooks_dir)
    _check_parameters(path, parameters)
    reports_root = Path(reports_dir) if reports_dir is not None else None
    reports_root = reports_root or settings.reports_dir()

    started = datetime.datetime.now(datetime.UTC)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    folder = reports_root / name / run_id
    folder.mkdir(parents=True)
    (folder / "parameters.json").write_text(_dumps(parameters))
    executed = folder / "notebook.ipynb"
    _log.info("notebook run started", notebook=name, run_id=run_id)

    clock = time.perf_counter()
    error = _execute(path, executed, parameters)
    seconds = time.perf_counter() - clock
    if executed.exists():
        node = nbformat.read(executed, as_version=4)
        (folder / "metrics.json").write_text(_dumps(_metrics_of(node)))
        html_error = _write_html(node, folder / "report.html", hide_code=hide_code)
        error = error or html_error
    else:
        (folder / "metrics.json").write_text("{}")

    record = RunRecord(
        notebook=name,
        run_id=run_id,
        parameters=parameters,
        status="failed" if error else "ok",
        error=error,
        started=started.isoformat(),
        finished=datetime.datetime.now(datetime.UTC).isoformat(),
        seconds=round(seconds, 3),
        neuroflux_version=neuroflux.__version__,
        folder=folder,
    )
    # Written whole and then renamed, so an index never reads half a record.
    unfinished = folder / "run.json.partial"
    unfinished.write_text(_dumps(record.to_json()))
    unfinished.replace(folder / "run.json")
    if rebuild_index:
        index.build_index(reports_root)
    _log.info(
        "notebook run finished",
        notebook=name,
        run_id=run_id,
        status=record.status,
        seconds=record.seconds,
        report=str(record.report),
    )
    return record


def _parameters_of(path: Path) -> tuple[NotebookParameter, ...]:
    return tuple(
        NotebookParameter(
            name=name,
            type=str(spec.get("inferred_type_name", "None")),
            default=str(spec.get("default", "")),
            help=str(spec.get("help", "")),
        )
        for name, spec in papermill.inspect_notebook(str(path)).items()
    )


def _notebook_path(name: str, notebooks_dir: str | Path) -> Path:
    names = list_notebooks(notebooks_dir)
    if name not in names:
        raise ValueError(_unknown("notebook", name, names, f"in {notebooks_dir}"))
    return Path(notebooks_dir) / f"{name}.ipynb"


def _check_parameters(path: Path, parameters: Mapping[str, Any]) -> None:
    valid = [parameter.name for parameter in _parameters_of(path)]
    for key in parameters:
        if key not in valid:
            raise ValueError(_unknown("parameter", key, valid, f"of {path.stem}"))


def _unknown(kind: str, name: str, valid: Any, where: str) -> str:
    close = difflib.get_close_matches(name, list(valid), n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    listed = ", ".join(valid) or "none"
    return f"unknown {kind} {name!r}{hint} (valid {kind}s {where}: {listed})"


class _UnixSocketKernelManager(AsyncKernelManager):
    """A kernel on Unix sockets with a name of its own.

    Over TCP, ports are picked free and bound later, so kernels started in
    parallel (``run_batch``) could pick the same one and never start.
    """

    def __init__(self, **kwargs: Any) -> None:
        name = f"neuroflux-kernel-{secrets.token_hex(8)}"
        super().__init__(
            transport="ipc", ip=str(Path(tempfile.gettempdir(), name)), **kwargs
        )


def _execute(path: Path, output: Path, parameters: dict[str, Any]) -> str | None:
    """Run with papermill; the error as one message, ``None`` when it ran through."""
    root = _PACKAGE_ROOT if (_PACKAGE_ROOT / "pyproject.toml").exists() else Path.cwd()
    try:
        papermill.execute_notebook(
            str(path),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(root),
            progress_bar=False,
            kernel_manager_class=_UnixSocketKernelManager,
        )
    except PapermillExecutionError as error:
        return f"cell {error.exec_count}: {error.ename}: {error.evalue}"
    except Exception as error:  # a kernel that dies or never starts is a failed run
        return f"{type(error).__name__}: {error}"
    return None


def _metrics_of(node: nbformat.NotebookNode) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for cell in node.cells:
        for output in cell.get("outputs", []):
            value = output.get("data", {}).get(METRICS_MIMETYPE)
            if isinstance(value, str):  # stored as text by older front ends
                value = json.loads(value)
            if value:
                metrics.update(value)
    return metrics


def _write_html(
    node: nbformat.NotebookNode, path: Path, *, hide_code: bool
) -> str | None:
    """Export the offline HTML; an error message if it still needs the network."""
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"offline.html.j2": _OFFLINE_TEMPLATE})],
        template_file="offline.html.j2",
        exclude_input=hide_code,
        embed_images=True,
    )
    with warnings.catch_warnings():
        # The metrics output has no visible form; nbconvert would warn about it.
        warnings.filterwarnings("ignore", "Your element with mimetype", UserWarning)
        html, _ = exporter.from_notebook_node(node)
    html = _PANEL_CDN.sub(_inline_panel_file, html)
    path.write_text(html, encoding="utf-8")
    external = sorted(set(_EXTERNAL_TAG.findall(html)))
    external += sorted(set(_PLOT_CDN.findall(html)))
    if external:
        return (
            f"{path} loads resources from the network ({', '.join(external[:3])}); "
            "plots must be inline: hv.extension('bokeh', inline=True)"
        )
    return None


def _inline_panel_file(match: re.Match) -> str:
    """A ``data:`` URI of the panel file a CDN address names (unchanged if absent)."""
    local = Path(panel.__file__).parent / "dist" / match.group(1)
    media_type = _MEDIA_TYPES.get(local.suffix)
    if media_type is None or not local.is_file():
        return match.group(0)
    encoded = base64.b64encode(local.read_bytes()).decode("ascii")
    return f"data:{media_type};base64,{encoded}"


def _dumps(document: Any) -> str:
    return json.dumps(document, indent=2, default=str) + "\n"
