"""Honest wall-clock timing of compiled JAX calls.

A compiled call costs a fixed dispatch floor (a few microseconds on CPU) plus its work.
Small parts are therefore timed as R repetitions inside one compiled loop whose carry
feeds each repetition into the next (so XLA cannot hoist the work out of the loop); the
same loop run with R = 0 measures that call's own floor, which is subtracted:

    per repetition = (time of one call with R reps - time of one call with 0 reps) / R

R is a runtime argument (one compile serves every R), chosen so that one timed call does
at least `min_seconds` of work. A part whose work cannot be told apart from the jitter of
the empty call is reported "below floor", with an upper bound, never as zero or negative.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import check_int

PyTree = Any
CLOCK_RESOLUTION = time.get_clock_info("perf_counter").resolution


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per repetition of one timed part.

    Attributes:
      median: median seconds per repetition; when `below_floor`, an upper bound.
      q25: 25% quantile of the per-repetition samples.
      q75: 75% quantile.
      samples: seconds per repetition of each timed call.
      inner_repeats: repetitions R inside each timed call (1 = single calls).
      floor: median seconds of the same call doing no repetitions (its dispatch floor).
      below_floor: the work could not be told apart from the floor's jitter.
    """

    median: float
    q25: float
    q75: float
    samples: tuple[float, ...]
    inner_repeats: int
    floor: float
    below_floor: bool = False

    @property
    def spread(self) -> float:
        """Interquartile range of the samples (at least the clock's resolution per rep)."""
        return max(self.q75 - self.q25, CLOCK_RESOLUTION / self.inner_repeats)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (samples left out)."""
        out = dataclasses.asdict(self)
        out.pop("samples")
        out["spread"] = self.spread
        return out


def time_calls(fn: Callable, args: Sequence, repeats: int, warmup: int = 2) -> np.ndarray:
    """Seconds of each of `repeats` calls `fn(*args)`, each waited for, after `warmup` calls."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    out = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out[i] = time.perf_counter() - start
    return out


def from_samples(samples: np.ndarray, inner_repeats: int = 1, floor: float = 0.0) -> Timing:
    """A Timing from per-repetition samples (clipped to the clock's resolution)."""
    tiny = CLOCK_RESOLUTION / inner_repeats
    s = np.maximum(np.asarray(samples, np.float64), tiny)
    q25, median, q75 = np.quantile(s, [0.25, 0.5, 0.75])
    return Timing(float(median), float(q25), float(q75), tuple(map(float, s)),
                  int(inner_repeats), float(floor))


def dispatch_floor(repeats: int = 200, device: jax.Device | None = None) -> Timing:
    """The cost of calling an empty compiled function (identity on a scalar) and waiting.

    Example:
      >>> dispatch_floor().median    # about 5e-6 s on a CPU
    """
    check_int("repeats", repeats, minimum=1)
    x = jax.device_put(np.int32(0), device)
    return from_samples(time_calls(_empty, (x,), repeats, warmup=5))


@jax.jit
def _empty(v):
    """A compiled call that does nothing (compiled once per device)."""
    return v


def repeat_loop(body: Callable[[jax.Array, PyTree], PyTree]) -> Callable:
    """`looped(carry, num, *extra) -> carry`: `body(i, carry, *extra)` for i < num.

    `num` is a traced int32 (one compile serves every repetition count); `body` must feed
    its result into the next repetition so that nothing is hoisted out of the loop.
    """
    def looped(carry, num, *extra):
        return jax.lax.fori_loop(0, num, lambda i, c: body(i, c, *extra), carry)
    return looped


