"""The engine: one pure step per seed, scanned over K steps, mapped over sharded seeds.

Per seed: sample a mini-batch with the seed's own key -> `jax.grad` -> optax update ->
keep the old params (and freeze the seed) when the new ones are not finite. The step
number `t` is shared by all seeds and never batched. Compile points: `init`, one chunk
function per chunk length, and `evaluate`, all built in `compile_engine`.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gdlab import devices as dev
from gdlab.config import TrainConfig
from gdlab.problem import Problem
from gdlab.sampling import Sampler, gather, make_sampler


class SeedState(NamedTuple):
    """Everything one seed carries from step to step."""

    params: Any
    opt_state: Any
    sampler_state: Any
    data_key: jax.Array
    diverged_at: jax.Array  # int32 step whose update was not finite; -1 = never


def seed_keys(key: jax.Array, seed_id: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(init_key, data_key) of seed `seed_id`: derived from `key` and the id alone."""
    seed_key = jax.random.fold_in(key, seed_id)
    return jax.random.fold_in(seed_key, 0), jax.random.fold_in(seed_key, 1)


def make_init(problem: Problem, optimizer: optax.GradientTransformation,
              sampler: Sampler | None):
    """`init(seed_id, key) -> SeedState`."""
    def init(seed_id, key):
        init_key, data_key = seed_keys(key, seed_id)
        params = problem.init(init_key)
        sampler_state = () if sampler is None else sampler.init(data_key)
        return SeedState(params, optimizer.init(params), sampler_state, data_key,
                         jnp.int32(-1))
    return init


def all_finite(tree: Any) -> jax.Array:
    """True when every element of every leaf is finite."""
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def make_step(problem: Problem, optimizer: optax.GradientTransformation,
              sampler: Sampler | None):
    """`step(state, t, data) -> state`: one guarded optimizer step of one seed."""
    grad_fn = jax.grad(problem.loss)

    def step(state: SeedState, t, data) -> SeedState:
        if sampler is None:
            batch, sampler_state = data, state.sampler_state
        else:
            idx_B, sampler_state = sampler.draw(state.sampler_state, state.data_key, t)
            batch = gather(data, idx_B)
        grads = grad_fn(state.params, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = all_finite(params)
        live = state.diverged_at < 0
        keep_new = live & finite
        pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(keep_new, a, b), new, old)
        diverged_at = jnp.where(live & ~finite, t, state.diverged_at).astype(jnp.int32)
        return SeedState(pick(params, state.params), pick(opt_state, state.opt_state),
                         sampler_state, state.data_key, diverged_at)
    return step


def make_chunk(step, length: int):
    """`chunk(state, t0, data) -> state`: `length` steps t0 .. t0+length-1 in one scan."""
    def chunk(state, t0, data):
        def body(s, t):
            return step(s, t, data), None
        ts = t0 + jnp.arange(length, dtype=jnp.int32)
        return jax.lax.scan(body, state, ts)[0]
    return chunk


def make_evaluate(problem: Problem):
    """`evaluate(state, eval_data) -> loss`: the loss of one seed's params."""
    return lambda state, eval_data: problem.loss(state.params, eval_data)


def chunk_lengths(config: TrainConfig) -> list[int]:
    """Scan lengths of the chunks the host loop runs, in order."""
    every = config.eval_every if not config.eval_by_time else config.chunk_steps
    every = min(every, config.steps)
    full, rest = divmod(config.steps, every)
    return [every] * full + ([rest] if rest else [])


class Engine(NamedTuple):
    """Compiled entry points of one (problem, config, mesh, chunk) combination."""

    init: Any
    chunks: dict[int, Any]
    evaluate: Any
    compile_seconds: float


def build_sampler(problem: Problem, config: TrainConfig) -> Sampler | None:
    """The mini-batch sampler, or None for full batch / data-free problems."""
    if config.batch_size is None or problem.data is None:
        return None
    return make_sampler(config.sampling, problem.num_data, config.batch_size)


def compile_engine(problem: Problem, config: TrainConfig, mesh, seed_chunk: int,
                   seed_ids, key, data, eval_data) -> tuple[Engine, SeedState]:
    """Compile every entry point ahead of time and build the initial state.

    Returns the engine (with the compile time, reported apart from run time) and the
    initial state of every seed, sharded over the mesh.
    """
    optimizer = config.make_optimizer()
    sampler = build_sampler(problem, config)
    step = make_step(problem, optimizer, sampler)
    lift = lambda fn, n: jax.jit(dev.seed_parallel(fn, mesh, seed_chunk, n))
    start = time.perf_counter()
    init = lift(make_init(problem, optimizer, sampler), 1).lower(seed_ids, key).compile()
    compile_seconds = time.perf_counter() - start
    state = init(seed_ids, key)
    t0 = dev.replicated(mesh, jnp.int32(0))
    start = time.perf_counter()
    chunks = {n: lift(make_chunk(step, n), 2).lower(state, t0, data).compile()
              for n in sorted(set(chunk_lengths(config)))}
    evaluate = lift(make_evaluate(problem), 1).lower(state, eval_data).compile()
    compile_seconds += time.perf_counter() - start
    return Engine(init, chunks, evaluate, compile_seconds), state


def state_bytes_per_seed(problem: Problem, config: TrainConfig) -> float:
    """Bytes of one seed's state (params, optimizer and sampler state), times 3 for the
    copies a step keeps alive (input, output, its evaluation)."""
    optimizer = config.make_optimizer()
    state = jax.eval_shape(make_init(problem, optimizer, build_sampler(problem, config)),
                           jnp.int32(0), jax.random.key(0))
    return 3.0 * sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


def bytes_per_seed_step(problem: Problem, config: TrainConfig, data) -> float:
    """XLA's estimate of the bytes one seed's step touches (for choosing chunk sizes)."""
    optimizer = config.make_optimizer()
    sampler = build_sampler(problem, config)
    step = make_step(problem, optimizer, sampler)
    state = jax.eval_shape(make_init(problem, optimizer, sampler), jnp.int32(0),
                           jax.random.key(0))
    try:
        cost = jax.jit(step).lower(state, jnp.int32(0), data).cost_analysis()
        return float((cost or {}).get("bytes accessed", 0.0))
    except Exception:  # cost analysis is best-effort and backend-dependent
        return 0.0
