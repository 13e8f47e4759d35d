"""What users would otherwise write: the benchmark's baselines, the same math as gdlab.

Each builder returns `run() -> float`, the seconds of one timed run after compilation
(compilation and warm-up happen inside the builder), or for the per-seed loop the seconds
of `timed_seeds` seeds (the caller extrapolates to all seeds).

- `flax_loop_*` (baseline a): one seed at a time, a jitted flax + optax train step called
  from a Python loop, as in most tutorials.
- `bare_jax_*` (baseline b): one hand-written `jit(vmap(scan))` of the same math, without
  gdlab's chunking, sharding, divergence guard or bookkeeping.
- `torch_*` (baseline c): PyTorch `torch.func` ensembles (`stack_module_state` + `vmap`),
  a Python loop over steps; only when torch is installed (`torch_available()`).

MLP workloads draw B indices uniformly with replacement per seed per step, like gdlab.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdlab.problems.neural import MLP


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def himmelblau(p):
    x, y = p[0], p[1]
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _uniform(key, seeds: int) -> jax.Array:
    return jax.random.uniform(key, (seeds, 2), minval=-5.0, maxval=5.0)


# --- (b) bare jit(vmap(scan)) ------------------------------------------------------------

def bare_jax_himmelblau(seeds: int, steps: int, lr: float) -> Callable[[], float]:
    """Gradient descent on Himmelblau for every seed: jit(vmap(scan))."""
    grad = jax.grad(himmelblau)

    def one(p):
        return jax.lax.scan(lambda p, _: (p - lr * grad(p), None), p, None, length=steps)[0]

    run = jax.jit(jax.vmap(one)).lower(_uniform(jax.random.key(0), seeds)).compile()
    p0 = _uniform(jax.random.key(1), seeds)
    jax.block_until_ready(run(p0))
    return lambda: _seconds(lambda: run(p0))


def mlp_init(key, d_in: int, hidden: int) -> dict:
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (d_in, hidden)) / np.sqrt(d_in),
            "b1": jnp.zeros(hidden),
            "w2": jax.random.normal(k2, (hidden, 1)) / np.sqrt(hidden),
            "b2": jnp.zeros(1)}


def mlp_loss(p, x, y):
    out = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=-1))


def bare_jax_mlp(x, y, hidden: int, seeds: int, steps: int, batch: int,
                 lr: float) -> Callable[[], float]:
    """Mini-batch SGD on a one-hidden-layer tanh MLP for every seed: jit(vmap(scan))."""
    n, d_in = x.shape
    grad = jax.grad(mlp_loss)

    def one(key):
        init_key, data_key = jax.random.split(key)

        def step(p, t):
            idx = jax.random.randint(jax.random.fold_in(data_key, t), (batch,), 0, n)
            g = grad(p, x[idx], y[idx])
            return jax.tree.map(lambda a, b: a - lr * b, p, g), None

        p0 = mlp_init(init_key, d_in, hidden)
        return jax.lax.scan(step, p0, jnp.arange(steps))[0]

    keys = jax.random.split(jax.random.key(0), seeds)
    run = jax.jit(jax.vmap(one)).lower(keys).compile()
    jax.block_until_ready(run(keys))
    return lambda: _seconds(lambda: run(keys))


# --- (a) one seed at a time, flax + optax, Python loop -----------------------------------

def flax_loop_himmelblau(steps: int, lr: float, timed_seeds: int) -> Callable[[], float]:
    """Seconds of `timed_seeds` seeds, each `steps` calls of a jitted optax step."""
    tx = optax.sgd(lr)

    @jax.jit
    def train_step(p, opt_state):
        updates, opt_state = tx.update(jax.grad(himmelblau)(p), opt_state)
        return optax.apply_updates(p, updates), opt_state

    def seeds() -> object:
        p = None
        for s in range(timed_seeds):
            p = _uniform(jax.random.key(s), 1)[0]
            opt_state = tx.init(p)
            for _ in range(steps):
                p, opt_state = train_step(p, opt_state)
        return p

    p0 = _uniform(jax.random.key(0), 1)[0]
    jax.block_until_ready(train_step(p0, tx.init(p0)))  # compile
    return lambda: _seconds(seeds)


def flax_loop_mlp(x, y, hidden: int, steps: int, batch: int, lr: float,
                  timed_seeds: int) -> Callable[[], float]:
    """Seconds of `timed_seeds` seeds of a flax MLP trained with a jitted optax step."""
    n = x.shape[0]
    model, tx = MLP(hidden=(hidden,)), optax.sgd(lr)

    def loss(params, xb, yb):
        out = model.apply({"params": params}, xb)
        return 0.5 * jnp.mean(jnp.sum((out - yb) ** 2, axis=-1))

    @jax.jit
    def train_step(params, opt_state, key):
        key, sub = jax.random.split(key)
        idx = jax.random.randint(sub, (batch,), 0, n)
        grads = jax.grad(loss)(params, x[idx], y[idx])
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, key

    def seeds() -> object:
        params = None
        for s in range(timed_seeds):
            init_key, key = jax.random.split(jax.random.key(s))
            params = model.init(init_key, x[:1])["params"]
            opt_state = tx.init(params)
            for _ in range(steps):
                params, opt_state, key = train_step(params, opt_state, key)
        return params

    params = model.init(jax.random.key(0), x[:1])["params"]
    jax.block_until_ready(train_step(params, tx.init(params), jax.random.key(0)))  # compile
    return lambda: _seconds(seeds)


# --- (c) PyTorch torch.func ensembles ----------------------------------------------------

def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_setup(threads: int):
    import torch
    torch.set_num_threads(threads)
    return torch


def torch_himmelblau(seeds: int, steps: int, lr: float, threads: int) -> Callable[[], float]:
    """Gradient descent on Himmelblau for every seed: torch.func.vmap(grad) in a loop."""
    torch = _torch_setup(threads)
    from torch.func import grad, vmap
    g = vmap(grad(lambda p: (p[0] ** 2 + p[1] - 11) ** 2 + (p[0] + p[1] ** 2 - 7) ** 2))
    p0 = torch.rand(seeds, 2, generator=torch.Generator().manual_seed(0)) * 10 - 5

    def run() -> float:
        start = time.perf_counter()
        p = p0.clone()
        for _ in range(steps):
            p -= lr * g(p)
        return time.perf_counter() - start

    run()  # warm-up
    return run


def torch_mlp(x, y, hidden: int, seeds: int, steps: int, batch: int, lr: float,
              threads: int) -> Callable[[], float]:
    """Mini-batch SGD on S copies of a torch MLP: stack_module_state + vmap(grad)."""
    torch = _torch_setup(threads)
    from torch import nn
    from torch.func import functional_call, grad, stack_module_state, vmap
    x_t, y_t = torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y))  # writable copies
    n, d_in = x_t.shape
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))
              for _ in range(seeds)]
    params0, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss(p, b, xb, yb):
        out = functional_call(base, (p, b), (xb,))
        return 0.5 * ((out - yb) ** 2).sum(-1).mean()

    g = vmap(grad(loss))
    gen = torch.Generator().manual_seed(1)

    def run(num_steps: int = steps) -> float:
        start = time.perf_counter()
        params = {k: v.detach().clone() for k, v in params0.items()}
        for _ in range(num_steps):
            idx = torch.randint(n, (seeds, batch), generator=gen)
            grads = g(params, buffers, x_t[idx], y_t[idx])
            torch._foreach_add_(list(params.values()), list(grads.values()), alpha=-lr)
        return time.perf_counter() - start

    run(min(steps, 5))  # warm-up
    return run
