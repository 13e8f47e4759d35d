"""Step costs: what the derivative, the update and the loss measurement cost, and how
the cost grows with data points, parameters and seeds; a time model checked on real runs.

On the teacher-student MLP (`problems.teacher_student`, D=8 inputs, width h, P = 10h + 1
parameters), `gdlab.profile_step` times each part apart on a log grid of data points
(batch size B for the derivative, evaluation-set size for the loss) and widths. Power
laws `t ~ N^a P^b` with 95% intervals are fitted per part on the large sizes; the share
of each part is shown per size; the per-seed cost when S seeds share one vmapped step
shows how much vmapping amortises. Finally a time model (steps x (derivative + update) +
evaluations x loss + calls x fixed cost) predicts the wall time of real `gdlab.train`
runs for several (batch size, eval interval K) pairs, and the error is reported, on one
device and on every device (the model counting devices and seeds per device).

Run:
  python experiments/step_costs.py [--smoke] [--out DIR]     (or: gdlab run step_costs)
Takes about 8 minutes on a 2-core CPU (smoke: about 45 s). Writes DIR/report.md, its
tables as CSV (DIR/*.csv), DIR/results.json and figures (DIR/*.png), and prints DIR.
Timings on a shared machine are noisy: read the spreads next to the medians.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

import gdlab
from gdlab import problems
from gdlab.core import engine
from gdlab.costs.model import (
    PowerLawFit,
    TimeModel,
    eval_overhead,
    fit_power_law,
    host_overhead,
    relative_error,
    run_layout,
)
from gdlab.costs.profile import StepProfile
from gdlab.plots import costs as plots_costs
from gdlab.plots.figures import save
from gdlab.studies import markdown_table, study_dir, study_main, write_csv, write_text

PARTS = ("derivative", "update", "sample", "loss")
ALL_PARTS = (*PARTS, "step")


@dataclasses.dataclass(frozen=True)
class Config:
    d_in: int = 8
    teacher_width: int = 32  # the same teacher (and data) for every student width
    widths: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
    points: tuple[int, ...] = (64, 256, 1024, 4096, 16384)
    grid_parts: tuple[str, ...] = PARTS
    # The fit's range: large enough that fixed per-call costs are small, small enough
    # that the activations (N x h floats) stay in cache.
    fit_points: tuple[int, int] = (256, 4096)
    fit_widths: tuple[int, int] = (64, 512)
    # The update touches only the P parameters: it needs far larger P to leave the
    # fixed cost of its ~20 small ops behind, so it gets its own sweep (and fit).
    update_widths: tuple[int, ...] = (1024, 4096, 16384, 65536)
    update_points: tuple[int, ...] = (256, 4096)
    optimizer: str = "adam"
    learning_rate: float = 0.01
    repeats: int = 7
    min_seconds: float = 5e-3
    seed_counts: tuple[int, ...] = (1, 4, 16, 64, 256, 1024, 4096)
    seeds_batch: int = 64
    seeds_width: int = 64
    seeds_eval_points: int = 256
    seeds_parts: tuple[str, ...] = ALL_PARTS
    model_seeds: int = 16
    model_width: int = 64
    model_data: int = 4096
    # (batch size B, eval interval K, steps) of the runs the time model predicts
    model_runs: tuple[tuple[int, int, int], ...] = (
        (16, 1, 300), (64, 10, 2000), (256, 100, 3000), (1024, 1000, 3000),
        (64, 1000, 10000), (1024, 10, 1000))
    model_repeats: int = 3  # rounds per row, each a run between two profiles
    model_profile_repeats: int = 9
    # Long timed calls, as the runs' chunks are: a short compiled loop pays its start-up
    # (output buffers, waking the thread pool) on few repetitions.
    model_min_seconds: float = 0.02
    # (seeds, B, K, steps) of runs on every device (gdlab's default: on CPU one per core),
    # predicted by the device-aware model (`run_layout` + `TimeModel.for_run`)
    device_runs: tuple[tuple[int, int, int, int], ...] = ((256, 64, 100, 1000),)
    calibration_batch: int = 16
    calibration_steps: int = 300
    calibration_repeats: int = 3
    tolerance: float = 0.2
    smoke: bool = False


def get_config(smoke: bool = False) -> Config:
    """The study's settings; `smoke=True` shrinks every sweep to run in seconds."""
    if not smoke:
        return Config()
    # One problem (h = 8, N = 64) serves every section, the time model's run repeats the
    # calibration's busy run and its profile (8 seeds, B = 16) is the device check's
    # one-device profile (fewer compiles): the smoke run checks that every section runs
    # and reports, not the fits (too few points for them).
    return Config(widths=(8,), points=(64,), grid_parts=("derivative", "loss"),
                  fit_points=(64, 64), fit_widths=(8, 8),
                  update_widths=(8,), update_points=(64,), repeats=3, min_seconds=5e-4,
                  seed_counts=(1, 4), seeds_batch=16, seeds_width=8, seeds_eval_points=64,
                  seeds_parts=("derivative",), model_seeds=8, model_width=8, model_data=64,
                  model_runs=((16, 1, 10),), model_repeats=1, model_profile_repeats=3,
                  model_min_seconds=5e-4, calibration_steps=10, calibration_repeats=1,
                  device_runs=((8, 16, 10, 40),), smoke=True)


