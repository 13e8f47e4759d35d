"""The benchmark suite (`python benchmarks/run.py`): gdlab against what users would otherwise write
and against the machine's own matmul limit, measured side by side in one run.

Every side of a workload (gdlab; (a) a per-seed flax + optax loop; (b) a bare
`jit(vmap(scan))`; (c) torch.func when torch is installed; whole `gdlab.train` and
`gdlab.sweep` calls) runs in its own worker process (`benchmarks.bench_worker`): gdlab
with its defaults, the baselines with JAX's (one CPU device), so each gets the settings a
user would have, and each with an empty persistent compilation cache of its own (compile
times are cold). Workers import at once, compile one at a time, then their timed runs
are interleaved round by round, so drift on a shared machine hits every side alike;
ratios are medians of the per-round ratios. Compile time is reported apart. The CLI
benchmark times whole `gdlab train` processes, cold (empty cache) and warm. The targets
are data (`benchmarks/targets.toml`); each one not met is shown with what limits it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import baselines, targets, workloads
from gdlab import studies as report
from gdlab.core.devices import usable_cores
from gdlab.costs.format import format_si

ROOT = Path(__file__).resolve().parent.parent  # the checkout: benchmarks/ is not installed

BENCHMARKS = ("W1", "W2", "W3", "W4", "W5", "repeat", "sweep", "cli")
SIDES = {"gdlab": "gdlab", "flax_loop": "(a) per-seed jitted loop (flax+optax)",
         "bare": "(b) bare jit(vmap(scan))", "torch": "(c) torch.func ensemble",
         "gdlab_call": "gdlab.train, whole second call",
         "sweep": "gdlab.sweep, whole warm call", "train_each": "gdlab.train per rate, whole calls",
         "bare_rates": "(b) a warm bare jit(vmap(scan)) per rate"}
# W5 (the CNN) also trains with fixed seed blocks (seeds vmapped together per device), to
# check gdlab's automatic choice against lax.map over single seeds and wider vmaps.
W5_BLOCKS = (1, 8, 32)
SIDES.update({f"gdlab_block{b}": f"gdlab, seed block {b} (fixed)" for b in W5_BLOCKS})
W4 = {"every10": "W4-every10", "every100": "W4-every100", "every1000": "W4-every1000",
      "never": "W4-never"}
SCALE = {"cpu": {"W1": 65_536, "W3": 4_096},
         "gpu": {"W1": 1_048_576, "W2": 16_384, "W3": 4_096}}
LIMITS = ("W2", "W3", "W4", "W5")  # workloads whose step is profiled (`limits`)
CLI_ARGS = {"tiny": ["--seeds", "8", "--steps", "20", "--lr", "0.05", "--batch-size", "16"],
            "cpu": ["--seeds", "256", "--steps", "1000", "--lr", "0.05", "--batch-size", "64"],
            "gpu": ["--seeds", "4096", "--steps", "1000", "--lr", "0.05", "--batch-size", "64"]}
# Benchmarks whose sides each take tens of seconds per run get fewer rounds.
FEW_ROUNDS = 3


class WorkerError(RuntimeError):
    """A benchmark worker could not build or run its side."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every measurement of one suite run shares."""

    repeats: int
    size: str
    with_torch: bool
    log: Callable[[str], None]
    peak: float = math.nan

    def spec(self, runner: str, workload: str | None = None, **extra) -> dict:
        return {"runner": runner, "workload": workload, "size": self.size, **extra}

    @property
    def concurrent(self) -> bool:
        """Tiny runs start their workers all at once (a smoke test: compile times of
        concurrent starts mean nothing)."""
        return self.size == "tiny"

    def sides(self, specs: dict[str, tuple[dict, bool]], repeats: int | None = None,
              extras: dict[str, str] | None = None) -> dict[str, dict]:
        """`interleaved` with these settings."""
        return interleaved(specs, self.repeats if repeats is None else repeats, self.log,
                           extras, self.concurrent)


