#!/usr/bin/env bash
# Sets up .venv with the test tools and runs the whole test suite with its checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"
