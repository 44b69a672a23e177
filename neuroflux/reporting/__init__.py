"""Run the research notebooks with papermill into offline HTML reports and an index."""

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
    "build_index",
    "list_notebooks",
    "run_notebook",
]
