"""Test accuracy over many seeds for the built-in real-data problems (a table for the docs).

    .venv/bin/python scripts/accuracy_table.py [--seeds 256] [--steps 2000]

Trains logistic regression, a ReLU MLP and a small CNN on digits and mnist1d with Adam
(batch 32) and prints the final test accuracy over seeds (mean, std, min, max) and the
seconds of each run (compile included, and apart).
"""

import argparse
import time

import gdlab
from gdlab import problems

MODELS = {"logistic": dict(model="logistic", weight_decay=1e-3),
          "mlp": dict(model="mlp", hidden=(32,)), "cnn": dict(model="cnn")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    config = gdlab.TrainConfig(optimizer="adam", learning_rate=3e-3, steps=args.steps,
                               batch_size=32, eval_every=args.steps)
    print("| data | model | params | test accuracy mean | std | min | max | seconds "
          "(compile) |\n|---|---|---|---|---|---|---|---|")
    for data in ("digits", "mnist1d"):
        for name, kwargs in MODELS.items():
            problem = problems.BUILTINS[data](**kwargs)
            start = time.perf_counter()
            runs = gdlab.train(problem, config, seeds=args.seeds, progress=False)
            seconds = time.perf_counter() - start
            acc = runs.final("test/accuracy")
            print(f"| {data} | {name} | {problem.num_params()} | {acc.mean():.4f} | "
                  f"{acc.std():.4f} | {acc.min():.4f} | {acc.max():.4f} | {seconds:.1f} "
                  f"({runs.timings['compile_seconds']:.1f}) |", flush=True)


if __name__ == "__main__":
    main()
