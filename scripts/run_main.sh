#!/usr/bin/env bash
# Set up .venv (if missing) with gdlab, then run the headline study on CPU.
# Extra arguments go to the study, e.g. --smoke or --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}" .venv/bin/python experiments/convexity.py "$@"
