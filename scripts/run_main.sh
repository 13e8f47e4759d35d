#!/usr/bin/env bash
# Set up .venv (if missing) with gdlab, then run the headline study on CPU: where many
# seeds land (convex: one minimum; non-convex: many), then what each part of a training
# step costs (derivative, update, sampling, loss measurement) for the teacher-student MLP.
# Extra arguments go to the study, e.g. --smoke or --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --no-compile -e .
.venv/bin/python -m compileall -q -j 0 "$(.venv/bin/python -c \
    'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
.venv/bin/python experiments/convexity.py "$@"
echo
echo "Cost of one training step (gdlab profile), teacher-student 8-64-1, batch 64, 16 seeds:"
.venv/bin/gdlab profile --problem teacher_student --batch-size 64 --seeds 16 --optimizer adam \
    --repeats 7
