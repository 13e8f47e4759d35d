"""`gdlab.train`: validate, compile, run the chunked host loop, collect Runs."""

from __future__ import annotations

import dataclasses
import datetime
import numbers
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from gdlab._checks import InputError
from gdlab.config import TrainConfig
from gdlab.core import checkpoint, engine, store
from gdlab.core import devices as dev
from gdlab.core.runs import Runs
from gdlab.core.seeds import as_key, seed_ids_of
from gdlab.problem import Problem, check_loss_is_scalar, num_data_points

PyTree = Any


def train(problem: Problem, config: TrainConfig, seeds: int | Sequence[int] = 1,
          key: int | jax.Array = 0, *, eval_data: PyTree = None,
          devices: Sequence[jax.Device] | None = None, seed_chunk: int | None = None,
          progress: bool | None = None, out: str | os.PathLike | None = None,
          overwrite: bool = False, trajectories: int = 0,
          checkpoint_every: float | None = None, resume: bool = False,
          seeds_per_call: int | None = None, unroll: int = 1) -> Runs:
    """Train many seeds of `problem` at once and return every seed's result.

    Args:
      problem: the `gdlab.Problem` to train.
      config: the `gdlab.TrainConfig`.
      seeds: the number of seeds S (ids 0..S-1), or an explicit sequence of seed ids.
      key: integer or JAX key; seed i uses `fold_in(key, i)` only, so adding seeds never
        changes existing ones.
      eval_data: data the loss is measured on (default: the full training set).
      devices: devices the seed axis is sharded over (default: every local device).
      seed_chunk: seeds vmapped together per device (default: chosen from the
        problem's per-step memory and the platform). Results do not depend on it beyond
        floating-point reassociation. The devices default to every local device; on CPU
        gdlab makes one device per core when imported (`GDLAB_CPU_DEVICES=N` overrides).
      progress: show a progress bar (default: when stderr is a terminal and the run
        takes more than a couple of seconds).
      out: if given, save the run directory there (checked before anything compiles).
      overwrite: allow `out` to replace a run already saved there.
      trajectories: record the params of the first `trajectories` seeds at every
        evaluation (`Runs.trajectory`, leaves shaped (K, E, ...)); 0 records none.
      checkpoint_every: with `out`, save a checkpoint of the whole state into
        `out/checkpoints/` at the first chunk boundary after every this many seconds
        (0: after every chunk). With `out`, SIGTERM (what SLURM sends before preemption)
        always saves a checkpoint and raises `gdlab.checkpoint.Preempted`.
      resume: with `out`, continue from the newest valid checkpoint there (a damaged one
        is skipped with a warning; none: start from step 0). On the same devices the
        result is bitwise identical to an uninterrupted run.
      seeds_per_call: train at most this many seeds at once and run the rest in
        consecutive groups, one compile for all (results are identical: seed i depends
        only on its id). Default: all at once when their state fits in half of the
        device memory (host RAM on CPU), else groups that do.

      unroll: optimizer steps per iteration of the compiled step loop (`lax.scan`'s
        unroll); a speed setting only, results do not depend on it beyond reassociation.

    Returns:
      A `gdlab.Runs`.

    Example:
      >>> runs = gdlab.train(gdlab.problems.himmelblau(),
      ...                    gdlab.TrainConfig(learning_rate=1e-2, steps=500, eval_every=100),
      ...                    seeds=1024)
      >>> runs.final_loss.shape
      (1024,)
    """
    seed_ids = seed_ids_of(seeds)
    record = _check_trajectories(trajectories, len(seed_ids))
    if isinstance(unroll, bool) or not isinstance(unroll, numbers.Integral) or unroll < 1:
        raise InputError(f"unroll must be a positive integer (steps per scan iteration), "
                         f"got {unroll!r}")
    eval_data = _check_inputs(problem, config, eval_data)
    out_path = _check_out(out, overwrite, checkpoint_every, resume)
    mesh = dev.seed_mesh(devices, len(seed_ids))
    if mesh.devices.flat[0].platform == "cpu":
        dev.tune_host_allocator()
    key = as_key(key)
    chunk = _choose_chunk(problem, config, seed_chunk, len(seed_ids), mesh)
    group = _choose_group(problem, config, seeds_per_call, len(seed_ids), mesh, chunk)
    if group < len(seed_ids) and (checkpoint_every is not None or resume):
        raise InputError(f"checkpoints cover one group of seeds; with {len(seed_ids)} seeds in "
                         f"groups of {group} use one call per group (seeds=ids) to checkpoint")
    if record > group:
        raise InputError(f"trajectories={record} is more than the {group} seeds trained per "
                         "call (seeds_per_call); record at most that many")
    padded = dev.padded_seed_count(group, mesh.size, chunk)
    id_groups = [_pad(seed_ids[i:i + padded], padded) for i in range(0, len(seed_ids), padded)]
    put_ids = lambda ids: dev.put(ids.astype(np.int32), dev.seed_sharding(mesh))
    key_r, data_r, eval_r = (dev.replicated(mesh, x) for x in (key, problem.data, eval_data))

    eng, state = engine.compile_engine(problem, config, mesh, chunk, put_ids(id_groups[0]),
                                       key_r, data_r, eval_r, int(unroll))
    ckpt = None
    if out_path is not None:
        ckpt = _Checkpointing(out_path, checkpoint_every, resume, checkpoint.fingerprint(
            problem.spec or problem.name, problem.num_params(), config.describe(),
            seed_ids.tolist(), np.asarray(jax.random.key_data(key)).tolist(), record))
        if not resume:
            checkpoint.remove(out_path)  # overwrite=True: stale checkpoints must not resume
    parts = []
    for g, ids in enumerate(id_groups):
        if g:
            state = eng.init(put_ids(ids), key_r)
        loop = _run_loop(eng, state, config, mesh, data_r, eval_r, progress, problem.name,
                         record if g == 0 else 0, ckpt)
        parts.append(_host_part(loop, state.params, min(padded, len(seed_ids) - g * padded)))
    runs = _collect(problem, config, seed_ids, key, mesh, chunk, eng, parts, group)
    runs.manifest["unroll"] = int(unroll)
    if out_path is not None:
        if dev.is_main_process():
            runs.save(out_path, overwrite=overwrite or resume)
        checkpoint.remove(out_path)
    return runs


