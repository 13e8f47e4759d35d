"""The batch-size lab: steps, examples and wall time to a target loss, against batch size.

`sweep_batch_size` trains every seed at every batch size B (one compile per B; seeds and
the learning-rate grid are vmapped together as lanes, see `gdlab.lanes`) until the
full-data loss first reaches the target, and records per seed the steps, examples
(steps x B) and wall time to get there, and per B the bytes the compiled run needs on a
device (XLA's memory analysis), next to its time. `fit_scaling` fits the empirical model of
McCandlish et al. (2018), S = S_min (1 + B_noise / B) and E = E_min (1 + B / B_noise),
to the median steps; B_crit = E_min / S_min.

Shape legend: K batch sizes, S seeds, G learning rates of the grid, E evaluations,
L lanes (G x S, padded to the device count).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from gdlab._checks import (
    InputError,
    check_choice,
    check_int,
    check_positive,
    check_real,
    is_int,
)
from gdlab.batch import lanes
from gdlab.batch.scaling import ScalingFit, fit_scaling, median_ci
from gdlab.config import TrainConfig
from gdlab.core import devices as dev
from gdlab.core.memory import xla_memory
from gdlab.core.seeds import as_key, seed_ids_of
from gdlab.problem import Problem, check_finite, check_loss_is_scalar, num_data_points

LR_SCALINGS = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}


# ----------------------------------------------------------------------------- checks


def _check_batch_sizes(batch_sizes: Any, n: int, name: str) -> np.ndarray:
    try:
        values = list(batch_sizes)
    except TypeError:
        raise InputError(f"batch_sizes must be a non-empty sequence of integers in 1..{n} "
                         f"(N={n} data points of {name!r}), got {batch_sizes!r}") from None
    if not values:
        raise InputError(f"batch_sizes is empty; give at least one batch size in 1..{n} "
                         f"(N={n} data points of {name!r})")
    for b in values:
        if not is_int(b) or not 1 <= b <= n:
            raise InputError(f"batch size {b!r} is not valid for {name!r}: batch sizes must be "
                             f"integers in 1..{n} (N={n} data points; B=N is full batch)")
    if len(set(values)) != len(values):
        dup = sorted({b for b in values if values.count(b) > 1})
        raise InputError(f"batch_sizes has repeated values {dup}; give each batch size once")
    return np.sort(np.asarray(values, np.int64))


def _check_target(target_loss: Any, problem: Problem) -> float:
    check_positive("target_loss", target_loss, hint="a full-data loss")
    floor = [m.loss for m in problem.known_minima if m.kind == "global"]
    if floor and target_loss < min(floor):
        raise InputError(f"target_loss={target_loss!r} is below the global minimum loss "
                         f"{min(floor):.6g} of {problem.name!r}; no seed can ever reach it")
    return float(target_loss)


def _check_rates(config: TrainConfig, learning_rates: Any, lr_scaling: str) -> np.ndarray:
    check_choice("lr_scaling", lr_scaling, LR_SCALINGS)
    swept = learning_rates is not None or lr_scaling != "none"
    if swept and not lanes.rate_is_tunable(config):
        raise InputError("learning_rates and lr_scaling need a named optimizer with a float "
                         f"learning_rate; got optimizer={config.describe()['optimizer']!r}, "
                         f"learning_rate={config.describe()['learning_rate']!r}")
    if learning_rates is None:  # nan: the config's own rate (schedule or optax transformation)
        rate = config.learning_rate if lanes.rate_is_tunable(config) else np.nan
        return np.asarray([rate], np.float64)
    rates = list(np.atleast_1d(np.asarray(learning_rates, dtype=object)))
    if not rates:
        raise InputError("learning_rates is empty; give at least one rate or None")
    return np.asarray([check_positive("every learning rate of the grid", r) for r in rates])


def scaled_rates(rates_G: np.ndarray, batch_size: int, base_batch_size: int,
                 lr_scaling: str) -> np.ndarray:
    """Learning rates at `batch_size`: rate x (B / base)^p, p = 0, 1/2, 1 (none/sqrt/linear)."""
    return rates_G * (batch_size / base_batch_size) ** LR_SCALINGS[lr_scaling]


def eval_schedule(budget: int, resolution: float) -> np.ndarray:
    """(E,) evaluation steps 0 .. budget, each gap max(1, floor(resolution x step)).

    Steps-to-target is then known to a relative `resolution` at any scale (and is
    interpolated between evaluations).
    """
    steps = [0]
    while steps[-1] < budget:
        t = steps[-1]
        steps.append(min(budget, t + max(1, int(t * resolution))))
    return np.asarray(steps, np.int32)


# ----------------------------------------------------------------------------- compiled run


class _Carry(NamedTuple):
    n: jax.Array            # evaluations done after the first
    state: Any              # lanes' SeedState, leading axis L
    loss_L: jax.Array       # loss at the last evaluation
    cross_L: jax.Array      # interpolated step where the loss first reached the target; nan
    history_EL: jax.Array   # loss at every evaluation (nan after the last)


def crossing(t0, t1, loss0, loss1, target):
    """Step where the loss crosses `target` between two evaluations (log-linear in loss)."""
    log_frac = (jnp.log(loss0) - jnp.log(target)) / (jnp.log(loss0) - jnp.log(loss1))
    lin_frac = (loss0 - target) / (loss0 - loss1)
    frac = jnp.where((loss0 > 0) & (loss1 > 0), log_frac, lin_frac)
    frac = jnp.where(jnp.isfinite(loss0) & jnp.isfinite(frac), frac, 1.0)
    t0, t1 = jnp.float32(t0), jnp.float32(t1)
    return t0 + jnp.clip(frac, 0.0, 1.0) * (t1 - t0)


def settled(cross_L, diverged_at_L, t, group_L, real_L, num_groups: int) -> jax.Array:
    """True once the best rate is known and all its seeds have reached the target.

    The best rate has the smallest median steps-to-target (never = infinity). A rate
    still running has a median at least that of its lower bounds (unreached lanes count
    as the current step), so it can no longer win once that bound is not below the best.
    """
    reached, dead = ~jnp.isnan(cross_L), diverged_at_L >= 0
    finished = reached | dead | ~real_L
    lower = jnp.where(reached, cross_L, jnp.where(dead, jnp.inf, jnp.float32(t)))
    member_GL = (group_L[None, :] == jnp.arange(num_groups)[:, None]) & real_L[None, :]
    median_G = jnp.nanmedian(jnp.where(member_GL, lower[None, :], jnp.nan), axis=1)
    done_G = jnp.all(finished[None, :] | ~member_GL, axis=1)
    best = jnp.min(jnp.where(done_G, median_G, jnp.inf))
    return jnp.all(finished) | (jnp.isfinite(best) & jnp.all(median_G >= best))


def make_run(fns: lanes.LaneFns, num_groups: int):
    """`run(lanes, key, data, eval_data, schedule_E, target)`: every lane to the target.

    Trains all lanes together, evaluating the full-data loss at `schedule_E`, until
    `settled` or the last scheduled step. Returns (evaluations done, crossing step per
    lane (nan = never), diverged_at per lane, loss history (E, L), lane 0's final state).
    """
    v_init = jax.vmap(fns.init, (0, 0, None))
    v_step = jax.vmap(fns.step, (0, 0, None, None))
    v_loss = jax.vmap(fns.loss, (0, None))

    def run(lane, key, data, eval_data, schedule_E, target):
        state = v_init(lane["seed_id"], lane["lr"], key)
        loss0 = v_loss(state, eval_data)
        history = jnp.full((schedule_E.shape[0], *loss0.shape), jnp.nan, loss0.dtype)
        carry = _Carry(jnp.int32(0), state, loss0, jnp.where(loss0 <= target, 0.0, jnp.nan),
                       history.at[0].set(loss0))

        def body(c: _Carry) -> _Carry:
            t0, t1 = schedule_E[c.n], schedule_E[c.n + 1]
            state = jax.lax.fori_loop(t0, t1, lambda t, s: v_step(s, lane["lr"], t, data),
                                      c.state)
            loss = v_loss(state, eval_data)
            new = jnp.isnan(c.cross_L) & (loss <= target)
            cross = jnp.where(new, crossing(t0, t1, c.loss_L, loss, target), c.cross_L)
            return _Carry(c.n + 1, state, loss, cross, c.history_EL.at[c.n + 1].set(loss))

        def cond(c: _Carry) -> jax.Array:
            done = settled(c.cross_L, c.state.diverged_at, schedule_E[c.n], lane["group"],
                           lane["real"], num_groups)
            return (c.n + 1 < schedule_E.shape[0]) & ~done

        out = jax.lax.while_loop(cond, body, carry)
        first = jax.tree.map(lambda x: x[0], out.state)
        return out.n, out.cross_L, out.state.diverged_at, out.history_EL, first
    return run


def make_timed_steps(fns: lanes.LaneFns):
    """`steps(state, lr, data, n) -> params`: n steps of one lane (for timing)."""
    def steps(state, lr, data, n):
        return jax.lax.fori_loop(0, n, lambda t, s: fns.step(s, lr, t, data), state).params
    return steps


def seconds_per_step(fns: lanes.LaneFns, state: Any, lr: float, data: Any,
                     min_seconds: float = 0.03, repeats: int = 3) -> float:
    """Measured wall seconds of one training step of one run (one lane's `state`),
    compiled, without loss evaluation: the slope between 1 step and n steps (n doubled
    until the loop takes `min_seconds`), best of `repeats`."""
    args = (state, jnp.float32(lr), data)
    compiled = jax.jit(make_timed_steps(fns)).lower(*args, jnp.int32(1)).compile()

    def clock(n: int, times: int = 1) -> float:
        best = math.inf
        for _ in range(times):
            start = time.perf_counter()
            jax.block_until_ready(compiled(*args, jnp.int32(n)))
            best = min(best, time.perf_counter() - start)
        return best

    clock(1)  # warm-up
    n = 16
    while n < 2**20 and clock(n) < min_seconds:
        n *= 2
    return max((clock(n, repeats) - clock(1, repeats)) / (n - 1), 1e-12)


# ----------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True, eq=False)
class BatchSweep:
    """Result of `sweep_batch_size`: per batch size and seed, the cost to reach the target.

    Attributes:
      problem: problem name; num_data: N; target_loss; sampling; lr_scaling;
      base_batch_size: the batch size the grid's rates refer to.
      batch_sizes: (K,) ascending; B = N is full-batch gradient descent.
      learning_rates: (K,) the rate chosen at each batch size (best median steps).
      rate_grid: (K, G) every rate tried at each batch size (after scaling).
      grid_median_steps: (K, G) median steps to target per rate (inf: most never did).
      grid_reached: (K, G) fraction of seeds that reached the target per rate.
      steps: (K, S) steps to target at the chosen rate (interpolated between evaluations;
        nan = never reached within the budget).
      diverged: (K, S) the seed's params became non-finite (at the chosen rate).
      stopped_at: (K,) the step the run stopped at (all seeds of the best rate reached, or
        the budget).
      seconds_per_step: (K,) wall seconds of one training step of one run (one seed).
      compile_seconds, run_seconds: (K,) compile and run time of each batch size.
      eval_steps: K arrays (E_k,); loss_history: K arrays (S, E_k) at the chosen rate.
      seed_ids: (S,).
      memory_bytes: (K,) bytes the compiled run needs on one device (XLA's memory
        analysis: arguments + outputs + temporaries + code, less aliased outputs), for
        `lanes_per_device` lanes stepped together; nan where the backend gives none.
      temp_bytes: (K,) of which temporaries (a step's activations and gradients for every
        lane of the device, the batch it gathers, the loss history).
      lanes_per_device: lanes (seeds x rates, padded) each device steps together.
    """

    problem: str
    num_data: int
    target_loss: float
    sampling: str
    lr_scaling: str
    base_batch_size: int
    batch_sizes: np.ndarray
    learning_rates: np.ndarray
    rate_grid: np.ndarray
    grid_median_steps: np.ndarray
    grid_reached: np.ndarray
    steps: np.ndarray
    diverged: np.ndarray
    stopped_at: np.ndarray
    seconds_per_step: np.ndarray
    compile_seconds: np.ndarray
    run_seconds: np.ndarray
    eval_steps: tuple[np.ndarray, ...]
    loss_history: tuple[np.ndarray, ...]
    seed_ids: np.ndarray
    memory_bytes: np.ndarray | None = None
    temp_bytes: np.ndarray | None = None
    lanes_per_device: int | None = None

    @property
    def reached(self) -> np.ndarray:
        """(K, S) bool: the seed reached the target."""
        return np.isfinite(self.steps)

    @property
    def examples(self) -> np.ndarray:
        """(K, S) examples to target (steps x B)."""
        return self.steps * self.batch_sizes[:, None]

    @property
    def wall_seconds(self) -> np.ndarray:
        """(K, S) wall time to target of one run: steps x measured seconds per step."""
        return self.steps * self.seconds_per_step[:, None]

    def median(self, what: str = "steps", confidence: float = 0.95) -> np.ndarray:
        """(K, 3) median over seeds with its interval (never reached counts as infinite)."""
        values = {"steps": self.steps, "examples": self.examples,
                  "wall_seconds": self.wall_seconds}[what]
        return np.array([median_ci(np.where(np.isnan(v), np.inf, v), confidence)
                         for v in values])

    def unreached_seeds(self) -> dict[int, list[int]]:
        """{batch size: seed ids that never reached the target}, only where some did not."""
        return {int(b): self.seed_ids[~r].tolist()
                for b, r in zip(self.batch_sizes, self.reached, strict=True) if not r.all()}

    def fit(self, confidence: float = 0.95) -> ScalingFit:
        """`fit_scaling` of the median steps (batch sizes where most seeds reached)."""
        return fit_scaling(self.batch_sizes, self.median("steps")[:, 0], confidence)

    def increases(self, confidence: float = 0.95) -> list[tuple[int, int]]:
        """Consecutive (B, B') whose median steps rise beyond both intervals (should be [])."""
        m = self.median("steps", confidence)
        return [(int(self.batch_sizes[k]), int(self.batch_sizes[k + 1]))
                for k in range(len(m) - 1) if m[k + 1, 1] > m[k, 2]]

    def to_dataframe(self):
        """A pandas DataFrame with one row per (batch size, seed): the chosen rate, steps,
        examples and wall seconds to the target (NaN: never reached), reached, diverged."""
        import pandas as pd
        k, s = self.steps.shape
        rep = lambda x: np.repeat(np.asarray(x), s)
        return pd.DataFrame({
            "batch_size": rep(self.batch_sizes), "seed_id": np.tile(self.seed_ids, k),
            "learning_rate": rep(self.learning_rates), "steps": self.steps.ravel(),
            "examples": self.examples.ravel(), "wall_seconds": self.wall_seconds.ravel(),
            "reached": self.reached.ravel(), "diverged": np.asarray(self.diverged).ravel()})

    def summary_frame(self, confidence: float = 0.95):
        """A pandas DataFrame with one row per batch size, numeric columns only: rate,
        seeds reached, median steps with its interval, median examples and wall seconds,
        diverged, memory and temporaries per device (bytes), compile and run seconds."""
        import pandas as pd
        st, ex, wa = (self.median(x, confidence) for x in ("steps", "examples",
                                                           "wall_seconds"))
        nan = np.full(len(self.batch_sizes), np.nan)
        return pd.DataFrame({
            "batch_size": self.batch_sizes, "learning_rate": self.learning_rates,
            "reached": self.reached.sum(axis=1), "seeds": self.steps.shape[1],
            "steps_median": st[:, 0], "steps_lo": st[:, 1], "steps_hi": st[:, 2],
            "examples_median": ex[:, 0], "wall_seconds_median": wa[:, 0],
            "diverged": np.asarray(self.diverged).sum(axis=1),
            "memory_bytes": nan if self.memory_bytes is None else self.memory_bytes,
            "temp_bytes": nan if self.temp_bytes is None else self.temp_bytes,
            "compile_seconds": self.compile_seconds, "run_seconds": self.run_seconds})

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """Header and rows: per batch size, rate, reached, median steps/examples/seconds."""
        header = ["B", "lr", "reached", "steps (median [95% CI])", "examples (median)",
                  "wall s (median)", "diverged", "memory / device (temp)"]
        s, e, w = (self.median(x) for x in ("steps", "examples", "wall_seconds"))
        rows = []
        for k, b in enumerate(self.batch_sizes):
            full = " (full)" if b == self.num_data else ""
            rows.append([f"{b}{full}", f"{self.learning_rates[k]:.3g}",
                         f"{int(self.reached[k].sum())}/{self.steps.shape[1]}",
                         f"{_g(s[k, 0])} [{_g(s[k, 1])}, {_g(s[k, 2])}]", _g(e[k, 0]),
                         _g(w[k, 0]), int(self.diverged[k].sum()), self._memory_cell(k)])
        return header, rows

    def _memory_cell(self, k: int) -> str:
        if self.memory_bytes is None or not np.isfinite(self.memory_bytes[k]):
            return "-"
        return f"{_bytes(self.memory_bytes[k])} ({_bytes(self.temp_bytes[k])})"

    def arrays(self) -> dict[str, np.ndarray]:
        """The fixed-shape arrays (for saving)."""
        names = ("batch_sizes", "learning_rates", "rate_grid", "grid_median_steps",
                 "grid_reached", "steps", "diverged", "stopped_at", "seconds_per_step",
                 "compile_seconds", "run_seconds", "seed_ids")
        out = {name: np.asarray(getattr(self, name)) for name in names}
        if self.memory_bytes is not None:
            out.update(memory_bytes=self.memory_bytes, temp_bytes=self.temp_bytes)
        return out


def _g(x: float) -> str:
    return "never" if not np.isfinite(x) else f"{x:.4g}"


def _bytes(n: float) -> str:
    """Bytes in binary units (12.3 KiB)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


def compiled_bytes(compiled) -> tuple[float, float]:
    """(total, temporary) bytes a compiled program needs on one device, from XLA's memory
    analysis (total = arguments + outputs + temporaries + code - aliased); nan, nan where
    the backend gives none. (`gdlab.costs.xla_memory` gives every field.)"""
    m = xla_memory(compiled)
    return (math.nan, math.nan) if m is None else (float(m.total_bytes), float(m.temp_bytes))


# ----------------------------------------------------------------------------- sweep


def sweep_batch_size(problem: Problem, config: TrainConfig, batch_sizes: Sequence[int],
                     target_loss: float, seeds: int | Sequence[int] = 16,
                     key: int | jax.Array = 0, *,
                     learning_rates: Sequence[float] | None = None,
                     lr_scaling: str = "none", base_batch_size: int | None = None,
                     resolution: float = 0.02, timing: bool = True,
                     eval_data: Any = None, devices: Sequence[jax.Device] | None = None,
                     progress: bool | None = None) -> BatchSweep:
    """Steps, examples and wall time to reach `target_loss`, at every batch size.

    For each batch size B (one compile each) every seed is trained, at every rate of the
    grid at once, until its full-data loss first reaches `target_loss`; the run stops as
    soon as the best rate is known and all its seeds got there, or at `config.steps`.
    B = N is full-batch gradient descent. Every input is checked before anything compiles.

    Args:
      problem: a `gdlab.Problem` with data.
      config: optimizer, learning rate, sampling, and the step budget (`config.steps`);
        its batch size and evaluation schedule are replaced by the sweep's.
      batch_sizes: batch sizes to try, each in 1..N.
      target_loss: full-data loss to reach (> 0; a known global minimum must lie below).
      seeds: number of seeds S or explicit seed ids; seed i of rate lr follows exactly
        `gdlab.train(problem, replace(config, learning_rate=lr, batch_size=B), [i], key)`.
      key: integer or JAX key.
      learning_rates: optional grid of rates, tuned per batch size (the rate with the
        fewest median steps wins, as in Shallue et al. 2018); default: `config`'s rate.
      lr_scaling: "none", "sqrt" or "linear": every rate is multiplied by
        (B / base_batch_size)^(0, 1/2, 1).
      base_batch_size: the batch size the rates are given for (default: the smallest).
      resolution: relative spacing of loss evaluations (0.02: every 2% of the step
        count, every step early on); the crossing is interpolated between evaluations.
      timing: measure seconds per training step per batch size (one seed, compiled).
      eval_data: data the target is measured on (default: the training set).
      devices: devices the lanes are sharded over (default: every local device).
      progress: progress bar across batch sizes (default: when stderr is a terminal).

    Returns:
      A `BatchSweep` (`.table()`, `.fit()`, `.unreached_seeds()`, `.median()`).

    Example:
      >>> sweep = gdlab.sweep_batch_size(problems.least_squares(n=1024),
      ...                                gdlab.TrainConfig(learning_rate=0.1, steps=20000,
      ...                                                  eval_every=1),
      ...                                [1, 4, 16, 64, 256, 1024], target_loss=0.01,
      ...                                seeds=16, learning_rates=[0.05, 0.1, 0.2, 0.4])
      >>> sweep.fit().b_crit
    """
    plan = _plan(problem, config, batch_sizes, target_loss, seeds, key, learning_rates,
                 lr_scaling, base_batch_size, resolution, eval_data)
    dev.check_devices(devices)
    mesh = dev.seed_mesh(devices)
    if mesh.devices.flat[0].platform == "cpu":
        dev.tune_host_allocator()
    data = dev.replicated(mesh, problem.data)
    eval_data = data if plan["eval_data"] is problem.data else dev.replicated(
        mesh, plan["eval_data"])
    key_r = dev.replicated(mesh, plan["key"])
    per_b = []
    bar = tqdm(plan["batch_sizes"], desc=f"{problem.name} batch sizes", unit="B",
               disable=None if progress is None else not progress, leave=False)
    for b in bar:
        bar.set_postfix(B=int(b))
        rates = scaled_rates(plan["rates"], int(b), plan["base"], lr_scaling)
        per_b.append(_run_batch_size(problem, config, int(b), rates, plan, mesh, key_r, data,
                                     eval_data, timing))
    bar.close()
    return _assemble(problem, plan, lr_scaling, per_b)


def _plan(problem, config, batch_sizes, target_loss, seeds, key, learning_rates, lr_scaling,
          base_batch_size, resolution, eval_data) -> dict[str, Any]:
    """Every check, before anything compiles; returns the validated settings."""
    if not isinstance(problem, Problem):
        raise InputError(f"problem must be a gdlab.Problem, got {type(problem).__name__}")
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a gdlab.TrainConfig, got {type(config).__name__}")
    n = problem.num_data
    if n is None:
        raise InputError(f"problem {problem.name!r} has no data; a batch-size sweep needs a "
                         "dataset to sample mini-batches from")
    sizes = _check_batch_sizes(batch_sizes, n, problem.name)
    target = _check_target(target_loss, problem)
    rates = _check_rates(config, learning_rates, lr_scaling)
    base = int(sizes[0]) if base_batch_size is None else check_int(
        "base_batch_size", base_batch_size, 1, n)
    check_real("resolution", resolution, 0.0, 1.0, open_low=True)
    for b in sizes:
        scaled = scaled_rates(rates, int(b), base, lr_scaling)
        if lanes.rate_is_tunable(config) and not np.all(np.isfinite(scaled)):
            raise InputError(f"learning rates scaled to batch size {b} are not finite: {scaled}")
        check_loss_is_scalar(problem, None if b == n else int(b))
    if eval_data is None:
        eval_data = problem.data
    elif jax.tree.structure(eval_data) != jax.tree.structure(problem.data):
        raise InputError(f"eval_data must have the structure of the problem's data "
                         f"{jax.tree.structure(problem.data)}, got {jax.tree.structure(eval_data)}")
    else:
        num_data_points(eval_data, "eval_data")
        check_finite(eval_data, "eval_data")
    check_loss_is_scalar(dataclasses.replace(problem, data=eval_data), None)
    return {"batch_sizes": sizes, "target": target, "rates": rates, "base": base,
            "seed_ids": seed_ids_of(seeds), "key": as_key(key),
            "sampling": config.sampling,
            "schedule": eval_schedule(config.steps, float(resolution)), "eval_data": eval_data}


def _run_batch_size(problem, config, b, rates_G, plan, mesh, key, data, eval_data,
                    timing) -> dict[str, Any]:
    """Compile and run every lane at batch size b; pick the best rate."""
    full = b == problem.num_data
    fns = lanes.lane_fns(problem, config, None if full else b)
    layout = lanes.layout(plan["seed_ids"], rates_G, mesh.size)
    lane = lanes.place_lanes(mesh, layout.arrays())
    schedule = dev.replicated(mesh, jnp.asarray(plan["schedule"]))
    target = dev.replicated(mesh, jnp.float32(plan["target"]))
    args = (lane, key, data, eval_data, schedule, target)
    start = time.perf_counter()
    compiled = jax.jit(make_run(fns, len(rates_G))).lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    memory, temp = compiled_bytes(compiled)
    start = time.perf_counter()
    n, cross_L, diverged_at_L, history_EL, first = jax.block_until_ready(compiled(*args))
    run_seconds = time.perf_counter() - start
    n = int(n)
    cross_GS = layout.unpack(cross_L)
    diverged_GS = layout.unpack(diverged_at_L) >= 0
    history_GSE = layout.unpack(np.asarray(history_EL)[: n + 1].T)
    medians = np.array([median_ci(np.where(np.isnan(c), np.inf, c))[0] for c in cross_GS])
    reached = np.isfinite(cross_GS).mean(axis=1)
    mean_reached = np.array([np.nanmean(c) if np.isfinite(c).any() else np.inf
                             for c in cross_GS])
    best = int(np.lexsort((mean_reached, -reached, medians))[0])
    spp = np.nan
    if timing:  # one run on one device, as a user would run it
        one = mesh.devices.flat[0]
        spp = seconds_per_step(fns, jax.device_put(first, one), float(rates_G[best]),
                               jax.device_put(problem.data, one))
    return {"rates": rates_G, "best": best, "medians": medians, "reached": reached,
            "steps": cross_GS[best], "diverged": diverged_GS[best],
            "stopped_at": int(plan["schedule"][n]), "eval_steps": plan["schedule"][: n + 1],
            "history": history_GSE[best], "seconds_per_step": spp,
            "compile_seconds": compile_seconds, "run_seconds": run_seconds,
            "memory_bytes": memory, "temp_bytes": temp,
            "lanes_per_device": layout.padded // mesh.size}


def _assemble(problem, plan, lr_scaling, per_b) -> BatchSweep:
    col = lambda name, dtype=np.float64: np.asarray([r[name] for r in per_b], dtype)
    return BatchSweep(
        problem=problem.name, num_data=int(problem.num_data), target_loss=plan["target"],
        sampling=plan["sampling"], lr_scaling=lr_scaling,
        base_batch_size=plan["base"], batch_sizes=plan["batch_sizes"],
        learning_rates=np.array([r["rates"][r["best"]] for r in per_b]),
        rate_grid=col("rates"), grid_median_steps=col("medians"), grid_reached=col("reached"),
        steps=col("steps"), diverged=col("diverged", bool), stopped_at=col("stopped_at", int),
        seconds_per_step=col("seconds_per_step"), compile_seconds=col("compile_seconds"),
        run_seconds=col("run_seconds"), eval_steps=tuple(r["eval_steps"] for r in per_b),
        loss_history=tuple(r["history"] for r in per_b), seed_ids=plan["seed_ids"],
        memory_bytes=col("memory_bytes"), temp_bytes=col("temp_bytes"),
        lanes_per_device=int(per_b[0]["lanes_per_device"]))
