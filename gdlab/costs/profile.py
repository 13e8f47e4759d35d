"""What each part of a training step costs: profiler, power-law fits and a time model.

The parts of one training step of S seeds (vmapped together on one device):

  derivative  `jax.grad` of the loss on each seed's mini-batch of B points
  update      the optimizer's update and `apply_updates`, given the gradients
  sample      drawing each seed's B indices and gathering its batch (mini-batches only)
  loss        the loss measured on the evaluation data (N_eval points, shared by seeds)
  step        the fused training step the engine runs (sample, gather, grad, update),
              as inside `gdlab.train`'s scan (whose divergence check runs once per chunk)

Each part is timed in a compiled loop (`gdlab.timing`) next to XLA's own estimate of its
flops and bytes (`cost_analysis` of the part compiled alone: a loop's or scan's body is
counted once by XLA, so the estimate is always taken from the un-looped function), and
the memory its compiled call needs (`memory_analysis`: arguments, outputs, temporaries,
generated code), measured like the time: per part, for S seeds and B points.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdlab._checks import InputError, check_int, check_positive
from gdlab.config import TrainConfig
from gdlab.core import devices as dev
from gdlab.core import engine
from gdlab.core.memory import MemoryCost, xla_memory
from gdlab.core.sampling import gather
from gdlab.costs import timing
from gdlab.costs.format import format_seconds, format_si
from gdlab.costs.timing import Timing
from gdlab.problem import Problem, check_loss_is_scalar, num_data_points

PyTree = Any
PARTS = ("derivative", "update", "sample", "loss", "step")
STEP_PARTS = ("derivative", "update", "sample")  # what one training step is made of


@dataclasses.dataclass(frozen=True)
class PartCost:
    """Measured time and XLA's estimate for one part of a step (all S seeds together).

    Attributes:
      name: one of `PARTS` ("derivative", "update", "sample", "loss", "step").
      timing: seconds per repetition inside a compiled loop (dispatch floor removed).
      call_seconds: median seconds of one dispatched call of the part alone (floor
        included): what a host loop pays when it calls the part by itself.
      flops: XLA's flop estimate for one call (None if the backend gives none).
      bytes_accessed: XLA's estimate of bytes read and written by one call.
      compile_seconds: time to compile the part (loop and single call), apart from runs.
      memory: the bytes one call of the part needs (XLA's memory analysis; None if the
        backend gives none).
    """

    name: str
    timing: Timing
    call_seconds: float
    flops: float | None
    bytes_accessed: float | None
    compile_seconds: float
    memory: MemoryCost | None = None

    @property
    def seconds(self) -> float:
        """Median seconds per call (an upper bound when below the floor)."""
        return self.timing.median

    @property
    def flops_per_second(self) -> float | None:
        """Achieved FLOP/s by XLA's flop count; None when unknown or below the floor."""
        if not self.flops or self.timing.below_floor:
            return None
        return self.flops / self.seconds