def _pad(ids: np.ndarray, size: int) -> np.ndarray:
    """Pad a group of seed ids to `size` by repeating its last id (results discarded)."""
    return np.concatenate([ids, np.full(size - len(ids), ids[-1])])


def _choose_group(problem, config, seeds_per_call, num_seeds: int, mesh, chunk: int) -> int:
    if seeds_per_call is not None:
        if isinstance(seeds_per_call, bool) or not isinstance(seeds_per_call, numbers.Integral) \
                or seeds_per_call < 1:
            raise InputError(f"seeds_per_call must be a positive integer or None, got "
                             f"{seeds_per_call!r}")
        group = int(min(seeds_per_call, num_seeds))
        if group < num_seeds and config.eval_by_time:
            raise InputError("seeds_per_call below the number of seeds needs step-based "
                             "evaluation (eval_every); groups would evaluate at different steps")
        return group
    if config.eval_by_time:
        return num_seeds
    per_seed = engine.state_bytes_per_seed(problem, config)
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    budget = 0.5 * dev.memory_bytes(local[0]) * mesh.size
    fits = int(budget // max(per_seed, 1.0))
    return num_seeds if fits >= num_seeds else max(mesh.size * chunk, fits)


def _check_out(out, overwrite: bool, checkpoint_every, resume: bool) -> Path | None:
    if out is None:
        if checkpoint_every is not None or resume:
            raise InputError("checkpoint_every and resume need an output directory (out=...)")
        return None
    if checkpoint_every is not None and (isinstance(checkpoint_every, bool) or not isinstance(
            checkpoint_every, numbers.Real) or not 0 <= checkpoint_every < float("inf")):
        raise InputError(f"checkpoint_every must be a number of seconds >= 0 (0 = after every "
                         f"chunk) or None, got {checkpoint_every!r}")
    path = store.check_writable(out, overwrite or resume)
    if resume and store.holds_run(path):
        raise InputError(f"{str(path)!r} already holds the finished run; nothing to resume")
    if not resume and not overwrite and checkpoint.exists(path):
        raise InputError(f"{str(path)!r} holds checkpoints of an unfinished run; pass "
                         "resume=True (--resume) to continue it, or overwrite=True to start over")
    return path


def _check_trajectories(trajectories: int, num_seeds: int) -> int:
    if isinstance(trajectories, bool) or not isinstance(trajectories, numbers.Integral) \
            or not 0 <= trajectories <= num_seeds:
        raise InputError(f"trajectories must be an integer in 0..{num_seeds} (the number of "
                         f"seeds whose params are recorded), got {trajectories!r}")
    return int(trajectories)


def _check_inputs(problem: Problem, config: TrainConfig, eval_data: PyTree) -> PyTree:
    """Every check that needs the problem and config; returns the evaluation data."""
    if not isinstance(problem, Problem):
        raise InputError(f"problem must be a gdlab.Problem, got {type(problem).__name__}")
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a gdlab.TrainConfig, got {type(config).__name__}")
    n = problem.num_data
    if config.batch_size is not None:
        if n is None:
            raise InputError(f"batch_size={config.batch_size} but problem {problem.name!r} has "
                             "no data; use batch_size=None")
        if config.batch_size > n:
            raise InputError(f"batch_size={config.batch_size} is larger than the N={n} data "
                             f"points of {problem.name!r}; valid: 1..{n} or None (full batch)")
    if eval_data is None:
        eval_data = problem.data
    elif problem.data is None:
        raise InputError(f"eval_data given but problem {problem.name!r} has no data")
    else:
        num_data_points(eval_data, where="eval_data")
    check_loss_is_scalar(problem, config.batch_size if n else None, eval_data)
    return eval_data


def _choose_chunk(problem, config, seed_chunk, num_seeds, mesh) -> int:
    local = -(-num_seeds // mesh.size)
    if seed_chunk is not None:
        if isinstance(seed_chunk, bool) or not isinstance(seed_chunk, numbers.Integral) \
                or seed_chunk < 1:
            raise InputError(f"seed_chunk must be a positive integer or None, got {seed_chunk!r}")
        return int(min(seed_chunk, local))
    per_seed = engine.bytes_per_seed_step(problem, config, problem.data)
    return dev.auto_seed_chunk(local, per_seed, mesh.devices.flat[0].platform)


@dataclasses.dataclass
class _Checkpointing:
    """Where and how often the host loop saves checkpoints, and whether it resumes."""

    out: Path
    every_seconds: float | None
    resume: bool
    fingerprint: str


@dataclasses.dataclass
class _Log:
    """What the host loop records; saved in checkpoints so a resumed run continues it."""

    evals: list = dataclasses.field(default_factory=list)
    eval_steps: list = dataclasses.field(default_factory=list)
    eval_times: list = dataclasses.field(default_factory=list)
    path: list = dataclasses.field(default_factory=list)
    eval_total: float = 0.0
    first_eval: float = 0.0  # seconds of the step-0 measurement (0.0 when resumed)
    elapsed: float = 0.0  # loop seconds before this process started (resumed runs)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"evals": np.stack([np.asarray(e) for e in self.evals]),
               "eval_steps": np.asarray(self.eval_steps), "eval_times": np.asarray(self.eval_times),
               "clock": np.array([self.eval_total, self.eval_times[-1]])}
        if self.path:
            stacked = jax.tree.leaves(jax.tree.map(lambda *xs: np.stack(xs), *self.path))
            out.update({f"path_{i}": x for i, x in enumerate(stacked)})
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params_like) -> _Log:
        path = []
        if "path_0" in arrays:
            n = sum(k.startswith("path_") for k in arrays)
            treedef = jax.tree.structure(params_like)
            leaves = [arrays[f"path_{i}"] for i in range(n)]
            path = [jax.tree.unflatten(treedef, [x[e] for x in leaves])
                    for e in range(len(arrays["eval_steps"]))]
        return cls(evals=list(arrays["evals"]), eval_steps=arrays["eval_steps"].tolist(),
                   eval_times=arrays["eval_times"].tolist(), path=path,
                   eval_total=float(arrays["clock"][0]), elapsed=float(arrays["clock"][1]))


