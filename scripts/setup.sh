#!/usr/bin/env bash
# Set up everything iospec needs on a fresh machine: Graphviz (dot), a virtualenv with the
# package and its dev tools, the pinned workerd from npm (node_modules/), and the Mermaid parser
# (tools/mermaid/node_modules/).  Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dot >/dev/null 2>&1; then
  echo "setup: installing Graphviz (dot)" >&2
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -qq graphviz >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq graphviz; }
  else
    echo "setup: please install Graphviz (the 'dot' command)" >&2; exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'

if [ -f package-lock.json ]; then
  if command -v npm >/dev/null 2>&1; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    echo "setup: npm not found; the real-workerd checks will be unavailable" >&2
  fi
fi
# the real Mermaid parser, to check the generated diagrams (tests/test_diagrams.py, tox -e diagrams)
if command -v npm >/dev/null 2>&1; then
  npm ci --prefix tools/mermaid --no-audit --no-fund --loglevel=error
else
  echo "setup: npm not found; the Mermaid syntax checks will be skipped" >&2
fi
echo "setup: done (.venv ready)" >&2