def _problem(config: Config, width: int, n: int):
    return _teacher_student(config.d_in, width, n, config.teacher_width)


@functools.lru_cache(maxsize=16)
def _teacher_student(d_in: int, width: int, n: int, teacher_width: int):
    """Built once per size (the sections share problems; building one compiles its
    teacher and data)."""
    return problems.teacher_student(d_in=d_in, hidden=width, n=n,
                                    teacher_hidden=teacher_width, key=0)


def _train_config(config: Config, batch_size: int, steps: int = 1, **schedule):
    schedule = schedule or {"eval_every": 1}
    return gdlab.TrainConfig(optimizer=config.optimizer, learning_rate=config.learning_rate,
                             batch_size=batch_size, steps=steps, **schedule)


def _profile(config: Config, problem, batch_size: int, **kw) -> StepProfile:
    return gdlab.profile_step(problem, _train_config(config, batch_size), repeats=config.repeats,
                              min_seconds=config.min_seconds, **kw)


def _grid(config: Config, widths, points, parts) -> dict[str, np.ndarray]:
    """Seconds (and more) of `parts` at every (data points, width); B = N_eval = N."""
    rows = []
    for width in widths:
        problem = _problem(config, width, max(points))
        for n in points:
            prof = _profile(config, problem, n, eval_points=n, parts=parts)
            get = lambda f, prof=prof: [f(prof.parts[p]) for p in parts]
            rows.append([n, prof.num_params, width, prof.floor.median,
                         *get(lambda c: c.seconds), *get(lambda c: c.timing.spread),
                         *get(lambda c: c.timing.below_floor),
                         *get(lambda c: c.flops or np.nan), *get(_temp_bytes)])
        print(f"  width {width}: P={prof.num_params}: " + ", ".join(
            f"{p} {prof.seconds(p) * 1e6:.4g} µs" for p in parts) + f" at N={n}")
    a = np.array(rows, dtype=np.float64)
    k = len(parts)
    cols = lambda i: a[:, 4 + i * k:4 + (i + 1) * k]
    return {"n": a[:, 0], "p": a[:, 1], "width": a[:, 2], "floor": a[:, 3],
            "seconds": cols(0), "spread": cols(1), "below_floor": cols(2) > 0,
            "flops": cols(3), "temp_bytes": cols(4), "parts": list(parts)}


def _temp_bytes(part) -> float:
    """Temporaries one call of a part needs (XLA's memory analysis; nan if none)."""
    return np.nan if part.memory is None else float(part.memory.temp_bytes)


def scaling_grid(config: Config) -> dict[str, dict]:
    """The main grid (every part but the fused step) and the update's own sweep."""
    return {"main": _grid(config, config.widths, config.points, config.grid_parts),
            "update": _grid(config, config.update_widths, config.update_points, ("update",))}


def _in_fit_range(grid: dict, config: Config) -> np.ndarray:
    (n0, n1), (w0, w1) = config.fit_points, config.fit_widths
    return (grid["n"] >= n0) & (grid["n"] <= n1) & (grid["width"] >= w0) & \
        (grid["width"] <= w1)


