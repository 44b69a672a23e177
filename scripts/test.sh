#!/usr/bin/env bash
# Sets up .venv with the test tools and runs the whole test suite with its checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev

# The browser tests drive Debian's chromium (never `playwright install`).
if [ ! -x /usr/bin/chromium ]; then
  install="apt-get update -q && apt-get install -y -q --no-install-recommends chromium"
  if [ "$(id -u)" = 0 ]; then
    sh -c "$install"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo -n sh -c "$install"
  else
    echo "test: the browser tests need Debian's chromium at /usr/bin/chromium;" \
      "install it as root: $install" >&2
    exit 1
  fi
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"
