"""Loss-evaluation frequency: what measuring the full-data loss costs, and what measuring
it less often loses.

Trains the same seeds of a teacher-student MLP (Adam on mini-batches, so the loss
fluctuates) with the loss measured every step, every 10, 100 and 1000 steps, every T
seconds, and never (only at the start and the end). Every schedule follows the same
trajectory (same seeds, keys and steps), so the every-step run is the truth: the report
gives each schedule's wall time, the fraction of it spent measuring, and how far its
recorded best step and best loss are from the true ones. A second panel shows why the
loss should not be measured on a random subset instead: the spread of subset estimates
around the full-data loss, for several subset sizes.

Run:
  python experiments/loss_frequency.py [--smoke] [--out DIR]   (or: gdlab run loss_frequency)
Takes about 1.5 minutes on a 2-core CPU (smoke: about 10 s). Writes DIR/report.md,
DIR/results.json and figures (DIR/*.png), and prints DIR.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import gdlab
from gdlab import problems
from gdlab.plots import costs as plots_costs
from gdlab.plots.figures import save
from gdlab.studies import frame_table, study_dir, study_main, write_csv, write_text


@dataclasses.dataclass(frozen=True)
class Config:
    d_in: int = 8
    width: int = 32
    n: int = 4096
    noise: float = 0.1
    optimizer: str = "adam"
    learning_rate: float = 0.02
    batch_size: int = 256
    steps: int = 6000
    seeds: int = 8
    every: tuple[int, ...] = (1, 10, 100, 1000)
    seconds_fraction: float = 0.1  # every T seconds, T = this x the never-measuring wall time
    repeats: int = 5  # timed runs of each schedule but every step (which runs once)
    subset_sizes: tuple[int, ...] = (16, 64, 256, 1024)
    subset_draws: int = 500
    smoke: bool = False


def get_config(smoke: bool = False) -> Config:
    """The study's settings; `smoke=True` shrinks steps and data to run in seconds."""
    if not smoke:
        return Config()
    return Config(width=8, n=256, steps=200, seeds=2, every=(1, 10), repeats=1,
                  subset_sizes=(16, 64), subset_draws=50, smoke=True)


@dataclasses.dataclass(frozen=True)
class Schedule:
    name: str
    eval_every: int | None = None
    eval_every_seconds: float | None = None


def _train(problem, config: Config, schedule: Schedule) -> gdlab.Runs:
    cfg = gdlab.TrainConfig(optimizer=config.optimizer, learning_rate=config.learning_rate,
                            steps=config.steps, batch_size=config.batch_size,
                            eval_every=schedule.eval_every,
                            eval_every_seconds=schedule.eval_every_seconds)
    return gdlab.train(problem, cfg, seeds=config.seeds, key=0, devices=jax.devices()[:1],
                       seed_block=config.seeds, progress=False)


def time_schedules(problem, config: Config) -> tuple[dict[str, list[gdlab.Runs]], Schedule]:
    """Every schedule's runs; repeats interleaved so a noisy machine hits all alike."""
    never = Schedule("never (start and end)", eval_every=config.steps)
    first = _train(problem, config, never)  # sets T; a warm-up unless there is one repeat
    t = config.seconds_fraction * first.timings["total_seconds"]
    schedules = [Schedule(f"every {k}", eval_every=k) for k in config.every if k < config.steps]
    schedules += [Schedule(f"every {t:.3g} s", eval_every_seconds=t), never]
    runs = {never.name: [first]} if config.repeats == 1 else {}
    for rep in range(config.repeats):
        for s in schedules:
            if (s.eval_every == 1 and rep > 0) or (s is never and config.repeats == 1):
                continue  # the slow truth run runs once
            runs.setdefault(s.name, []).append(_train(problem, config, s))
    order = [s.name for s in schedules]
    print("  " + ", ".join(f"{n}: {_median(runs[n], 'total_seconds'):.3f} s" for n in order))
    return {n: runs[n] for n in order}, schedules


def _median(runs: list[gdlab.Runs], key: str) -> float:
    return float(np.median([r.timings[key] for r in runs]))


def schedule_table(runs: dict[str, list[gdlab.Runs]], truth: gdlab.Runs,
                   never: str) -> list[dict]:
    """Wall time, measuring fraction, and recorded-versus-true best per schedule."""
    true_loss_ST = truth.loss_history
    true_best_S = true_loss_ST.min(axis=1)
    true_step_S = truth.eval_steps[true_loss_ST.argmin(axis=1)]
    base = [r.timings["total_seconds"] for r in runs[never]]
    rows = []
    for name, rs in runs.items():
        r = rs[0]
        rec = r.loss_history.argmin(axis=1)
        rec_step_S, rec_best_S = r.eval_steps[rec], r.loss_history.min(axis=1)
        wall = _median(rs, "total_seconds")
        rows.append({"schedule": name, "runs": len(rs), "evaluations": len(r.eval_steps),
                     "wall": wall, "measuring": _median(rs, "eval_seconds"),
                     "fraction": float(np.median([x.timings["eval_seconds"] /
                                                  x.timings["total_seconds"] for x in rs])),
                     # paired with the never-measuring run of the same round (drift)
                     "vs_never": float(np.median([x.timings["total_seconds"] / b - 1.0
                                                  for x, b in zip(rs, base, strict=False)])),
                     "step_gap": float(np.median(np.abs(rec_step_S - true_step_S))),
                     "step_gap_max": int(np.max(np.abs(rec_step_S - true_step_S))),
                     "loss_excess": float(np.median(rec_best_S / true_best_S - 1.0)),
                     "loss_excess_max": float(np.max(rec_best_S / true_best_S - 1.0)),
                     "same_trajectory": bool(np.allclose(
                         r.final_loss, truth.final_loss, rtol=1e-4, atol=1e-7))})
    return rows