def fit_parts(grids: dict, config: Config) -> dict[str, dict[str, PowerLawFit | None]]:
    """Power law t ~ N^a P^b per part: in the fit range ("large") and on the whole grid;
    the update's "large" fit is on its own sweep of large P."""
    main = grids["main"]
    fit_range = _in_fit_range(main, config)
    fits = {}
    up = grids["update"]
    for c, part in enumerate(main["parts"]):
        ok = ~main["below_floor"][:, c]
        grid, sel, col = (up, ~up["below_floor"][:, 0], 0) if part == "update" else \
            (main, fit_range & ok, c)
        fits[part] = {"large": _fit(grid, col, sel), "all": _fit(main, c, ok),
                      "XLA flops, large": _fit(grid, col, sel, "flops")}
    return fits


def _fit(grid: dict, column: int, sel: np.ndarray, what: str = "seconds"
         ) -> PowerLawFit | None:
    try:
        return fit_power_law(grid[what][sel, column], grid["n"][sel], grid["p"][sel],
                             names=("N", "P"))
    except ValueError as err:  # too few resolved points: say so in the report
        print(f"  no fit for {grid['parts'][column]}: {err}")
        return None


def seeds_sweep(config: Config) -> dict[str, np.ndarray]:
    """Every part for S seeds sharing one vmapped call."""
    problem = _problem(config, config.seeds_width, max(config.seeds_eval_points,
                                                       config.seeds_batch))
    seconds, temp = [], []
    for s in config.seed_counts:
        prof = _profile(config, problem, config.seeds_batch, seeds=s,
                        eval_points=config.seeds_eval_points, parts=config.seeds_parts)
        seconds.append([prof.seconds(p) for p in config.seeds_parts])
        temp.append([_temp_bytes(prof.parts[p]) for p in config.seeds_parts])
        print(f"  S={s}: " + ", ".join(f"{p} {prof.seconds(p) / s * 1e6:.3g}"
                                       for p in config.seeds_parts) + " µs per seed")
    return {"seeds": np.array(config.seed_counts, np.float64),
            "seconds": np.array(seconds, np.float64),
            "temp_bytes": np.array(temp, np.float64), "parts": list(config.seeds_parts)}


MODELS = ("parts", "fused")


def _per_step(profile: StepProfile, kind: str) -> float:
    return TimeModel.from_profile(profile, step=kind).step_seconds


def calibrate_host(config: Config, train, profile) -> dict[str, dict[str, float]]:
    """The host's fixed costs, once, on two short runs of one-step chunks at
    B = calibration_batch: per chunk call (`host_overhead` of the run that never
    measures the loss) and per measurement beyond the loss call (`eval_overhead`: the
    training seconds the run measuring after every chunk adds); medians over repeats,
    for each model kind ("parts", "fused": each subtracts its own step time)."""
    b, n = config.calibration_batch, config.calibration_steps
    quiet_cfg = _train_config(config, b, n, eval_every_seconds=1e9, chunk_steps=1)
    busy_cfg = _train_config(config, b, n, eval_every=1)
    out = {kind: {"call": [], "eval": []} for kind in MODELS}
    for _ in range(config.calibration_repeats):
        prof = profile(b)
        quiet, busy = train(quiet_cfg).timings, train(busy_cfg).timings
        for kind in MODELS:
            out[kind]["call"].append(host_overhead(quiet["train_seconds"], n, n,
                                                   _per_step(prof, kind)))
            out[kind]["eval"].append(eval_overhead(busy["train_seconds"],
                                                   quiet["train_seconds"], n))
    return {kind: {k: float(np.median(v)) for k, v in d.items()} for kind, d in out.items()}


