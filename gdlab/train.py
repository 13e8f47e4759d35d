"""`gdlab.train`: validate, compile, run the chunked host loop, collect Runs."""

from __future__ import annotations

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

from gdlab import devices as dev
from gdlab import engine, store
from gdlab.config import TrainConfig
from gdlab.problem import Problem, check_loss_is_scalar, num_data_points
from gdlab.runs import Runs

PyTree = Any


def train(problem: Problem, config: TrainConfig, seeds: int | Sequence[int] = 1,
          key: int | jax.Array = 0, *, eval_data: PyTree = None,
          devices: Sequence[jax.Device] | None = None, seed_chunk: int | None = None,
          progress: bool | None = None, out: str | os.PathLike | None = None,
          overwrite: bool = False, trajectories: int = 0) -> Runs:
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
        floating-point reassociation.
      progress: show a progress bar (default: when stderr is a terminal and the run
        takes more than a couple of seconds).
      out: if given, save the run directory there (checked before anything compiles).
      overwrite: allow `out` to replace a run already saved there.
      trajectories: record the params of the first `trajectories` seeds at every
        evaluation (`Runs.trajectory`, leaves shaped (K, E, ...)); 0 records none.

    Returns:
      A `gdlab.Runs`.

    Example:
      >>> runs = gdlab.train(gdlab.problems.himmelblau(),
      ...                    gdlab.TrainConfig(learning_rate=1e-2, steps=500, eval_every=100),
      ...                    seeds=1024)
      >>> runs.final_loss.shape
      (1024,)
    """
    seed_ids = _seed_ids(seeds)
    record = _check_trajectories(trajectories, len(seed_ids))
    eval_data = _check_inputs(problem, config, eval_data)
    out_path = None if out is None else store.check_writable(out, overwrite)
    mesh = dev.seed_mesh(devices)
    key = _as_key(key)
    chunk = _choose_chunk(problem, config, seed_chunk, len(seed_ids), mesh)
    padded = dev.padded_seed_count(len(seed_ids), mesh.size, chunk)
    ids = np.concatenate([seed_ids, np.full(padded - len(seed_ids), seed_ids[-1])])
    ids = jax.device_put(jnp.asarray(ids, jnp.int32), dev.seed_sharding(mesh))
    key_r, data_r, eval_r = (dev.replicated(mesh, x) for x in (key, problem.data, eval_data))

    eng, state = engine.compile_engine(problem, config, mesh, chunk, ids, key_r, data_r, eval_r)
    init_params = state.params
    loop = _run_loop(eng, state, config, mesh, data_r, eval_r, progress, problem.name, record)
    runs = _collect(problem, config, seed_ids, key, mesh, chunk, eng, init_params, loop)
    if out_path is not None:
        runs.save(out_path, overwrite=overwrite)
    return runs


def _seed_ids(seeds: int | Sequence[int]) -> np.ndarray:
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds <= 0:
            raise ValueError(f"seeds must be a positive number of seeds or a sequence of seed "
                             f"ids, got {seeds!r}")
        return np.arange(int(seeds), dtype=np.int64)
    ids = np.asarray(seeds)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"seeds must be a positive int or a non-empty 1-D sequence of int "
                         f"seed ids, got {seeds!r}")
    if ids.min() < 0 or ids.max() >= 2**31:
        raise ValueError(f"seed ids must lie in [0, 2**31), got min {ids.min()} max {ids.max()}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("seed ids must be unique; got repeated ids")
    return ids.astype(np.int64)


def _check_trajectories(trajectories: int, num_seeds: int) -> int:
    if isinstance(trajectories, bool) or not isinstance(trajectories, numbers.Integral) \
            or not 0 <= trajectories <= num_seeds:
        raise ValueError(f"trajectories must be an integer in 0..{num_seeds} (the number of "
                         f"seeds whose params are recorded), got {trajectories!r}")
    return int(trajectories)


def _check_inputs(problem: Problem, config: TrainConfig, eval_data: PyTree) -> PyTree:
    """Every check that needs the problem and config; returns the evaluation data."""
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a gdlab.Problem, got {type(problem).__name__}")
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a gdlab.TrainConfig, got {type(config).__name__}")
    n = problem.num_data
    if config.batch_size is not None:
        if n is None:
            raise ValueError(f"batch_size={config.batch_size} but problem {problem.name!r} has "
                             "no data; use batch_size=None")
        if config.batch_size > n:
            raise ValueError(f"batch_size={config.batch_size} is larger than the N={n} data "
                             f"points of {problem.name!r}; valid: 1..{n} or None (full batch)")
    if eval_data is None:
        eval_data = problem.data
    elif problem.data is None:
        raise ValueError(f"eval_data given but problem {problem.name!r} has no data")
    else:
        num_data_points(eval_data, where="eval_data")
    check_loss_is_scalar(problem, config.batch_size if n else None, eval_data)
    return eval_data


def _as_key(key: int | jax.Array) -> jax.Array:
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    raise ValueError(f"key must be an int or a typed JAX key (jax.random.key), got {key!r}")


def _choose_chunk(problem, config, seed_chunk, num_seeds, mesh) -> int:
    local = -(-num_seeds // mesh.size)
    if seed_chunk is not None:
        if isinstance(seed_chunk, bool) or not isinstance(seed_chunk, numbers.Integral) \
                or seed_chunk < 1:
            raise ValueError(f"seed_chunk must be a positive integer or None, got {seed_chunk!r}")
        return int(min(seed_chunk, local))
    per_seed = engine.bytes_per_seed_step(problem, config, problem.data)
    return dev.auto_seed_chunk(local, per_seed, mesh.devices.flat[0].platform)


def _run_loop(eng, state, config: TrainConfig, mesh, data, eval_data, progress, name,
              record: int = 0):
    """Run the chunks, evaluating on schedule; returns state, losses, trajectory, timings."""
    evals, eval_steps, eval_times, path = [], [], [], []
    eval_total = 0.0
    start = time.perf_counter()

    def evaluate(step):
        nonlocal eval_total
        t = time.perf_counter()
        evals.append(jax.block_until_ready(eng.evaluate(state, eval_data)))
        eval_total += time.perf_counter() - t
        eval_steps.append(step)
        eval_times.append(time.perf_counter() - start)
        if record:
            path.append(jax.tree.map(lambda x: np.asarray(x[:record]), state.params))

    evaluate(0)
    bar = tqdm(total=config.steps, unit="step", desc=name, delay=2.0, leave=False,
               disable=None if progress is None else not progress)
    step, last_eval = 0, time.perf_counter()
    for length in engine.chunk_lengths(config):
        state = jax.block_until_ready(
            eng.chunks[length](state, dev.replicated(mesh, jnp.int32(step)), data))
        step += length
        bar.update(length)
        due = (time.perf_counter() - last_eval >= config.eval_every_seconds
               if config.eval_by_time else True)
        if due or step == config.steps:
            evaluate(step)
            last_eval = time.perf_counter()
    bar.close()
    total = time.perf_counter() - start
    return {"state": state, "evals": evals, "eval_steps": eval_steps, "eval_times": eval_times,
            "trajectory": jax.tree.map(lambda *xs: np.stack(xs, axis=1), *path) if path else None,
            "train_seconds": total - eval_total, "eval_seconds": eval_total,
            "loop_seconds": total}


def _collect(problem, config, seed_ids, key, mesh, chunk, eng, init_params, loop) -> Runs:
    s = len(seed_ids)
    strip = lambda tree: jax.tree.map(lambda x: np.asarray(x)[:s], tree)
    state = loop["state"]
    history = np.stack([np.asarray(e)[:s] for e in loop["evals"]], axis=1)
    timings = {"compile_seconds": eng.compile_seconds, "train_seconds": loop["train_seconds"],
               "eval_seconds": loop["eval_seconds"], "total_seconds": loop["loop_seconds"],
               "seed_steps_per_second": s * config.steps / max(loop["train_seconds"], 1e-12)}
    return Runs(params=strip(state.params), init_params=strip(init_params),
                final_loss=history[:, -1], loss_history=history,
                eval_steps=np.asarray(loop["eval_steps"], np.int64),
                eval_seconds=np.asarray(loop["eval_times"], np.float64),
                diverged_at=strip(state.diverged_at), seed_ids=seed_ids, timings=timings,
                manifest=manifest(problem, config, seed_ids, key, mesh, chunk),
                trajectory=loop["trajectory"])


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
        "devices": dev.describe(mesh.devices.flat), "seed_chunk": chunk,
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