def child_env(cache_dir: str) -> dict[str, str]:
    """The environment of a benchmark process: this one's, with gdlab's persistent
    compilation cache in `cache_dir` (a cache chosen through JAX's own variables, e.g. by
    the test suite, is dropped, so every process meets gdlab's defaults) and the checkout
    importable."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    env["GDLAB_CACHE_DIR"] = cache_dir
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class Worker:
    """A `benchmarks.bench_worker` process: imports on spawn, compiles on `send(spec)` +
    `wait_ready()`, one timed run per `run()`. It gets an empty persistent compilation
    cache of its own."""

    def __init__(self, gdlab_defaults: bool):
        self.cache = tempfile.mkdtemp(prefix="gdlab-bench-cache-")
        env = child_env(self.cache)
        if not gdlab_defaults:
            env["GDLAB_CPU_DEVICES"] = "1"  # JAX's own default: one CPU device
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd=ROOT)
        self.info: dict = {}

    def _read(self) -> dict:
        answer = self.proc.stdout.readline()
        if not answer:
            raise WorkerError(f"worker exited with code {self.proc.wait()}")
        return json.loads(answer)

    def _write(self, line: str) -> None:
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(f"worker exited with code {self.proc.wait()}") from None

    def ask(self, line: str) -> dict:
        """Send one command line; its one-line JSON answer."""
        self._write(line)
        return self._read()

    def wait_imported(self) -> None:
        if not self._read().get("imported"):
            raise WorkerError("worker did not start")

    def send(self, spec: dict) -> None:
        """Hand the worker its side to build (see `wait_ready`)."""
        self._write(json.dumps(spec))

    def wait_ready(self) -> None:
        answer = self._read()
        if not answer.get("ready"):
            raise WorkerError(answer.get("error", "worker failed to start"))
        self.info = answer.get("info", {})

    def run(self) -> dict:
        return self.ask("run")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=120)
        for pipe in (self.proc.stdin, self.proc.stdout):
            pipe.close()
        shutil.rmtree(self.cache, ignore_errors=True)


def interleaved(specs: dict[str, tuple[dict, bool]], repeats: int,
                log: Callable[[str], None], extras: dict[str, str] | None = None,
                concurrent: bool = False) -> dict[str, dict]:
    """One worker per side (imports at once, then compiles one at a time; all at once when
    `concurrent`, which spoils compile times: for smoke tests), then `repeats` rounds,
    each side once per round, then each `extras` command {side: command} once.
    Returns per side its runs, info and extras, or its error."""
    workers = {side: Worker(gdlab_defaults) for side, (_, gdlab_defaults) in specs.items()}
    out: dict[str, dict] = {}
    try:
        _start_all(workers, specs, out, log, concurrent)
        for r in range(repeats):
            log(f"  round {r + 1}/{repeats}")
            for side, worker in workers.items():
                out[side]["runs"].append(worker.run())
        for side, command in (extras or {}).items():
            if side in workers:
                log(f"  {command} ({side})")
                out[side][command] = workers[side].ask(command)
    finally:
        for worker in workers.values():
            worker.close()
    return out


def _start_all(workers: dict[str, Worker], specs: dict, out: dict, log, concurrent: bool):
    """Start every worker on its spec; drops (and records) the ones that fail."""
    for side in list(workers):
        log(f"  compiling {side}")
        try:
            workers[side].wait_imported()
            workers[side].send(specs[side][0])
            if not concurrent:
                workers[side].wait_ready()
        except WorkerError as exc:
            out[side] = {"error": str(exc)}
            workers.pop(side).close()
    for side in list(workers):
        try:
            if concurrent:
                workers[side].wait_ready()
            out[side] = {"info": workers[side].info, "runs": []}
        except WorkerError as exc:
            out[side] = {"error": str(exc)}
            workers.pop(side).close()


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    v = np.asarray(values, np.float64)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
            "runs": len(v)}


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, float]:
    """Summary of the per-round ratios numerator_r / denominator_r."""
    return summary(np.asarray(numerator) / np.asarray(denominator))


# ----------------------------------------------------------------------------- measuring


def measure_peak(s: Settings) -> dict:
    """Best float32 matmul FLOP/s with gdlab's device setup and with JAX's default (tiny
    runs, smoke tests, measure gdlab's setup only)."""
    s.log("peak matmul FLOP/s")
    spec = s.spec("peak")
    setups = {"gdlab_devices": (spec, True), "jax_default": (spec, False)}
    sides = s.sides(dict(list(setups.items())[:1]) if s.concurrent else setups)
    per = {k: summary([r["flops_per_second"] for r in v["runs"]]) for k, v in sides.items()
           if "runs" in v}
    if not per:
        raise WorkerError(f"the peak could not be measured: {sides}")
    return {"flops_per_second": max(p["median"] for p in per.values()), "by_setup": per,
            "platform": next(v["info"] for v in sides.values() if "info" in v).get("platform")}


def describe_side(w: workloads.Workload, side: dict, peak: float) -> dict:
    """Seconds, seed-steps/s, FLOP/s, fraction of peak and parts of one side's runs."""
    if "error" in side:
        return side
    runs = side["runs"]
    seconds = summary([r["seconds"] for r in runs])
    lanes = w.seeds * max(1, len(w.learning_rates))
    rate = lanes * w.steps / seconds["median"]
    flops = None if w.flops_per_seed_step is None else rate * w.flops_per_seed_step
    out = {"seconds": seconds, "seed_steps_per_second": rate, "flops_per_second": flops,
           "fraction_of_peak": None if flops is None else flops / peak,
           "compile_seconds": side["info"].get("compile_seconds"),
           "peak_memory_bytes": max(r["peak_memory_bytes"] for r in runs),
           "info": side["info"], "_raw": [r["seconds"] for r in runs]}
    if "parts" in runs[0]:
        out["parts"] = {k: summary([r["parts"][k] for r in runs]) for k in runs[0]["parts"]}
    if "measuring_share" in runs[0]:
        out["measuring_share"] = summary([r["measuring_share"] for r in runs])
    return out


def compare(sides: dict[str, dict], reference: str) -> None:
    """Add to every other side its paired ratios against `reference`: gdlab_speedup
    (side time / reference time) and gdlab_ratio (reference time / side time)."""
    ref = sides.get(reference, {}).get("_raw")
    for name, side in sides.items():
        if name != reference and "_raw" in side and ref is not None:
            side["gdlab_speedup"] = paired_ratio(side["_raw"], ref)
            side["gdlab_ratio"] = paired_ratio(ref, side["_raw"])


def measure_sides(name: str, runners: dict[str, tuple], reference: str,
                  s: Settings, repeats: int | None = None) -> dict:
    """One workload: each side {label: (runner, gdlab defaults[, extra spec fields])}
    interleaved, compared with `reference`; W2, W3 and W5 also profile their step in the
    gdlab worker."""
    w = workloads.workload(name, s.size)
    s.log(f"{name}: {w.seeds} seeds x {w.steps} steps")
    limits = {reference: "limits"} if name in LIMITS else None
    raw = s.sides({side: (s.spec(r[0], name, **(r[2] if len(r) > 2 else {})), r[1])
                   for side, r in runners.items()}, repeats, limits)
    sides = {k: describe_side(w, v, s.peak) for k, v in raw.items()}
    compare(sides, reference)
    return _with_limits({"workload": vars(w), "sides": sides}, raw.get(reference, {}))


def _with_limits(result: dict, side: dict) -> dict:
    """`result` with the side's step profile, when it measured one."""
    if "limits" in side:
        result["limits"] = side["limits"]
    return result


def measure_workload(name: str, s: Settings) -> dict:
    """W1, W2, W3 (gdlab, bare, per-seed loop, torch) or W5 (gdlab, per-seed loop, torch,
    gdlab with fixed seed blocks)."""
    sides: dict[str, tuple] = {"gdlab": ("gdlab", True), "flax_loop": ("flax_loop", False)}
    if name != "W5":
        sides["bare"] = ("bare", False)
    else:
        w = workloads.workload(name, s.size)
        sides.update({f"gdlab_block{b}": ("gdlab", True, {"seed_block": b})
                      for b in W5_BLOCKS if b < w.seeds})
    if s.with_torch:
        sides["torch"] = ("torch", False)
    return {name: measure_sides(name, sides, "gdlab", s)}


def measure_w4(s: Settings) -> dict:
    """W2 with the loss measured every K steps against never; the every-1000 worker then
    profiles the loss measurement."""
    s.log("W4: loss measured every K steps vs never")
    raw = s.sides({k: (s.spec("gdlab", n), True) for k, n in W4.items()},
                  extras={"every1000": "limits"})
    sides = {k: describe_side(workloads.workload(n, s.size), raw[k], s.peak)
             for k, n in W4.items()}
    never = sides["never"].get("_raw")
    for k in list(W4)[:-1]:
        if "_raw" in sides[k] and never is not None:
            extra = np.asarray(sides[k]["_raw"]) / np.asarray(never) - 1.0
            sides[k]["extra_vs_never"] = summary(extra)
    result = {"workload": vars(workloads.workload("W4-every10", s.size)), "sides": sides}
    return {"W4": _with_limits(result, raw["every1000"])}


def measure_repeat(s: Settings) -> dict:
    """A second identical `gdlab.train` call, whole, against a warm bare loop."""
    runners = {"gdlab_call": ("gdlab_call", True), "bare": ("bare", False)}
    return {n: measure_sides(n, runners, "gdlab_call", s)
            for n in ("repeat-himmelblau", "repeat-W2")}


def measure_sweep(s: Settings) -> dict:
    """`gdlab.sweep` over 8 rates against 8 `gdlab.train` calls and 8 warm bare loops."""
    runners = {"sweep": ("sweep", True), "train_each": ("train_each", True),
               "bare_rates": ("bare_rates", False)}
    return {"sweep-W2": measure_sides("sweep-W2", runners, "sweep", s,
                                      min(s.repeats, FEW_ROUNDS))}


def measure_scale(s: Settings, platform_name: str) -> dict:
    """One run each of the large seed counts that must fit in memory."""
    out = {}
    for name, seeds in SCALE["gpu" if platform_name == "gpu" else "cpu"].items():
        seeds = 2 * workloads.workload(name, "tiny").seeds if s.size == "tiny" else seeds
        s.log(f"scale: {name} with {seeds} seeds")
        raw = s.sides({"gdlab": (s.spec("gdlab", name, seeds=seeds), True)}, 1)["gdlab"]
        side = describe_side(workloads.workload(name, s.size, seeds=seeds), raw, s.peak)
        side["completed"] = 0.0 if "error" in side else 1.0
        out[f"scale-{name}"] = {"workload": {"name": name, "seeds": seeds},
                                "sides": {"gdlab": side}}
    return out


# ----------------------------------------------------------------------------- the CLI


def cli_command(size: str) -> list[str]:
    """The `gdlab train` command the CLI benchmark times, as argv after `gdlab`."""
    return ["train", "--problem", "teacher_student", *CLI_ARGS[size]]


def _process(argv: list[str], env: dict) -> tuple[float, str]:
    """Wall seconds and stdout of a Python process `python argv...` in the checkout."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise WorkerError(f"{argv[:3]}... exited {done.returncode}: {done.stderr[-500:]}")
    return wall, done.stdout


def parse_cli_times(stdout: str) -> dict[str, float]:
    """The seconds `gdlab train` prints: compile, train and loss evaluation time."""
    found = {}
    for key, label in (("compile_seconds", "compile time"), ("train_seconds", "train time"),
                       ("measuring_seconds", "loss evaluation time")):
        m = re.search(rf"^{label}\s+([0-9.]+) s", stdout, re.MULTILINE)
        if m is None:
            raise WorkerError(f"`gdlab train` did not print its {label}:\n{stdout}")
        found[key] = float(m.group(1))
    return found


def cli_round(size: str) -> dict[str, dict[str, float]]:
    """A cold CLI process (empty persistent cache), the same command again (warm), and a
    process that only imports gdlab (the start-up floor)."""
    argv = ["-c", "import sys; from gdlab.cli import main; sys.exit(main(sys.argv[1:]))",
            *cli_command(size)]
    with tempfile.TemporaryDirectory(prefix="gdlab-cli-cache-") as cache:
        env = child_env(cache)
        out = {}
        for side in ("cold", "warm"):
            wall, stdout = _process(argv, env)
            out[side] = {"seconds": wall, **parse_cli_times(stdout)}
        wall, _ = _process(["-c", "import gdlab"], env)
        out["import"] = {"seconds": wall}
    return out


def measure_cli(s: Settings) -> dict:
    """Cold and warm `gdlab train` processes, start to result, and their compile share."""
    s.log(f"cli: gdlab {' '.join(cli_command(s.size))}, cold and warm")
    rounds = []
    try:
        for r in range(min(s.repeats, FEW_ROUNDS)):
            s.log(f"  round {r + 1}")
            rounds.append(cli_round(s.size))
    except WorkerError as exc:
        return {"cli": {"workload": {"command": cli_command(s.size)},
                        "sides": {"cold": {"error": str(exc)}}}}
    sides = {}
    for side in ("cold", "warm", "import"):
        rows = [r[side] for r in rounds]
        sides[side] = {k: summary([row[k] for row in rows]) for k in rows[0]}
        if "compile_seconds" in rows[0]:
            sides[side]["compile_share"] = summary([row["compile_seconds"] / row["seconds"]
                                                    for row in rows])
    return {"cli": {"workload": {"command": ["gdlab", *cli_command(s.size)]}, "sides": sides}}


# ----------------------------------------------------------------------------- the suite


def run_bench(repeats: int = 5, size: str = "cpu", only: Sequence[str] | None = None,
              scale: bool = True, log: Callable[[str], None] | None = None,
              torch: bool = True, budget: float | None = None,
              save: Callable[[dict], None] | None = None) -> dict:
    """Run the suite; returns every measurement (see `format_report`). `torch=False`
    leaves baseline (c) out; past `budget` seconds the benchmarks not yet started are
    skipped (their targets: not measured). `save(results so far)` is called after each
    benchmark, so a run stopped part way keeps what it measured."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    chosen = list(only or BENCHMARKS)
    with_torch = torch and baselines.torch_available()
    if torch and not with_torch:
        log("torch is not installed: baseline (c) skipped (pip install torch to include it)")
    start = time.perf_counter()
    over = lambda: budget is not None and time.perf_counter() - start > budget
    res: dict[str, Any] = {"repeats": repeats, "size": size, "tiny": size == "tiny",
                           "torch": with_torch, "benchmarks": chosen,
                           "machine": {"cores": usable_cores(), "platform": platform.platform(),
                                       "processor": platform.processor()}}
    s = Settings(repeats, size, with_torch, log)
    res["peak"] = measure_peak(s)
    s = dataclasses.replace(s, peak=res["peak"]["flops_per_second"])
    res["workloads"], res["skipped"] = {}, []
    for name in chosen + (["scale"] if scale else []):
        if over():
            log(f"{name}: skipped, past the {budget:.0f} s budget")
            res["skipped"].append(name)
        elif name == "scale":
            res["workloads"].update(measure_scale(s, res["peak"]["platform"]))
        else:
            res["workloads"].update(MEASURES[name](s))
        if save is not None:
            save(_strip_raw({**res, "targets": targets.evaluate(targets.load(),
                                                                res["workloads"])}))
    res["targets"] = targets.evaluate(targets.load(), res["workloads"])
    return _strip_raw(res)


MEASURES: dict[str, Callable[[Settings], dict]] = {
    "W1": lambda s: measure_workload("W1", s), "W2": lambda s: measure_workload("W2", s),
    "W3": lambda s: measure_workload("W3", s), "W4": measure_w4,
    "W5": lambda s: measure_workload("W5", s), "repeat": measure_repeat,
    "sweep": measure_sweep, "cli": measure_cli}


def _strip_raw(tree):
    if isinstance(tree, dict):
        return {k: _strip_raw(v) for k, v in tree.items() if k != "_raw"}
    if isinstance(tree, list):
        return [_strip_raw(v) for v in tree]
    return tree


# ----------------------------------------------------------------------------- the report


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
            _fmt(s.get("compile_seconds"), ".2f"),
            _fmt(s["peak_memory_bytes"] / 2**30, ".2f")]


