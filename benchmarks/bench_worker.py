"""One side of a benchmark, in its own process: `python -m benchmarks.bench_worker`.

On start the worker imports JAX and gdlab and answers `{"imported": true}` (so the parent
can start several workers' imports at once, then compile them one at a time). The parent
then writes one JSON line naming the runner and workload; the worker builds and compiles
it, answers `{"ready": true, "info": ...}`, then answers every `run` line with the seconds
of one timed run and a `limits` line with the profile of its workload (`limits_runner`),
until its stdin closes. Each side runs in a fresh process so it gets
its own JAX settings (gdlab's defaults, or JAX's for the baselines) and so the parent can
interleave the sides' repeats (ratios measured side by side).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import gdlab  # the slow imports happen before the worker tells the parent it is ready
from benchmarks.workloads import CNN_CHANNELS, problem_of, workload

Runner = tuple[Callable[[], dict], dict]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _call_parts(wall: float, timings: dict) -> dict[str, float]:
    """Where a whole `gdlab.train` / `gdlab.sweep` call's seconds went."""
    loop = timings["total_seconds"]
    return {"compiling": timings["compile_seconds"], "training": timings["train_seconds"],
            "measuring": timings["eval_seconds"],
            "loop_other": loop - timings["train_seconds"] - timings["eval_seconds"],
            "outside_loop": wall - loop - timings["compile_seconds"]}


def _device_info(runs) -> dict:
    return {"devices": len(runs.manifest["devices"]), "seed_block": runs.manifest["seed_block"],
            "platform": runs.manifest["devices"][0].split(":")[0]}


def gdlab_runner(w, seed_block: int | None = None) -> Runner:
    """gdlab's training loop alone (`runs.timings`), after a first call that compiles;
    `seed_block` fixes the seeds vmapped together per device (default: gdlab's choice;
    1: `lax.map` over single seeds)."""
    problem, config = problem_of(w), w.config()
    train = lambda: gdlab.train(problem, config, seeds=w.seeds, seed_block=seed_block,
                                progress=False)
    probe = train()
    info = {**_device_info(probe), "compile_seconds": probe.timings["compile_seconds"]}

    def run() -> dict:
        t = train().timings
        out = {"seconds": t["train_seconds"]}
        if w.count_evaluations:  # loop time less the step-0 measurement
            out["seconds"] = t["total_seconds"] - t["first_eval_seconds"]
            out["measuring_share"] = (t["eval_seconds"] - t["first_eval_seconds"]) / out["seconds"]
        return out
    return run, info


def gdlab_call_runner(w) -> Runner:
    """The wall time of a whole `gdlab.train` call identical to an earlier one (warm)."""
    problem, config = problem_of(w), w.config()
    call = lambda: gdlab.train(problem, config, seeds=w.seeds, progress=False)
    first, first_seconds = _timed(call)
    info = {**_device_info(first), "compile_seconds": first.timings["compile_seconds"],
            "first_call_seconds": first_seconds}

    def run() -> dict:
        runs, wall = _timed(call)
        return {"seconds": wall, "cache_hit": runs.timings["cache_hit"],
                "parts": _call_parts(wall, runs.timings)}
    return run, info


def sweep_runner(w) -> Runner:
    """A whole `gdlab.sweep` call over the workload's learning rates, warm; the first
    call (its compile included) is timed once, when the worker starts."""
    problem, config = problem_of(w), w.config()
    call = lambda: gdlab.sweep(problem, config, seeds=w.seeds,
                               learning_rate=list(w.learning_rates), progress=False)
    first, first_seconds = _timed(call)
    info = {**_device_info(first.runs[0]), "compile_seconds": first.timings["compile_seconds"],
            "first_call_seconds": first_seconds}

    def run() -> dict:
        sw, wall = _timed(call)
        return {"seconds": wall, "cache_hit": sw.timings["cache_hit"],
                "parts": _call_parts(wall, sw.runs[0].timings)}
    return run, info


