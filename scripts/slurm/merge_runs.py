"""Merge the run directories of a sweep (e.g. a SLURM job array) into one table.

Usage: python scripts/slurm/merge_runs.py RESULTS_DIR [--out REPORT.md]

Reads every saved run under RESULTS_DIR (any depth), prints a markdown table with one
row per run (config, seeds, final-loss quantiles, diverged seeds, timings) sorted by
batch size then learning rate, and writes it to RESULTS_DIR/merged.md (or --out).
Directories still holding only checkpoints (unfinished tasks) are listed apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gdlab.core import checkpoint, store
from gdlab.core.runs import load_runs
from gdlab.studies import markdown_table, write_text

HEADER = ["run", "problem", "optimizer", "lr", "batch", "steps", "seeds", "diverged",
          "final loss median", "final loss min", "train s", "seed-steps/s"]


def rows(results: Path) -> tuple[list[list], list[str]]:
    """One table row per finished run under `results`, and the unfinished directories."""
    found, unfinished = [], []
    for meta in sorted(results.rglob(store.METADATA)):
        runs = load_runs(meta.parent)
        cfg, s = runs.manifest.get("config", {}), runs.summary()
        found.append([str(meta.parent.relative_to(results)),
                      runs.manifest.get("problem", {}).get("name", "?"), cfg.get("optimizer"),
                      cfg.get("learning_rate"), cfg.get("batch_size") or "full",
                      cfg.get("steps"), s["seeds"], s["diverged"], f"{s['loss_median']:.4g}",
                      f"{s['loss_min']:.4g}", f"{s.get('train_seconds', 0.0):.2f}",
                      f"{s.get('seed_steps_per_second', 0.0):.3g}"])
    for ckpt in sorted(results.rglob(checkpoint.CHECKPOINTS)):
        if not store.holds_run(ckpt.parent):
            unfinished.append(str(ckpt.parent.relative_to(results)))
    key = lambda r: (r[4] == "full", r[4] if r[4] != "full" else 0, str(r[3]), r[0])
    return sorted(found, key=key), unfinished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="directory holding the sweep's runs")
    parser.add_argument("--out", type=Path, default=None, help="report path")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        print(f"merge_runs: error: {str(args.results)!r} is not a directory", file=sys.stderr)
        return 2
    table, unfinished = rows(args.results)
    if not table:
        print(f"merge_runs: error: no saved run under {str(args.results)!r}", file=sys.stderr)
        return 2
    text = markdown_table(HEADER, table)
    if unfinished:
        text += "\n\nUnfinished (checkpoints only): " + ", ".join(unfinished)
    out = args.out or args.results / "merged.md"
    write_text(out, f"# Sweep: {args.results}\n\n{text}\n")
    print(text)
    print(f"merged table written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
