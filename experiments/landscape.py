"""Loss landscape of small- and large-batch minima: sharpness, slices, trajectories, curves.

A digits MLP (64-32-10, relu; 1400 training images) is trained by SGD from the same
seeds with a small batch (B = 16) and a large one (B = 140, 10% of N), each for a fixed
step budget chosen so both reach a comparable training loss (about 0.009: 30 epochs at
B = 16, 300 epochs at B = 140; the report gives the losses reached). At every minimum:
the top Hessian eigenvalue (Lanczos), the trace (Hutchinson, with its standard error),
the eigenvalue density (stochastic Lanczos quadrature), Keskar et al.'s
epsilon-sharpness, and the test accuracy; filter-normalised 1-D and 2-D slices (Li et
al. 2018) side by side; each recorded trajectory on the slice of its top two principal
directions, with the mismatch between the true loss and the slice's value under the
path; and a Bezier curve between two small-batch minima (Garipov et al. 2018) against
the straight path, before and after weight matching (`gdlab.symmetry.align`).

Run:
  python experiments/landscape.py [--smoke] [--out DIR]     (or: gdlab run landscape)
Takes about 3-4 minutes on a busy 2-core CPU (smoke: 40 s to 1.5 min depending on the load,
most of it compiling). Writes DIR/report.md,
figures (DIR/*.png), the data behind every table and figure (DIR/*.csv, DIR/*.npz,
DIR/timings.json) and prints DIR.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np
from scipy import stats

import gdlab
from gdlab import plots, problems
from gdlab.core import store
from gdlab.landscape import curvature, curves, slices, trajectories
from gdlab.landscape.sharpness import sharpness
from gdlab.plots import landscape as lplots
from gdlab.studies import markdown_table, study_dir, study_main, write_csv, write_text


@dataclasses.dataclass(frozen=True)
class Group:
    """One batch size: its name, B and step budget."""

    name: str
    batch_size: int
    steps: int


@dataclasses.dataclass(frozen=True)
class Config:
    groups: tuple[Group, ...]
    seeds: int = 8
    hidden: tuple[int, ...] = (32,)
    activation: str = "relu"
    learning_rate: float = 0.1
    sampling: str = "epoch"
    evals: int = 50                 # evaluations per run (the trajectories' points)
    trajectories: int = 2           # seeds per group whose paths are recorded
    slice_num: int = 51             # 2-D slices: num x num points
    slice_span: float = 1.0
    slice_1d_num: int = 101
    probes: int = 100               # Hutchinson probes
    eigen_iters: int = 40           # Lanczos steps of the top eigenvalue
    density_runs: int = 8           # SLQ random starts
    density_iters: int = 64         # SLQ Lanczos steps per start
    epsilon: float = 1e-3           # epsilon-sharpness box
    ascent_steps: int = 10
    trajectory_num: int = 31
    curve_steps: int = 1000
    curve_learning_rate: float = 0.01
    curve_batch_size: int = 140
    curve_points: int = 41
    benchmark_repeats: int = 3
    smoke: bool = False


def get_config(smoke: bool = False) -> Config:
    """The study's settings; `smoke=True` shrinks everything to run in seconds."""
    if smoke:
        return Config(groups=(Group("B=16", 16, 60), Group("B=140", 140, 60)), seeds=2,
                      evals=6, trajectories=1, slice_num=9, slice_1d_num=11, probes=8,
                      eigen_iters=8, density_runs=2, density_iters=8, ascent_steps=3,
                      trajectory_num=7, curve_steps=20, curve_points=9, benchmark_repeats=1,
                      smoke=True)
    return Config(groups=(Group("B=16", 16, 2625), Group("B=140", 140, 3000)))