MAIN_HEADER = ["workload / side", "seconds", "seed-steps/s", "GFLOP/s", "of peak",
               "speedup vs first side", "compile s", "peak RSS GiB"]


def _main_table(res: dict) -> list[str]:
    rows = []
    for name, wl in res["workloads"].items():
        if name in ("W4", "cli") or name.startswith("scale-"):
            continue
        w = wl["workload"]
        lanes = f" x {len(w['learning_rates'])} rates" if w.get("learning_rates") else ""
        rows.append([f"**{name}** {w['seeds']} seeds{lanes} x {w['steps']} steps"] + [""] * 7)
        rows += [_side_row(SIDES[k], s) for k, s in wl["sides"].items()]
    if not rows:
        return []
    first = next(iter(res["workloads"].values()))["sides"]
    gd = next(iter(first.values())).get("info", {})
    return [report.markdown_table(MAIN_HEADER, rows),
            f"\ngdlab ran on {gd.get('devices')} {gd.get('platform')} device(s), seed block "
            f"{gd.get('seed_block')} (first workload). 'speedup vs first side' = that side's "
            "time / the first side's time (gdlab, or the whole gdlab call), per round.\n"]


def _w4_table(res: dict) -> list[str]:
    if "W4" not in res["workloads"]:
        return []
    rows = [[k, _span(s["seconds"]),
             _span(s["extra_vs_never"], "+.1%") if "extra_vs_never" in s else "-",
             _span(s["measuring_share"], ".1%") if "measuring_share" in s else "-"]
            for k, s in res["workloads"]["W4"]["sides"].items() if "seconds" in s]
    return ["## W4: measuring the full-data loss every K steps\n",
            "W2 (1000 steps) with the loss on all N points measured at steps K, 2K, ..., "
            "1000 (the step-0 measurement is left out of every row); 'never' is the training "
            "time alone. 'extra vs never' compares separate runs (paired by round); 'time "
            "measuring' is the share of each run's own loop spent in measurements.\n",
            report.markdown_table(["schedule", "seconds", "extra vs never", "time measuring"],
                                  rows)]


