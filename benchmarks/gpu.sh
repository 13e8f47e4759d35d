#!/usr/bin/env bash
# The whole benchmark suite at GPU sizes, on a machine with one NVIDIA GPU:
#   bash benchmarks/gpu.sh [OUT_DIR]          (default runs/bench-gpu-<timestamp>)
# Budget: under 8 minutes (about 30 worker processes, 3 timed rounds each; benchmarks not
# started after 6 minutes are skipped and marked so; a hard stop at 7 min 50 s). Needs a
# Python with gdlab's dependencies and jax[cuda] (PYTHON=..., default .venv/bin/python,
# else python3); gdlab is used from this checkout (PYTHONPATH=.), nothing is installed.
# Prints the report; writes OUT_DIR/report.md and OUT_DIR/bench.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH=.
# Every side runs in its own process and they stay alive side by side: JAX must not
# grab 75% of the GPU per process.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
"$PY" -c 'import jax, sys; d = jax.devices()[0]; print("device:", d.platform, d.device_kind)
sys.exit(0 if d.platform == "gpu" else "no GPU: run python benchmarks/run.py on CPU")'
OUT=${1:-runs/bench-gpu-$(date +%Y%m%d-%H%M%S)}
# torch baselines run on the CPU only: on a GPU machine they are left out (--no-torch).
timeout 470 "$PY" benchmarks/run.py --size gpu --repeats 3 --no-torch --budget 360 --out "$OUT"
