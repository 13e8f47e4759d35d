"""The engine: one pure step per seed, scanned over K steps, mapped over sharded seeds.

Per seed: sample a mini-batch with the seed's own key -> `jax.grad` -> optax update ->
keep the old params (and freeze the seed) when the new ones are not finite. The step
number `t` is shared by all seeds and never batched. Chunks of K steps run unguarded and
check finiteness once at their end; a chunk in which a seed diverged is rerun with the
per-step guard. Compile points: `init`, one chunk function per chunk length, and
`evaluate`, built in `compile_engine`; the guarded chunks only when first needed.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.extend import core as jax_core

from gdlab.config import TrainConfig
from gdlab.core import devices as dev
from gdlab.core.memory import MemoryCost, xla_memory
from gdlab.core.sampling import Sampler, gather, make_sampler
from gdlab.problem import Problem


class SeedState(NamedTuple):
    """Everything one seed carries from step to step."""

    params: Any
    opt_state: Any
    sampler_state: Any
    data_key: jax.Array
    diverged_at: jax.Array  # int32 step whose update was not finite; -1 = never


def seed_keys(key: jax.Array, seed_id: jax.Array,
              data_id: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(init_key, data_key) of seed `seed_id`: derived from `key` and the id alone.

    With `data_id`, the data key (mini-batch order) is that of seed `data_id` instead, so
    the initialisation and the batch order can be varied separately.
    """
    init_key = jax.random.fold_in(jax.random.fold_in(key, seed_id), 0)
    data_key = jax.random.fold_in(jax.random.fold_in(
        key, seed_id if data_id is None else data_id), 1)
    return init_key, data_key



def make_init(problem: Problem, optimizer: optax.GradientTransformation,
              sampler: Sampler | None):
    """`init(seed_id, key, hparams=None, data_id=None) -> SeedState`.

    `hparams` ({name: scalar}) overrides the optimizer's injected hyperparameters for
    this seed (see `TrainConfig.make_optimizer`): values are inputs of the compiled
    program, not constants, so a new learning rate reuses it and seeds (lanes) trained
    together may each have their own.
    """
    def init(seed_id, key, hparams=None, data_id=None):
        init_key, data_key = seed_keys(key, seed_id, data_id)
        params = problem.init(init_key)
        opt_state = with_hyperparams(optimizer.init(params), hparams)
        sampler_state = () if sampler is None else sampler.init(data_key)
        return SeedState(params, opt_state, sampler_state, data_key, jnp.int32(-1))
    return init


def with_hyperparams(opt_state: Any, hparams: dict[str, Any] | None) -> Any:
    """`opt_state` (an `optax.inject_hyperparams` state) with `hparams` put in."""
    if not hparams:
        return opt_state
    stored = opt_state.hyperparams
    return opt_state._replace(hyperparams={
        **stored, **{k: jnp.asarray(v, stored[k].dtype) for k, v in hparams.items()}})


def all_finite(tree: Any) -> jax.Array:
    """True when every element of every leaf is finite."""
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def make_update(problem: Problem, optimizer: optax.GradientTransformation,
                sampler: Sampler | None):
    """`update(state, t, data) -> state`: one unguarded optimizer step of one seed."""
    grad_fn = jax.grad(problem.loss)

    def update(state: SeedState, t, data) -> SeedState:
        if sampler is None:
            batch, sampler_state = data, state.sampler_state
        else:
            idx_B, sampler_state = sampler.draw(state.sampler_state, state.data_key, t)
            batch = gather(data, idx_B)
        grads = grad_fn(state.params, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return state._replace(params=optax.apply_updates(state.params, updates),
                              opt_state=opt_state, sampler_state=sampler_state)
    return update


def make_step(problem: Problem, optimizer: optax.GradientTransformation,
              sampler: Sampler | None):
    """`step(state, t, data) -> state`: one guarded optimizer step of one seed.

    Keeps the old params and optimizer state (and freezes the seed, recording the step in
    `diverged_at`) when the new params or optimizer state are not finite (what the fast
    chunk checks: an overflowed second moment leaves params finite but stuck).
    """
    update = make_update(problem, optimizer, sampler)

    def step(state: SeedState, t, data) -> SeedState:
        new = update(state, t, data)
        finite = all_finite((new.params, new.opt_state))
        live = state.diverged_at < 0
        keep_new = live & finite
        pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(keep_new, a, b), new, old)
        diverged_at = jnp.where(live & ~finite, t, state.diverged_at).astype(jnp.int32)
        return SeedState(pick(new.params, state.params), pick(new.opt_state, state.opt_state),
                         new.sampler_state, state.data_key, diverged_at)
    return step


