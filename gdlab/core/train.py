"""`gdlab.train`: validate, compile (or reuse), run the host loop per seed group, collect.

A call trains *lanes*: a lane is one seed at its own values of the optimizer's injected
hyperparameters. `train` trains one lane per seed at the config's values; `gdlab.sweep`
trains a grid of values x seeds in the same compiled call. Every input is checked before
anything compiles; the compiled program comes from the in-process cache when an earlier
call compiled the same one (`runs.timings["cache_hit"]`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from gdlab._checks import InputError, check_flag, check_int, is_int, is_real
from gdlab.config import TrainConfig
from gdlab.core import checkpoint, engine, store
from gdlab.core import devices as dev
from gdlab.core.loop import Checkpointing, Evaluation, LoopResult, LoopSettings, run_loop
from gdlab.core.manifest import manifest
from gdlab.core.runs import Runs, load_runs, save_or_rescue
from gdlab.core.seeds import as_key, seed_ids_of
from gdlab.core.writers import JsonlWriter, LiveMetrics
from gdlab.problem import Problem, check_finite, check_measurable, num_data_points

PyTree = Any
METRICS_FILE = "metrics.jsonl"  # live metrics of a run saved with out=


def train(problem: Problem, config: TrainConfig, seeds: int | Sequence[int] = 1,
          key: int | jax.Array = 0, *, eval_data: PyTree = None,
          devices: Sequence[jax.Device] | None = None, seed_block: int | None = None,
          progress: bool | None = None, out: str | os.PathLike | None = None,
          overwrite: bool = False, trajectories: int = 0,
          checkpoint_every: float | None = None, resume: bool = False,
          seeds_per_call: int | None = None, unroll: int = 1,
          on_eval: Callable[[Evaluation], Any] | None = None,
          init_seeds: int | Sequence[int] | None = None,
          data_seeds: int | Sequence[int] | None = None) -> Runs:
    """Train many seeds of `problem` at once and return every seed's result.

    Args:
      problem: the `gdlab.Problem` to train.
      config: the `gdlab.TrainConfig`.
      seeds: the number of seeds S (ids 0..S-1), or an explicit sequence of seed ids.
      key: integer or JAX key; seed i uses `fold_in(key, i)` only, so adding seeds never
        changes existing ones.
      eval_data: data the loss is measured on instead of the training set (its metrics
        are then named "eval/..."); `problem.test_data` is measured as "test/...".
      devices: devices the seed axis is sharded over (default: every local device; on
        CPU gdlab makes one device per core when imported, `GDLAB_CPU_DEVICES=N` overrides).
      seed_block: seeds vmapped together on one device (default: chosen from the
        problem's per-step memory and the platform). Results do not depend on it beyond
        floating-point reassociation.
      progress: show a progress bar (default: when stderr is a terminal and the run
        takes more than a couple of seconds).
      out: if given, save the run directory there (checked before anything compiles).
      overwrite: allow `out` to replace a run already saved there.
      trajectories: record the params of the first `trajectories` seeds at every
        evaluation (`Runs.trajectory`, leaves shaped (K, E, ...)); 0 records none.
      checkpoint_every: with `out`, save a checkpoint of the whole state into
        `out/checkpoints/` at the first chunk boundary after every this many seconds
        (0: after every chunk). With `out`, SIGTERM (what SLURM sends before preemption)
        always saves a checkpoint and raises `gdlab.Preempted`.
      resume: with `out`, continue from the newest valid checkpoint there (a damaged one
        is skipped with a warning; none: start from step 0). On the same devices the
        result is bitwise identical to an uninterrupted run.
      seeds_per_call: train at most this many seeds at once (a seed group) and run the
        rest in consecutive groups, one compile for all (results are identical: seed i
        depends only on its id). Default: all at once when their state fits in half of
        the device memory (host RAM on CPU), else groups that do.
      unroll: optimizer steps per iteration of the compiled step loop (`lax.scan`'s
        unroll); a speed setting only, results do not depend on it beyond reassociation.
      on_eval: called as `on_eval(evaluation)` at every measurement with a
        `gdlab.core.loop.Evaluation` (step, seconds, metrics per seed, diverged count,
        steps per second), e.g. to write live metrics (in the process that calls it).
      init_seeds: the seed ids whose initialisation each seed uses instead of its own (an
        int: all seeds start from that one seed's init), e.g. one init with many batch
        orders, to split run-to-run variance into its sources.
      data_seeds: likewise for the mini-batch order (an int: every seed sees the same
        order). By default seed i uses seed i's init and order.

    Returns:
      A `gdlab.Runs`.

    Example:
      >>> cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=100, eval_every=50)
      >>> runs = gdlab.train(gdlab.problems.himmelblau(), cfg, seeds=8, progress=False)
      >>> runs.final_loss.shape, runs.eval_steps.tolist()
      ((8,), [0, 50, 100])
    """
    _check_progress(progress)
    if on_eval is not None and not callable(on_eval):
        raise InputError(f"on_eval must be a callable on_eval(evaluation) or None, got "
                         f"{on_eval!r}")
    if check_flag("resume", resume) and isinstance(out, str | os.PathLike) and \
            os.fspath(out) and store.holds_run(out) and not checkpoint.exists(out):
        return _finished(problem, config, seed_ids_of(seeds), out)
    seed_ids = seed_ids_of(seeds)
    lanes = Lanes(seed_ids, {k: np.full(len(seed_ids), v, np.float64)
                             for k, v in _config_hparams(config).items()},
                  _source_ids("init_seeds", init_seeds, seed_ids),
                  _source_ids("data_seeds", data_seeds, seed_ids))
    try:  # `out` is locked from its check until the run is saved, or this call fails
        plan = make_plan(problem, config, lanes, key, eval_data=eval_data, devices=devices,
                         seed_block=seed_block, out=out, overwrite=overwrite,
                         trajectories=trajectories, checkpoint_every=checkpoint_every,
                         resume=resume, seeds_per_call=seeds_per_call, unroll=unroll)
        with _run_metrics(plan, on_eval) as callback:
            result = run_plan(problem, config, plan, progress, callback)
        runs = result.runs(slice(None))
        if plan.out is not None:
            _save(runs, plan, overwrite or resume)
    finally:
        if isinstance(out, str | os.PathLike) and os.fspath(out):  # bad ones were refused
            store.release_lock(out)
    return runs


@contextlib.contextmanager
def _run_metrics(plan: Plan, on_eval):
    """The user's `on_eval`, plus live metrics in `out/metrics.jsonl` when saving a run."""
    if plan.out is None or not dev.is_main_process():
        yield on_eval
        return
    live = LiveMetrics([JsonlWriter(plan.out / METRICS_FILE, append=plan.resume)])
    def both(evaluation: Evaluation) -> None:
        live(evaluation)
        if on_eval is not None:
            on_eval(evaluation)
    try:
        yield both
    finally:
        live.close()


def _finished(problem: Problem, config, seed_ids: np.ndarray, out) -> Runs:
    """`resume=True` on a run that already finished: nothing to train, the saved run (a
    re-run of a finished SLURM array task then succeeds instead of failing), provided it
    is the run asked for (same config and seeds); another one is refused, never returned."""
    runs = load_runs(out, problem=problem)
    same_config = runs.manifest.get("config") == config.describe()
    if not same_config or not np.array_equal(runs.seed_ids, seed_ids):
        what = "seeds" if same_config else "config"
        raise InputError(f"{str(out)!r} holds a finished run with another {what} than this "
                         "call's; nothing to resume. Pass another out=, or overwrite=True to "
                         "replace it")
    if dev.is_main_process():
        print(f"gdlab: {str(out)!r} already holds the finished run; nothing to resume, "
              "returning it", file=sys.stderr)
    return runs


def _config_hparams(config: TrainConfig) -> dict[str, float]:
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a gdlab.TrainConfig, got {type(config).__name__}")
    return config.hyperparams()


def _source_ids(name: str, given, seed_ids: np.ndarray) -> np.ndarray:
    """Per-seed ids of one source of randomness (init or data order); default: the seed's."""
    if given is None:
        return seed_ids
    if is_int(given):
        return np.full(len(seed_ids), seed_ids_of([int(given)])[0])
    try:
        ids = np.asarray(given)
    except (TypeError, ValueError):  # e.g. JAX keys, ragged nests
        ids = np.zeros(0, object)
    if ids.shape != seed_ids.shape or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"{name} must be an int or one int per seed ({len(seed_ids)}), got "
                         f"{given!r}")
    if ids.min() < 0 or ids.max() >= 2**31:
        raise InputError(f"{name} must lie in [0, 2**31), got min {ids.min()} max {ids.max()}")
    return ids.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Lanes:
    """What one call trains: lane l is run `seed_ids[l]`, starting from the init of seed
    `init_ids[l]`, drawing the mini-batches of seed `data_ids[l]` (both default to the
    seed's own), at hyperparameters `hparams[name][l]` (the optimizer's injected ones;
    see `TrainConfig.hyperparams`)."""

    seed_ids: np.ndarray  # (L,)
    hparams: dict[str, np.ndarray]  # name -> (L,)
    init_ids: np.ndarray | None = None  # (L,); None: seed_ids
    data_ids: np.ndarray | None = None  # (L,); None: seed_ids

    def __post_init__(self):
        for name in ("init_ids", "data_ids"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.seed_ids)

    def __len__(self) -> int:
        return len(self.seed_ids)

    def take(self, idx: np.ndarray) -> Lanes:
        return Lanes(self.seed_ids[idx], {k: v[idx] for k, v in self.hparams.items()},
                     self.init_ids[idx], self.data_ids[idx])


