"""One side of a benchmark, in its own process: `python -m benchmarks.bench_worker`.

The parent (`benchmarks.bench`) writes one JSON line naming the runner and workload; the
worker builds and compiles it, answers `{"ready": true, ...}`, then answers every `run`
line with the seconds of one timed run, until its stdin closes. Each side runs in a fresh
process so it gets its own JAX settings (gdlab's defaults, or JAX's for the baselines) and
so the parent can interleave the sides' repeats (ratios measured side by side).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable

from benchmarks.workloads import Workload, problem_of, workload


def gdlab_runner(w: Workload) -> tuple[Callable[[], dict], dict]:
    import gdlab
    problem, config = problem_of(w), w.config()
    probe = gdlab.train(problem, config, seeds=w.seeds, progress=False)  # warm the allocator
    info = {"devices": len(probe.manifest["devices"]), "seed_block": probe.manifest["seed_block"],
            "platform": probe.manifest["devices"][0].split(":")[0]}

    def run() -> dict:
        t = gdlab.train(problem, config, seeds=w.seeds, progress=False).timings
        out = {"seconds": t["train_seconds"], "compile_seconds": t["compile_seconds"]}
        if w.count_evaluations:  # loop time less the step-0 measurement
            out["seconds"] = t["total_seconds"] - t["first_eval_seconds"]
            out["measuring_share"] = (t["eval_seconds"] - t["first_eval_seconds"]) / out["seconds"]
        return out
    return run, info


def baseline_runner(kind: str, w: Workload) -> tuple[Callable[[], dict], dict]:
    from benchmarks import baselines as b
    from gdlab.core.devices import usable_cores
    start = time.perf_counter()
    scale = 1.0
    if w.problem == "himmelblau":
        if kind == "bare":
            fn = b.bare_jax_himmelblau(w.seeds, w.steps, w.learning_rate)
        elif kind == "flax_loop":
            fn, scale = b.flax_loop_himmelblau(w.steps, w.learning_rate, w.timed_seeds), \
                w.seeds / w.timed_seeds
        else:
            fn = b.torch_himmelblau(w.seeds, w.steps, w.learning_rate, usable_cores())
    else:
        problem = problem_of(w)
        x, y = problem.data["x"], problem.data["y"]
        common = dict(hidden=w.hidden, steps=w.steps, batch=w.batch_size, lr=w.learning_rate)
        if kind == "bare":
            fn = b.bare_jax_mlp(x, y, seeds=w.seeds, **common)
        elif kind == "flax_loop":
            fn, scale = b.flax_loop_mlp(x, y, timed_seeds=w.timed_seeds, **common), \
                w.seeds / w.timed_seeds
        else:
            fn = b.torch_mlp(x, y, seeds=w.seeds, threads=usable_cores(), **common)
    compile_seconds = time.perf_counter() - start
    info = {"extrapolated_from_seeds": w.timed_seeds if kind == "flax_loop" else None}
    return lambda: {"seconds": fn() * scale, "compile_seconds": compile_seconds}, info


def peak_runner(tiny: bool) -> tuple[Callable[[], dict], dict]:
    import jax

    from gdlab.costs.timing import matmul_peak
    sizes = (64, 128) if tiny else None
    return lambda: {"flops_per_second": matmul_peak(sizes)}, {
        "devices": len(jax.devices()), "platform": jax.devices()[0].platform}


def limits_runner(w: Workload, chunk: int) -> tuple[Callable[[], dict], dict]:
    """What bounds an MLP workload's FLOP/s on one device: the parts of its step
    (`gdlab.profile_step`, `chunk` seeds vmapped), and the best XLA does on the step's
    two big matmul shapes alone, batched over the same seeds, in a compiled loop."""
    import jax
    import jax.numpy as jnp

    import gdlab
    from gdlab.costs import timing
    problem, config = problem_of(w), w.config()
    d, b, h = problem.data["x"].shape[1], w.batch_size, w.hidden
    x = jnp.ones((chunk, b, d)) / d

    def matmuls(i, w1, x):  # forward x @ W1, backward x^T @ Z, chained through W1
        return w1 - 1e-9 * jnp.swapaxes(x, 1, 2) @ (x @ w1)

    looped = jax.jit(timing.repeat_loop(matmuls))

    def run() -> dict:
        prof = gdlab.profile_step(problem, config, seeds=chunk, repeats=9,
                                  parts=("derivative", "update", "sample", "step"))
        ceiling = timing.time_in_loop(looped, jnp.ones((chunk, d, h)) / h, (x,), repeats=9)
        step = prof.seconds("step")
        return {"seconds": step, "shares": prof.shares(),
                "step_flops_per_second": chunk * w.flops_per_seed_step / step,
                "xla_step_flops_per_seed": (prof.parts["step"].flops or 0.0) / chunk,
                "counted_flops_per_seed": w.flops_per_seed_step,
                "matmul_flops_per_second": chunk * 4.0 * b * d * h / ceiling.median,
                "compile_seconds": 0.0}
    return run, {"seeds": chunk, "devices": 1}


def build(spec: dict) -> tuple[Callable[[], dict], dict]:
    runner = spec["runner"]
    if runner == "peak":
        return peak_runner(spec.get("tiny", False))
    w = workload(spec["workload"], tiny=spec.get("tiny", False), seeds=spec.get("seeds"))
    if runner == "gdlab":
        return gdlab_runner(w)
    if runner == "limits":
        return limits_runner(w, spec["chunk"])
    return baseline_runner(runner, w)


def peak_memory_bytes() -> float:
    """This process's peak resident memory (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def main() -> None:
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from libraries go to stderr, not into the protocol
    spec = json.loads(sys.stdin.readline())
    try:
        run, info = build(spec)
    except Exception as exc:  # report, so the parent can mark this side failed
        reply.write(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        return
    reply.write(json.dumps({"ready": True, "info": info}) + "\n")
    for line in sys.stdin:
        if line.strip() != "run":
            break
        result = run()
        result["peak_memory_bytes"] = peak_memory_bytes()
        reply.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
