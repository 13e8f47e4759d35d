#!/usr/bin/env bash
# Set up .venv (if missing) with gdlab and its dev tools, lint, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# pip byte-compiles one file at a time (about 35 s of a 75 s install); compileall does it
# on every core. Compiled here, not on import: with PYTHONDONTWRITEBYTECODE set, as on
# these machines, nothing compiled on import is kept and every process pays again.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-compile -e ".[dev]"
.venv/bin/python -m compileall -q -j 0 "$(.venv/bin/python -c \
    'import sysconfig; print(sysconfig.get_paths()["purelib"])')" gdlab experiments \
    benchmarks > /dev/null
.venv/bin/ruff check gdlab tests experiments scripts benchmarks examples
# Test files run in parallel processes (pytest-xdist; GDLAB_TEST_WORKERS=0 runs them in
# this one), each file whole in one worker so its module fixtures are built once.
.venv/bin/python -m pytest -n "${GDLAB_TEST_WORKERS:-auto}" --dist loadfile --durations=15 "$@"