@dataclasses.dataclass(frozen=True)
class StepProfile:
    """The result of `profile_step`: every part's cost for one problem and config.

    Attributes:
      problem: problem name.
      seeds: S, seeds vmapped together in every part.
      batch_size: B, data points per derivative (N for full batch, None without data).
      eval_points: N_eval, data points the loss is measured on (None without data).
      num_params: P per seed.
      optimizer: optimizer name (or the optax transformation's type).
      device: the device the parts ran on.
      floor: the dispatch floor, an empty compiled call.
      parts: PartCost per part name, in `PARTS` order.
      eval_seconds: median seconds of one loss call made right after a call of the fused
        step, as `gdlab.train` measures the loss between chunks (the caches then hold
        the step's data, not the loss's, so it costs more than back-to-back calls);
        None unless both the loss and the step were profiled.
      devices: devices the concurrency was measured on (1: not measured).
      concurrency: the fused step's seconds on one device alone over its seconds per
        device when all `devices` run it at once (1: the devices run side by side at full
        speed; 1/devices: they take turns, e.g. when other processes hold the cores);
        None when not measured.
    """

    problem: str
    seeds: int
    batch_size: int | None
    eval_points: int | None
    num_params: int
    optimizer: str
    device: str
    floor: Timing
    parts: dict[str, PartCost]
    eval_seconds: float | None = None
    devices: int = 1
    concurrency: float | None = None

    def seconds(self, name: str) -> float:
        """Median seconds of part `name` for all S seeds."""
        return self.parts[name].seconds

    def memory(self, name: str = "step") -> MemoryCost | None:
        """The bytes one call of part `name` needs for all S seeds (default: the fused
        step, what one training step of a seed block holds at once)."""
        return self.parts[name].memory

    def shares(self, eval_every: int = 1) -> dict[str, float]:
        """Fraction of one step's derivative + update + sample, plus loss / eval_every
        (the loss measured every `eval_every` steps), that each part takes."""
        check_int("eval_every", eval_every, minimum=1)
        cost = {n: self.seconds(n) / (eval_every if n == "loss" else 1)
                for n in (*STEP_PARTS, "loss") if n in self.parts}
        total = sum(cost.values())
        return {n: c / total for n, c in cost.items()}

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        out = {k: getattr(self, k) for k in ("problem", "seeds", "batch_size", "eval_points",
                                             "num_params", "optimizer", "device",
                                             "eval_seconds", "devices", "concurrency")}
        out["floor"] = self.floor.describe()
        out["parts"] = {n: {**{k: v for k, v in dataclasses.asdict(p).items()
                               if k not in ("timing", "memory")},
                            "timing": p.timing.describe(),
                            "memory": p.memory.describe() if p.memory else None,
                            "flops_per_second": p.flops_per_second}
                        for n, p in self.parts.items()}
        return out

    def to_dataframe(self):
        """A pandas DataFrame with one row per part, numeric columns: median seconds, the
        25%-75% quantiles, share of a step, XLA's flops and bytes, achieved FLOP/s,
        memory (temporaries and total bytes of one call), one dispatched call's seconds,
        compile seconds."""
        import pandas as pd
        shares = self.shares()
        return pd.DataFrame([{
            "part": name, "seconds": part.seconds, "q25": part.timing.q25,
            "q75": part.timing.q75, "share": shares.get(name, np.nan),
            "below_floor": part.timing.below_floor, "flops": part.flops,
            "bytes_accessed": part.bytes_accessed, "flops_per_second": part.flops_per_second,
            "temp_bytes": part.memory.temp_bytes if part.memory else np.nan,
            "total_bytes": part.memory.total_bytes if part.memory else np.nan,
            "call_seconds": part.call_seconds, "compile_seconds": part.compile_seconds}
            for name, part in self.parts.items()])

    def __repr__(self) -> str:
        """One line per part (median, share, memory), not the raw timing samples."""
        shares = self.shares()
        lines = [f"StepProfile({self.problem!r}, seeds={self.seeds}, batch_size="
                 f"{self.batch_size}, P={self.num_params}, {self.optimizer}, {self.device})"]
        for name, part in self.parts.items():
            share = f"  {shares[name]:6.1%}" if name in shares else " " * 9
            lines.append(f"  {name:<10} {format_seconds(part.timing):>12}{share}  memory "
                         f"{_memory_cell(part.memory)}")
        lines.append(f"  floor      {format_seconds(self.floor):>12}")
        return "\n".join(lines)

    def rows(self) -> list[list[str]]:
        """Table rows: part, median, spread, share, R, flops, bytes, FLOP/s, memory
        (temporaries / total of one call), single call."""
        shares = self.shares()
        rows = []
        for name, part in self.parts.items():
            share = f"{shares[name]:.1%}" if name in shares else "-"
            rows.append([name, format_seconds(part.timing), format_si(part.timing.spread, "s"),
                         share, str(part.timing.inner_repeats), format_si(part.flops, ""),
                         format_si(part.bytes_accessed, "B"),
                         format_si(part.flops_per_second, "FLOP/s"), _memory_cell(part.memory),
                         format_si(part.call_seconds, "s")])
        if self.eval_seconds is not None:
            rows.append(["loss after a step", "-", "-", "-", "-", "-", "-", "-", "-",
                         format_si(self.eval_seconds, "s")])
        if self.concurrency is not None:
            rows.append([f"step on {self.devices} devices at once", "-", "-", "-", "-", "-",
                         "-", "-", "-", f"{self.concurrency:.2f}x one device's speed"])
        rows.append(["floor (empty call)", format_seconds(self.floor),
                     format_si(self.floor.spread, "s"), "-", "1", "-", "-", "-", "-", "-"])
        return rows

    HEADER = ("part", "median", "spread (IQR)", "share", "reps/call", "XLA flops", "XLA bytes",
              "FLOP/s", "memory (temp / total)", "single call")