def time_model_check(config: Config, profilers: dict | None = None
                     ) -> tuple[list[dict], dict, dict[int, StepProfile]]:
    """Predicted against measured wall time of real `gdlab.train` runs.

    The host's fixed costs are calibrated once (`calibrate_host`). Each (B, K, steps) row
    then runs R rounds, bracketed by R + 1 profiles: profile, run, profile, run, ...,
    profile. Round r's prediction uses the mean of the profiles just before and after
    it, so a change in the machine's load hits prediction and measurement alike; the
    row's error is the median of the rounds' paired errors."""
    problem = _problem(config, config.model_width, config.model_data)
    train = lambda cfg: gdlab.train(problem, cfg, seeds=config.model_seeds,
                                    seed_block=config.model_seeds,
                                    devices=jax.devices()[:1], progress=False)
    # one compile per batch size, measured many times (kept in `profilers`, keyed by
    # (B, seeds), for `devices_check` to reuse)
    profilers = {} if profilers is None else profilers

    def profile(b: int) -> StepProfile:
        key = (b, config.model_seeds)
        if key not in profilers:
            profilers[key] = gdlab.StepProfiler(problem, _train_config(config, b),
                                                seeds=config.model_seeds)
        return profilers[key].measure(repeats=config.model_profile_repeats,
                                    min_seconds=config.model_min_seconds)
    host = calibrate_host(config, train, profile)
    print("  host costs: " + ", ".join(
        f"{kind}: {h['call'] * 1e6:.0f} µs per chunk, {h['eval'] * 1e6:.0f} µs per "
        f"measurement" for kind, h in host.items()))
    out, profiles = [], {}
    for b, k, steps in config.model_runs:
        train_config = _train_config(config, b, steps, eval_every=k)
        chunks = len(engine.chunk_lengths(train_config))
        model = lambda p, kind: TimeModel.from_profile(
            p, step=kind, call_seconds=host[kind]["call"],
            eval_overhead_seconds=host[kind]["eval"])
        profs, measured = [profile(b)], []
        for _ in range(config.model_repeats):
            measured.append(train(train_config).timings)
            profs.append(profile(b))
        profiles.setdefault(b, profs[0])
        wall = np.array([m["total_seconds"] for m in measured])
        pred = {kind: np.array([np.mean([model(p, kind).predict_config(train_config)
                                         for p in profs[r:r + 2]])
                                for r in range(len(measured))]) for kind in MODELS}
        steps_s = np.array([_per_step(p, "parts") for p in profs])
        parts = [model(p, "parts").breakdown(steps, chunks + 1, chunks) for p in profs]
        out.append({
            "batch_size": b, "eval_every": k, "steps": steps,
            "measured": float(np.median(wall)), "measured_runs": wall.tolist(),
            "measured_eval": float(np.median([m["eval_seconds"] for m in measured])),
            "predicted": {kind: float(np.median(v)) for kind, v in pred.items()},
            "error": {kind: float(np.median(relative_error(v, wall)))
                      for kind, v in pred.items()},
            "round_errors": {kind: relative_error(v, wall).tolist()
                             for kind, v in pred.items()},
            "run_spread": float(wall.max() / wall.min() - 1.0),
            "drift": float(steps_s.max() / steps_s.min() - 1.0),
            "breakdown": {key: float(np.mean([p[key] for p in parts])) for key in parts[0]}})
        m = out[-1]
        print(f"  B={b} K={k} steps={steps}: measured {m['measured']:.3f} s, predicted "
              f"{m['predicted']['parts']:.3f} s (parts, {m['error']['parts']:+.1%}), "
              f"{m['predicted']['fused']:.3f} s (fused, {m['error']['fused']:+.1%}); runs "
              f"spread {m['run_spread']:.0%}, profile drift {m['drift']:.0%}")
    return out, host, profiles