def _scan(one, states, t0, data, length: int, unroll: int):
    """`length` steps of `one` (a per-seed step) for a batch of seeds, from step t0."""
    batched = jax.vmap(one, in_axes=(0, None, None))
    ts = t0 + jnp.arange(length, dtype=jnp.int32)
    return jax.lax.scan(lambda s, t: (batched(s, t, data), None), states, ts,
                        unroll=unroll)[0]


def make_fast_chunk(update, length: int, unroll: int = 1):
    """`chunk(states, t0, data) -> (states, ok)`: steps t0 .. t0+length-1 of a batch of
    seeds with the unguarded `update`, `unroll` steps per scan iteration.

    The per-step guard costs as much as a whole step on cheap problems (a per-seed
    reduction and select every step: 2x on Himmelblau), so chunks run unguarded and
    check once at the end: `ok` (per seed) is false for a seed that was live and is no
    longer finite (params or optimizer state). Seeds frozen before the chunk get their
    old params and optimizer state back. The host reruns a chunk with a false `ok` from
    its start with `make_guarded_chunk`, which records the exact step of divergence; a
    non-finite value never turns finite again under gradient updates, so the end-of-chunk
    check sees every divergence inside the chunk.
    """
    def chunk(states, t0, data):
        fast = _scan(update, states, t0, data, length, unroll)
        live = states.diverged_at < 0
        ok = jax.vmap(all_finite)((fast.params, fast.opt_state)) | ~live
        pick = lambda new, old: jax.tree.map(
            lambda a, b: jnp.where(_lead(live, a), a, b), new, old)
        return fast._replace(params=pick(fast.params, states.params),
                             opt_state=pick(fast.opt_state, states.opt_state)), ok
    return chunk


def make_guarded_chunk(step, length: int, unroll: int = 1):
    """`chunk((states, fast, ok), t0, data) -> states`: the same steps with the per-step
    guard, kept for the seeds whose fast run `fast` was not `ok`; the others keep their
    fast result, so a seed's bits never depend on another seed diverging (the guarded
    program is fused differently and may round differently)."""
    def chunk(seeds, t0, data):
        states, fast, ok = seeds
        guarded = _scan(step, states, t0, data, length, unroll)
        pick = lambda new, old: jax.tree.map(
            lambda a, b: jnp.where(_lead(ok, a), a, b), new, old)
        return guarded._replace(params=pick(fast.params, guarded.params),
                                opt_state=pick(fast.opt_state, guarded.opt_state),
                                diverged_at=jnp.where(ok, fast.diverged_at,
                                                      guarded.diverged_at))
    return chunk


def _lead(mask_C: jax.Array, like: jax.Array) -> jax.Array:
    """A (C,) mask shaped to broadcast against `like` (C, ...)."""
    return mask_C.reshape(mask_C.shape + (1,) * (like.ndim - 1))


# Points per loss call when measuring: larger evaluation sets are measured in chunks of
# this many points (a weighted mean of chunk means), so memory stays bounded.
EVAL_POINTS_PER_CALL = 16384