def _memory_cell(m: MemoryCost | None) -> str:
    return "-" if m is None else f"{format_si(m.temp_bytes, 'B')} / {format_si(m.total_bytes, 'B')}"


def profile_step(problem: Problem, config: TrainConfig, *, seeds: int = 1,
                 eval_data: PyTree = None, eval_points: int | None = None, key: int = 0,
                 parts: Sequence[str] = PARTS, repeats: int = 15, min_seconds: float = 2e-3,
                 max_inner: int = 1 << 20, device: jax.Device | None = None,
                 devices: int | Sequence[jax.Device] | None = None) -> StepProfile:
    """Time each part of a training step, apart, and give XLA's cost estimate next to it.

    Every part runs for S seeds vmapped together on one device, each seed with its own
    init and mini-batch, as in `gdlab.train` with one seed chunk. Compile time is kept
    apart; each part is warmed up, then timed `repeats` times with `block_until_ready`,
    each timed call running R repetitions in a compiled loop (see `gdlab.timing`).

    Args:
      problem: the `gdlab.Problem`.
      config: the `gdlab.TrainConfig` (optimizer, learning rate, batch size, sampling).
      seeds: S, seeds vmapped together.
      eval_data: data the loss is measured on (default: the problem's data).
      eval_points: measure the loss on the first N_eval points of `eval_data` (default:
        all of them).
      key: integer key of the seeds' inits and mini-batches.
      parts: which of "derivative", "update", "sample", "loss", "step" to time
        ("sample" is skipped for full-batch and data-free problems: nothing to draw).
      repeats: timed calls per part (median and spread over them).
      min_seconds: work each timed call should do; sets the in-loop repetitions R.
      max_inner: largest R.
      device: where to run (default: the first device).
      devices: also time the fused step on this many devices at once (a count: the
        first ones; or a list), each with its own copy of the S seeds, as `gdlab.train`
        runs them (`StepProfile.concurrency`, which `TimeModel.for_run` uses).

    Returns:
      A `StepProfile`.

    Example:
      >>> prof = gdlab.profile_step(problems.teacher_student(),
      ...                           gdlab.TrainConfig(batch_size=64, eval_every=100))
      >>> prof.seconds("derivative"), prof.parts["derivative"].flops_per_second
    """
    _check_timing_settings(repeats, min_seconds, max_inner)  # before anything compiles
    return StepProfiler(problem, config, seeds=seeds, eval_data=eval_data,
                        eval_points=eval_points, key=key, parts=parts, device=device,
                        devices=devices).measure(repeats=repeats, min_seconds=min_seconds,
                                  max_inner=max_inner)


