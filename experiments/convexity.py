"""Convex versus non-convex: where do many seeds of plain gradient descent land?

Trains convex controls (least squares, logistic regression, a quadratic bowl) and
non-convex problems (Himmelblau, six-hump camel, Styblinski-Tang, a teacher-student MLP)
from many random seeds, then reports how the endpoints spread over the known minima.

Run:
  python experiments/convexity.py [--smoke] [--out DIR]     (or: gdlab run convexity)
Takes about a minute on a 2-core CPU (smoke: seconds). Writes DIR/report.md, one saved
run per problem (DIR/<problem>/) and figures (DIR/*.png), and prints DIR.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import gdlab
from gdlab import plots, problems
from gdlab.minima import match_known_minima
from gdlab.report import markdown_table, study_dir, write_text


@dataclasses.dataclass(frozen=True)
class Entry:
    problem: str
    convex: bool
    config: gdlab.TrainConfig
    seeds: int
    kwargs: tuple = ()


@dataclasses.dataclass(frozen=True)
class Config:
    entries: tuple[Entry, ...]
    match_tol: float = 1e-3
    smoke: bool = False


def get_config(smoke: bool = False) -> Config:
    """The study's settings; `smoke=True` shrinks seeds and steps to run in seconds."""
    s = (lambda full, small: small if smoke else full)
    sgd = lambda lr, steps, **kw: gdlab.TrainConfig(
        optimizer="sgd", learning_rate=lr, steps=s(steps, 200), eval_every=s(steps // 20, 20), **kw)
    entries = (
        Entry("least_squares", True, sgd(0.5, 500), s(1024, 64)),
        Entry("logistic", True, sgd(1.0, 2000), s(1024, 64)),
        Entry("quadratic", True, sgd(0.1, 500), s(1024, 64)),
        Entry("himmelblau", False, sgd(0.01, 2000), s(4096, 256)),
        Entry("six_hump_camel", False, sgd(0.002, 5000), s(4096, 256)),
        Entry("styblinski_tang", False, sgd(0.01, 2000), s(4096, 256)),
        Entry("teacher_student", False, sgd(0.1, 4000, batch_size=32), s(512, 32),
              kwargs=(("d_in", 2), ("hidden", 4), ("n", 256), ("key", 1))),
    )
    return Config(entries=entries, smoke=smoke)


def run_entry(entry: Entry, config: Config, out: Path) -> tuple[list, gdlab.Runs]:
    """Train one problem, save its runs and figures, return its report row."""
    problem = problems.BUILTINS[entry.problem](**dict(entry.kwargs))
    runs = gdlab.train(problem, entry.config, seeds=entry.seeds, key=0, out=out / entry.problem)
    plots.save(plots.loss_curves(runs.eval_steps, runs.loss_history, problem.name),
               out / f"{problem.name}_loss.png")
    reached, unmatched = "-", "-"
    if problem.known_minima:
        match = match_known_minima(problem, runs, tol=config.match_tol)
        reached = f"{int((match.counts > 0).sum())} of {len(match.counts)}"
        unmatched = int((match.index < 0).sum())
        fractions = ", ".join(f"{c / runs.num_seeds:.2f}" for c in match.counts)
        if problem.domain is not None:
            fig = plots.surface_endpoints(problem, runs.params, match.index, runs.init_params)
            plots.save(fig, out / f"{problem.name}_endpoints.png")
    else:
        fractions = "-"
        plots.save(plots.final_loss_histogram(runs.final_loss, problem.name),
                   out / f"{problem.name}_final_loss.png")
    s = runs.summary()
    row = [problem.name, "convex" if entry.convex else "non-convex", s["seeds"], s["diverged"],
           f"{s['loss_min']:.4g}", f"{s['loss_median']:.4g}", f"{s['loss_max']:.4g}",
           reached, fractions, unmatched, f"{s['compile_seconds']:.1f}",
           f"{s['train_seconds']:.2f}"]
    return row, runs


def run(config: Config, out=None) -> Path:
    """Run the study and write its directory; returns the path."""
    out = study_dir("convexity", out)
    start = time.perf_counter()
    rows = []
    for entry in config.entries:
        row, _ = run_entry(entry, config, out)
        rows.append(row)
        print(f"  {row[0]}: median final loss {row[5]}, known minima reached {row[7]}")
    header = ["problem", "surface", "seeds", "diverged", "loss min", "loss median", "loss max",
              "known minima reached", "basin fractions", f"seeds not within {config.match_tol:g}",
              "compile s", "train s"]
    write_text(out / "report.md", _report(config, rows, header, time.perf_counter() - start))
    print(f"convexity study written to {out}")
    return out


def _report(config: Config, rows, header, seconds: float) -> str:
    settings = [[e.problem, e.config.optimizer, e.config.learning_rate, e.config.steps,
                 e.config.batch_size or "full", e.seeds] for e in config.entries]
    return "\n\n".join([
        "# Convex versus non-convex: where the seeds land" + (" (smoke)" if config.smoke else ""),
        "Every seed starts from its own random init and runs plain gradient descent. On a "
        "convex surface every seed should reach the single minimum; on a non-convex one "
        "the seeds split between minima. A seed counts as reaching a known minimum when "
        f"its endpoint lies within {config.match_tol:g} of it (Euclidean, parameter space); "
        "basin fractions are listed in the order of the problem's known minima.",
        markdown_table(header, rows),
        "## Settings",
        markdown_table(["problem", "optimizer", "lr", "steps", "batch", "seeds"], settings),
        "The teacher-student MLP has no list of known minima: its spread of final losses "
        "(and the histogram `teacher_student_final_loss.png`) shows seeds ending at "
        "different points; telling which are equivalent up to symmetry is the minima atlas's job.",
        f"Total time: {seconds:.1f} s. Figures: `*_endpoints.png` (2-D surfaces, endpoints "
        "coloured by the known minimum they reached, grey = none), `*_loss.png` (loss curves).",
    ]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny version, runs in seconds")
    parser.add_argument("--out", help="run directory (default runs/convexity-<timestamp>)")
    args = parser.parse_args()
    run(get_config(smoke=args.smoke), out=args.out)


if __name__ == "__main__":
    main()