def _cli_table(res: dict) -> list[str]:
    cli = res["workloads"].get("cli")
    if cli is None:
        return []
    rows = []
    for side, s in cli["sides"].items():
        if "error" in s:
            rows.append([side, f"failed: {s['error']}", "-", "-", "-"])
            continue
        rows.append([side, _span(s["seconds"]),
                     _span(s["compile_seconds"], ".2f") if "compile_seconds" in s else "-",
                     _span(s["compile_share"], ".0%") if "compile_share" in s else "-",
                     _span(s["train_seconds"], ".2f") if "train_seconds" in s else "-"])
    return ["\n## CLI: a whole process, start to result\n",
            f"`{' '.join(cli['workload']['command'])}`: cold = an empty persistent "
            "compilation cache (GDLAB_CACHE_DIR a fresh directory), warm = the same command "
            "again; import = `python -c 'import gdlab'`. Compile time as the CLI prints it; "
            "below, where the medians' seconds went ('the rest': building the problem, "
            "placing data, planning, printing).\n",
            report.markdown_table(["process", "wall s", "compile s", "compiling share",
                                   "train s"], rows), "", _explain_cli(cli)]


LIMITS_HEADER = ["workload", "seed block x devices", "sample / derivative / update / loss",
                 "step GFLOP/s", "XLA flops / counted", "matmul-only GFLOP/s",
                 "step / matmul-only", "step memory", "devices at once"]


