"""Engine throughput: seed-steps per second and compile time of two reference workloads.

Run:  .venv/bin/python scripts/throughput.py [--repeats 5] [--json FILE]
Each workload is trained `repeats` times (each call compiles afresh); the table shows
medians with min-max. Takes about a minute on a 2-core CPU. The full benchmark suite
against baselines is `scripts/bench.py` (issue: speed).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import gdlab
from gdlab import problems

WORKLOADS = {
    "himmelblau 4096 seeds x 2000 steps (full-batch GD)": (
        problems.himmelblau, 4096,
        gdlab.TrainConfig(learning_rate=0.01, steps=2000, eval_every=2000)),
    "teacher-student 8-64-1, N=4096, B=64, 256 seeds x 1000 steps (SGD)": (
        problems.teacher_student, 256,
        gdlab.TrainConfig(learning_rate=0.05, steps=1000, batch_size=64, eval_every=1000)),
}


def measure(make_problem, seeds: int, config: gdlab.TrainConfig, repeats: int) -> dict:
    problem = make_problem()
    rows = [gdlab.train(problem, config, seeds=seeds, progress=False).timings
            for _ in range(repeats)]
    pick = lambda key: np.array([r[key] for r in rows])
    rate, compile_s = pick("seed_steps_per_second"), pick("compile_seconds")
    return {"seed_steps_per_second": {"median": float(np.median(rate)), "min": float(rate.min()),
                                      "max": float(rate.max())},
            "compile_seconds": {"median": float(np.median(compile_s)),
                                "min": float(compile_s.min()), "max": float(compile_s.max())},
            "train_seconds_median": float(np.median(pick("train_seconds")))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    results = {name: measure(*spec, args.repeats) for name, spec in WORKLOADS.items()}
    print(f"medians of {args.repeats} runs (min-max); compile time reported apart")
    for name, r in results.items():
        s, c = r["seed_steps_per_second"], r["compile_seconds"]
        print(f"{name}\n  seed-steps/s {s['median']:.3g} ({s['min']:.3g}-{s['max']:.3g})"
              f"   train {r['train_seconds_median']:.3f} s"
              f"   compile {c['median']:.2f} s ({c['min']:.2f}-{c['max']:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