def time_in_loop(looped: Callable, carry: PyTree, extra: Sequence = (), *, repeats: int = 15,
                 min_seconds: float = 2e-3, max_inner: int = 1 << 20,
                 warmup: int = 2) -> Timing:
    """Seconds per repetition of a compiled `looped(carry, num, *extra)` (see `repeat_loop`).

    Args:
      looped: compiled loop taking the repetition count as its second argument.
      carry: the loop's starting carry.
      extra: further arguments passed unchanged to every call.
      repeats: timed calls (samples) after calibration and warm-up.
      min_seconds: work each timed call should do (beyond its floor); sets R.
      max_inner: largest R tried.
      warmup: untimed calls before each measurement.

    Returns:
      A `Timing`; `below_floor` when the work is within the empty call's jitter.
    """
    check_int("repeats", repeats, minimum=1)
    call = lambda n: functools.partial(looped, carry, jnp.int32(n), *extra)
    empty = time_calls(call(0), (), max(repeats, 9), warmup)
    inner = _calibrate(call, float(np.median(empty)), min_seconds, max_inner, warmup)
    return resolve(time_calls(call(inner), (), repeats, warmup), empty, inner)


def resolve(calls: np.ndarray, empty_calls: np.ndarray, inner: int) -> Timing:
    """Seconds per repetition from timed calls doing `inner` reps and calls doing none.

    The work is below the floor when the median call exceeds the median empty call by no
    more than the empty calls' interquartile range (or the clock's resolution); it is
    then reported as that bound divided by `inner`, flagged `below_floor`.

    Example:
      >>> resolve(np.array([2e-3, 2.1e-3]), np.array([1e-5, 1.2e-5]), inner=100).median
      2.039e-05
    """
    check_int("inner", inner, minimum=1)
    empty = np.asarray(empty_calls, np.float64)
    floor = float(np.median(empty))
    jitter = max(float(np.subtract(*np.quantile(empty, [0.75, 0.25]))), CLOCK_RESOLUTION)
    work = (np.asarray(calls, np.float64) - floor) / inner
    if float(np.median(work)) * inner <= jitter:
        bound = jitter / inner
        kept = np.maximum(work, CLOCK_RESOLUTION / inner)
        return Timing(bound, bound, bound, tuple(map(float, kept)), inner, floor,
                      below_floor=True)
    return from_samples(work, inner, floor)


def _calibrate(call, floor: float, min_seconds: float, max_inner: int, warmup: int) -> int:
    """Smallest power-of-two R (<= max_inner) whose call does >= min_seconds of work."""
    inner = 1
    while inner < max_inner:
        work = float(np.median(time_calls(call(inner), (), 3, warmup=1 if inner > 1 else
                                          warmup))) - floor
        if work >= min_seconds:
            break
        grow = min_seconds / max(work, min_seconds / 1024)
        inner = min(max_inner, inner * 2 ** max(1, math.ceil(math.log2(grow))))
    return inner


def matmul_peak(sizes: Sequence[int] | None = None, calls: int = 5) -> float:
    """The machine's practical limit: the best float32 matmul FLOP/s on the local devices.

    Times an n x n @ n x n product for each n in `sizes` (default 512, 1024, 2048 on CPU;
    2048, 4096, 8192 on accelerators), both on one device and with one product per device
    at once (shard_map over all local devices); returns the best median of `calls` calls,
    counting 2 n^3 flops per product.
    """
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P
    devices = jax.local_devices()
    cpu = devices[0].platform == "cpu"
    sizes = sizes or ((512, 1024, 2048) if cpu else (2048, 4096, 8192))
    mesh = Mesh(np.array(devices), ("d",))
    one = jax.jit(lambda a: a @ a)
    each = jax.jit(jax.shard_map(lambda a: a @ a, mesh=mesh, in_specs=P("d"), out_specs=P("d")))
    best = 0.0
    for n in sizes:
        a = jnp.ones((n, n), jnp.float32) / n
        stacked = jax.device_put(jnp.ones((len(devices), n, n), jnp.float32) / n,
                                 NamedSharding(mesh, P("d")))
        for fn, x, products in ((one, a, 1), (each, stacked, len(devices))):
            seconds = float(np.median(time_calls(fn, (x,), calls)))
            best = max(best, products * 2.0 * n**3 / seconds)
    return best