def _limits_row(name: str, r: dict) -> list[str]:
    if "error" in r:
        return [name, f"failed: {r['error']}"] + ["-"] * 7
    shares = r["shares"]
    mm = r.get("matmul_flops_per_second")
    mem = (r.get("step_memory") or {}).get("total_bytes")
    together = r.get("concurrency")
    return [name, f"{r['seeds']} x {r.get('devices', 1)}",
            " / ".join(f"{100 * shares.get(k, 0.0):.0f}%"
                       for k in ("sample", "derivative", "update", "loss")),
            f"{r['step_flops_per_second'] / 1e9:.2f}",
            f"{r['xla_step_flops_per_seed'] / r['counted_flops_per_seed']:.2f}",
            "-" if mm is None else f"{mm / 1e9:.1f}",
            "-" if mm is None else f"{r['step_flops_per_second'] / mm:.0%}",
            format_si(mem, "B"), "-" if together is None else f"{together:.2f}"]


def _limits_table(res: dict) -> list[str]:
    limits = {n: wl["limits"] for n, wl in res["workloads"].items() if "limits" in wl}
    if not limits:
        return []
    return ["\n## What bounds each workload (one device, gdlab's seed block)\n",
            "The fused training step of one seed block (the seeds gdlab vmaps together on "
            "a device) profiled alone (`gdlab.profile_step`): the share of its parts "
            "(loss: one measurement per step), its FLOP/s by the 6 x B x multiply-adds "
            "count and by XLA's own count, the best XLA reaches on the MLP step's two large "
            "matmul shapes alone (x @ W1 and x^T @ dZ, batched over the same seeds, in a "
            "compiled loop), the bytes the compiled step needs (XLA memory analysis), and "
            "'devices at once': the step's speed per device when every device runs it at "
            "once, against one device alone (1 = side by side at full speed; 1/devices = "
            "they take turns, e.g. when other processes hold the cores).\n",
            report.markdown_table(LIMITS_HEADER, [_limits_row(n, r) for n, r in limits.items()])]