def make_evaluate(problem: Problem, points_per_call: int = EVAL_POINTS_PER_CALL):
    """`evaluate(state, eval_sets) -> {"<set>/<name>": scalar}`: the loss and every
    `problem.metrics` of one seed on each evaluation set (e.g. "train", "test")."""
    fns = {"loss": problem.loss, **problem.metrics}

    def evaluate(state, eval_sets):
        return {f"{where}/{name}": mean_over(fn, state.params, data, points_per_call)
                for where, data in eval_sets.items() for name, fn in fns.items()}
    return evaluate


def mean_over(fn, params, data, points_per_call: int) -> jax.Array:
    """`fn(params, data)` (a mean over the batch) computed `points_per_call` points at a
    time: the mean of the chunks' means weighted by their sizes."""
    n = jax.tree.leaves(data)[0].shape[0] if data is not None else 0
    if data is None or n <= points_per_call:
        return fn(params, data)
    full = n // points_per_call
    head = jax.tree.map(lambda x: x[: full * points_per_call].reshape(
        (full, points_per_call, *x.shape[1:])), data)
    total = jnp.sum(jax.lax.map(lambda batch: fn(params, batch), head)) * points_per_call
    if n > full * points_per_call:
        tail = jax.tree.map(lambda x: x[full * points_per_call:], data)
        total = total + fn(params, tail) * (n - full * points_per_call)
    return total / n


def chunk_lengths(config: TrainConfig) -> list[int]:
    """Scan lengths of the chunks the host loop runs, in order."""
    every = config.eval_every if not config.eval_by_time else config.chunk_steps
    every = min(every, config.steps)
    full, rest = divmod(config.steps, every)
    return [every] * full + ([rest] if rest else [])


@dataclasses.dataclass
class Engine:
    """Compiled entry points of one program: the problem's functions, the config's static
    fields, the mesh, the seed block, the seeds per call and the chunk lengths.

    `init(lanes, key)` builds every seed's state from `lanes = {"init_id": (S,),
    "data_id": (S,), "hparams": {name: (S,)}}` (the seed ids whose init and data order each
    lane uses); `chunks[n]` runs n unguarded steps and returns (states, ok, all ok,
    t0 + n); `guarded(n)((states, fast, ok), t0, data)` reruns them guarded for the seeds
    not `ok` (see `make_guarded_chunk`), compiled on first use (only runs where a seed
    diverges need it); `evaluate(states, eval_sets)` measures the loss and metrics.
    The step counter stays on the devices from chunk to chunk: placing a fresh host
    scalar on a mesh costs 0.1-0.3 ms per chunk on CPU, more than a small chunk's work.
    `compile_seconds` counts every compile, the late ones included.
    """

    init: Any
    chunks: dict[int, Any]
    evaluate: Any
    compile_seconds: float
    build_guarded: Any
    _guarded: dict[int, Any] = dataclasses.field(default_factory=dict)

    def guarded(self, length: int):
        if length not in self._guarded:
            start = time.perf_counter()
            self._guarded[length] = self.build_guarded(length)
            self.compile_seconds += time.perf_counter() - start
        return self._guarded[length]

    def run_chunk(self, length: int, state: SeedState, t0, data) -> tuple[SeedState, Any]:
        """`length` steps from t0 (a replicated int32 on the mesh), rerun with the guard
        when a seed diverged in them; returns the new states and t0 + length (on the mesh,
        ready for the next chunk)."""
        new, ok, all_ok, t_end = self.chunks[length](state, t0, data)
        if not all(dev.agree([bool(dev.to_host(all_ok))])):
            new = self.guarded(length)((state, new, ok), t0, data)
        return jax.block_until_ready(new), t_end


class EngineInputs(NamedTuple):
    """Example inputs an engine is compiled for (device arrays on the mesh)."""

    lanes: dict[str, Any]  # {"init_id", "data_id": (S,) int32, "hparams": {name: (S,)}}
    key: jax.Array
    data: Any
    eval_sets: dict[str, Any]  # {"train" (or "eval"): data, "test": test data}