def run(config: Config, out=None) -> Path:
    """Run the study and write its directory; returns the path."""
    out = study_dir("landscape", out)
    problem = problems.digits(model="mlp", hidden=config.hidden, activation=config.activation)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    runs = {g.name: _train(problem, g, config) for g in config.groups}
    timings["train"] = time.perf_counter() - clock
    rows, measures = _sharpness(problem, runs, config, timings)
    write_csv(out / "sharpness.csv", rows)
    grid, densities = _densities(measures)
    _save_npz(out / "density.npz", grid=grid, **{f"density_{k}": v for k, v in densities.items()})
    sl1, sl2 = _slices(problem, runs, config, timings)
    _save_npz(out / "slices.npz", **_slice_arrays(sl1, sl2))
    bench = None if config.smoke else _benchmark(problem, runs[config.groups[0].name], config)
    tslices = _trajectories(problem, runs, config, timings)
    _save_npz(out / "trajectory.npz", **_trajectory_arrays(tslices))
    cmp = _curves(problem, runs[config.groups[0].name], config, timings)
    write_csv(out / "curves.csv", _curve_rows(cmp))
    timings["total"] = time.perf_counter() - clock
    write_text(out / "timings.json", json.dumps({"seconds": timings, "slice_benchmark": bench},
                                                indent=2) + "\n")
    _figures(out, runs, sl1, sl2, grid, densities, tslices, cmp, config)
    write_text(out / "report.md", _report(out, config, problem, bench, timings))
    print(f"landscape study written to {out}")
    return out


# --- the measurements ------------------------------------------------------------------


def _train(problem, group: Group, config: Config) -> gdlab.Runs:
    cfg = gdlab.TrainConfig(optimizer="sgd", learning_rate=config.learning_rate,
                            steps=group.steps, batch_size=group.batch_size,
                            sampling=config.sampling,
                            eval_every=max(1, group.steps // config.evals))
    runs = gdlab.train(problem, cfg, seeds=config.seeds, key=0, progress=False,
                       trajectories=config.trajectories)
    print(f"  {group.name}: {group.steps} steps, median final loss "
          f"{np.median(runs.final_loss):.4g}")
    return runs


def _sharpness(problem, runs, config: Config, timings) -> tuple[list[dict], dict]:
    """Per seed: losses, test accuracy and sharpness; per group: the SLQ measure."""
    rows, measures = [], {}
    clock = time.perf_counter()
    for g in config.groups:
        r = runs[g.name]
        s = sharpness(problem, r.params, key=1, epsilon=config.epsilon,
                      ascent_steps=config.ascent_steps, probes=config.probes,
                      eigen_iters=config.eigen_iters)
        measures[g.name] = curvature.spectral_measure(
            problem, r.params, key=2, runs=config.density_runs, iters=config.density_iters)
        for i in range(config.seeds):
            rows.append({"group": g.name, "batch_size": g.batch_size, "steps": g.steps,
                         "seed": i, "train_loss": float(r.final_loss[i]),
                         "train_accuracy": float(r.metrics["train/accuracy"][i, -1]),
                         "test_accuracy": float(r.metrics["test/accuracy"][i, -1]),
                         "test_loss": float(r.metrics["test/loss"][i, -1]),
                         **{k: float(v[i]) for k, v in s.items() if k != "loss"}})
    timings["sharpness"] = time.perf_counter() - clock
    return rows, measures


def _densities(measures: dict) -> tuple[np.ndarray, dict]:
    """Every group's density on one shared grid and smoothing width."""
    nodes = np.concatenate([n.ravel() for n, _ in measures.values()])
    lo, hi = float(nodes.min()), float(nodes.max())
    sigma = max(0.01 * (hi - lo), 1e-6)
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, 800)
    return grid, {k: curvature.density_from_measure(n, w, grid, sigma=sigma)[1]
                  for k, (n, w) in measures.items()}


def _slices(problem, runs, config: Config, timings) -> tuple[dict, dict]:
    clock = time.perf_counter()
    one = {g.name: slices.slice_1d(problem, runs[g.name].params, key=3, span=config.slice_span,
                                   num=config.slice_1d_num) for g in config.groups}
    two = {g.name: slices.slice_2d(problem, runs[g.name].params, key=3, span=config.slice_span,
                                   num=config.slice_num) for g in config.groups}
    timings["slices"] = time.perf_counter() - clock
    return one, two


def _benchmark(problem, runs, config: Config) -> dict:
    """Seconds of one num x num filter-normalised slice of one seed (compile apart)."""
    params = jax.tree.map(lambda x: np.asarray(x)[0], runs.params)
    clock = time.perf_counter()
    slices.slice_2d(problem, params, key=11, num=config.slice_num)
    first = time.perf_counter() - clock
    times = []
    for r in range(config.benchmark_repeats):
        clock = time.perf_counter()
        slices.slice_2d(problem, params, key=12 + r, num=config.slice_num)
        times.append(time.perf_counter() - clock)
    points = config.slice_num**2
    return {"points": points, "first_call_seconds": first, "seconds": min(times),
            "points_per_second": points / min(times), "repeats": times}


def _trajectories(problem, runs, config: Config, timings) -> dict:
    clock = time.perf_counter()
    out = {g.name: trajectories.trajectory_slice(problem, runs[g.name].trajectory,
                                                 num=config.trajectory_num)
           for g in config.groups}
    timings["trajectories"] = time.perf_counter() - clock
    return out


def _curves(problem, runs, config: Config, timings) -> dict:
    """Bezier curves between seeds 0 and 1 of a group, naive and after alignment."""
    clock = time.perf_counter()
    pick = lambda i: jax.tree.map(lambda x: np.asarray(x)[i], runs.params)
    fit = dict(steps=config.curve_steps, learning_rate=config.curve_learning_rate,
               batch_size=config.curve_batch_size, num=config.curve_points)
    out = {"naive": curves.compare_curve(problem, pick(0), pick(1), key=4, **fit),
           "aligned": curves.compare_curve(problem, pick(0), pick(1), key=4, align=True,
                                           **fit)}
    timings["curves"] = time.perf_counter() - clock
    return out


# --- saved data ------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _save_npz(path: Path, **arrays) -> None:
    store.atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in
                                                      arrays.items()}))


