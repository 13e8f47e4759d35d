"""The host loop of `gdlab.train`: run the compiled chunks, measure on schedule, checkpoint.

Nothing here compiles or builds programs: the loop calls an `Engine`'s entry points and
keeps the records (measurements, clock, trajectories), which checkpoints save so that a
resumed run continues them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from gdlab.config import TrainConfig
from gdlab.core import checkpoint, engine
from gdlab.core import devices as dev


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """Where and how often the host loop saves checkpoints, and whether it resumes."""

    out: Path
    every_seconds: float | None
    resume: bool
    fingerprint: str


class Evaluation(NamedTuple):
    """What `train(..., on_eval=fn)` hands `fn` at every measurement.

    Attributes:
      step: the step count.
      seconds: wall seconds since training started.
      metrics: {"train/loss": (S,), ...} this measurement of every seed of the group.
      diverged: seeds of the group that have diverged so far.
      steps_per_second: training steps per second since the previous measurement
        (None at the first).
    """

    step: int
    seconds: float
    metrics: dict[str, np.ndarray]
    diverged: int
    steps_per_second: float | None


class LoopResult(NamedTuple):
    """One group of seeds after the host loop (device arrays except the records)."""

    state: Any
    evals: dict[str, np.ndarray]  # name -> (S_group, E)
    eval_steps: list[int]
    eval_times: list[float]
    trajectory: Any  # leaves (K, E, ...) or None
    train_seconds: float
    eval_seconds: float
    first_eval_seconds: float
    loop_seconds: float
    resumed_from_step: int | None


@dataclasses.dataclass
class Log:
    """What the host loop records; saved in checkpoints so a resumed run continues it."""

    evals: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)
    eval_steps: list = dataclasses.field(default_factory=list)
    eval_times: list = dataclasses.field(default_factory=list)
    path: list = dataclasses.field(default_factory=list)
    eval_total: float = 0.0
    first_eval: float = 0.0  # seconds of the step-0 measurement (0.0 when resumed)
    elapsed: float = 0.0  # loop seconds before this process started (resumed runs)
    mark: tuple[int, float] = (0, 0.0)  # (step, training seconds) at the last measurement

    def stacked(self) -> dict[str, np.ndarray]:
        """name -> (S, E) every measurement so far."""
        return {k: np.stack([e[k] for e in self.evals], axis=1) for k in self.evals[0]}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"evals/{k}": v for k, v in self.stacked().items()}
        out.update({"eval_steps": np.asarray(self.eval_steps),
                    "eval_times": np.asarray(self.eval_times),
                    "clock": np.array([self.eval_total, self.eval_times[-1]])})
        if self.path:
            stacked = jax.tree.leaves(jax.tree.map(lambda *xs: np.stack(xs), *self.path))
            out.update({f"path_{i}": x for i, x in enumerate(stacked)})
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params_like) -> Log:
        names = [k.removeprefix("evals/") for k in arrays if k.startswith("evals/")]
        num = len(arrays["eval_steps"])
        evals = [{k: arrays[f"evals/{k}"][:, e] for k in names} for e in range(num)]
        return cls(evals=evals, eval_steps=arrays["eval_steps"].tolist(),
                   eval_times=arrays["eval_times"].tolist(),
                   path=_path_from_arrays(arrays, params_like, num),
                   eval_total=float(arrays["clock"][0]), elapsed=float(arrays["clock"][1]))


def _path_from_arrays(arrays: dict[str, np.ndarray], params_like, num: int) -> list:
    if "path_0" not in arrays:
        return []
    count = sum(k.startswith("path_") for k in arrays)
    treedef = jax.tree.structure(params_like)
    leaves = [arrays[f"path_{i}"] for i in range(count)]
    return [jax.tree.unflatten(treedef, [x[e] for x in leaves]) for e in range(num)]


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """How the host loop runs one group of seeds."""

    config: TrainConfig
    name: str  # for the progress bar
    progress: bool | None
    record: int = 0  # seeds whose params are recorded at every evaluation
    checkpointing: Checkpointing | None = None
    on_eval: Callable[[Evaluation], Any] | None = None


def run_loop(eng: engine.Engine, state, mesh, data, eval_sets,
             settings: LoopSettings) -> LoopResult:
    """Run the chunks, measuring on schedule and checkpointing; returns state and records."""
    config, ckpt = settings.config, settings.checkpointing
    log, step, resumed_from = Log(), 0, None
    if ckpt is not None and ckpt.resume:
        found = checkpoint.load_latest(ckpt.out, state, ckpt.fingerprint)
        if found is not None:
            step, state, saved = found
            log, resumed_from = Log.from_arrays(saved, state.params), step
    start = time.perf_counter() - log.elapsed
    measure = _measurer(eng, eval_sets, log, start, settings)
    if step == 0:
        measure(state, 0)
    bar = tqdm(total=config.steps, initial=step, unit="step", desc=settings.name, delay=2.0,
               leave=False, disable=None if settings.progress is None else not settings.progress)
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
                measure(state, step)
                last_eval = time.perf_counter()
            if ckpt is not None and step < config.steps and (stop or save):
                path = checkpoint.save(ckpt.out, step, state, log.arrays(), ckpt.fingerprint)
                last_save = time.perf_counter()
                if stop:
                    bar.close()
                    raise checkpoint.Preempted(path, step)
    bar.close()
    total = time.perf_counter() - start - late_compile
    trajectory = (jax.tree.map(lambda *xs: np.stack(xs, axis=1), *log.path)
                  if log.path else None)
    return LoopResult(state, log.stacked(), log.eval_steps, log.eval_times, trajectory,
                      total - log.eval_total, log.eval_total, log.first_eval, total,
                      resumed_from)


def _measurer(eng: engine.Engine, eval_sets, log: Log, start: float, settings: LoopSettings):
    """`measure(state, step)`: one measurement of every metric, recorded in `log`."""
    def measure(state, at: int) -> None:
        t = time.perf_counter()
        values = jax.block_until_ready(eng.evaluate(state, eval_sets))
        log.evals.append({k: dev.to_host(v) for k, v in values.items()})
        took = time.perf_counter() - t
        log.eval_total += took
        if at == 0:
            log.first_eval = took
        rate = _rate(log, at, time.perf_counter() - start - log.eval_total)
        log.eval_steps.append(at)
        log.eval_times.append(time.perf_counter() - start)
        if settings.record:
            log.path.append(jax.tree.map(lambda x: dev.to_host(x)[:settings.record],
                                         state.params))
        # With several processes, gathered on every one, callback or not: a collective
        # that only some processes enter (process 0 alone writes metrics.jsonl)
        # deadlocks the run. With one, only for the callback.
        if settings.on_eval is not None or jax.process_count() > 1:
            diverged = int(np.sum(dev.to_host(state.diverged_at) >= 0))
        if settings.on_eval is not None:
            settings.on_eval(Evaluation(at, log.eval_times[-1], log.evals[-1], diverged, rate))
    return measure


def _rate(log: Log, step: int, train_seconds: float) -> float | None:
    """Training steps per second since the previous measurement (None at the first)."""
    (prev_step, prev_seconds), log.mark = log.mark, (step, train_seconds)
    if not log.eval_steps or step == prev_step:
        return None
    return (step - prev_step) / max(train_seconds - prev_seconds, 1e-12)
