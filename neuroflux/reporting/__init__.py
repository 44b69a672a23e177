"""Run the research notebooks with papermill into offline HTML reports and an index."""

from neuroflux.reporting.batch import RunSpec, default_runs, load_batch, run_batch
from neuroflux.reporting.index import build_index
from neuroflux.reporting.runs import (
    METRICS_MIMETYPE,
    NotebookParameter,
    RunRecord,
    list_notebooks,
    run_notebook,
)

__all__ = [
    "METRICS_MIMETYPE",
    "NotebookParameter",
    "RunRecord",
    "RunSpec",
    "build_index",
    "default_runs",
    "list_notebooks",
    "load_batch",
    "run_batch",
    "run_notebook",
]