def train_each_runner(w) -> Runner:
    """One whole `gdlab.train` call per learning rate of the workload, warm (the rate is an
    input of the compiled program, so the calls after the first reuse it)."""
    problem = problem_of(w)
    configs = [dataclasses.replace(w.config(), learning_rate=r) for r in w.learning_rates]
    calls = [lambda c=c: gdlab.train(problem, c, seeds=w.seeds, progress=False)
             for c in configs]
    firsts = [call() for call in calls]
    info = {**_device_info(firsts[0]),
            "compile_seconds": sum(r.timings["compile_seconds"] for r in firsts)}

    def run() -> dict:
        timed = [_timed(call) for call in calls]
        parts = [_call_parts(wall, runs.timings) for runs, wall in timed]
        return {"seconds": sum(wall for _, wall in timed),
                "parts": {k: sum(p[k] for p in parts) for k in parts[0]}}
    return run, info


def baseline_runner(kind: str, w) -> Runner:
    """A baseline (`benchmarks.baselines`) of the workload: "bare", "bare_rates",
    "flax_loop" or "torch"."""
    from gdlab.core.devices import usable_cores
    data = None if w.problem == "himmelblau" else problem_of(w).data  # not timed
    start = time.perf_counter()
    fn, scale = _baseline(kind, w, data, usable_cores())
    info = {"compile_seconds": time.perf_counter() - start,
            "extrapolated_from_seeds": w.timed_seeds if kind == "flax_loop" else None}
    return lambda: {"seconds": fn() * scale}, info


def _baseline(kind: str, w, data, threads: int) -> tuple[Callable[[], float], float]:
    """The baseline's `run() -> seconds` and the factor to all seeds (per-seed loops)."""
    from benchmarks import baselines as b
    per_seed = w.seeds / w.timed_seeds
    if w.problem == "himmelblau":
        return {"bare": lambda: (b.bare_jax_himmelblau(w.seeds, w.steps, w.learning_rate), 1.0),
                "flax_loop": lambda: (b.flax_loop_himmelblau(w.steps, w.learning_rate,
                                                             w.timed_seeds), per_seed),
                "torch": lambda: (b.torch_himmelblau(w.seeds, w.steps, w.learning_rate,
                                                     threads), 1.0)}[kind]()
    x, y = data["x"], data["y"]
    common = dict(steps=w.steps, batch=w.batch_size)
    if w.problem == "digits_cnn":
        cnn = dict(channels=CNN_CHANNELS, lr=w.learning_rate, **common)
        return {"flax_loop": lambda: (b.flax_loop_cnn(x, y, timed_seeds=w.timed_seeds, **cnn),
                                      per_seed),
                "torch": lambda: (b.torch_cnn(x, y, seeds=w.seeds, threads=threads, **cnn),
                                  1.0)}[kind]()
    mlp = dict(hidden=w.hidden, **common)
    return {"bare": lambda: (b.bare_jax_mlp(x, y, seeds=w.seeds, lr=w.learning_rate, **mlp), 1.0),
            "bare_rates": lambda: (b.bare_jax_mlp_rates(x, y, seeds=w.seeds,
                                                        rates=w.learning_rates, **mlp), 1.0),
            "flax_loop": lambda: (b.flax_loop_mlp(x, y, timed_seeds=w.timed_seeds,
                                                  lr=w.learning_rate, **mlp), per_seed),
            "torch": lambda: (b.torch_mlp(x, y, seeds=w.seeds, threads=threads,
                                          lr=w.learning_rate, **mlp), 1.0)}[kind]()


def peak_runner(size: str) -> Runner:
    import jax

    from gdlab.costs.timing import matmul_peak
    sizes = (64, 128) if size == "tiny" else None
    return lambda: {"flops_per_second": matmul_peak(sizes)}, {
        "devices": len(jax.devices()), "platform": jax.devices()[0].platform}


