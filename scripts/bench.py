"""gdlab's benchmark suite: `python scripts/bench.py [--repeats 5] [--only W2] [--tiny]`.

The same as `gdlab bench`; see gdlab/bench.py. Writes runs/bench-<timestamp>/report.md
and bench.json and prints the table with every speed target marked met or not.
"""

from gdlab.bench import main

if __name__ == "__main__":
    main()