def devices_check(config: Config, host: dict, profilers: dict | None = None) -> list[dict]:
    """Predicted against measured wall time of runs on every device (gdlab's default).

    The device-aware model profiles one seed block (`run_layout(...).seed_block`, what a
    device vmaps together), alone and on every device at once (its concurrency), and
    scales it to the seeds of one device (`TimeModel.for_run`); the one-device model
    profiles all S seeds on one device, as if it trained them alone. Each round runs,
    then profiles; the host costs are the ones `time_model_check` calibrated (fused)."""
    problem = _problem(config, config.model_width, config.model_data)
    out = []
    for seeds, b, k, steps in config.device_runs:
        train_config = _train_config(config, b, steps, eval_every=k)
        layout = run_layout(problem, train_config, seeds)
        block = gdlab.StepProfiler(problem, train_config, seeds=layout.seed_block,
                                   devices=layout.devices)
        whole = (profilers or {}).get((b, seeds)) or gdlab.StepProfiler(
            problem, train_config, seeds=seeds)  # the time model's, when it profiled it
        train = lambda c=train_config, n=seeds: gdlab.train(problem, c, seeds=n, progress=False)
        train()  # compile
        kw = dict(step="fused", call_seconds=host["fused"]["call"],
                  eval_overhead_seconds=host["fused"]["eval"])
        measure = lambda p: p.measure(repeats=config.model_profile_repeats,
                                      min_seconds=config.model_min_seconds)
        rounds, together = [], []
        for _ in range(config.model_repeats):
            wall = train().timings["total_seconds"]
            prof = measure(block)
            together.append(prof.concurrency or 1.0)
            rounds.append((wall, TimeModel.for_run(prof, layout, **kw)
                           .predict_config(train_config),
                           TimeModel.from_profile(measure(whole), **kw)
                           .predict_config(train_config)))
        wall, aware, alone = np.median(np.array(rounds), axis=0)
        out.append({"seeds": seeds, "batch_size": b, "eval_every": k, "steps": steps,
                    "layout": dataclasses.asdict(layout), "measured": float(wall),
                    "concurrency": float(np.median(together)),
                    "device_aware": float(aware), "one_device": float(alone),
                    "error_device_aware": float(np.median([relative_error(r[1], r[0])
                                                           for r in rounds])),
                    "error_one_device": float(np.median([relative_error(r[2], r[0])
                                                         for r in rounds]))})
        m = out[-1]
        print(f"  S={seeds} on {layout.devices} devices (block {layout.seed_block}): measured "
              f"{wall:.3f} s, device-aware {aware:.3f} s ({m['error_device_aware']:+.1%}), "
              f"one-device {alone:.3f} s ({m['error_one_device']:+.1%})")
    return out


def _columns(arrays: dict) -> pd.DataFrame:
    """One row per measured point: the 1-D arrays of the most common length as columns,
    and (points, parts) arrays as one column per part ("seconds/derivative", ...)."""
    parts = arrays.get("parts")
    values = {k: np.asarray(v) for k, v in arrays.items() if k != "parts"}
    lengths = [len(v) for v in values.values() if v.ndim >= 1]
    n = max(set(lengths), key=lengths.count)
    columns = {}
    for k, v in values.items():
        if v.ndim == 1 and len(v) == n:
            columns[k] = v
        elif v.ndim == 2 and len(v) == n and parts is not None and v.shape[1] == len(parts):
            columns.update({f"{k}/{part}": v[:, i] for i, part in enumerate(parts)})
    return pd.DataFrame(columns)


def run(config: Config, out=None) -> Path:
    """Run the study and write its directory; returns the path."""
    out = study_dir("step_costs", out)
    start = time.perf_counter()
    print("scaling grid ...")
    grids = scaling_grid(config)
    fits = fit_parts(grids, config)
    print("seeds sweep ...")
    seeds = seeds_sweep(config)
    print("time model ...")
    profilers: dict = {}
    model, host, profiles = time_model_check(config, profilers)
    print("time model on every device ...")
    devices = devices_check(config, host, profilers)
    _figures(config, grids, fits, seeds, model, out)
    seconds = time.perf_counter() - start
    listed = lambda d: {k: np.asarray(v).tolist() for k, v in d.items()}
    results = {"grids": {name: listed(g) for name, g in grids.items()},
               "fits": {p: {s: f and f.describe() for s, f in d.items()}
                        for p, d in fits.items()},
               "seeds": listed(seeds), "time_model": model, "host_costs": host,
               "devices_check": devices,
               "model_profiles": {b: p.describe() for b, p in profiles.items()},
               "config": dataclasses.asdict(config), "seconds": seconds}
    write_text(out / "results.json", json.dumps(results, indent=1, default=str))
    for name, grid in grids.items():  # tidy tables: one row per measured point / part
        write_csv(out / f"grid_{name}.csv", _columns(grid))
    write_csv(out / "seeds.csv", _columns(seeds))
    write_csv(out / "model_profiles.csv", pd.concat(
        [p.to_dataframe().assign(batch_size=b) for b, p in profiles.items()],
        ignore_index=True))
    write_text(out / "report.md", _report(config, grids, fits, seeds, model, host, profiles,
                                            seconds) + _devices_report(devices))
    print(f"step_costs study written to {out} ({seconds:.0f} s)")
    _teacher_student.cache_clear()
    return out