def _with_counter(sharded_chunk, length: int):
    """The jitted chunk also returning whether every seed stayed finite (one replicated
    bool: the host reads a scalar, not S flags) and t0 + length (replicated, like t0)."""
    def chunk(states, t0, data):
        new, ok = sharded_chunk(states, t0, data)
        return new, ok, jnp.all(ok), t0 + length
    return jax.jit(chunk)


def build_sampler(problem: Problem, config: TrainConfig) -> Sampler | None:
    """The mini-batch sampler, or None for full batch / data-free problems."""
    if config.batch_size is None or problem.data is None:
        return None
    return make_sampler(config.sampling, problem.num_data, config.batch_size,
                        config.sampling_rng)


def compile_engine(problem: Problem, config: TrainConfig, mesh, seed_block: int,
                   inputs: EngineInputs, unroll: int = 1) -> Engine:
    """Compile every entry point ahead of time (the compile time is reported apart)."""
    optimizer = config.make_optimizer()
    sampler = build_sampler(problem, config)
    update, step = (make(problem, optimizer, sampler) for make in (make_update, make_step))
    lift = lambda fn, n, batched=False: jax.jit(dev.seed_parallel(fn, mesh, seed_block, n,
                                                                  batched))
    per_lane = make_init(problem, optimizer, sampler)
    start = time.perf_counter()
    init = lift(lambda lane, key: per_lane(lane["init_id"], key, lane["hparams"],
                                           lane["data_id"]), 1
                ).lower(inputs.lanes, inputs.key).compile()
    compile_seconds = time.perf_counter() - start
    state = init(inputs.lanes, inputs.key)  # example state to compile the chunks for
    t0 = dev.replicated(mesh, jnp.int32(0))
    start = time.perf_counter()
    ok = jax.ShapeDtypeStruct(state.diverged_at.shape, jnp.bool_,
                              sharding=state.diverged_at.sharding)
    compile_chunk = lambda chunk: lift(chunk, 2, True).lower(
        (state, state, ok), t0, inputs.data).compile()
    fast = lambda n: _with_counter(dev.seed_parallel(make_fast_chunk(update, n, unroll),
                                                     mesh, seed_block, 2, True), n)
    chunks = {n: fast(n).lower(state, t0, inputs.data).compile()
              for n in sorted(set(chunk_lengths(config)))}
    evaluate = lift(make_evaluate(problem), 1).lower(state, inputs.eval_sets).compile()
    compile_seconds += time.perf_counter() - start
    guarded = lambda n: compile_chunk(make_guarded_chunk(step, n, unroll))
    return Engine(init, chunks, evaluate, compile_seconds, guarded)


# ----------------------------------------------------------------------------- the cache

ENGINE_CACHE_SIZE = 32  # compiled programs kept per process (least recently used dropped)
_ENGINES: collections.OrderedDict[tuple, Engine] = collections.OrderedDict()


def get_engine(problem: Problem, config: TrainConfig, mesh, seed_block: int,
               inputs: EngineInputs, unroll: int = 1) -> tuple[Engine, bool]:
    """The compiled engine for these settings, from the in-process cache when an earlier
    call compiled the same program; returns (engine, cache_hit).

    The key is everything that changes the program: the problem's functions (by
    identity), the config's static fields, chunk lengths, mesh, seed block, unroll and the
    shapes and dtypes of every input; not values that are inputs (data, seed ids,
    injected hyperparameters such as the learning rate).
    """
    key = program_key(problem, config, mesh, seed_block, inputs, unroll)
    if key in _ENGINES:
        _ENGINES.move_to_end(key)
        return _ENGINES[key], True
    engine = compile_engine(problem, config, mesh, seed_block, inputs, unroll)
    _ENGINES[key] = engine
    while len(_ENGINES) > ENGINE_CACHE_SIZE:
        _ENGINES.popitem(last=False)
    return engine, False