def limits_runner(w) -> Runner:
    """What bounds a workload on one device, profiled on the seed block gdlab trains
    together (`gdlab.profile_step`): the share of each part of the step, the step's
    FLOP/s, how fast the devices run the step all at once against one alone
    (concurrency), the loss measurement after a step (W4), and for the MLPs the best XLA
    does on the step's two big matmul shapes alone, batched over the same seeds, in a
    compiled loop (x @ W1 and x^T @ dZ; best of three, as a ceiling)."""
    problem, config = problem_of(w), w.config()
    layout = gdlab.costs.run_layout(problem, config, w.seeds)
    block = layout.seed_block
    parts = ("derivative", "update", "sample", "step") + (("loss",) if w.eval_every else ())
    profiler = gdlab.StepProfiler(problem, config, seeds=block, parts=parts,
                                  devices=layout.devices)
    ceiling = _matmul_ceiling(w, block) if w.problem == "teacher_student" else None

    def run() -> dict:
        prof = profiler.measure(repeats=9)
        step = prof.seconds("step")
        out = {"seconds": step, "shares": prof.shares(), "step_flops_per_second":
               block * w.flops_per_seed_step / step,
               "xla_step_flops_per_seed": (prof.parts["step"].flops or 0.0) / block,
               "counted_flops_per_seed": w.flops_per_seed_step,
               "step_memory": prof.memory("step") and prof.memory("step").describe(),
               "concurrency": prof.concurrency}
        if w.eval_every:
            out["loss_after_step_seconds"] = prof.eval_seconds
            out["predicted_extra"] = prof.eval_seconds / (w.eval_every * step)
        if ceiling is not None:
            out["matmul_flops_per_second"] = ceiling()
        return out
    return run, {"seeds": block, "devices": layout.devices, "seeds_total": w.seeds,
                 "seeds_per_device": layout.seeds_per_device}


def _matmul_ceiling(w, block: int) -> Callable[[], float]:
    """FLOP/s of the MLP step's two big matmuls alone, batched over `block` seeds."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gdlab.costs import timing
    d, b, h = problem_of(w).data["x"].shape[1], w.batch_size, w.hidden
    x = jax.device_put(np.full((block, b, d), 1.0 / d, np.float32))  # host-made: no compile

    def matmuls(i, w1, x):  # forward x @ W1, backward x^T @ Z, chained through W1
        return w1 - 1e-9 * jnp.swapaxes(x, 1, 2) @ (x @ w1)

    looped = jax.jit(timing.repeat_loop(matmuls))
    w1 = jax.device_put(np.full((block, d, h), 1.0 / h, np.float32))
    best = lambda: min(timing.time_in_loop(looped, w1, (x,), repeats=9).median
                       for _ in range(3))  # a ceiling: the least disturbed of three
    return lambda: block * 4.0 * b * d * h / best()


RUNNERS = {"gdlab": gdlab_runner, "gdlab_call": gdlab_call_runner, "sweep": sweep_runner,
           "train_each": train_each_runner, "limits": limits_runner}


def extra(command: str, spec: dict) -> dict:
    """An extra measurement the parent asks of a worker after its timed rounds:
    "limits" (`limits_runner` of the worker's workload, one run)."""
    if command != "limits":
        raise ValueError(f"unknown worker command {command!r}")
    run, info = limits_runner(workload(spec["workload"], spec.get("size", "cpu")))
    return {**run(), **info}


def build(spec: dict) -> Runner:
    runner, size = spec["runner"], spec.get("size", "cpu")
    if runner == "peak":
        return peak_runner(size)
    w = workload(spec["workload"], size, seeds=spec.get("seeds"))
    if runner == "gdlab":
        return gdlab_runner(w, spec.get("seed_block"))
    if runner in RUNNERS:
        return RUNNERS[runner](w)
    return baseline_runner(runner, w)


def peak_memory_bytes() -> float:
    """This process's peak resident memory (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def main() -> None:
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from libraries go to stderr, not into the protocol
    reply.write(json.dumps({"imported": True}) + "\n")
    line = sys.stdin.readline()
    if not line:
        return
    spec = json.loads(line)
    try:
        run, info = build(spec)
    except Exception as exc:  # report, so the parent can mark this side failed
        reply.write(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        return
    reply.write(json.dumps({"ready": True, "info": info}) + "\n")
    for line in sys.stdin:
        command = line.strip()
        if command == "run":
            result = run()
            result["peak_memory_bytes"] = peak_memory_bytes()
        elif command:
            result = _try(lambda c=command: extra(c, spec))
        else:
            break
        reply.write(json.dumps(result) + "\n")


def _try(fn: Callable[[], dict]) -> dict:
    try:
        return fn()
    except Exception as exc:  # report, so the parent can mark the measurement failed
        return {"error": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    main()
