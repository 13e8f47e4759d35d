"""gdlab's benchmark suite: `python benchmarks/run.py [--repeats 5] [--only W2,sweep]
[--size tiny|cpu|gpu] [--tiny] [--skip-scale] [--budget SECONDS]`.

See benchmarks/bench.py; the targets are benchmarks/targets.toml; benchmarks/gpu.sh runs
the GPU sizes. Writes runs/bench-<timestamp>/report.md and bench.json and prints the
tables with every speed target marked met, not met or not measured.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from any directory

from benchmarks.bench import main

if __name__ == "__main__":
    main()
