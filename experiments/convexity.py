"""Convex versus non-convex: where do many seeds of plain gradient descent land?

Trains convex controls (least squares, logistic regression, a quadratic bowl) and
non-convex problems (Himmelblau, six-hump camel, Styblinski-Tang, a teacher-student MLP)
from many random seeds, then maps the minima they landed in (`gdlab.find_minima`):
distinct in parameter space, modulo symmetry, and as functions, with basin fractions.

Run:
  python experiments/convexity.py [--smoke] [--out DIR]     (or: gdlab run convexity)
Takes about a minute on a 2-core CPU (smoke: three of the problems, seconds). Writes
DIR/report.md, its tables as CSV (DIR/summary.csv, DIR/<problem>/seeds.csv and
minima.csv), one saved run per problem (DIR/<problem>/) and figures (DIR/*.png), and
prints DIR.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

import gdlab
from gdlab import plots, problems
from gdlab._tree import flatten_seeds
from gdlab.atlas.minima import classify_endpoints, map_minima, match_known_minima
from gdlab.landscape.paths import barrier_matrix
from gdlab.studies import frame_table, markdown_table, study_dir, study_main, write_csv, write_text
from gdlab.symmetry import align_tanh_mlp


@dataclasses.dataclass(frozen=True)
class Entry:
    problem: str
    convex: bool
    config: gdlab.TrainConfig
    seeds: int
    kwargs: tuple = ()
    atlas_kwargs: tuple = ()  # classify_endpoints options (grad_tol, hess_tol, ...)


@dataclasses.dataclass(frozen=True)
class Config:
    entries: tuple[Entry, ...]
    match_tol: float = 1e-3
    trajectories: int = 40  # seeds whose paths are drawn on 2-D surfaces
    smoke: bool = False


def get_config(smoke: bool = False) -> Config:
    """The study's settings; `smoke=True` shrinks seeds and steps to run in seconds."""
    s = (lambda full, small: small if smoke else full)
    sgd = lambda lr, steps, **kw: gdlab.TrainConfig(
        optimizer="sgd", learning_rate=lr, steps=s(steps, 200), eval_every=s(steps // 100, 10),
        **kw)
    entries = (
        Entry("least_squares", True, sgd(0.5, 500), s(1024, 64)),
        Entry("logistic", True, sgd(1.0, 2000), s(1024, 64)),
        Entry("quadratic", True, sgd(0.1, 500), s(1024, 64)),
        Entry("himmelblau", False, sgd(0.01, 2000), s(4096, 256)),
        Entry("six_hump_camel", False, sgd(0.002, 5000), s(4096, 256)),
        Entry("styblinski_tang", False, sgd(0.01, 2000), s(4096, 256)),
        Entry("teacher_student", False,
              gdlab.TrainConfig(optimizer="adam", learning_rate=0.02, steps=s(3000, 300),
                                eval_every=s(150, 30)), s(512, 32),
              kwargs=(("d_in", 2), ("hidden", 3), ("n", 128), ("key", 1)),
              atlas_kwargs=(("grad_tol", 1e-3),)),
    )
    if smoke:  # one of each kind of figure and atlas: convex (PCA), 2-D surface, MLP
        entries = tuple(e for e in entries
                        if e.problem in ("least_squares", "himmelblau", "teacher_student"))
    return Config(entries=entries, smoke=smoke)


def run_entry(entry: Entry, config: Config, out: Path) -> dict:
    """Train one problem, map its minima, save runs, per-seed and per-minimum tables and
    figures; returns its row of the summary table (raw values)."""
    problem = problems.BUILTINS[entry.problem](**dict(entry.kwargs))
    paths = min(config.trajectories, entry.seeds) if problem.num_params() == 2 else 0
    runs = gdlab.train(problem, entry.config, seeds=entry.seeds, key=0, out=out / entry.problem,
                       trajectories=paths)
    endpoints = classify_endpoints(problem, runs, **dict(entry.atlas_kwargs))
    atlas = map_minima(problem, runs, endpoints)
    write_csv(out / entry.problem / "seeds.csv", runs.to_dataframe(atlas))
    write_csv(out / entry.problem / "minima.csv", atlas.to_dataframe())
    _figures(problem, runs, atlas, out)
    reached = total = None
    if problem.known_minima:
        match = match_known_minima(problem, runs, tol=config.match_tol)
        reached, total = int((match.counts > 0).sum()), len(match.counts)
    s, counts = runs.summary(), atlas.status_counts()
    fractions = ", ".join(f"{m.fraction:.2f}" for m in atlas.minima[:8])
    fractions += ", ..." if atlas.num_minima > 8 else ""
    return {"problem": problem.name, "surface": "convex" if entry.convex else "non-convex",
            "seeds": s["seeds"], "minima": atlas.num_minima,
            "modulo_symmetry": atlas.num_symmetry_classes,
            "functions": atlas.num_function_classes, "chao1": atlas.chao1,
            "known_reached": reached, "known_total": total, "basin_fractions": fractions or "-",
            "saddles": counts["saddle"], "not_converged": counts["not_converged"],
            "diverged": counts["diverged"], "median_final_loss": s["loss_median"],
            "train_seconds": s["train_seconds"]}


def _figures(problem, runs, atlas, out: Path) -> None:
    name = problem.name
    plots.save(plots.loss_curves(runs.eval_steps, runs.loss_history, name),
               out / f"{name}_loss.png")
    if atlas.minima:
        plots.save(plots.minima_bars(np.array([m.fraction for m in atlas.minima]),
                                     np.array([m.ci for m in atlas.minima]),
                                     np.array([m.loss for m in atlas.minima]),
                                     f"{name}: {atlas.num_minima} minima"),
                   out / f"{name}_minima.png")
    if 2 <= atlas.num_minima <= 30:
        reps = [m.params for m in atlas.minima]
        align = align_tanh_mlp if problem.symmetry is not None else None
        plots.save(plots.barrier_heatmap(barrier_matrix(problem, reps, align=align),
                                         f"{name}: barriers" + (" (aligned)" if align else "")),
                   out / f"{name}_barriers.png")
    if problem.domain is not None and problem.num_params() == 2:
        plots.save(plots.surface_endpoints(problem, runs.params, atlas.labels, runs.init_params,
                                           trajectories_KE2=runs.trajectory),
                   out / f"{name}_endpoints.png")
        plots.save(plots.basin_map(problem, runs.init_params, atlas.labels),
                   out / f"{name}_basins.png")
    else:
        plots.save(plots.pca_projection(flatten_seeds(runs.params), atlas.labels,
                                        f"{name}: endpoints on 2 principal components"),
                   out / f"{name}_pca.png")


def run(config: Config, out=None) -> Path:
    """Run the study and write its directory; returns the path."""
    import pandas as pd
    out = study_dir("convexity", out)
    start = time.perf_counter()
    rows = []
    for entry in config.entries:
        row = run_entry(entry, config, out)
        rows.append(row)
        print(f"  {row['problem']}: {row['minima']} minima ({row['modulo_symmetry']} modulo "
              "symmetry)")
    summary = pd.DataFrame(rows)
    write_csv(out / "summary.csv", summary)
    write_text(out / "report.md", _report(config, summary, time.perf_counter() - start))
    print(f"convexity study written to {out}")
    return out


def _summary_table(summary, match_tol: float) -> str:
    """The report's main table, rendered from summary.csv's frame."""
    import pandas as pd
    frame = summary.copy()
    frame["known"] = [f"{int(r)} of {int(t)}" if pd.notna(t) else "-"
                      for r, t in zip(frame.pop("known_reached"), frame.pop("known_total"),
                                      strict=True)]
    frame = frame[["problem", "surface", "seeds", "minima", "modulo_symmetry", "functions",
                   "chao1", "known", "basin_fractions", "saddles", "not_converged",
                   "diverged", "median_final_loss", "train_seconds"]]
    return frame_table(
        frame, formats={"chao1": "{:.1f}", "median_final_loss": "{:.4g}",
                        "train_seconds": "{:.2f}", "functions": "{:.0f}"},
        headers={"modulo_symmetry": "modulo symmetry", "chao1": "Chao1",
                 "known": f"known minima reached (within {match_tol:g})",
                 "basin_fractions": "basin fractions", "not_converged": "not converged",
                 "median_final_loss": "median final loss", "train_seconds": "train s"})


def _report(config: Config, summary, seconds: float) -> str:
    settings = [[e.problem, e.config.optimizer, e.config.learning_rate, e.config.steps,
                 e.config.batch_size or "full", e.seeds] for e in config.entries]
    return "\n\n".join([
        "# Convex versus non-convex: where the seeds land" + (" (smoke)" if config.smoke else ""),
        "Every seed starts from its own random init and runs full-batch gradient descent "
        "(Adam for the MLP). On a convex surface every seed should reach the single minimum; "
        "on a non-convex one the seeds split between minima. `gdlab.find_minima` classifies "
        "each endpoint (gradient norm, Hessian eigenvalues), clusters the minima in parameter "
        "space, and counts them again modulo the problem's symmetry (hidden-unit permutations "
        "and sign flips for the MLP) and as functions (same predictions on the data). Basin "
        "fractions are per minimum, ordered by loss; Chao1 estimates the total number of "
        "minima including unseen ones. A known minimum is reached when some endpoint lies "
        f"within {config.match_tol:g} of it.",
        _summary_table(summary, config.match_tol),
        "## Settings",
        markdown_table(["problem", "optimizer", "lr", "steps", "batch", "seeds"], settings),
        "The MLP's minima are degenerate (flat directions): Adam leaves its endpoints spread "
        "along flat valleys, so its atlas accepts a gradient norm up to 1e-3 and joins "
        "clusters linked by a flat straight path (one valley, one minimum). Many distinct "
        "parameter vectors then collapse to far fewer classes once permutations and sign "
        "flips are factored out; `experiments/minima_census.py` studies this at scale.",
        f"Total time: {seconds:.1f} s. Data: `summary.csv` (this table), "
        "`<problem>/seeds.csv` (one row per seed: final loss, status, minimum label), "
        "`<problem>/minima.csv` (one row per minimum), `<problem>/` (the saved run). "
        "Figures: `*_endpoints.png` and `*_basins.png` (2-D: "
        "endpoints and start positions coloured by minimum), `*_minima.png` (basin fractions "
        "with 95% Wilson intervals, and losses), `*_barriers.png` (loss barrier on the straight "
        "path between minima), `*_pca.png` (high-dimensional endpoints), `*_loss.png`.",
    ]) + "\n"


if __name__ == "__main__":
    study_main("convexity", __doc__, get_config, run)
