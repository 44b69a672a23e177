#!/usr/bin/env bash
# Sets up .venv and writes the research reports on the embedded real market data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/neuroflux doctor
.venv/bin/neuroflux data summary
