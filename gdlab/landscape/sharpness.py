"""Sharpness of minima: the top Hessian eigenvalue, the Hessian's trace, and the
epsilon-sharpness of Keskar et al. 2017 ("On large-batch training for deep learning").

Epsilon-sharpness is the largest loss increase in the box
`C_eps = {y : |y_i| <= eps (|x_i| + 1)}` around the minimum x, relative:
`100 (max_{y in C_eps} f(x + y) - f(x)) / (1 + f(x))`. Keskar et al. maximise with
L-BFGS-B; here a few steps of projected sign-gradient ascent from a random point of the
box (each step moves every coordinate by a quarter of its half-width, then clips to the
box), which reaches a vertex, where a locally convex f takes its maximum over the box.
The reported maximum is the largest loss seen on the way (never below f(x)).

Every function takes params with a leading axis M (minima, or seeds), one kernel call
each, so the atlas can measure all its minima at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gdlab._checks import check_int, check_positive
from gdlab.landscape import curvature
from gdlab.landscape.slices import (
    data_or_default,
    drop_seed_axis,
    hash_uniform,
    key_words,
    with_seed_axis,
)
from gdlab.problem import Problem

LossFn = Callable[[Any, Any], jax.Array]


def epsilon_sharpness(problem: Problem, params_M: Any, key: int | jax.Array,
                      epsilon: float = 1e-3, steps: int = 10, *, data: Any = None,
                      chunk: int = 8) -> dict[str, np.ndarray]:
    """Keskar et al.'s epsilon-sharpness of every minimum (see the module docstring).

    Args:
      problem: its loss is maximised around each minimum.
      params_M: minima with a leading axis M (or one minimum).
      key: int or JAX key of the random starts (each minimum its own).
      epsilon: relative half-width of the box, > 0 (Keskar et al.: 1e-3 and 5e-4).
      steps: projected gradient-ascent steps (>= 1).
      data: the batch the loss is evaluated on (default: the problem's full data).
      chunk: minima per vectorised chunk.

    Returns:
      {"epsilon_sharpness", "max_loss", "loss"}, each (M,) (floats without an axis M).

    Example:
      >>> epsilon_sharpness(p, runs.params, key=0, epsilon=1e-3)["epsilon_sharpness"]
    """
    params_S, had = with_seed_axis(problem, params_M, "params_M")
    epsilon = check_positive("epsilon", epsilon)
    steps, chunk = check_int("steps", steps, 1), check_int("chunk", chunk, 1)
    f0, fmax = _ascent(problem.loss, params_S, data_or_default(problem, data), key_words(key),
                       jnp.float32(epsilon), steps=steps, chunk=chunk)
    f0, fmax = np.asarray(f0, np.float64), np.asarray(fmax, np.float64)
    out = {"epsilon_sharpness": 100.0 * (fmax - f0) / (1.0 + f0), "max_loss": fmax, "loss": f0}
    return {k: drop_seed_axis(v, had) for k, v in out.items()}


@functools.partial(jax.jit, static_argnames=("loss", "steps", "chunk"))
def _ascent(loss: LossFn, params_S: Any, data: Any, words: jax.Array, epsilon: jax.Array,
            steps: int, chunk: int) -> tuple[jax.Array, jax.Array]:
    """Kernel of `epsilon_sharpness`: (S,) f(x) and the largest f(x + y) found in the box."""
    _, unravel = ravel_pytree(jax.tree.map(lambda x: x[0], params_S))
    flat_S = jax.vmap(lambda p: ravel_pytree(p)[0])(params_S)

    def one(args):
        i, x = args
        f = lambda z: loss(unravel(z), data)
        bound = epsilon.astype(x.dtype) * (jnp.abs(x) + 1)
        y = bound * (2 * hash_uniform(words, (i,), x.shape[0], x.dtype) - 1)
        f0 = f(x)

        def step(carry, _):
            y, best = carry
            value, g = jax.value_and_grad(f)(x + y)
            y = jnp.clip(y + 0.25 * bound * jnp.sign(g), -bound, bound)
            return (y, jnp.maximum(best, value)), None
        (y, best), _ = jax.lax.scan(step, (y, f0), None, length=steps)
        return f0, jnp.maximum(best, f(x + y))
    return jax.lax.map(one, (jnp.arange(flat_S.shape[0]), flat_S), batch_size=chunk)


def sharpness(problem: Problem, params_M: Any, key: int | jax.Array, *, epsilon: float = 1e-3,
              ascent_steps: int = 10, probes: int = 100, eigen_iters: int | None = None,
              data: Any = None, chunk: int = 8) -> dict[str, np.ndarray]:
    """Sharpness of every minimum: top Hessian eigenvalue, trace, epsilon-sharpness.

    Args:
      problem: its loss is measured.
      params_M: minima with a leading axis M (or one minimum).
      key: int or JAX key; the trace's probes and the ascent's starts use named sub-keys.
      epsilon: relative half-width of the epsilon-sharpness box.
      ascent_steps: projected gradient-ascent steps of the epsilon-sharpness.
      probes: Rademacher probes of the Hutchinson trace.
      eigen_iters: Lanczos steps of the top eigenvalue (default: `top_eigenvalues`').
      data: the batch everything is measured on (default: the problem's full data).
      chunk: minima per vectorised chunk.

    Returns:
      {"loss", "top_eigenvalue", "trace", "trace_stderr", "epsilon_sharpness",
      "max_loss"}, each an (M,) array.

    Example:
      >>> s = sharpness(p, runs.params, key=0); s["top_eigenvalue"].shape
      (S,)
    """
    top_key, trace_key, ascent_key = (int(w) for w in np.random.SeedSequence(
        [int(w) for w in key_words(key)]).generate_state(3))  # named sub-keys, on the host
    top = curvature.top_eigenvalues(problem, params_M, k=1, data=data, iters=eigen_iters,
                                    key=top_key, chunk=chunk)
    trace = curvature.hessian_trace(problem, params_M, trace_key, probes, data=data,
                                    chunk=chunk)
    eps = epsilon_sharpness(problem, params_M, ascent_key, epsilon, ascent_steps, data=data,
                            chunk=chunk)
    return {"loss": np.asarray(eps["loss"]), "top_eigenvalue": np.asarray(top)[..., 0],
            "trace": np.asarray(trace.trace), "trace_stderr": np.asarray(trace.stderr),
            "epsilon_sharpness": np.asarray(eps["epsilon_sharpness"]),
            "max_loss": np.asarray(eps["max_loss"])}