def _figures(config, grids, fits, seeds, model, out: Path) -> None:
    main, up = grids["main"], grids["update"]
    floor = float(np.median(main["floor"]))
    labels = {"derivative": "batch size B", "update": "batch size B (no effect expected)",
              "sample": "batch size B", "loss": "evaluation points N_eval"}
    fit_range = _in_fit_range(main, config)
    for c, part in enumerate(main["parts"]):
        n, p, sec, mask = main["n"], main["p"], main["seconds"][:, c], fit_range
        if part == "update":  # with its own large-P sweep, on which it is fitted
            n, p = np.concatenate([n, up["n"]]), np.concatenate([p, up["p"]])
            sec = np.concatenate([sec, up["seconds"][:, 0]])
            mask = np.concatenate([np.zeros_like(fit_range), np.ones(len(up["n"]), bool)])
        save(plots_costs.scaling(part, n, p, sec, fits[part]["large"], mask, floor,
                                 n_label=labels[part]), out / f"scaling_{part}.png")
    for axis, fixed in (("n", "width"), ("width", "n")):
        values = sorted(set(main[fixed]))
        value = values[len(values) // 2]
        sel = main[fixed] == value
        order = np.argsort(main[axis][sel])
        sec = main["seconds"][sel][order]
        name = "N" if axis == "n" else "h"
        what = f"width h={value:g}" if fixed == "width" else f"N={value:g} data points"
        save(plots_costs.stacked_shares([f"{name}={v:g}" for v in main[axis][sel][order]],
                                        sec / sec.sum(axis=1, keepdims=True), main["parts"],
                                        f"share of each part (loss measured every step), "
                                        f"{what}"), out / f"shares_vs_{name}.png")
    save(plots_costs.per_seed_cost(seeds["seeds"], seeds["seconds"], config.seeds_parts,
                                   f"per-seed cost, B={config.seeds_batch}, "
                                   f"h={config.seeds_width}, N_eval={config.seeds_eval_points}"),
         out / "per_seed_cost.png")
    measured = np.array([m["measured"] for m in model])
    pred = np.array([[m["predicted"]["parts"], m["predicted"]["fused"]] for m in model])
    save(plots_costs.predicted_vs_measured(
        measured, pred, ["parts (derivative + update + sample)", "fused step"],
        [f"B={m['batch_size']},K={m['eval_every']}" for m in model], config.tolerance,
        "time model against gdlab.train"), out / "time_model.png")


def _devices_report(devices: list[dict]) -> str:
    """The section on runs that use every device."""
    rows = [[d["seeds"], d["layout"]["devices"], d["layout"]["seeds_per_device"],
             d["layout"]["seed_block"], f"{d['concurrency']:.2f}", d["batch_size"],
             d["eval_every"], d["steps"],
             f"{d['measured']:.3f}", f"{d['device_aware']:.3f}",
             f"{d['error_device_aware']:+.1%}", f"{d['one_device']:.3f}",
             f"{d['error_one_device']:+.1%}"] for d in devices]
    return "\n\n".join([
        "\n## Time model on every device",
        "`gdlab.train` shards the seeds over every device (on CPU, one per core) and each "
        "device runs its seeds block by block. The device-aware model "
        "(`gdlab.costs.run_layout` + `TimeModel.for_run`) profiles one seed block on one "
        "device, alone and on every device at once ('devices at once': its speed per "
        "device then, against alone: 1 = side by side at full speed, 1/devices = they "
        "take turns, as when other processes hold the cores), and scales it to a device's "
        "seeds; the one-device model profiles all S seeds vmapped together on one device.",
        markdown_table(["S", "devices", "seeds / device", "block", "devices at once", "B",
                        "K", "steps",
                        "measured s", "device-aware s", "error", "one-device s", "error"],
                       rows)]) + "\n"


def _fit_rows(fits) -> list[list]:
    rows = []
    for part, by_scope in fits.items():
        for scope, f in by_scope.items():
            if f is None:
                rows.append([part, scope, "-", "-", "-", "-"])
                continue
            rows.append([part, scope, f.num_points] +
                        [f"{a:.2f} [{lo:.2f}, {hi:.2f}]" for a, (lo, hi)
                         in zip(f.exponents, f.ci, strict=True)] + [f"{f.r2:.3f}"])
    return rows


def _grid_rows(grid) -> list[list]:
    rows = []
    for i in range(len(grid["n"])):
        cells = []
        for c in range(len(grid["parts"])):
            s = grid["seconds"][i, c]
            text = f"< {s:.2e}" if grid["below_floor"][i, c] else f"{s:.2e}"
            cells.append(f"{text} ({grid['flops'][i, c] / s / 1e9:.1f}; "
                         f"{grid['temp_bytes'][i, c] / 1024:.0f} KiB)")
        rows.append([int(grid["n"][i]), int(grid["width"][i]), int(grid["p"][i]), *cells])
    return rows


def _report(config, grids, fits, seeds, model, host, profiles, seconds) -> str:
    main, up = grids["main"], grids["update"]
    s = seeds["seeds"]
    per_seed = seeds["seconds"] / s[:, None]
    temp_kib = seeds["temp_bytes"] / 1024
    seed_rows = [[int(s[i])] + [f"{per_seed[i, c] * 1e6:.3g} ({temp_kib[i, c]:.0f})"
                                for c in range(per_seed.shape[1])] for i in range(len(s))]
    best = per_seed.argmin(axis=0)
    amort = [f"{n} {per_seed[0, c] / per_seed[best[c], c]:.2g}x at S={int(s[best[c]])} "
             f"({per_seed[0, c] / per_seed[-1, c]:.2g}x at S={int(s[-1])})"
             for c, n in enumerate(config.seeds_parts)]
    model_rows = [[m["batch_size"], m["eval_every"], m["steps"], f"{m['measured']:.3f}",
                   f"{m['run_spread']:.0%}", f"{m['measured_eval']:.3f}",
                   f"{m['predicted']['parts']:.3f}", f"{m['error']['parts']:+.1%}",
                   f"{m['predicted']['fused']:.3f}", f"{m['error']['fused']:+.1%}",
                   " ".join(f"{e:+.0%}" for e in m["round_errors"]["fused"]),
                   f"{m['drift']:.0%}",
                   " / ".join(f"{v:.3f}" for v in m["breakdown"].values())] for m in model]
    worst = {k: max(abs(m["error"][k]) for m in model) for k in ("parts", "fused")}
    b0 = model[0]["batch_size"]
    prof_rows = [[r[0], r[1], r[2], r[3], r[4], r[5], r[7], r[8], r[9]]
                 for r in profiles[b0].rows()]
    (n0, n1), (w0, w1) = config.fit_points, config.fit_widths
    return "\n\n".join([
        "# Step costs: what each part of training costs" + (" (smoke)" if config.smoke else ""),
        f"Problem: teacher-student tanh MLP {config.d_in}-h-1 (P = {config.d_in + 2}h + 1), "
        f"optimizer {config.optimizer}, on {profiles[b0].device}. Each part is timed by "
        "`gdlab.profile_step` inside a compiled loop of R repetitions (each feeding the "
        "next, so nothing is hoisted), minus the same loop's empty call, divided by R; "
        f"median of {config.repeats} timed calls, each doing >= {config.min_seconds * 1e3:g} "
        "ms of work. FLOP/s uses XLA's flop estimate of the part compiled alone (a loop "
        "body is counted once by XLA, so estimates always come from the un-looped "
        "function). Dispatch floor (an empty compiled call): "
        f"{np.median(main['floor']) * 1e6:.1f} µs.",
        "## Scaling: t ~ N^a P^b (95% intervals)",
        "N is the batch size B for the derivative, the sample and the update (whose cost "
        "should not depend on it), and the evaluation-set size for the loss. 'large': "
        f"{n0} <= N <= {n1} and {w0} <= h <= {w1}: large enough that fixed per-call costs "
        "are small, small enough that the activations (N x h floats) stay in this CPU's "
        "caches; beyond that (N x h >~ 4M floats) the parts become memory-bound and the "
        "achieved FLOP/s falls several-fold (see the grid table), which is not a property "
        "of the algorithm. The update's 'large' fit uses its own sweep of h in "
        f"{list(config.update_widths)} (P up to {int(up['p'].max())}) at N in "
        f"{list(config.update_points)}; below that its ~20 small operations cost a fixed "
        "few microseconds whatever P. 'all': every point of the main grid. 'XLA flops, large': "
        "the same fit of XLA's flop estimate instead of the time: the work itself, so a "
        "time exponent above it is the machine's throughput falling, not more work.",
        markdown_table(["part", "sizes", "points", "a (vs N)", "b (vs P)", "R^2"],
                       _fit_rows(fits)),
        "Figures: `scaling_<part>.png` (dashed: the 'large' fit), `shares_vs_N.png` and "
        "`shares_vs_h.png` (share of derivative + update + sample + loss, the loss measured "
        "every step).",
        "### Every grid point: seconds per call, one seed (achieved GFLOP/s; temporaries "
        "of one call from XLA's memory analysis); '<' = below floor",
        markdown_table(["N", "h", "P", *main["parts"]], _grid_rows(main)),
        markdown_table(["N", "h", "P", "update"], _grid_rows(up)),
        "## Seeds sharing one vmapped step",
        f"B={config.seeds_batch}, h={config.seeds_width}, N_eval={config.seeds_eval_points}; "
        "microseconds per seed. Best amortisation against S=1: " + "; ".join(amort) +
        ". On a CPU the gain stops once the S seeds' activations leave the cache (which is "
        "why `gdlab.train` vmaps seeds in cache-sized chunks there). Figure: "
        "`per_seed_cost.png`.",
        markdown_table(["S", *(f"{p} µs/seed (temp KiB, all S)" for p in config.seeds_parts)],
                       seed_rows),
        "## Time model against real runs",
        "predicted = steps x step + evaluations x (one loss call made right after a step, "
        "as training makes it: `StepProfile.eval_seconds`, + the host's cost per "
        "measurement) + chunks x (the host's cost per chunk call). 'fused': step = the "
        "profiled fused step, the one `gdlab.train`'s chunks run (the model to use); "
        "'parts': step = derivative + update + sample timed apart, which shows how the "
        "step divides (at large B their sum falls below the fused step: each part timed "
        "alone keeps its own inputs in cache). Profiles here time calls of >= "
        f"{config.model_min_seconds * 1e3:g} ms, as long chunks are: a short compiled loop "
        "pays its start-up on few repetitions. The host's fixed "
        "costs, invisible to a profile of compiled parts, are calibrated once, at "
        f"B={config.calibration_batch}, on {config.calibration_steps}-step runs of one-step "
        "chunks (`gdlab.costs.host_overhead` on one that never measures the loss; "
        "`gdlab.costs.eval_overhead`: the training seconds that measuring after every "
        "step adds to the same chunks, as a chunk started right after a measurement runs "
        "on caches the measurement evicted; median of "
        f"{config.calibration_repeats}): "
        + "; ".join(f"{kind}: {h['call'] * 1e6:.0f} µs per chunk call, {h['eval'] * 1e6:.0f} "
                    "µs per measurement" for kind, h in host.items()) + ". "
        f"Each row then runs {config.model_repeats} rounds bracketed by profiles (profile, "
        "run, profile, run, ..., profile); a round's prediction uses the mean of the "
        "profiles just before and after its run, so a change in the machine's load (other "
        "processes share this CPU and its caches) hits prediction and measurement alike; "
        "the row's error is the median of its rounds' errors. 'runs spread' (max/min - 1 "
        "of the measured runs) and 'profile drift' (of the profiled step) show how much the "
        "machine moved during the row. The measured runs: "
        f"{config.model_seeds} seeds of h={config.model_width}, N={config.model_data} "
        "(loss on all of them), one device, one seed block; measured = "
        "`runs.timings['total_seconds']` (compile excluded). Worst |error|: "
        f"{worst['parts']:.1%} (parts), {worst['fused']:.1%} (fused); target "
        f"{config.tolerance:.0%}. Figure: `time_model.png`.",
        markdown_table(["B", "K", "steps", "measured s", "runs spread", "of which measuring s",
                        "predicted (parts) s", "error", "predicted (fused) s", "error",
                        "round errors (fused)", "profile drift",
                        "train / measure / overhead s (parts)"],
                       model_rows),
        f"### Profile at B={b0} ({config.model_seeds} seeds)",
        markdown_table(["part", "median", "spread", "share", "R", "XLA flops", "FLOP/s",
                        "memory (temp / total)", "single call"], prof_rows),
        f"Total time: {seconds:.0f} s. All numbers: `results.json`; tables as CSV: "
        "`grid_*.csv` (one row per measured N, P), `seeds.csv`, `model_profiles.csv` (one "
        "row per part and batch size).",
    ]) + "\n"


if __name__ == "__main__":
    study_main("step_costs", __doc__, get_config, run)