class StepProfiler:
    """`profile_step` split in two: compile every part once, then `measure()` as often as
    wanted (each call times every part afresh and returns a new `StepProfile`), e.g. to
    bracket real runs with profiles without paying the compile each time.

    Args: as `profile_step` (the timing settings go to `measure`).

    Example:
      >>> profiler = gdlab.StepProfiler(problem, gdlab.TrainConfig(batch_size=64))
      >>> before, after = profiler.measure(), profiler.measure()
    """

    def __init__(self, problem: Problem, config: TrainConfig, *, seeds: int = 1,
                 eval_data: PyTree = None, eval_points: int | None = None, key: int = 0,
                 parts: Sequence[str] = PARTS, device: jax.Device | None = None,
                 devices: int | Sequence[jax.Device] | None = None):
        spec = _check_profile_inputs(problem, config, seeds, eval_data, eval_points, parts)
        together = _check_devices(devices, parts)
        check_int("key", key)
        if device is not None and not isinstance(device, jax.Device):
            raise InputError(f"device must be a jax.Device or None, got {device!r}")
        self.device = jax.devices()[0] if device is None else device
        if self.device.platform == "cpu":
            dev.tune_host_allocator()  # as gdlab.train does, so both see the same allocator
        raw = _inputs(problem, config, seeds, key, spec["eval_data"])
        inputs = jax.device_put(raw, self.device)
        fns = part_functions(problem, config)
        self.compiled = {name: compile_part(fns[name], inputs)
                         for name in PARTS if name in parts and name in fns}
        self.devices_at_once = max(1, len(together))
        self.concurrent = None if len(together) < 2 else compile_concurrent(
            fns["step"], raw, together)
        opt = config.optimizer if isinstance(config.optimizer, str) else type(config.optimizer)
        self._fields = dict(problem=problem.name, seeds=seeds, batch_size=spec["batch_size"],
                            eval_points=spec["eval_points"], num_params=problem.num_params(),
                            optimizer=str(getattr(opt, "__name__", opt)),
                            device=f"{self.device.platform}:{self.device.id}")

    def measure(self, repeats: int = 15, min_seconds: float = 2e-3,
                max_inner: int = 1 << 20) -> StepProfile:
        """Time every compiled part (see `profile_step` for the arguments)."""
        _check_timing_settings(repeats, min_seconds, max_inner)
        floor = timing.dispatch_floor(max(repeats, 50), self.device)
        costs = {name: _profile_part(name, c, repeats, min_seconds, max_inner)
                 for name, c in self.compiled.items()}
        after_step = None
        if "loss" in self.compiled and "step" in self.compiled:
            after_step = float(np.median(_loss_after_step(self.compiled["step"],
                                                          self.compiled["loss"], repeats)))
        devices, concurrency = 1, None
        if self.concurrent is not None:
            c = self.concurrent
            both = timing.time_in_loop(c.looped, c.carry, (c.x, jnp.float32(0)),
                                       repeats=repeats, min_seconds=min_seconds,
                                       max_inner=max_inner)
            devices = self.devices_at_once
            concurrency = costs["step"].seconds / both.median
        return StepProfile(**self._fields, floor=floor, parts=costs, eval_seconds=after_step,
                           devices=devices, concurrency=concurrency)


def _check_devices(devices, parts) -> list[jax.Device]:
    """The devices to time the fused step on at once ([] when not asked)."""
    if devices is None:
        return []
    if isinstance(devices, int) and not isinstance(devices, bool):
        check_int("devices", devices, minimum=1, maximum=len(jax.devices()),
                  hint="devices to time the step on at once")
        devices = jax.devices()[:devices]
    devices = list(devices)
    if not devices:
        raise InputError("devices is empty; give a count >= 1 or a list of jax.Device")
    if len(devices) > 1 and "step" not in parts:
        raise InputError("devices needs the 'step' part (the fused step is what is timed "
                         "on every device at once); add 'step' to parts")
    return devices


def _check_timing_settings(repeats, min_seconds, max_inner) -> None:
    check_int("repeats", repeats, minimum=1)
    check_int("max_inner", max_inner, minimum=1)
    check_positive("min_seconds", min_seconds)


