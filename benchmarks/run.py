"""gdlab's benchmark suite: `python benchmarks/run.py [--repeats 5] [--only W2] [--tiny]`.

See benchmarks/bench.py. Writes runs/bench-<timestamp>/report.md and bench.json and
prints the table with every speed target marked met or not.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from any directory

from benchmarks.bench import main

if __name__ == "__main__":
    main()
