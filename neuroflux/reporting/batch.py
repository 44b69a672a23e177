"""Batch report runs: a YAML list of notebook runs, run in parallel worker processes.

``load_batch("runs.yaml")`` reads and checks a file like::

    runs:
      - notebook: 02_strategy_backtest
        parameters: {data: "sample:aapl"}
        grid: {strategy: [sma_cross, ema_cross]}   # one run per combination
      - notebook: 01_market_data

and ``run_batch(specs, workers=2)`` runs them with ``run_notebook`` in worker
processes started with ``spawn`` (JAX and ``fork`` do not mix), records a failing run
as failed while the others go on, and rebuilds ``reports/index.html`` once at the end.
``default_runs()`` is the set ``neuroflux report all`` runs: every notebook with its
default parameters, which read the embedded sample data.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import itertools
import json
import multiprocessing
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog
import yaml

import neuroflux
from neuroflux import settings
from neuroflux.reporting import index, runs
from neuroflux.reporting.runs import RunRecord

__all__ = ["RunSpec", "default_runs", "load_batch", "run_batch"]

_log = structlog.get_logger(__name__)

_ENTRY_KEYS = ("notebook", "parameters", "grid", "hide_code")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One notebook run of a batch.

    Attributes:
        notebook: Notebook name (file stem in the notebooks folder).
        parameters: Values for its ``parameters`` cell (defaults fill the rest).
        hide_code: Leave code cells' input out of the HTML.
    """

    notebook: str
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    hide_code: bool = False


def default_runs(notebooks_dir: str | Path = "notebooks") -> list[RunSpec]:
    """Every notebook in ``notebooks_dir`` once, with its default parameters.

    The shipped notebooks default to the embedded real market data (``sample:...``),
    so this set runs offline; it is what ``neuroflux report all`` runs.
    """
    return [RunSpec(notebook=name) for name in runs.list_notebooks(notebooks_dir)]