def _run_loop(eng, state, config: TrainConfig, mesh, data, eval_data, progress, name,
              record: int = 0, ckpt: _Checkpointing | None = None):
    """Run the chunks, evaluating on schedule and checkpointing; returns state and records."""
    log, step, resumed_from = _Log(), 0, None
    if ckpt is not None and ckpt.resume:
        found = checkpoint.load_latest(ckpt.out, state, ckpt.fingerprint)
        if found is not None:
            step, state, saved = found
            log, resumed_from = _Log.from_arrays(saved, state.params), step
    start = time.perf_counter() - log.elapsed

    def evaluate(at):
        t = time.perf_counter()
        log.evals.append(dev.to_host(jax.block_until_ready(eng.evaluate(state, eval_data))))
        took = time.perf_counter() - t
        log.eval_total += took
        if at == 0:
            log.first_eval = took
        log.eval_steps.append(at)
        log.eval_times.append(time.perf_counter() - start)
        if record:
            log.path.append(jax.tree.map(lambda x: dev.to_host(x)[:record], state.params))

    if step == 0:
        evaluate(0)
    bar = tqdm(total=config.steps, initial=step, unit="step", desc=name, delay=2.0, leave=False,
               disable=None if progress is None else not progress)
    last_eval = last_save = time.perf_counter()
    late_compile = 0.0  # a guarded chunk compiled mid-run is compile time, not training
    ends = np.cumsum(engine.chunk_lengths(config))
    t = dev.replicated(mesh, jnp.int32(step))  # the step counter stays on the devices
    with checkpoint.sigterm_flag() as sigterm:
        for length, end in zip(engine.chunk_lengths(config), ends, strict=True):
            if end <= step:
                continue  # done before the checkpoint this run resumed from
            compiled_before = eng.compile_seconds
            state, t = eng.run_chunk(length, state, t, data)
            late_compile += eng.compile_seconds - compiled_before
            step += length
            bar.update(length)
            now = time.perf_counter()
            # Every process must take the same branches: process 0's clock decides.
            due, stop, save = dev.agree([
                not config.eval_by_time or now - last_eval >= config.eval_every_seconds,
                sigterm["set"], ckpt is not None and ckpt.every_seconds is not None
                and now - last_save >= ckpt.every_seconds])
            if due or step == config.steps:
                evaluate(step)
                last_eval = time.perf_counter()
            if ckpt is not None and step < config.steps and (stop or save):
                path = checkpoint.save(ckpt.out, step, state, log.arrays(), ckpt.fingerprint)
                last_save = time.perf_counter()
                if stop:
                    bar.close()
                    raise checkpoint.Preempted(path, step)
    bar.close()
    total = time.perf_counter() - start - late_compile
    return {"state": state, "evals": log.evals, "eval_steps": log.eval_steps,
            "eval_times": log.eval_times,
            "trajectory": jax.tree.map(lambda *xs: np.stack(xs, axis=1), *log.path)
            if log.path else None,
            "train_seconds": total - log.eval_total, "eval_seconds": log.eval_total,
            "first_eval_seconds": log.first_eval,
            "loop_seconds": total, "resumed_from_step": resumed_from}