@dataclasses.dataclass(frozen=True)
class Plan:
    """Every validated setting of a training call, decided before anything compiles."""

    lanes: Lanes
    key: jax.Array
    mesh: Mesh
    seed_block: int  # lanes vmapped together on one device
    group: int  # lanes trained per call of the compiled program
    padded: int  # the group padded to a multiple of devices x seed block
    record: int  # lanes whose params are recorded at every evaluation
    eval_sets: dict[str, Any]  # {"train" or "eval": data, "test": test data}
    out: Path | None
    checkpoint_every: float | None
    resume: bool
    unroll: int


def make_plan(problem: Problem, config: TrainConfig, lanes: Lanes, key, *, eval_data=None,
              devices=None, seed_block=None, out=None, overwrite=False, trajectories=0,
              checkpoint_every=None, resume=False, seeds_per_call=None, unroll=1) -> Plan:
    """Check every input (nothing compiles or is written) and decide the layout."""
    for name, flag in (("overwrite", overwrite), ("resume", resume)):
        check_flag(name, flag)
    _check_hyperparams(lanes.hparams)
    run_key = as_key(key)
    record = check_int("trajectories", trajectories, 0, len(lanes),
                       hint="the number of seeds whose params are recorded")
    unroll = check_int("unroll", unroll, minimum=1, hint="steps per scan iteration")
    eval_sets = _check_inputs(problem, config, eval_data)
    dev.check_devices(devices)
    mesh = dev.seed_mesh(devices, len(lanes))
    _check_data_fits(problem, eval_sets, mesh)
    out_path = _check_out(out, overwrite, checkpoint_every, resume, problem)
    if mesh.devices.flat[0].platform == "cpu":
        dev.tune_host_allocator()
    block = _choose_block(problem, config, seed_block, len(lanes), mesh)
    group = _choose_group(problem, config, seeds_per_call, len(lanes), mesh, block)
    if group < len(lanes) and (checkpoint_every is not None or resume):
        raise InputError(f"checkpoints cover one group of seeds; with {len(lanes)} seeds in "
                         f"groups of {group} use one call per group (seeds=ids) to checkpoint")
    if record > group:
        raise InputError(f"trajectories={record} is more than the {group} seeds trained per "
                         "call (seeds_per_call); record at most that many")
    return Plan(lanes, run_key, mesh, block, group,
                dev.padded_seed_count(group, mesh.size, block), record, eval_sets, out_path,
                checkpoint_every, resume, unroll)