def _check_profile_inputs(problem, config, seeds, eval_data, eval_points, parts
                          ) -> dict[str, Any]:
    """Every check, before anything compiles; returns sizes and the evaluation data."""
    if not isinstance(problem, Problem):
        raise InputError(f"problem must be a gdlab.Problem, got {type(problem).__name__}")
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a gdlab.TrainConfig, got {type(config).__name__}")
    check_int("seeds", seeds, minimum=1)
    if isinstance(parts, str) or not isinstance(parts, Sequence | set | frozenset):
        raise InputError(f"parts must be a non-empty sequence of {', '.join(PARTS)}; "
                         f"got {parts!r}")
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise InputError(f"parts must be a non-empty sequence of {', '.join(PARTS)}; "
                         f"got {parts!r}")
    n = problem.num_data
    if config.batch_size is not None and n is None:
        raise InputError(f"batch_size={config.batch_size} but problem {problem.name!r} has "
                         "no data; use batch_size=None")
    if config.batch_size is not None and config.batch_size > n:
        raise InputError(f"batch_size={config.batch_size} is larger than the N={n} data "
                         f"points of {problem.name!r}; valid: 1..{n} or None (full batch)")
    eval_data = problem.data if eval_data is None else eval_data
    n_eval = None if eval_data is None else num_data_points(eval_data, where="eval_data")
    if eval_points is not None:
        if n_eval is None:
            raise InputError(f"eval_points={eval_points!r} but problem {problem.name!r} has "
                             "no data to measure the loss on")
        check_int("eval_points", eval_points, minimum=1)
        if eval_points > n_eval:
            raise InputError(f"eval_points={eval_points} is larger than the {n_eval} "
                             f"evaluation data points; valid: 1..{n_eval} or None (all)")
        eval_data = jax.tree.map(lambda a: a[:eval_points], eval_data)
        n_eval = eval_points
    check_loss_is_scalar(problem, config.batch_size if n else None, eval_data)
    batch = None if n is None else (config.batch_size or n)
    return {"eval_data": eval_data, "eval_points": n_eval, "batch_size": batch}


class Part(NamedTuple):
    """One timed part: `single(carry, inputs, i) -> out` is one call for all seeds;
    `advance(carry, out, scale) -> carry` makes the next repetition depend on this one."""

    single: Callable
    advance: Callable
    carry: str  # the key of `inputs` holding the starting carry
    needs: str  # the key of `inputs` passed to `single` as `x`


def part_functions(problem: Problem, config: TrainConfig) -> dict[str, Part]:
    """The parts of a step of S vmapped seeds, as `Part`s ("sample" only with a sampler).

    The derivative, the sample and the loss nudge the params by `scale` times (part of)
    their output (`scale` is a runtime 0.0, so values do not change but XLA cannot hoist
    the work out of a loop); update and step chain their new state, as training does.
    """
    optimizer = config.make_optimizer()
    sampler = engine.build_sampler(problem, config)
    grad_S = jax.vmap(jax.grad(problem.loss), (0, None if sampler is None else 0))
    loss_S = jax.vmap(problem.loss, (0, None))
    step_S = jax.vmap(engine.make_update(problem, optimizer, sampler), (0, None, None))

    def update_one(params, opt_state, grads):
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    update_S = jax.vmap(update_one)
    axpy = lambda p, s, d: jax.tree.map(lambda a, b: a + (s * b).astype(a.dtype), p, d)
    parts = {
        "derivative": Part(lambda p, batch, i: grad_S(p, batch),
                           lambda p, g, s: axpy(p, s, g), "params", "batch"),
        "update": Part(lambda st, grads, i: update_S(*st, grads),
                       lambda st, out, s: out, "update_state", "grads"),
        "loss": Part(lambda p, eval_data, i: loss_S(p, eval_data),
                     lambda p, loss_S, s: axpy(p, s, by_leaf(p, loss_S)), "params",
                     "eval_data"),
        "step": Part(lambda st, data, i: step_S(st, i, data),
                     lambda st, out, s: out, "state", "data"),
    }
    if sampler is not None:
        draw_S = jax.vmap(sampler.draw, (0, 0, None))
        gather_S = jax.vmap(gather, (None, 0))

        def sample(st, data, i):
            idx_SB, sampler_state = draw_S(st.sampler_state, st.data_key, i)
            return gather_S(data, idx_SB), sampler_state

        def advance_sample(st, out, s):
            first = jax.tree.leaves(out[0])[0]
            value_S = jnp.reshape(first, (first.shape[0], -1))[:, 0]
            return st._replace(params=axpy(st.params, s, by_leaf(st.params, value_S)),
                               sampler_state=out[1])

        parts["sample"] = Part(sample, advance_sample, "state", "data")
    return parts


