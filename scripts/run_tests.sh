#!/usr/bin/env bash
# Set up .venv (if missing) with gdlab and its dev tools, lint, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# --no-compile: modules are byte-compiled when first imported, only those used (the
# install itself takes about 40 s instead of 75 s).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-compile -e ".[dev]"
.venv/bin/ruff check gdlab tests experiments scripts benchmarks examples
# Test files run in parallel processes (pytest-xdist; GDLAB_TEST_WORKERS=0 runs them in
# this one), each file whole in one worker so its module fixtures are built once.
.venv/bin/python -m pytest -n "${GDLAB_TEST_WORKERS:-auto}" --dist loadfile --durations=15 "$@"
