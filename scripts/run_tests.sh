#!/usr/bin/env bash
# Set up .venv (if missing) with gdlab and its dev tools, lint, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
.venv/bin/ruff check gdlab tests experiments scripts
.venv/bin/python -m pytest "$@"