def clear_engine_cache() -> None:
    """Drop every cached compiled engine (e.g. to free device memory)."""
    _ENGINES.clear()


def program_key(problem: Problem, config: TrainConfig, mesh, seed_block: int,
                inputs: EngineInputs, unroll: int) -> tuple:
    """What identifies a compiled engine (see `get_engine`)."""
    metrics = tuple(sorted(problem.metrics.items()))
    rate = config.learning_rate if callable(config.learning_rate) else None
    static = (config.optimizer, rate, config.batch_size, config.sampling, config.sampling_rng,
              tuple(chunk_lengths(config)), tuple(sorted(config.hyperparams())))
    devices = tuple((d.platform, d.id, d.process_index) for d in mesh.devices.flat)
    return (problem.init, problem.loss, metrics, problem.num_data, static, devices,
            seed_block, unroll, avals(inputs))


def avals(tree: Any) -> tuple:
    """(tree structure, (shape, dtype) of every leaf): what a compiled program sees."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(np.shape(x)), str(getattr(x, "dtype", type(x))))
                          for x in leaves)


def _one_seed_state(problem: Problem, config: TrainConfig):
    """(step, shapes of one seed's state): what one seed's training step takes."""
    optimizer = config.make_optimizer()
    sampler = build_sampler(problem, config)
    state = jax.eval_shape(make_init(problem, optimizer, sampler), jnp.int32(0),
                           jax.random.key(0))
    return make_step(problem, optimizer, sampler), state


def state_bytes_per_seed(problem: Problem, config: TrainConfig) -> float:
    """Bytes of one seed's state: params, optimizer and sampler state, key, status."""
    _, state = _one_seed_state(problem, config)
    return float(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state)))


def step_memory(problem: Problem, config: TrainConfig, data, block: int = 1
                ) -> MemoryCost | None:
    """XLA's memory analysis of one block of `block` seeds' training step, vmapped and
    compiled alone as the engine runs it (a vmapped convolution may need more than
    `block` times one seed's temporaries); None where the backend gives none. Costs one
    compile: `gdlab.train` calls it only when a cheaper bound says the seeds might not
    fit in memory."""
    step, state = _one_seed_state(problem, config)
    states = jax.tree.map(lambda x: jax.ShapeDtypeStruct((block, *x.shape), x.dtype), state)
    batched = jax.vmap(step, in_axes=(0, None, None))
    return xla_memory(jax.jit(batched).lower(states, jnp.int32(0), data).compile())


def uses_convolution(problem: Problem, config: TrainConfig, data) -> bool:
    """Whether one seed's step runs a convolution (traced, not compiled)."""
    step, state = _one_seed_state(problem, config)
    jaxpr = jax.make_jaxpr(step)(state, jnp.int32(0), data)
    return _has_primitive(jaxpr.jaxpr, "conv_general_dilated")


def _has_primitive(jaxpr, name: str) -> bool:
    """`name` among the equations of `jaxpr` or of any jaxpr nested in them."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == name:
            return True
        for sub in jax_core.jaxprs_in_params(eqn.params):
            if _has_primitive(sub, name):
                return True
    return False


def bytes_per_seed_step(problem: Problem, config: TrainConfig, data) -> float:
    """XLA's estimate of the bytes one seed's step touches (lowered, not compiled: cheap),
    for choosing seed blocks; an upper bound on the step's temporaries, each written at
    least once. 0 where the backend gives no estimate."""
    step, state = _one_seed_state(problem, config)
    try:
        cost = jax.jit(step).lower(state, jnp.int32(0), data).cost_analysis()
        return float((cost or {}).get("bytes accessed", 0.0))
    except Exception:  # cost analysis is best-effort and backend-dependent
        return 0.0