def _targets_table(res: dict) -> list[str]:
    mark = {True: "met", False: "**NOT met**", None: "not measured"}
    rows = [[t["id"], t["text"], targets.format_threshold(t), targets.format_value(t),
             mark[t["met"]]] for t in res["targets"]]
    return ["\n## Targets\n", "(`benchmarks/targets.toml`)\n",
            report.markdown_table(["id", "target", "wants", "measured", "met"], rows)]


def explain(res: dict, key: str) -> str:
    """What limits a target: the profile named by its `explain` key."""
    kind, _, name = key.partition(":")
    wl = res["workloads"].get(name)
    if wl is None:
        return f"(no measurement of {name})"
    if kind == "limits":
        if "limits" not in wl:
            return f"(no profile of {name} was measured)"
        return _explain_limits(name, wl["limits"])
    return _explain_cli(wl) if name == "cli" else _explain_parts(wl)


def _explain_limits(name: str, r: dict) -> str:
    if "error" in r:
        return f"profile failed: {r['error']}"
    lines = [report.markdown_table(LIMITS_HEADER, [_limits_row(name, r)])]
    if "loss_after_step_seconds" in r:
        lines.append(f"\nOne loss measurement (after a step) costs "
                     f"{r['loss_after_step_seconds'] * 1e3:.2f} ms for {r['seeds']} seeds; "
                     f"a step {r['seconds'] * 1e3:.3f} ms: predicted extra per interval "
                     f"{100 * r['predicted_extra']:+.2f}% (the rest of a measured excess is "
                     f"the host loop's per-measurement cost).")
    return "\n".join(lines)