def load_batch(
    path: str | Path, *, notebooks_dir: str | Path = "notebooks"
) -> list[RunSpec]:
    """Read a batch file: ``runs:``, a list of ``{notebook, parameters, grid}``.

    ``parameters`` (mapping) is passed as is; ``grid`` (mapping of name -> non-empty
    list) expands the entry into one run per combination (cartesian product, in key
    order), each combination's values added to ``parameters``. An entry may also say
    ``hide_code: true``.

    Args:
        path: The YAML file.
        notebooks_dir: Folder of ``*.ipynb`` files the names refer to.

    Returns:
        The runs, in file order (a grid's combinations in product order).

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not YAML, bad structure, an unknown notebook or parameter; the
            message names the file, the entry (``runs[2]``) and the key.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(document, dict) or not isinstance(document.get("runs"), list):
        raise ValueError(f"{path}: expected a mapping with a list under 'runs:'")
    extra = sorted(map(str, set(document) - {"runs"}))
    if extra:
        raise ValueError(f"{path}: unknown top-level key(s) {', '.join(extra)}")
    notebooks = runs.list_notebooks(notebooks_dir)
    specs: list[RunSpec] = []
    for position, entry in enumerate(document["runs"]):
        specs += _entry_specs(entry, f"{path}: runs[{position}]", notebooks)
    if not specs:
        raise ValueError(f"{path}: 'runs:' is empty")
    return specs


def run_batch(
    specs: Iterable[RunSpec],
    *,
    workers: int = 2,
    reports_dir: str | Path | None = None,
    notebooks_dir: str | Path = "notebooks",
    progress: bool = True,
) -> list[RunRecord]:
    """Run every spec with ``run_notebook`` in ``workers`` parallel processes.

    A run whose notebook raises (or whose worker dies) is a failed record, and the
    others go on. The index ``<reports_dir>/index.html`` is rebuilt once at the end.

    Args:
        specs: The runs (``load_batch``, ``default_runs`` or built by hand).
        workers: Worker processes (each runs one notebook, i.e. one kernel, at a time).
        reports_dir: Report root; ``settings.reports_dir()`` when ``None``.
        notebooks_dir: Folder of ``*.ipynb`` files.
        progress: Show a tqdm progress bar (stderr).

    Returns:
        One record per spec, in the order of ``specs``.

    Raises:
        ValueError: ``workers < 1``, or an unknown notebook or parameter (checked
            before anything runs).
    """
    from tqdm.auto import tqdm

    specs = list(specs)
    if workers < 1:
        raise ValueError(f"workers must be at least 1; got {workers}")
    notebooks_root = Path(notebooks_dir).resolve()
    reports_root = Path(reports_dir) if reports_dir is not None else None
    reports_root = (reports_root or settings.reports_dir()).resolve()
    notebooks = runs.list_notebooks(notebooks_root)
    for position, spec in enumerate(specs):
        _check(spec.notebook, spec.parameters, f"specs[{position}]", notebooks)
    if not specs:
        index.build_index(reports_root)
        return []

    records: list[RunRecord | None] = [None] * len(specs)
    _log.info("batch started", runs=len(specs), workers=workers)
    context = multiprocessing.get_context("spawn")
    with (
        concurrent.futures.ProcessPoolExecutor(
            max_workers=min(workers, len(specs)),
            mp_context=context,
            initializer=_worker_init,
        ) as pool,
        tqdm(total=len(specs), desc="reports", unit="run", disable=not progress) as bar,
    ):
        futures = {
            pool.submit(_run_one, spec, notebooks_root, reports_root): position
            for position, spec in enumerate(specs)
        }
        try:
            for future in concurrent.futures.as_completed(futures):
                position = futures[future]
                spec = specs[position]
                try:
                    record = future.result()
                except Exception as error:  # the worker died or run_notebook raised
                    record = _failed_record(spec, reports_root, error)
                records[position] = record
                bar.set_postfix_str(f"{spec.notebook}: {record.status}")
                bar.update()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    index.build_index(reports_root)
    done = [record for record in records if record is not None]
    _log.info(
        "batch finished",
        runs=len(done),
        failed=sum(record.status != "ok" for record in done),
    )
    return done


def _entry_specs(
    entry: Any, where: str, notebooks: Mapping[str, Sequence[Any]]
) -> list[RunSpec]:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping with 'notebook:'; got {entry!r}")
    unknown = [key for key in entry if key not in _ENTRY_KEYS]
    if unknown:
        raise ValueError(
            f"{where}: unknown key {unknown[0]!r} "
            f"(valid keys: {', '.join(_ENTRY_KEYS)})"
        )
    notebook = entry.get("notebook")
    if not isinstance(notebook, str) or not notebook:
        raise ValueError(f"{where}: key 'notebook': expected a notebook name")
    where = f"{where} ({notebook})"
    parameters = entry.get("parameters") or {}
    grid = entry.get("grid") or {}
    hide_code = entry.get("hide_code", False)
    for key, value in (("parameters", parameters), ("grid", grid)):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{where}: key {key!r}: expected a mapping of names")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(
                f"{where}: key 'grid': {name!r} needs a non-empty list of values"
            )
    both = sorted(set(parameters) & set(grid))
    if both:
        raise ValueError(
            f"{where}: key 'grid': {', '.join(both)} also set under 'parameters'"
        )
    if not isinstance(hide_code, bool):
        raise ValueError(f"{where}: key 'hide_code': expected true or false")
    _check(notebook, {**parameters, **grid}, where, notebooks)
    return [
        RunSpec(
            notebook=notebook,
            parameters={**parameters, **dict(zip(grid, values, strict=True))},
            hide_code=hide_code,
        )
        for values in itertools.product(*grid.values())
    ]


def _check(
    notebook: str,
    parameters: Mapping[str, Any],
    where: str,
    notebooks: Mapping[str, Sequence[Any]],
) -> None:
    """The runner's unknown-notebook/parameter messages, prefixed with ``where``."""
    if notebook not in notebooks:
        message = runs._unknown("notebook", notebook, notebooks, "in the folder")
        raise ValueError(f"{where}: key 'notebook': {message}")
    valid = [parameter.name for parameter in notebooks[notebook]]
    for name in parameters:
        if name not in valid:
            message = runs._unknown("parameter", name, valid, f"of {notebook}")
            raise ValueError(f"{where}: key 'parameters': {message}")


def _worker_init() -> None:
    import logging
    import sys

    # Workers say only what matters, on stderr: stdout is the command's table.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )


def _run_one(spec: RunSpec, notebooks_dir: Path, reports_dir: Path) -> RunRecord:
    return runs.run_notebook(
        spec.notebook,
        spec.parameters,
        notebooks_dir=notebooks_dir,
        reports_dir=reports_dir,
        hide_code=spec.hide_code,
        rebuild_index=False,
    )


def _failed_record(
    spec: RunSpec, reports_root: Path, error: BaseException
) -> RunRecord:
    """A record, and a run folder for the index, of a run that never reported."""
    now = datetime.datetime.now(datetime.UTC)
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    folder = reports_root / spec.notebook / run_id
    record = RunRecord(
        notebook=spec.notebook,
        run_id=run_id,
        parameters=dict(spec.parameters),
        status="failed",
        error=f"{type(error).__name__}: {error}",
        started=now.isoformat(),
        finished=now.isoformat(),
        seconds=0.0,
        neuroflux_version=neuroflux.__version__,
        folder=folder,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(
        json.dumps(record.to_json(), indent=2, default=str) + "\n"
    )
    return record