def subset_errors(problem, params_S, sizes, draws: int, key: int = 0) -> dict[int, np.ndarray]:
    """Relative error of the loss on random subsets (without replacement) against the
    full-data loss, for every seed's params: (draws x S) per subset size."""
    rng = np.random.default_rng(key)
    n = problem.num_data
    loss_S = jax.vmap(problem.loss, (0, None))
    full_S = jax.jit(loss_S)(params_S, problem.data)
    on_subsets = jax.jit(jax.vmap(lambda idx: loss_S(
        params_S, jax.tree.map(lambda a: jnp.take(a, idx, axis=0), problem.data))))
    out = {}
    for m in sizes:
        idx_RM = np.argsort(rng.random((draws, n)), axis=1)[:, :m].astype(np.int32)
        out[m] = np.asarray(on_subsets(jnp.asarray(idx_RM)) / full_S[None, :] - 1.0)
    return out


def run(config: Config, out=None) -> Path:
    """Run the study and write its directory; returns the path."""
    out = study_dir("loss_frequency", out)
    start = time.perf_counter()
    problem = problems.teacher_student(d_in=config.d_in, hidden=config.width, n=config.n,
                                       noise=config.noise, key=0)
    runs, schedules = time_schedules(problem, config)
    truth = runs[schedules[0].name][0]
    if schedules[0].eval_every != 1:
        raise ValueError("the first schedule must be every step (the truth)")
    never = schedules[-1].name
    rows = schedule_table(runs, truth, never)
    errors = subset_errors(problem, jax.tree.map(jnp.asarray, truth.params),
                           [m for m in config.subset_sizes if m <= config.n],
                           config.subset_draws)
    _figures(config, runs, truth, rows, errors, out)
    seconds = time.perf_counter() - start
    results = {"schedules": rows, "subset_relative_error": {
        m: {"std": float(e.std()), "q05": float(np.quantile(e, 0.05)),
            "q95": float(np.quantile(e, 0.95))} for m, e in errors.items()},
        "config": dataclasses.asdict(config), "seconds": seconds}
    write_text(out / "results.json", json.dumps(results, indent=1))
    write_csv(out / "schedules.csv", rows)
    write_csv(out / "subsets.csv", _subset_rows(errors, truth))
    write_text(out / "report.md", _report(config, pd.read_csv(out / "schedules.csv"),
                                          pd.read_csv(out / "subsets.csv"), truth, problem,
                                          seconds))
    print(f"loss_frequency study written to {out} ({seconds:.0f} s)")
    return out


def _figures(config, runs, truth, rows, errors, out: Path) -> None:
    labels = [r["schedule"].replace(" (start and end)", "") for r in rows]
    meas = np.array([r["measuring"] for r in rows])
    save(plots_costs.schedule_costs(labels, np.array([r["wall"] for r in rows]) - meas, meas,
                                    f"{config.steps} steps, {config.seeds} seeds: wall time "
                                    "(label: share measuring)"), out / "schedule_costs.png")
    # the seed whose best loss lies furthest below its final loss
    seed = int(np.argmax(truth.final_loss / truth.loss_history.min(axis=1)))
    recorded = [(name, rs[0].eval_steps, rs[0].loss_history[seed])
                for name, rs in runs.items() if name != "every 1"]
    save(plots_costs.recorded_losses(truth.eval_steps, truth.loss_history[seed], recorded,
                                     config.steps // 2, f"seed {seed}, second half of "
                                     "training: what each schedule saw"),
         out / "recorded_losses.png")
    save(plots_costs.subset_spread(list(errors), [e.ravel() for e in errors.values()],
                                   f"loss on a random subset vs all {config.n} points"),
         out / "subset_spread.png")


def _late_gain(truth: gdlab.Runs) -> tuple[float, float]:
    """Median relative std of the true loss over the last 20% of training, and median
    final / best - 1: the scale a subset estimate must resolve."""
    late = truth.loss_history[:, int(0.8 * truth.loss_history.shape[1]):]
    wiggle = float(np.median(late.std(axis=1) / late.mean(axis=1)))
    gain = float(np.median(truth.final_loss / truth.loss_history.min(axis=1) - 1.0))
    return wiggle, gain


