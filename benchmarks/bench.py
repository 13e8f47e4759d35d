"""The benchmark suite (`python benchmarks/run.py`): gdlab against what users would otherwise write
and against the machine's own matmul limit, measured side by side in one run.

Every side of a workload (gdlab; (a) a per-seed flax + optax loop; (b) a bare
`jit(vmap(scan))`; (c) torch.func when torch is installed) runs in its own worker process
(`benchmarks.bench_worker`): gdlab with its defaults, the baselines with JAX's (one CPU
device), so each gets the settings a user would have. Workers compile first, then their
timed runs are interleaved round by round, so drift on a shared machine hits every side
alike; ratios are medians of the per-round ratios. Compile time is reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import baselines, workloads
from gdlab import studies as report
from gdlab.core.devices import usable_cores

ROOT = Path(__file__).resolve().parent.parent  # the checkout: benchmarks/ is not installed

SIDES = {"gdlab": "gdlab", "flax_loop": "(a) per-seed flax+optax loop",
         "bare": "(b) bare jit(vmap(scan))", "torch": "(c) torch.func ensemble"}
W4 = ("W4-every10", "W4-every100", "W4-every1000", "W4-never")
SCALE = {"cpu": {"W1": 65_536, "W3": 4_096},
         "gpu": {"W1": 1_048_576, "W2": 16_384, "W3": 4_096}}


class WorkerError(RuntimeError):
    """A benchmark worker could not build or run its side."""


class Worker:
    """A `benchmarks.bench_worker` process: compiled on start, one timed run per `run()`."""

    def __init__(self, spec: dict, gdlab_defaults: bool):
        env = dict(os.environ)
        if not gdlab_defaults:
            env["GDLAB_CPU_DEVICES"] = "1"  # JAX's own default: one CPU device
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd=ROOT)
        self.info = self._ask(json.dumps(spec))
        if not self.info.get("ready"):
            self.close()
            raise WorkerError(self.info.get("error", "worker failed to start"))

    def _ask(self, line: str) -> dict:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise WorkerError(f"worker exited with code {self.proc.wait()}")
        return json.loads(answer)

    def run(self) -> dict:
        return self._ask("run")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def interleaved(specs: dict[str, tuple[dict, bool]], repeats: int,
                log: Callable[[str], None]) -> dict[str, dict]:
    """Start one worker per side (compiling one at a time), then time `repeats` rounds,
    each side once per round. Returns per side its runs and info, or its error."""
    workers, out = {}, {}
    try:
        for side, (spec, gdlab_defaults) in specs.items():
            log(f"  compiling {side}")
            try:
                workers[side] = Worker(spec, gdlab_defaults)
                out[side] = {"info": workers[side].info.get("info", {}), "runs": []}
            except WorkerError as exc:
                out[side] = {"error": str(exc)}
        for r in range(repeats):
            log(f"  round {r + 1}/{repeats}")
            for side, worker in workers.items():
                out[side]["runs"].append(worker.run())
    finally:
        for worker in workers.values():
            worker.close()
    return out


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    v = np.asarray(values, np.float64)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
            "runs": len(v)}


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, float]:
    """Summary of the per-round ratios numerator_r / denominator_r."""
    return summary(np.asarray(numerator) / np.asarray(denominator))


def measure_peak(repeats: int, tiny: bool, log) -> dict:
    """Best float32 matmul FLOP/s with gdlab's device setup and with JAX's default."""
    log("peak matmul FLOP/s")
    spec = {"runner": "peak", "tiny": tiny}
    sides = interleaved({"gdlab_devices": (spec, True), "jax_default": (spec, False)},
                        repeats, log)
    per = {k: summary([r["flops_per_second"] for r in v["runs"]]) for k, v in sides.items()}
    return {"flops_per_second": max(p["median"] for p in per.values()), "by_setup": per,
            "platform": sides["gdlab_devices"]["info"].get("platform")}


def workload_sides(name: str, tiny: bool, with_torch: bool) -> dict[str, tuple[dict, bool]]:
    spec = lambda runner: {"runner": runner, "workload": name, "tiny": tiny}
    sides = {"gdlab": (spec("gdlab"), True), "bare": (spec("bare"), False),
             "flax_loop": (spec("flax_loop"), False)}
    if with_torch:
        sides["torch"] = (spec("torch"), False)
    return sides


def describe_side(w: workloads.Workload, side: dict, peak: float) -> dict:
    """Seconds, seed-steps/s, FLOP/s and fraction of peak of one side's runs."""
    if "error" in side:
        return side
    seconds = summary([r["seconds"] for r in side["runs"]])
    rate = w.seeds * w.steps / seconds["median"]
    flops = None if w.flops_per_seed_step is None else rate * w.flops_per_seed_step
    return {"seconds": seconds, "seed_steps_per_second": rate, "flops_per_second": flops,
            "fraction_of_peak": None if flops is None else flops / peak,
            "compile_seconds": summary([r["compile_seconds"] for r in side["runs"]]),
            "peak_memory_bytes": max(r["peak_memory_bytes"] for r in side["runs"]),
            "info": side["info"], "_raw": [r["seconds"] for r in side["runs"]]}


