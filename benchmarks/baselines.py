"""What users would otherwise write: the benchmark's baselines, the same math as gdlab.

Each builder returns `run() -> float`, the seconds of one timed run after compilation
(compilation and warm-up happen inside the builder), or for the per-seed loop the seconds
of `timed_seeds` seeds (the caller extrapolates to all seeds).

- `flax_loop_*` (baseline a): one seed at a time, a jitted flax + optax train step called
  from a Python loop, as in most tutorials (W5: the per-seed jitted loop).
- `bare_jax_*` (baseline b): one hand-written `jit(vmap(scan))` of the same math, without
  gdlab's chunking, sharding, divergence guard or bookkeeping (`bare_jax_mlp_rates`: the
  same program run once per learning rate, the rate an argument).
- `torch_*` (baseline c): PyTorch `torch.func` ensembles (`stack_module_state` + `vmap`),
  a Python loop over steps; only when torch is installed (`torch_available()`).

MLP workloads draw B indices uniformly with replacement per seed per step, like gdlab.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdlab.problems.neural import CNN, MLP


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


def _bare_mlp_program(x, y, hidden: int, seeds: int, steps: int, batch: int):
    """Compiled `run(keys_S, lr) -> params_S`: mini-batch SGD on a one-hidden-layer tanh MLP
    for every seed, jit(vmap(scan)); the learning rate is an argument (one compile for all)."""
    n, d_in = x.shape
    grad = jax.grad(mlp_loss)

    def one(key, lr):
        init_key, data_key = jax.random.split(key)

        def step(p, t):
            idx = jax.random.randint(jax.random.fold_in(data_key, t), (batch,), 0, n)
            g = grad(p, x[idx], y[idx])
            return jax.tree.map(lambda a, b: a - lr * b, p, g), None

        p0 = mlp_init(init_key, d_in, hidden)
        return jax.lax.scan(step, p0, jnp.arange(steps))[0]

    keys = jax.random.split(jax.random.key(0), seeds)
    run = jax.jit(jax.vmap(one, (0, None))).lower(keys, jnp.float32(0.1)).compile()
    return run, keys


def bare_jax_mlp(x, y, hidden: int, seeds: int, steps: int, batch: int,
                 lr: float) -> Callable[[], float]:
    """Mini-batch SGD on a one-hidden-layer tanh MLP for every seed: jit(vmap(scan))."""
    run, keys = _bare_mlp_program(x, y, hidden, seeds, steps, batch)
    rate = jnp.float32(lr)
    jax.block_until_ready(run(keys, rate))
    return lambda: _seconds(lambda: run(keys, rate))


def bare_jax_mlp_rates(x, y, hidden: int, seeds: int, steps: int, batch: int,
                       rates: Sequence[float]) -> Callable[[], float]:
    """`bare_jax_mlp` once per learning rate, one after another (one compile, warm):
    returns the seconds of all of them."""
    run, keys = _bare_mlp_program(x, y, hidden, seeds, steps, batch)
    rates = [jnp.float32(r) for r in rates]
    jax.block_until_ready(run(keys, rates[0]))
    return lambda: sum(_seconds(lambda r=r: run(keys, r)) for r in rates)


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


def flax_loop(model, per_batch_loss, x, y, steps: int, batch: int, lr: float,
              timed_seeds: int) -> Callable[[], float]:
    """Seconds of `timed_seeds` seeds of a flax `model` trained one seed at a time with a
    jitted optax SGD step called from a Python loop; `per_batch_loss(out_B, y_B)`."""
    n, tx = x.shape[0], optax.sgd(lr)

    def loss(params, xb, yb):
        return per_batch_loss(model.apply({"params": params}, xb), yb)

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


def half_squared_error(out_B, y_B) -> jax.Array:
    return 0.5 * jnp.mean(jnp.sum((out_B - y_B) ** 2, axis=-1))


def cross_entropy(logits_BK, labels_B) -> jax.Array:
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_BK, labels_B))


def flax_loop_mlp(x, y, hidden: int, steps: int, batch: int, lr: float,
                  timed_seeds: int) -> Callable[[], float]:
    """Seconds of `timed_seeds` seeds of a flax MLP trained with a jitted optax step."""
    return flax_loop(MLP(hidden=(hidden,)), half_squared_error, x, y, steps, batch, lr,
                     timed_seeds)


def flax_loop_cnn(x, y, channels: int, steps: int, batch: int, lr: float,
                  timed_seeds: int) -> Callable[[], float]:
    """Seconds of `timed_seeds` seeds of W5's flax CNN (Conv 3x3 SAME -> ReLU -> Dense),
    cross-entropy, trained with a jitted optax step."""
    return flax_loop(CNN(channels=(channels,), kernel_size=(3, 3)), cross_entropy, x, y,
                     steps, batch, lr, timed_seeds)


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


def torch_ensemble(models: list, loss, x_t, y_t, steps: int, batch: int,
                   lr: float) -> Callable[[], float]:
    """Mini-batch SGD on S torch modules at once: stack_module_state + vmap(grad) in a
    Python loop over steps; `loss(out_B, y_B)`. Returns `run() -> seconds`."""
    import torch
    from torch.func import functional_call, grad, stack_module_state, vmap
    n, seeds = x_t.shape[0], len(models)
    params0, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    g = vmap(grad(lambda p, b, xb, yb: loss(functional_call(base, (p, b), (xb,)), yb)))
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


def torch_mlp(x, y, hidden: int, seeds: int, steps: int, batch: int, lr: float,
              threads: int) -> Callable[[], float]:
    """Mini-batch SGD on S copies of a torch MLP: stack_module_state + vmap(grad)."""
    torch = _torch_setup(threads)
    from torch import nn
    x_t, y_t = torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y))  # writable copies
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(x_t.shape[1], hidden), nn.Tanh(), nn.Linear(hidden, 1))
              for _ in range(seeds)]
    return torch_ensemble(models, lambda out, yb: 0.5 * ((out - yb) ** 2).sum(-1).mean(),
                          x_t, y_t, steps, batch, lr)


def torch_cnn(x, y, channels: int, seeds: int, steps: int, batch: int, lr: float,
              threads: int) -> Callable[[], float]:
    """W5's CNN as S torch modules (Conv2d 3x3 padding 1 -> ReLU -> Linear), images NCHW."""
    torch = _torch_setup(threads)
    from torch import nn
    x_t = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    y_t = torch.from_numpy(np.array(y)).long()
    h, w = x_t.shape[2:]
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Conv2d(x_t.shape[1], channels, 3, padding=1), nn.ReLU(),
                            nn.Flatten(), nn.Linear(channels * h * w, 10))
              for _ in range(seeds)]
    return torch_ensemble(models, nn.functional.cross_entropy, x_t, y_t, steps, batch, lr)