def by_leaf(params_S: PyTree, value_S: jax.Array) -> PyTree:
    """`value_S` (S,) reshaped to broadcast against every leaf of `params_S`."""
    return jax.tree.map(lambda a: jnp.reshape(value_S, value_S.shape + (1,) * (a.ndim - 1)),
                        params_S)


def _inputs(problem: Problem, config: TrainConfig, seeds: int, key: int,
            eval_data: PyTree) -> dict[str, Any]:
    """Starting states and data of every part, for S seeds."""
    optimizer = config.make_optimizer()
    sampler = engine.build_sampler(problem, config)
    init_S = jax.vmap(engine.make_init(problem, optimizer, sampler), (0, None))
    state_S = jax.jit(init_S)(jnp.arange(seeds, dtype=jnp.int32), jax.random.key(key))
    # Host random numbers (NumPy) for what only needs the right shapes: compiling JAX's
    # generator for them would cost more than the whole measurement of a small part.
    rng = np.random.default_rng(key)
    batch = problem.data
    if sampler is not None:  # each seed its own batch, as in training; else shared
        idx_SB = rng.integers(0, problem.num_data, (seeds, config.batch_size), np.int32)
        batch = jax.tree.map(lambda a: jax.device_put(np.asarray(a)[idx_SB]), problem.data)
    # The update's cost does not depend on the gradient's values: small random ones do.
    # (made on the host: jnp.asarray or a cast would compile a program per leaf)
    grads_S = jax.tree.map(lambda x: jax.device_put(
        (1e-3 * rng.standard_normal(x.shape)).astype(x.dtype)), state_S.params)
    return {"state": state_S, "params": state_S.params, "batch": batch, "grads": grads_S,
            "update_state": (state_S.params, state_S.opt_state),
            "eval_data": eval_data, "data": problem.data}


class CompiledPart(NamedTuple):
    """A part compiled twice: in a repetition loop (for timing) and as one call."""

    looped: Any  # looped(carry, num, x, scale) -> (carry, output of the last repetition)
    single: Any  # single(carry, x, i) -> output
    carry: PyTree  # the starting carry
    x: PyTree  # the part's other input
    compile_seconds: float


def _looped(part: Part, inputs: dict[str, Any]) -> Callable:
    """`looped(carry, num, x, scale) -> (carry, last output)`: `num` chained repetitions."""
    out_shape = jax.eval_shape(part.single, inputs[part.carry], inputs[part.needs],
                               jnp.int32(0))

    def body(i, carry, x, scale):
        out = part.single(carry[0], x, i)
        return part.advance(carry[0], out, scale), out

    def looped(carry, num, x, scale):
        out0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out_shape)
        return timing.repeat_loop(body)((carry, out0), num, x, scale)
    return looped