@dataclasses.dataclass(frozen=True)
class Trained:
    """Every lane's results after `run_plan`, on the host."""

    problem: Problem
    config: TrainConfig
    plan: Plan
    groups: list[LoopResult]  # host arrays, padding lanes dropped
    init_params: list[Any]
    compile_seconds: float
    cache_hit: bool

    def runs(self, lanes: slice | np.ndarray) -> Runs:
        """The `Runs` of the lanes selected by `lanes` (a slice or an index array)."""
        return _collect(self, np.arange(len(self.plan.lanes))[lanes])


def run_plan(problem: Problem, config: TrainConfig, plan: Plan, progress=None,
             on_eval=None) -> Trained:
    """Compile (or reuse) the engine and train every seed group of the plan."""
    _check_progress(progress)
    groups = [plan.lanes.take(np.arange(i, min(i + plan.padded, len(plan.lanes))))
              for i in range(0, len(plan.lanes), plan.padded)]
    placed = lambda lanes: _place_lanes(plan.mesh, _pad(lanes, plan.padded))
    key_r = dev.replicated(plan.mesh, plan.key)
    data_r = dev.replicated(plan.mesh, problem.data)
    eval_r = {k: data_r if v is problem.data else dev.replicated(plan.mesh, v)
              for k, v in plan.eval_sets.items()}
    inputs = engine.EngineInputs(placed(groups[0]), key_r, data_r, eval_r)
    before = 0.0
    eng, hit = engine.get_engine(problem, config, plan.mesh, plan.seed_block, inputs,
                                 plan.unroll)
    before = eng.compile_seconds if hit else 0.0
    ckpt = _checkpointing(problem, config, plan)
    results, inits = [], []
    for g, lanes in enumerate(groups):
        state = eng.init(placed(lanes), key_r)
        settings = LoopSettings(config, problem.name, progress, plan.record if g == 0 else 0,
                                ckpt, on_eval)
        loop = run_loop(eng, state, plan.mesh, data_r, eval_r, settings)
        results.append(_to_host(loop, len(lanes)))
        real = len(lanes)
        inits.append(jax.tree.map(lambda x, n=real: dev.to_host(x)[:n], state.params))
    return Trained(problem, config, plan, results, inits, eng.compile_seconds - before, hit)