def _explain_parts(wl: dict) -> str:
    """Where each side's seconds went (whole calls: compiling, training, measuring, the
    host loop, outside the loop)."""
    rows = []
    for side, s in wl["sides"].items():
        if "error" in s:
            continue
        parts = s.get("parts", {})
        first = s.get("info", {}).get("first_call_seconds")
        rows.append([SIDES.get(side, side), f"{s['seconds']['median']:.4g}"]
                    + [f"{parts[k]['median']:.4g}" if k in parts else "-"
                       for k in ("compiling", "training", "measuring", "loop_other",
                                 "outside_loop")]
                    + [_fmt(first, ".3g")])
    return report.markdown_table(["side", "seconds", "compiling", "training", "measuring",
                                  "host loop", "outside loop", "first call s"], rows)


def _explain_cli(wl: dict) -> str:
    sides = wl["sides"]
    if "warm" not in sides or "error" in sides.get("cold", {}):
        return "the CLI runs failed"
    rows = []
    imp = sides["import"]["seconds"]["median"]
    for side in ("cold", "warm"):
        s = {k: v["median"] for k, v in sides[side].items()}
        rest = s["seconds"] - imp - s["compile_seconds"] - s["train_seconds"] \
            - s["measuring_seconds"]
        rows.append([side, f"{s['seconds']:.2f}", f"{imp:.2f}", f"{s['compile_seconds']:.2f}",
                     f"{s['train_seconds']:.2f}", f"{s['measuring_seconds']:.2f}",
                     f"{rest:.2f}"])
    return report.markdown_table(["process", "wall s", "import gdlab", "compile", "train",
                                  "measure loss", "the rest"], rows)


def _unmet_section(res: dict) -> list[str]:
    """Each profile that explains targets not met, once, under the targets it explains."""
    unmet: dict[str, list[dict]] = {}
    for t in res["targets"]:
        if t["met"] is False and t.get("explain"):
            unmet.setdefault(t["explain"], []).append(t)
    if not unmet:
        return []
    lines = ["\n## What limits each target not met\n"]
    for key, group in unmet.items():
        lines += [f"### {', '.join(t['id'] for t in group)}\n"]
        lines += [f"- {t['text']}: measured {targets.format_value(t)}" for t in group]
        lines += [f"\n{key}:\n", explain(res, key), ""]
    return lines