def compile_part(part: Part, inputs: dict[str, Any]) -> CompiledPart:
    """Compile `part` ahead of time on the given inputs; the compile time is measured."""
    carry0, x = inputs[part.carry], inputs[part.needs]
    start = time.perf_counter()
    looped = jax.jit(_looped(part, inputs)).lower(carry0, jnp.int32(1), x,
                                                   jnp.float32(0)).compile()
    single = jax.jit(part.single).lower(carry0, x, jnp.int32(0)).compile()
    return CompiledPart(looped, single, carry0, x, time.perf_counter() - start)


def compile_concurrent(part: Part, inputs: dict[str, Any],
                       devices: Sequence[jax.Device]) -> CompiledPart:
    """`part`'s repetition loop on every one of `devices` at once (`shard_map`), each
    device with its own copy of the carry, as `gdlab.train` runs its seed blocks: to time
    how much slower each device runs when all of them work (shared cores, caches and
    memory bandwidth). `single` is left None."""
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P
    mesh = Mesh(np.array(devices), ("d",))
    looped = _looped(part, inputs)

    def local(carry_1, num, x, scale):  # each device: its own copy (leading axis 1)
        out = looped(jax.tree.map(lambda a: a[0], carry_1), num, x, scale)
        return jax.tree.map(lambda a: a[None], out)

    n = len(devices)
    stack = lambda a: jnp.broadcast_to(a[None], (n, *a.shape))
    # One program stacks every leaf (op by op, each leaf would compile two of its own).
    carry = jax.jit(lambda tree: jax.tree.map(stack, tree),
                    out_shardings=NamedSharding(mesh, P("d")))(inputs[part.carry])
    x = jax.device_put(inputs[part.needs], NamedSharding(mesh, P()))
    start = time.perf_counter()
    fn = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P("d"), P(), P(), P()),
                               out_specs=P("d"), check_vma=False))
    compiled = fn.lower(carry, jnp.int32(1), x, jnp.float32(0)).compile()
    return CompiledPart(compiled, None, carry, x, time.perf_counter() - start)


def _profile_part(name: str, c: CompiledPart, repeats: int, min_seconds: float,
                  max_inner: int) -> PartCost:
    """Time a compiled part in a loop and as single calls; read XLA's estimate."""
    flops, nbytes = xla_cost(c.single)
    t = timing.time_in_loop(c.looped, c.carry, (c.x, jnp.float32(0)), repeats=repeats,
                            min_seconds=min_seconds, max_inner=max_inner)
    calls = timing.time_calls(c.single, (c.carry, c.x, jnp.int32(0)), repeats)
    return PartCost(name, t, float(np.median(calls)), flops, nbytes, c.compile_seconds,
                    xla_memory(c.single))


def _loss_after_step(step: CompiledPart, loss: CompiledPart, repeats: int,
                     warmup: int = 2) -> np.ndarray:
    """Seconds of each loss call made right after an (untimed) call of the fused step."""
    out = np.empty(repeats + warmup)
    zero = jnp.int32(0)
    for r in range(repeats + warmup):
        jax.block_until_ready(step.single(step.carry, step.x, zero))
        start = time.perf_counter()
        jax.block_until_ready(loss.single(loss.carry, loss.x, zero))
        out[r] = time.perf_counter() - start
    return out[warmup:]


def xla_cost(compiled) -> tuple[float | None, float | None]:
    """XLA's estimate (flops, bytes accessed) of one call of a compiled function.

    None where the backend gives no estimate. A loop's or scan's body is counted once,
    whatever its trip count: pass the un-looped function.

    Example:
      >>> xla_cost(jax.jit(f).lower(x).compile())
    """
    try:
        cost = compiled.cost_analysis()
    except Exception:  # backend-dependent and best-effort
        return None, None
    if isinstance(cost, list | tuple):  # older JAX: one dict per device program
        cost = cost[0] if cost else None
    if not cost:
        return None, None
    get = lambda k: float(cost[k]) if k in cost and cost[k] >= 0 else None
    return get("flops"), get("bytes accessed")