def _place_lanes(mesh: Mesh, lanes: Lanes) -> dict[str, Any]:
    put = lambda x, dtype: dev.put(np.asarray(x, dtype), dev.seed_sharding(mesh))
    return {"init_id": put(lanes.init_ids, np.int32), "data_id": put(lanes.data_ids, np.int32),
            "hparams": {k: put(v, np.float32) for k, v in lanes.hparams.items()}}


def _pad(lanes: Lanes, size: int) -> Lanes:
    """Lanes padded to `size` by repeating the last one (results discarded)."""
    idx = np.minimum(np.arange(size), len(lanes) - 1)
    return lanes.take(idx)


def _to_host(loop: LoopResult, real: int) -> LoopResult:
    """One group's results on the host, padding lanes dropped."""
    strip = lambda tree: jax.tree.map(lambda x: dev.to_host(x)[:real], tree)
    return loop._replace(state=strip(loop.state),
                         evals={k: v[:real] for k, v in loop.evals.items()})


def _checkpointing(problem: Problem, config: TrainConfig, plan: Plan) -> Checkpointing | None:
    if plan.out is None:
        return None
    fingerprint = checkpoint.fingerprint(
        problem.spec or problem.name, problem.num_params(), config.describe(),
        plan.lanes.seed_ids.tolist(), {k: v.tolist() for k, v in plan.lanes.hparams.items()},
        plan.lanes.init_ids.tolist(), plan.lanes.data_ids.tolist(),
        np.asarray(jax.random.key_data(plan.key)).tolist(), plan.record)
    if not plan.resume:
        checkpoint.remove(plan.out)  # overwrite=True: stale checkpoints must not resume
    return Checkpointing(plan.out, plan.checkpoint_every, plan.resume, fingerprint)


def _save(runs: Runs, plan: Plan, overwrite: bool) -> None:
    """Save the run (to a temporary directory if `out` fails), then release `out`'s lock."""
    if dev.is_main_process():
        try:
            save_or_rescue(runs, plan.out, overwrite=overwrite)
            checkpoint.remove(plan.out)  # kept if the save failed
        finally:
            store.release_lock(plan.out)