def _slice_arrays(sl1: dict, sl2: dict) -> dict:
    out = {}
    for i, name in enumerate(sl1):
        out["alphas_1d"] = sl1[name].alphas
        out[f"loss_1d_{i}"] = sl1[name].loss
        out["alphas_2d"], out["betas_2d"] = sl2[name].alphas, sl2[name].betas
        out[f"loss_2d_{i}"] = sl2[name].loss
    out["groups"] = np.array(list(sl1))
    return out


def _trajectory_arrays(tslices: dict) -> dict:
    out = {"groups": np.array(list(tslices))}
    for i, ts in enumerate(tslices.values()):
        out |= {f"path_{i}": ts.path, f"true_loss_{i}": ts.true_loss,
                f"plane_loss_{i}": ts.plane_loss, f"explained_{i}": ts.pca.explained,
                f"off_plane_{i}": ts.pca.off_plane, f"grid_loss_{i}": ts.slice.loss,
                f"alphas_{i}": ts.slice.alphas, f"betas_{i}": ts.slice.betas}
    return out


def _curve_rows(cmp: dict) -> list[dict]:
    rows = []
    for name, c in cmp.items():
        for t, line, curve in zip(c.ts, c.line_loss, c.curve_loss, strict=True):
            rows.append({"pair": name, "t": float(t), "line_loss": float(line),
                         "curve_loss": float(curve), "note": c.note})
    return rows


# --- figures and report ----------------------------------------------------------------


def _figures(out: Path, runs, sl1, sl2, grid, densities, tslices, cmp, config) -> None:
    save = plots.save
    save(lplots.slice_curves(sl1, "filter-normalised 1-D slices through each minimum"),
         out / "slices_1d.png")
    fig, axes = plots.figures.subplots(1, len(sl2), figsize=(5.4 * len(sl2), 4.6))
    for ax, (name, s) in zip(np.atleast_1d(axes), sl2.items(), strict=True):
        lplots.slice_contour(s, f"{name}: 2-D slice, seed 0 (filter-normalised)", ax=ax)
    save(fig, out / "slices_2d.png")
    first = next(iter(sl2))
    save(lplots.slice_surface(sl2[first], f"{first}: 2-D slice, seed 0"),
         out / "slice_surface.png")
    save(lplots.spectral_densities({k: (grid, v) for k, v in densities.items()},
                                   "Hessian eigenvalue density (SLQ), mean over seeds"),
         out / "density.png")
    for i, (name, ts) in enumerate(tslices.items()):
        steps = runs[name].eval_steps
        save(lplots.trajectory_overlay(ts, f"{name}: trajectory of seed 0 on its PCA slice",
                                       steps_E=steps), out / f"trajectory_{i}.png")
    save(lplots.curve_vs_line(cmp, f"{first}: between seeds 0 and 1"), out / "curve.png")
    rows = _read_csv(out / "sharpness.csv")
    groups = {g.name: {k: np.array([float(r[k]) for r in rows if r["group"] == g.name])
                       for k in rows[0] if k not in ("group",)} for g in config.groups}
    labels = {"top_eigenvalue": "top Hessian eigenvalue", "trace": "Hessian trace",
              "epsilon_sharpness": f"eps-sharpness (eps={config.epsilon:g})",
              "test_accuracy": "test accuracy", "train_loss": "final training loss"}
    save(lplots.metric_groups(groups, labels, "small- vs large-batch minima (mean, 95% "
                                              "t-interval)"), out / "sharpness.png")