def _host_part(loop: dict, init_params, real: int) -> dict:
    """One group's results on the host, padding seeds dropped."""
    strip = lambda tree: jax.tree.map(lambda x: dev.to_host(x)[:real], tree)
    return {**loop, "params": strip(loop["state"].params), "init_params": strip(init_params),
            "diverged_at": strip(loop["state"].diverged_at),
            "history": np.stack([np.asarray(e)[:real] for e in loop["evals"]], axis=1)}


def _collect(problem, config, seed_ids, key, mesh, chunk, eng, parts, group) -> Runs:
    s = len(seed_ids)
    cat = lambda name: jax.tree.map(lambda *xs: np.concatenate(xs), *[p[name] for p in parts])
    history = np.concatenate([p["history"] for p in parts])
    train_seconds = sum(p["train_seconds"] for p in parts)
    timings = {"compile_seconds": eng.compile_seconds, "train_seconds": train_seconds,
               "eval_seconds": sum(p["eval_seconds"] for p in parts),
               "first_eval_seconds": sum(p["first_eval_seconds"] for p in parts),
               "total_seconds": sum(p["loop_seconds"] for p in parts),
               "seed_steps_per_second": s * config.steps / max(train_seconds, 1e-12)}
    first = parts[0]
    return Runs(params=cat("params"), init_params=cat("init_params"),
                final_loss=history[:, -1], loss_history=history,
                eval_steps=np.asarray(first["eval_steps"], np.int64),
                eval_seconds=np.asarray(first["eval_times"], np.float64),
                diverged_at=cat("diverged_at"), seed_ids=seed_ids, timings=timings,
                manifest={**manifest(problem, config, seed_ids, key, mesh, chunk),
                          "seeds_per_call": group,
                          "resumed_from_step": first["resumed_from_step"]},
                trajectory=first["trajectory"])


def manifest(problem: Problem, config: TrainConfig, seed_ids, key, mesh, chunk) -> dict:
    """What is needed to reproduce and audit a run."""
    import flax
    import jaxlib
    import optax
    contiguous = bool(np.all(seed_ids == np.arange(len(seed_ids))))
    return {
        "problem": {"name": problem.name, "spec": problem.spec,
                    "description": problem.description,
                    "num_params": problem.num_params(), "num_data": problem.num_data},
        "config": config.describe(),
        "key": np.asarray(jax.random.key_data(key)).tolist(),
        "seeds": {"count": len(seed_ids), "contiguous_from_zero": contiguous},
        "versions": {"python": platform.python_version(), "jax": jax.__version__,
                     "jaxlib": jaxlib.__version__, "optax": optax.__version__,
                     "flax": flax.__version__, "numpy": np.__version__},
        "devices": dev.describe(mesh.devices.flat), "processes": jax.process_count(),
        "seed_chunk": chunk,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "git_revision": git_revision(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }


def git_revision() -> str | None:
    """The gdlab checkout's git revision (with "-dirty" when modified), if any."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout
        return rev.stdout.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