def _collect(trained: Trained, idx: np.ndarray) -> Runs:
    """The Runs of lanes `idx` (indices into the plan's lanes)."""
    plan, groups = trained.plan, trained.groups
    cat = lambda trees: jax.tree.map(lambda *xs: np.concatenate(xs)[idx], *trees)
    evals = {k: np.concatenate([g.evals[k] for g in groups])[idx] for k in groups[0].evals}
    first = next(iter(plan.eval_sets))
    history = evals[f"{first}/loss"]
    diverged_at = _flag_nonfinite_start(cat([g.state.diverged_at for g in groups]), history,
                                        plan.lanes.seed_ids[idx])
    train_seconds = sum(g.train_seconds for g in groups)
    timings = {"compile_seconds": trained.compile_seconds, "cache_hit": trained.cache_hit,
               "train_seconds": train_seconds,
               "eval_seconds": sum(g.eval_seconds for g in groups),
               "first_eval_seconds": sum(g.first_eval_seconds for g in groups),
               "total_seconds": sum(g.loop_seconds for g in groups),
               "seed_steps_per_second":
                   len(plan.lanes) * trained.config.steps / max(train_seconds, 1e-12)}
    record = plan.record and np.all(idx[:plan.record] == np.arange(plan.record))
    trajectory = groups[0].trajectory if record else None
    seed_ids = plan.lanes.seed_ids[idx]
    info = manifest(trained.problem, trained.config, seed_ids, plan.key, plan.mesh,
                    plan.seed_block)
    info.update(seeds_per_call=plan.group, unroll=plan.unroll,
                resumed_from_step=groups[0].resumed_from_step,
                hyperparams={k: v[idx].tolist() for k, v in plan.lanes.hparams.items()})
    for name in ("init_ids", "data_ids"):
        ids = getattr(plan.lanes, name)[idx]
        if not np.array_equal(ids, seed_ids):
            info[name] = ids.tolist()
    return Runs(params=cat([g.state.params for g in groups]), init_params=cat(trained.init_params),
                final_loss=history[:, -1], loss_history=history,
                eval_steps=np.asarray(groups[0].eval_steps, np.int64),
                eval_seconds=np.asarray(groups[0].eval_times, np.float64),
                diverged_at=diverged_at, seed_ids=seed_ids, timings=timings, manifest=info,
                trajectory=trajectory, metrics=evals)


def _flag_nonfinite_start(diverged_at: np.ndarray, history_SE: np.ndarray,
                          seed_ids: np.ndarray) -> np.ndarray:
    """Seeds whose loss is not finite at initialisation are flagged diverged at step 0."""
    bad = ~np.isfinite(history_SE[:, 0])
    if bad.any():
        warnings.warn(f"{int(bad.sum())} of {len(bad)} seeds have a non-finite loss at "
                      f"initialisation (seed ids {seed_ids[bad][:10].tolist()}...); they are "
                      "flagged as diverged at step 0: check the problem's init and data",
                      stacklevel=3)
    return np.where(bad, 0, diverged_at).astype(diverged_at.dtype)


# ----------------------------------------------------------------------------- checks


DATA_MEMORY_SHARE = 0.8  # of a device's memory the replicated data may take


def _check_data_fits(problem: Problem, eval_sets: dict, mesh: Mesh) -> None:
    """Every device holds one copy of the training data and of each distinct evaluation
    set: refuse, naming the sizes, when that copy would not fit in a device's memory."""
    sets = {id(problem.data): problem.data}
    sets.update({id(v): v for v in eval_sets.values() if v is not None})
    nbytes = sum(int(np.prod(np.shape(x))) * np.dtype(getattr(x, "dtype", np.float32)).itemsize
                 for data in sets.values() for x in jax.tree.leaves(data))
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    limit = DATA_MEMORY_SHARE * min(dev.memory_bytes(d) for d in local)
    if nbytes > limit:
        n = num_data_points(problem.data) if problem.data is not None else 0
        raise InputError(
            f"the data ({n} training points; {nbytes / 2**30:.2f} GiB with the evaluation "
            f"sets) is kept once per device, {len(local)} device(s) here, each with "
            f"{limit / DATA_MEMORY_SHARE / 2**30:.2f} GiB ({local[0].platform}"
            f"{', host RAM shared by the CPU devices' if local[0].platform == 'cpu' else ''}): "
            f"{len(local)} x {nbytes / 2**30:.2f} GiB does not fit. Use fewer devices "
            "(devices=...), a smaller or lower-precision dataset, or fewer evaluation sets")


MEMORY_SHARE = 0.5  # of a device's memory the seeds' states and a step's temporaries may take
STATE_COPIES = 3  # a chunk holds its input state, its output and, rerun guarded, a third