def _interval(v: np.ndarray, digits: str = ".3g") -> str:
    """mean [95% t-interval] of the seeds' values."""
    if len(v) < 2:
        return f"{v.mean():{digits}}"
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return f"{v.mean():{digits}} [{v.mean() - half:{digits}}, {v.mean() + half:{digits}}]"


METRICS = (("train_loss", "final training loss", ".3g"),
           ("train_accuracy", "training accuracy", ".4f"),
           ("test_accuracy", "test accuracy", ".4f"),
           ("test_loss", "test loss", ".3g"),
           ("top_eigenvalue", "top Hessian eigenvalue", ".3g"),
           ("trace", "Hessian trace (Hutchinson)", ".3g"),
           ("epsilon_sharpness", "epsilon-sharpness", ".3g"))


def _sharpness_table(out: Path, config: Config) -> str:
    rows = _read_csv(out / "sharpness.csv")
    names = [g.name for g in config.groups]
    values = {k: [np.array([float(r[k]) for r in rows if r["group"] == n]) for n in names]
              for k, _, _ in METRICS}
    table = []
    for key, label, digits in METRICS:
        v = values[key]
        varied = len(v[0]) > 1 and min(np.ptp(v[0]), np.ptp(v[-1])) > 0
        p = f"{stats.ttest_ind(v[0], v[-1], equal_var=False).pvalue:.2g}" if varied else "-"
        table.append([label, *(_interval(x, digits) for x in v),
                      f"{v[-1].mean() / v[0].mean():.3g}", p])
    return markdown_table(["per minimum (mean [95% t-interval] over seeds)", *names,
                           f"ratio {names[-1]} / {names[0]}", "Welch p"], table)


def _speed(bench: dict | None, problem) -> str:
    if bench is None:
        return "Speed: not measured in smoke mode."
    return (f"Speed: one {bench['points']}-point filter-normalised slice of one seed (each "
            f"point a full-training-set loss of {problem.num_data} images) took "
            f"{bench['seconds']:.2f} s after compiling ({bench['points_per_second']:.0f} "
            f"points per second, best of {len(bench['repeats'])}; the first call, compiling, "
            f"{bench['first_call_seconds']:.2f} s).")


