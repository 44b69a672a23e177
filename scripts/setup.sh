#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs the locked dependencies and neuroflux.
#   scripts/setup.sh          runtime packages (requirements.lock)
#   scripts/setup.sh dev      runtime + test/benchmark packages (requirements-dev.lock)
#   scripts/setup.sh bench    dev + the benchmark-only peers, e.g. torch (requirements-bench.lock)
set -euo pipefail
cd "$(dirname "$0")/.."

lock=requirements.lock
case "${1:-}" in
  dev) lock=requirements-dev.lock ;;
  bench) lock=requirements-bench.lock ;;
esac

python=${PYTHON:-$(command -v python3.11 || command -v python3)}
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "setup: Python 3.11 is required; $python is $("$python" --version 2>&1)" >&2
  exit 1
fi
if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  rm -rf .venv
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
.venv/bin/uv pip install --quiet --python .venv/bin/python -r "$lock"
.venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e .
echo "setup: .venv ready ($lock)"
