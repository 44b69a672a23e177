#!/usr/bin/env bash
# Sets up .venv, checks the machine, summarizes the embedded real market data and runs
# every notebook in notebooks/ with its defaults into reports/ (index: reports/index.html).
#   REPORT_WORKERS=N scripts/reports.sh    notebooks run at once (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/neuroflux doctor
.venv/bin/neuroflux data summary
status=0
.venv/bin/neuroflux report all --workers "${REPORT_WORKERS:-2}" || status=$?
reports=${NEUROFLUX_REPORTS_DIR:-reports}
case $reports in /*) ;; *) reports=$PWD/$reports ;; esac
if [ "$status" -eq 0 ]; then
  echo "reports: all notebooks ran; open $reports/index.html"
else
  echo "reports: some notebooks failed (see above); open $reports/index.html" >&2
fi
exit "$status"