def _report(out: Path, config: Config, problem, bench: dict | None, timings: dict) -> str:
    names = [g.name for g in config.groups]
    settings = [[g.name, g.batch_size, g.steps, f"{g.steps * g.batch_size / problem.num_data:.0f}",
                 config.learning_rate, config.seeds] for g in config.groups]
    traj = np.load(out / "trajectory.npz")
    traj_rows = []
    for i, name in enumerate(traj["groups"]):
        true, plane = traj[f"true_loss_{i}"], traj[f"plane_loss_{i}"]
        for k in range(len(true)):
            mismatch = np.abs(true[k] - plane[k])
            traj_rows.append([name, k, f"{100 * traj[f'explained_{i}'][k, :2].sum():.1f}%",
                              f"{mismatch.max():.3g}", f"{np.median(mismatch):.3g}",
                              f"{traj[f'off_plane_{i}'][k].max():.3g}"])
    curve_rows = []
    by_pair: dict[str, list[dict]] = {}
    for r in _read_csv(out / "curves.csv"):
        by_pair.setdefault(r["pair"], []).append(r)
    for name, rs in by_pair.items():
        line = np.array([float(r["line_loss"]) for r in rs])
        curve = np.array([float(r["curve_loss"]) for r in rs])
        ends = 0.5 * (line[0] + line[-1])
        curve_rows.append([name, f"{line.max():.3g}", f"{line.max() - ends:.3g}",
                           f"{curve.max():.3g}", f"{curve.max() - ends:.3g}", rs[0]["note"]])
    return "\n\n".join([
        "# Loss landscape of small- and large-batch minima" + (" (smoke)" if config.smoke
                                                              else ""),
        f"Problem: {problem.description}. SGD (learning rate {config.learning_rate:g}, "
        f"{config.sampling} sampling) from the same {config.seeds} seeds (same inits) at "
        f"each batch size, for a fixed step budget per batch size chosen so that both reach "
        "a comparable training loss (the first row of the table says how close they came). "
        "Sharpness is measured on the full training set at each final point: the top "
        f"Hessian eigenvalue (Lanczos, {config.eigen_iters} Hessian-vector products), the "
        f"trace (Hutchinson, {config.probes} Rademacher probes) and Keskar et al.'s "
        f"epsilon-sharpness (eps = {config.epsilon:g}, {config.ascent_steps} steps of projected "
        "sign-gradient ascent in the box; 100 (max - f) / (1 + f)).",
        _sharpness_table(out, config),
        "The measures need not agree: the top eigenvalue and the trace are the curvature at "
        "the minimum itself, while epsilon-sharpness is the loss rise a few ascent steps find "
        "in a box whose size grows with the weights (|x| + 1), so it also reflects the "
        "weights' scale and higher-order terms. Welch p: the two-sided Welch t-test of the "
        "two groups' means ('-' where a group's values are all equal).",
        "## Settings",
        markdown_table(["group", "batch size", "steps", "epochs", "learning rate", "seeds"],
                       settings),
        "## Slices",
        f"`slices_1d.png`: 1-D slices along one random filter-normalised direction per seed "
        f"(biases get no direction), span +-{config.slice_span:g}; `slices_2d.png`: the "
        f"{config.slice_num} x {config.slice_num} 2-D slice of seed 0 of each group (the same "
        "directions' random draw, normalised to each minimum's filters); log-spaced contour "
        "levels where the loss spans more than two decades; `slice_surface.png`: one as a "
        "surface. Each whole grid is one compiled, vmapped call, every seed at once "
        "(`gdlab.landscape.slice_2d`).",
        _speed(bench, problem),
        "## Eigenvalue density",
        f"`density.png`: stochastic Lanczos quadrature ({config.density_runs} random starts x "
        f"{config.density_iters} Lanczos steps per minimum), Gaussian-smoothed on one grid, "
        "the mean over seeds with their 10-90% band, log y (`density.npz`).",
        "## Trajectories on their PCA slice, and what the slice hides",
        "Each recorded path minus its end point, decomposed by SVD; the path drawn on the "
        "plane of its top two directions through its end (`trajectory_*.png`). The loss the "
        "run really had at a recorded point differs from the slice's loss at that point's "
        "projection; the table gives the gap, and the figures show both curves.",
        markdown_table(["group", "seed", "explained by 2 PCs", "max |true - slice| loss",
                        "median |true - slice|", "max distance from the plane"], traj_rows),
        "## A curve between two minima",
        f"A quadratic Bezier curve between seeds 0 and 1 of {names[0]} (control point trained "
        f"by adam, {config.curve_steps} steps, one uniform t and a batch of "
        f"{config.curve_batch_size} per step), against the straight path (`curve.png`, "
        "`curves.csv`). Barrier: max loss minus the mean of the two end losses.",
        markdown_table(["pair", "straight max", "straight barrier", "curve max",
                        "curve barrier", "how"], curve_rows),
        "## Time",
        ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + ". Data: `sharpness.csv`, "
        "`slices.npz`, `density.npz`, `trajectory.npz`, `curves.csv`, `timings.json`.",
    ]) + "\n"


if __name__ == "__main__":
    study_main("landscape", __doc__, get_config, run)