def measure_workload(name: str, repeats: int, tiny: bool, with_torch: bool, peak: float,
                     log) -> dict:
    w = workloads.workload(name, tiny)
    log(f"{name}: {w.seeds} seeds x {w.steps} steps")
    raw = interleaved(workload_sides(name, tiny, with_torch), repeats, log)
    sides = {k: describe_side(w, v, peak) for k, v in raw.items()}
    gd = sides["gdlab"].get("_raw")
    for side in sides.values():
        if "_raw" in side and gd is not None:
            side["gdlab_speedup"] = paired_ratio(side["_raw"], gd)
    return {"workload": vars(w), "sides": sides}


def measure_w4(repeats: int, tiny: bool, peak: float, log) -> dict:
    log("W4: loss measured every K steps vs never")
    raw = interleaved({n: ({"runner": "gdlab", "workload": n, "tiny": tiny}, True) for n in W4},
                      repeats, log)
    rows = {n: describe_side(workloads.workload(n, tiny), raw[n], peak) for n in W4}
    never = rows["W4-never"].get("_raw")
    for n in W4[:-1]:
        if "_raw" in rows[n] and never is not None:
            rows[n]["overhead_vs_never"] = paired_ratio(rows[n]["_raw"], never)
            rows[n]["measuring_share"] = summary([r["measuring_share"]
                                                  for r in raw[n]["runs"]])
    return {"workload": vars(workloads.workload("W4-every10", tiny)), "schedules": rows}


def measure_scale(platform_name: str, tiny: bool, peak: float, log) -> dict:
    """One run each of the large seed counts the issue asks to fit in memory."""
    out = {}
    for name, seeds in SCALE["gpu" if platform_name == "gpu" else "cpu"].items():
        seeds = 2 * workloads.workload(name, tiny=True).seeds if tiny else seeds
        log(f"scale: {name} with {seeds} seeds")
        raw = interleaved({"gdlab": ({"runner": "gdlab", "workload": name, "tiny": tiny,
                                      "seeds": seeds}, True)}, 1, log)["gdlab"]
        w = workloads.workload(name, tiny, seeds=seeds)
        out[f"{name} x {seeds} seeds"] = describe_side(w, raw, peak)
    return out


def measure_limits(names: Sequence[str], tiny: bool, peak: float, log) -> dict:
    """For each MLP workload, one device's view of what bounds its FLOP/s."""
    out = {}
    for name in names:
        log(f"limits: {name}")
        raw = interleaved({"limits": ({"runner": "limits", "workload": name, "tiny": tiny,
                                       "chunk": 4 if tiny else 16}, True)}, 1, log)["limits"]
        if "error" in raw:
            out[name] = raw
            continue
        r = raw["runs"][0]
        out[name] = {**{k: v for k, v in r.items() if k not in ("compile_seconds",)},
                     "seeds": raw["info"]["seeds"]}
    return out


def targets(res: dict) -> list[dict]:
    """Every target of the speed issue, with the measured value and whether it is met."""
    rows = []

    def add(text, value, ok, unit=""):
        rows.append({"target": text, "value": value, "unit": unit,
                     "met": None if value is None else bool(ok(value))})

    def speedup(w, side):
        s = res["workloads"].get(w, {}).get("sides", {}).get(side, {})
        return s.get("gdlab_speedup", {}).get("median")

    def fraction(w):
        return res["workloads"].get(w, {}).get("sides", {}).get("gdlab", {}).get(
            "fraction_of_peak")

    add("W2: gdlab >= 20x baseline (a)", speedup("W2", "flax_loop"), lambda v: v >= 20, "x")
    add("W2: gdlab >= 2x baseline (b)", speedup("W2", "bare"), lambda v: v >= 2, "x")
    add("W2: gdlab >= 5x baseline (c)", speedup("W2", "torch"), lambda v: v >= 5, "x")
    add("W2: >= 50% of matmul peak", fraction("W2"), lambda v: v >= 0.5, "of peak")
    b1 = speedup("W1", "bare")
    add("W1: gdlab within 1.3x of baseline (b)", None if b1 is None else 1 / b1,
        lambda v: v <= 1.3, "x (gdlab time / (b) time)")
    add("W1: gdlab >= 1000x baseline (a)", speedup("W1", "flax_loop"), lambda v: v >= 1000, "x")
    add("W3: >= 50% of matmul peak", fraction("W3"), lambda v: v >= 0.5, "of peak")
    w4 = res.get("W4", {}).get("schedules", {}).get("W4-every1000", {})
    over = w4.get("overhead_vs_never", {}).get("median")
    add("W4: loss every 1000 steps costs <= 3% over never",
        None if over is None else over - 1, lambda v: v <= 0.03, "extra time")
    for name, row in res.get("scale", {}).items():
        add(f"scale: {name} runs without running out of memory",
            row.get("peak_memory_bytes"), lambda v: v is not None, "bytes peak")
    return rows