def format_report(res: dict) -> str:
    """The markdown report: workloads, W4, the CLI, limits, targets and what limits the
    targets not met."""
    peak = res["peak"]
    lines = ["# gdlab benchmarks\n",
             f"{res['machine']['cores']} cores, {res['machine']['platform']}; sizes "
             f"{res['size']}; medians of {res['repeats']} runs (min-max; fewer for the "
             f"sweep and the CLI), sides interleaved round by round; speedups are medians "
             f"of per-round ratios; compile time apart. Baseline (a) is timed on a few seeds "
             f"and extrapolated.\n",
             f"Measured float32 matmul peak: {peak['flops_per_second'] / 1e9:.1f} GFLOP/s "
             f"(best of one device and all devices at once). FLOP/s count 6 x batch x "
             f"multiply-adds per example per seed-step.\n"]
    if res.get("seconds"):
        lines.append(f"The suite ran for {res['seconds'] / 60:.1f} minutes.\n")
    if res.get("skipped"):
        lines.append(f"Skipped (past the time budget): {', '.join(res['skipped'])}.\n")
    for part in (_main_table, _w4_table, _cli_table, _scale_table, _limits_table,
                 _targets_table, _unmet_section):
        lines += part(res)
    return "\n".join(lines) + "\n"


def _scale_table(res: dict) -> list[str]:
    scale = {k: v for k, v in res["workloads"].items() if k.startswith("scale-")}
    if not scale:
        return []
    return ["\n## Large seed counts (one run each)\n",
            report.markdown_table(MAIN_HEADER, [_side_row(f"{k} x {v['workload']['seeds']} seeds",
                                                          v["sides"]["gdlab"])
                                                for k, v in scale.items()])]


# ----------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=__doc__.splitlines()[0],
        epilog="about 25 minutes on a 2-core CPU; --tiny runs in well under a minute; "
               "benchmarks/gpu.sh runs the GPU sizes")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (>= 1)")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated subset of {','.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--size", default=None, choices=workloads.SIZES,
                        help="workload sizes (default cpu; gpu: more seeds)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--skip-scale", action="store_true",
                        help="skip the large-seed-count memory runs")
    parser.add_argument("--no-torch", action="store_true",
                        help="leave out baseline (c) torch.func even when torch is installed")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="skip the benchmarks not started after this many seconds")
    parser.add_argument("--out", help="directory for bench.json and report.md "
                                      "(default runs/bench-<timestamp>)")


def check_args(args) -> tuple[list[str] | None, str]:
    """Validated `--only` list and size; raises ValueError naming a bad value."""
    if isinstance(args.repeats, bool) or args.repeats < 1:
        raise ValueError(f"--repeats must be an integer >= 1, got {args.repeats}")
    if args.budget is not None and not (math.isfinite(args.budget) and args.budget > 0):
        raise ValueError(f"--budget must be a number of seconds > 0, got {args.budget}")
    if args.tiny and args.size not in (None, "tiny"):
        raise ValueError(f"--tiny and --size {args.size} disagree; give one of them")
    size = "tiny" if args.tiny else (args.size or "cpu")
    if args.only is None:
        return None, size
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    bad = [w for w in only if w not in BENCHMARKS]
    if bad or not only:
        raise ValueError(f"--only got {args.only!r}; valid: a comma-separated subset of "
                         f"{','.join(BENCHMARKS)}")
    return only, size


def run_from_args(args) -> Path:
    only, size = check_args(args)
    out = report.study_dir("bench", args.out)

    def save(res: dict) -> str:
        text = format_report(res)
        report.write_text(out / "bench.json", json.dumps(res, indent=2))
        report.write_text(out / "report.md", text)
        return text

    start = time.perf_counter()
    res = run_bench(args.repeats, size, only, scale=not args.skip_scale,
                    torch=not args.no_torch, budget=args.budget, save=save)
    res["seconds"] = time.perf_counter() - start
    text = save(res)
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