def _subset_rows(errors: dict[int, np.ndarray], truth: gdlab.Runs) -> list[dict]:
    gain = _late_gain(truth)[1]
    return [{"subset_size": m, "relative_std": float(e.std()),
             "q05": float(np.quantile(e, 0.05)), "q95": float(np.quantile(e, 0.95)),
             "off_by_more_than_gap": float(np.mean(np.abs(e) > gain))}
            for m, e in errors.items()]


def _schedule_table(frame) -> str:
    frame = frame.copy()
    frame["step_gap"] = [f"{g:.0f} (max {m})" for g, m in
                         zip(frame["step_gap"], frame.pop("step_gap_max"), strict=True)]
    frame["loss_excess"] = [f"{g:.2%} (max {m:.2%})" for g, m in
                            zip(frame["loss_excess"], frame.pop("loss_excess_max"), strict=True)]
    frame = frame[["schedule", "runs", "evaluations", "wall", "vs_never", "fraction",
                   "step_gap", "loss_excess", "same_trajectory"]]
    return frame_table(frame, formats={"wall": "{:.3f}", "vs_never": "{:+.1%}",
                                       "fraction": "{:.1%}",
                                       "same_trajectory": lambda x: "yes" if x else "NO"},
                       headers={"wall": "wall s", "vs_never": "vs never",
                                "fraction": "measuring share", "step_gap": "best-step gap",
                                "loss_excess": "best-loss excess",
                                "same_trajectory": "same trajectory"})


def _report(config, rows, subsets, truth, problem, seconds) -> str:
    """The report, its tables rendered from schedules.csv (`rows`) and subsets.csv."""
    wiggle, gain = _late_gain(truth)
    subsets = subsets.assign(range=[f"[{a:+.2%}, {b:+.2%}]" for a, b in
                                    zip(subsets.pop("q05"), subsets.pop("q95"), strict=True)])
    subsets = subsets[["subset_size", "relative_std", "range", "off_by_more_than_gap"]]
    rows = rows.to_dict("records")
    every_1000 = next((r for r in rows if r["schedule"] == "every 1000"), None)
    verdict = ("" if every_1000 is None else
               f"Measuring every 1000 steps costs {every_1000['vs_never']:+.1%} wall time "
               f"against never measuring ({every_1000['fraction']:.1%} of its time is spent "
               "measuring).")
    return "\n\n".join([
        "# Loss-evaluation frequency" + (" (smoke)" if config.smoke else ""),
        f"{problem.description}, label noise {config.noise}; {config.optimizer} lr "
        f"{config.learning_rate}, batch {config.batch_size}, {config.steps} steps, "
        f"{config.seeds} seeds on one device. The loss is always measured on all "
        f"{config.n} training points. Every schedule follows the same trajectory (checked: "
        "final losses agree), so the every-step run gives the true best step and loss. Wall "
        "time: `runs.timings['total_seconds']` (compile excluded), median of "
        f"{config.repeats} rounds of runs, every schedule once per round (the every-step "
        "run: only in the first); 'vs never': median over rounds of the wall time against "
        "the same round's run that measures only at the start and the end. Best-step gap "
        "and best-loss "
        "excess: medians over seeds of |recorded - true best step| and recorded best / true "
        "best - 1.",
        _schedule_table(pd.DataFrame(rows)),
        verdict,
        "The every-T-seconds schedule checks the clock between compiled chunks of "
        f"`chunk_steps` = {gdlab.TrainConfig(eval_every=1).chunk_steps} steps, so it pays a "
        "host round trip that often, besides its measurements; every K steps pays one per "
        "K steps.",
        "Figures: `schedule_costs.png` (wall time split into training and measuring), "
        "`recorded_losses.png` (one seed's true loss and what each schedule recorded).",
        "## Why not measure on a random subset instead",
        f"Relative error of the loss on a random subset of the data (without replacement, "
        f"{config.subset_draws} draws per seed) against the full-data loss, at the final "
        f"params of the {config.seeds} seeds. For scale: in the last 20% of training the "
        f"true loss fluctuates by {wiggle:.2%} (relative std), and the final loss is "
        f"{gain:.2%} above the best one (median over seeds). A subset whose error exceeds "
        "that cannot tell the best checkpoint from the last one. Figure: "
        "`subset_spread.png`.",
        frame_table(subsets, formats={"relative_std": "{:.2%}", "off_by_more_than_gap":
                                      "{:.0%}"},
                    headers={"subset_size": "subset size", "relative_std": "relative std",
                             "range": "5%-95% range", "off_by_more_than_gap":
                             "draws off by more than best-vs-final gap"}),
        f"Total time: {seconds:.0f} s. Data: `schedules.csv` and `subsets.csv` (these "
        "tables), `results.json` (all numbers and the config).",
    ]) + "\n"


if __name__ == "__main__":
    study_main("loss_frequency", __doc__, get_config, run)