def run_bench(repeats: int = 5, tiny: bool = False, only: Sequence[str] | None = None,
              scale: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Run the suite; returns every measurement (see `format_report`)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    chosen = list(only or ("W1", "W2", "W3", "W4"))
    with_torch = baselines.torch_available()
    if not with_torch:
        log("torch is not installed: baseline (c) skipped (pip install torch to include it)")
    res: dict[str, Any] = {"repeats": repeats, "tiny": tiny, "torch": with_torch,
                           "machine": {"cores": usable_cores(), "platform": platform.platform(),
                                       "processor": platform.processor()}}
    res["peak"] = measure_peak(repeats, tiny, log)
    peak = res["peak"]["flops_per_second"]
    res["workloads"] = {w: measure_workload(w, repeats, tiny, with_torch, peak, log)
                        for w in chosen if w != "W4"}
    if "W4" in chosen:
        res["W4"] = measure_w4(repeats, tiny, peak, log)
    if scale:
        res["scale"] = measure_scale(res["peak"]["platform"], tiny, peak, log)
    mlps = [w for w in ("W2", "W3") if w in chosen]
    if mlps:
        res["limits"] = measure_limits(mlps, tiny, peak, log)
    res["targets"] = targets(res)
    return _strip_raw(res)


def _strip_raw(tree):
    if isinstance(tree, dict):
        return {k: _strip_raw(v) for k, v in tree.items() if k != "_raw"}
    if isinstance(tree, list):
        return [_strip_raw(v) for v in tree]
    return tree


def _fmt(x: float | None, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def _span(s: dict, spec: str = ".3g") -> str:
    return f"{s['median']:{spec}} ({s['min']:{spec}}-{s['max']:{spec}})"


def _side_row(label: str, s: dict) -> list[str]:
    if "error" in s:
        return [label, f"failed: {s['error']}"] + ["-"] * 6
    frac = s["fraction_of_peak"]
    return [label, _span(s["seconds"]), _fmt(s["seed_steps_per_second"]),
            _fmt(None if s["flops_per_second"] is None else s["flops_per_second"] / 1e9),
            "-" if frac is None else f"{100 * frac:.0f}%",
            _span(s["gdlab_speedup"], ".3g") + "x" if "gdlab_speedup" in s else "-",
            f"{s['compile_seconds']['median']:.2f}",
            _fmt(s["peak_memory_bytes"] / 2**30, ".2f")]


def format_report(res: dict) -> str:
    """The markdown report: workloads table, W4, scale runs and targets."""
    peak = res["peak"]
    lines = ["# gdlab benchmarks\n",
             f"{res['machine']['cores']} cores, {res['machine']['platform']}; medians of "
             f"{res['repeats']} runs (min-max), sides interleaved round by round; gdlab "
             f"speedup = median of per-round (side time / gdlab time); compile time apart. "
             f"Baseline (a) is timed on a few seeds and extrapolated.\n",
             f"Measured float32 matmul peak: {peak['flops_per_second'] / 1e9:.1f} GFLOP/s "
             f"(best of one device and all devices at once). FLOP/s count 6 x batch x params "
             f"per seed-step.\n"]
    header = ["workload / side", "seconds", "seed-steps/s", "GFLOP/s", "of peak",
              "gdlab speedup", "compile s", "peak RSS GiB"]
    rows = []
    for name, wl in res["workloads"].items():
        w = wl["workload"]
        rows.append([f"**{name}** {w['seeds']} seeds x {w['steps']} steps"] + [""] * 7)
        rows += [_side_row(SIDES[k], s) for k, s in wl["sides"].items()]
    if rows:
        lines.append(report.markdown_table(header, rows))
        gd = next(iter(res["workloads"].values()))["sides"].get("gdlab", {}).get("info", {})
        lines.append(f"\ngdlab ran on {gd.get('devices')} {gd.get('platform')} device(s), "
                     f"seed block {gd.get('seed_block')} (first workload).\n")
    if "W4" in res:
        extra = lambda r: {k: r[k] - 1 for k in ("median", "min", "max")}
        w4 = [[n.removeprefix("W4-"), _span(s["seconds"]),
               _span(extra(s["overhead_vs_never"]), "+.1%") if "overhead_vs_never" in s
               else "-",
               _span(s["measuring_share"], ".1%") if "measuring_share" in s else "-"]
              for n, s in res["W4"]["schedules"].items() if "seconds" in s]
        lines += ["## W4: measuring the full-data loss every K steps\n",
                  "W2 (1000 steps) with the loss on all N points measured at steps K, 2K, "
                  "..., 1000 (the step-0 measurement is left out of every row); 'never' is "
                  "the training time alone. 'extra vs never' compares separate runs "
                  "(paired by round); 'time measuring' is the share of each run's own "
                  "loop spent in measurements (free of run-to-run noise, blind to chunking "
                  "and cache effects).\n",
                  report.markdown_table(["schedule", "seconds", "extra vs never",
                                         "time measuring"], w4)]
    if res.get("scale"):
        lines += ["\n## Large seed counts (one run each)\n",
                  report.markdown_table(header, [_side_row(k, s)
                                                 for k, s in res["scale"].items()])]
    if res.get("limits"):
        lines += ["\n## What bounds the MLP workloads' FLOP/s (one device)\n",
                  "The fused training step of one seed block profiled alone "
                  "(`gdlab.profile_step`): the share of its parts, its FLOP/s by the 6 x B x P "
                  "count and by XLA's own count, and the best XLA reaches on the step's two "
                  "large matmul shapes alone (x @ W1 and x^T @ dZ, batched over the same "
                  "seeds, in a compiled loop).\n",
                  report.markdown_table(
                      ["workload", "seeds", "sample / derivative / update", "step GFLOP/s",
                       "XLA flops / counted", "matmul-only GFLOP/s", "step / matmul-only"],
                      [_limits_row(n, r) for n, r in res["limits"].items()])]
    lines += ["\n## Targets\n", report.markdown_table(
        ["target", "measured", "met"],
        [[t["target"], _target_value(t), {True: "met", False: "NOT met", None: "n/a"}[t["met"]]]
         for t in res["targets"]])]
    return "\n".join(lines) + "\n"


def _limits_row(name: str, r: dict) -> list[str]:
    if "error" in r:
        return [name, f"failed: {r['error']}"] + ["-"] * 5
    shares = r["shares"]
    return [name, str(r["seeds"]),
            " / ".join(f"{100 * shares.get(k, 0.0):.0f}%"
                       for k in ("sample", "derivative", "update")),
            f"{r['step_flops_per_second'] / 1e9:.1f}",
            f"{r['xla_step_flops_per_seed'] / r['counted_flops_per_seed']:.2f}",
            f"{r['matmul_flops_per_second'] / 1e9:.1f}",
            f"{r['step_flops_per_second'] / r['matmul_flops_per_second']:.0%}"]


def _target_value(t: dict) -> str:
    v = t["value"]
    if v is None:
        return "not measured"
    if t["unit"] == "of peak":
        return f"{100 * v:.0f}% of peak"
    if t["unit"] == "extra time":
        return f"{100 * v:+.1f}%"
    if t["unit"] == "bytes peak":
        return f"peak RSS {v / 2**30:.2f} GiB"
    return f"{v:.3g}{t['unit']}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=__doc__.splitlines()[0],
        epilog="about 8 minutes on a 2-core CPU; --tiny runs in well under a minute")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (>= 1)")
    parser.add_argument("--only", default=None,
                        help="comma-separated subset of W1,W2,W3,W4 (default: all)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--skip-scale", action="store_true",
                        help="skip the large-seed-count memory runs")
    parser.add_argument("--out", help="directory for bench.json and report.md "
                                      "(default runs/bench-<timestamp>)")


def check_args(args) -> list[str] | None:
    """Validated `--only` list; raises ValueError naming a bad value."""
    if isinstance(args.repeats, bool) or args.repeats < 1:
        raise ValueError(f"--repeats must be an integer >= 1, got {args.repeats}")
    if args.only is None:
        return None
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    bad = [w for w in only if w not in ("W1", "W2", "W3", "W4")]
    if bad or not only:
        raise ValueError(f"--only got {args.only!r}; valid: a comma-separated subset of "
                         "W1,W2,W3,W4")
    return only


def run_from_args(args) -> Path:
    only = check_args(args)
    out = report.study_dir("bench", args.out)
    res = run_bench(args.repeats, args.tiny, only, scale=not args.skip_scale)
    text = format_report(res)
    report.write_text(out / "bench.json", json.dumps(res, indent=2))
    report.write_text(out / "report.md", text)
    print(text)
    print(f"written: {out / 'report.md'} and {out / 'bench.json'}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    run_from_args(args)