def group_bytes(seeds_local: int, state_bytes: float, block_temp_bytes: float) -> float:
    """Bytes one device needs to train `seeds_local` seeds: each seed's state
    `STATE_COPIES` times, plus one seed block's step temporaries (blocks run one after
    another, `lax.map`). The data is apart (`_check_data_fits`)."""
    return seeds_local * STATE_COPIES * state_bytes + block_temp_bytes


def _choose_group(problem, config, seeds_per_call, num_seeds: int, mesh, block: int) -> int:
    """Seeds trained per call: all of them unless their states and a block's temporaries
    would take more than `MEMORY_SHARE` of a device's memory. The step's temporaries come
    from XLA: first the cheap bound (bytes the lowered step touches); only when that says
    the seeds might not fit, the memory analysis of one seed's compiled step."""
    if seeds_per_call is not None:
        group = min(check_int("seeds_per_call", seeds_per_call, minimum=1, hint="or None"),
                    num_seeds)
        if group < num_seeds and config.eval_by_time:
            raise InputError("seeds_per_call below the number of seeds needs step-based "
                             "evaluation (eval_every); groups would evaluate at different steps")
        return group
    if config.eval_by_time:
        return num_seeds
    key = _step_key(problem, config)
    state = _memo(("state_bytes", *key), lambda: engine.state_bytes_per_seed(problem, config))
    touched = _memo(("step_bytes", *key),
                    lambda: engine.bytes_per_seed_step(problem, config, problem.data))
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    budget = MEMORY_SHARE * dev.memory_bytes(local[0])
    per_device = -(-num_seeds // mesh.size)
    if group_bytes(per_device, state, min(block, per_device) * touched) <= budget:
        return num_seeds
    size = min(block, per_device)
    memory = _memo(("step_memory", size, *key),
                   lambda: engine.step_memory(problem, config, problem.data, size))
    room = budget - (size * touched if memory is None else memory.temp_bytes)
    fits = mesh.size * int(max(room, 0.0) // (STATE_COPIES * max(state, 1.0)))
    return num_seeds if fits >= num_seeds else max(mesh.size * block, fits)


def _step_key(problem: Problem, config: TrainConfig) -> tuple:
    """What one seed's step (and so its memory) depends on."""
    return (problem.init, problem.loss, config.optimizer, config.batch_size, config.sampling,
            engine.avals(problem.data))


def _check_out(out, overwrite: bool, checkpoint_every, resume: bool,
               problem: Problem) -> Path | None:
    """Prove `out` writable and the params savable, then lock `out` until the run is saved."""
    if out is None:
        if checkpoint_every is not None or resume:
            raise InputError("checkpoint_every and resume need an output directory (out=...)")
        return None
    if not isinstance(out, str | os.PathLike) or not os.fspath(out):
        raise InputError(f"out must be a directory path (a non-empty str or os.PathLike) or "
                         f"None, got {out!r}")
    if checkpoint_every is not None and not (is_real(checkpoint_every) and 0 <= _seconds(
            checkpoint_every) < math.inf):
        raise InputError(f"checkpoint_every must be a number of seconds >= 0 (0 = after every "
                         f"chunk) or None, got {checkpoint_every!r}")
    path = store.check_writable(out, overwrite or resume)
    if resume and store.holds_run(path):
        raise InputError(f"{str(path)!r} already holds the finished run; nothing to resume")
    if not resume and not overwrite and checkpoint.exists(path):
        raise InputError(f"{str(path)!r} holds checkpoints of an unfinished run; pass "
                         "resume=True (--resume) to continue it, or overwrite=True to start over")
    store.check_savable(problem.params_shape(), "params")
    if dev.is_main_process():
        store.hold_lock(path)  # released by `_save`; another process is refused until then
    return path


def _check_inputs(problem: Problem, config: TrainConfig, eval_data: PyTree) -> dict[str, Any]:
    """Every check that needs the problem and config; returns the evaluation sets."""
    if not isinstance(problem, Problem):
        raise InputError(f"problem must be a gdlab.Problem, got {type(problem).__name__}")
    n = problem.num_data
    if config.batch_size is not None:
        if n is None:
            raise InputError(f"batch_size={config.batch_size} but problem {problem.name!r} has "
                             "no data; use batch_size=None")
        if config.batch_size > n:
            raise InputError(f"batch_size={config.batch_size} is larger than the N={n} data "
                             f"points of {problem.name!r}; valid: 1..{n} or None (full batch)")
    sets = {"train": problem.data}
    if eval_data is not None:
        if problem.data is None:
            raise InputError(f"eval_data given but problem {problem.name!r} has no data")
        num_data_points(eval_data, where="eval_data")
        _check_like_data(problem, eval_data, "eval_data")
        sets = {"eval": eval_data}
    if problem.test_data is not None:
        _check_like_data(problem, problem.test_data, "test_data")
        sets["test"] = problem.test_data
    named = {"data": problem.data, **{f"{k}_data": v for k, v in sets.items() if k != "train"}}
    for where, data in named.items():  # data, eval_data, test_data: as the user calls them
        check = lambda d=data, w=where: check_finite(d, w)
        if all(isinstance(x, jax.Array) for x in jax.tree.leaves(data)):
            _memo(("finite", where, id(data)), check, data)  # immutable: once per object
        else:  # NumPy arrays can change in place between calls
            check()
    _memo(("scalar", problem.init, problem.loss, tuple(problem.metrics.items()),
           config.batch_size, engine.avals(sets)),
          lambda: check_measurable(problem, config.batch_size if n else None, sets))
    return sets


def _seconds(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond float range
        return math.inf


def _check_progress(progress: Any) -> None:
    if progress is not None:
        check_flag("progress", progress, "or None (when stderr is a terminal)")


def _check_hyperparams(hparams: dict[str, np.ndarray]) -> None:
    """The injected hyperparameters enter the program as float32: refuse values that
    overflow it, a rate that rounds to 0, a momentum that rounds to 1."""
    with np.errstate(over="ignore"):
        for name, values in hparams.items():
            as32 = values.astype(np.float32)
            bad = ~np.isfinite(as32) | (as32 <= 0 if name == "learning_rate" else
                                        as32 >= 1 if name == "momentum" else as32 < 0)
            if bad.any():
                raise InputError(f"{name} {float(values[bad][0])!r} is out of range in "
                                 f"float32, the dtype the compiled program holds it in (it "
                                 f"becomes {float(as32[bad][0])!r}); valid: "
                                 f"{_FLOAT32_RANGE[name]}")


_FLOAT32_RANGE = {"learning_rate": "1.4e-45 .. 3.4e38", "momentum": "0 .. 0.99999994",
                  "weight_decay": "0 .. 3.4e38"}


def _check_like_data(problem: Problem, data: PyTree, name: str) -> None:
    """`data` has the training data's structure and per-example shapes (its N may differ)."""
    want, got = (jax.tree.map(lambda x: tuple(np.shape(x)[1:]), d)
                 for d in (problem.data, data))
    if jax.tree.structure(want) != jax.tree.structure(got) or \
            jax.tree.leaves(want) != jax.tree.leaves(got):
        raise InputError(f"{name} must have the training data's structure and per-example "
                         f"shapes {want} (any N), got {got}")


def _choose_block(problem, config, seed_block, num_seeds, mesh) -> int:
    local = -(-num_seeds // mesh.size)
    if seed_block is not None:
        return min(check_int("seed_block", seed_block, minimum=1, hint="or None"), local)
    per_seed = _memo(("step_bytes", *_step_key(problem, config)),
                     lambda: engine.bytes_per_seed_step(problem, config, problem.data))
    conv = _memo(("convolution", *_step_key(problem, config)),
                 lambda: engine.uses_convolution(problem, config, problem.data))
    return dev.auto_seed_block(local, per_seed, mesh.devices.flat[0].platform, conv)


_MEMO: dict[tuple, Any] = {}


def _memo(key: tuple, compute: Callable[[], Any], keep_alive: Any = None) -> Any:
    """`compute()` once per key (checks and estimates repeated calls need not trace again);
    `keep_alive` is held with the result so an id() in the key cannot be reused."""
    try:
        hash(key)
    except TypeError:
        return compute()
    if key not in _MEMO:
        if len(_MEMO) > 256:
            _MEMO.clear()
        _MEMO[key] = (compute(), keep_alive)
    return _MEMO[key][0]
