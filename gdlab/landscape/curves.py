"""Low-loss curves between two minima (Garipov et al. 2018, "Loss surfaces, mode
connectivity, and fast ensembling of DNNs").

A quadratic Bezier curve `phi(t) = (1-t)^2 a + 2 t (1-t) theta + t^2 b` or a polygonal
chain with one bend (`a -> theta` on t in [0, 1/2], `theta -> b` after) joins the fixed
end points a and b; its control point theta starts at the midpoint (so the curve starts
as the straight path) and is trained so the loss along the curve stays low: each step
draws t uniformly, takes the loss of `phi(t)` on the training data (or a uniform
mini-batch of it) and moves theta by adam (optax). The whole fit is one `lax.scan`,
vmapped over pairs (a leading seed axis), compiled once per shape: the learning rate,
end points, data and keys are traced.

Both curves are `a + c1(t) (theta - a) + c2(t) (b - a)`, so the loss along them is
`slices.grid_losses` with two directions and per-t coordinates.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from gdlab import symmetry
from gdlab._checks import InputError, check_choice, check_int, check_optional_int, check_positive
from gdlab.core.sampling import gather
from gdlab.landscape.slices import (
    data_or_default,
    drop_seed_axis,
    grid_losses,
    hash_bits,
    hash_uniform,
    interpolate,
    key_words,
    num_seeds,
    with_seed_axis,
)
from gdlab.problem import Problem, num_data_points

PyTree = Any
LossFn = Callable[[Any, Any], jax.Array]
KINDS = ("bezier", "polychain")


@dataclasses.dataclass(frozen=True)
class Curve:
    """A trained curve between two points (a leading seed axis S on every field if any).

    Attributes:
      kind: "bezier" or "polychain".
      start, control, end: params pytrees: a, the trained theta, b.
      train_loss: (steps,) loss at the sampled t (on the step's batch) at every step.
    """

    kind: str
    start: PyTree
    control: PyTree
    end: PyTree
    train_loss: np.ndarray


@dataclasses.dataclass(frozen=True)
class CurveComparison:
    """Loss along a trained curve against the straight path between the same two points.

    Attributes:
      ts: (T,) curve parameters (and straight-path fractions) 0..1.
      line_loss, curve_loss: (T,) losses ((S, T) with a seed axis).
      line_max, curve_max: the largest loss on each ((S,) with a seed axis).
      line_barrier, curve_barrier: the largest loss minus the mean of the two end losses.
      curve: the trained `Curve`.
      aligned: True when `params_b` was first moved onto `params_a`'s labelling.
      note: how the alignment was done, or why it was not.
    """

    ts: np.ndarray
    line_loss: np.ndarray
    curve_loss: np.ndarray
    line_max: Any
    curve_max: Any
    line_barrier: Any
    curve_barrier: Any
    curve: Curve
    aligned: bool
    note: str


def coefficients(kind: str, t: ArrayLike) -> jax.Array | np.ndarray:
    """(..., 2) coefficients of (theta - a, b - a) at t: the curve is a + c @ (.).

    NumPy in, NumPy out (on the host); JAX in, JAX out (inside kernels).
    """
    xp = np if isinstance(t, np.ndarray | float) else jnp
    if kind == "bezier":
        return xp.stack([2 * t * (1 - t), t * t], axis=-1)
    first = xp.stack([2 * t, xp.zeros_like(t)], axis=-1)
    second = xp.stack([2 - 2 * t, 2 * t - 1], axis=-1)
    return xp.where((t <= 0.5)[..., None], first, second)


def fit_curve(problem: Problem, params_a: PyTree, params_b: PyTree, key: int | jax.Array, *,
              kind: str = "bezier", steps: int = 1000, learning_rate: float = 1e-2,
              batch_size: int | None = None, data: Any = None,
              init: PyTree = None) -> Curve:
    """Train the control point of a curve from `params_a` to `params_b` (Garipov et al.).

    Args:
      problem: its loss is minimised along the curve.
      params_a, params_b: the fixed end points (a leading seed axis S on both: S curves
        trained at once).
      key: int or JAX key of the sampled t and mini-batches (each pair its own).
      kind: "bezier" (quadratic Bezier) or "polychain" (one bend at t = 1/2).
      steps: adam steps (>= 1), one sampled t each.
      learning_rate: adam's learning rate (> 0).
      batch_size: points per mini-batch, drawn uniformly with replacement; None for the
        full data.
      data: the training data (default: the problem's).
      init: the control point to start from (default: the midpoint of a and b).

    Returns:
      A `Curve`.

    Example:
      >>> curve = fit_curve(p, a, b, key=0, steps=500)
    """
    kind = check_choice("kind", kind, KINDS)
    steps = check_int("steps", steps, 1)
    learning_rate = check_positive("learning_rate", learning_rate)
    a_S, b_S, had = _pair(problem, params_a, params_b)
    data = data_or_default(problem, data)
    n = None if data is None else num_data_points(data)
    batch_size = check_optional_int("batch_size", batch_size, 1, n)
    if batch_size is not None and data is None:
        raise InputError("batch_size given but the problem has no data")
    init_S = None if init is None else with_seed_axis(problem, init, "init")[0]
    control, hist = _fit(problem.loss, a_S, b_S, init_S, data, key_words(key),
                         jnp.float32(learning_rate), kind=kind, steps=steps,
                         batch_size=batch_size)
    control = jax.tree.map(np.asarray, control)
    return Curve(kind, params_a, drop_seed_axis(control, had), params_b,
                 drop_seed_axis(np.asarray(hist), had))


def _pair(problem: Problem, params_a: PyTree, params_b: PyTree):
    a_S, had = with_seed_axis(problem, params_a, "params_a")
    b_S, had_b = with_seed_axis(problem, params_b, "params_b")
    if had != had_b or num_seeds(a_S) != num_seeds(b_S):
        raise InputError("params_a and params_b must both have the same leading seed axis S "
                         "or both have none")
    return a_S, b_S, had


@functools.partial(jax.jit, static_argnames=("loss", "kind", "steps", "batch_size"))
def _fit(loss: LossFn, a_S: PyTree, b_S: PyTree, init_S: PyTree, data: Any, words: jax.Array,
         learning_rate: jax.Array, kind: str, steps: int,
         batch_size: int | None) -> tuple[PyTree, jax.Array]:
    """Kernel of `fit_curve`: trained control points (S, ...) and (S, steps) losses."""
    _, unravel = ravel_pytree(jax.tree.map(lambda x: x[0], a_S))
    a_SP, b_SP = _flat(a_S), _flat(b_S)
    theta_SP = 0.5 * (a_SP + b_SP) if init_S is None else jnp.broadcast_to(
        _flat(init_S), a_SP.shape)
    opt = optax.adam(learning_rate)
    n = None if data is None else jax.tree.leaves(data)[0].shape[0]

    def fit(a, b, theta, i):
        def step(carry, j):
            theta, state = carry
            t = hash_uniform(words, (i, j, 0), 1, a.dtype)[0]
            batch = data if batch_size is None else gather(  # uniform with replacement
                data, (hash_bits(words, (i, j, 1), batch_size) % np.uint32(n)).astype(jnp.int32))
            c = coefficients(kind, t)
            value, g = jax.value_and_grad(
                lambda th: loss(unravel(a + c[0] * (th - a) + c[1] * (b - a)), batch))(theta)
            updates, state = opt.update(g, state, theta)
            return (optax.apply_updates(theta, updates), state), value
        (theta, _), hist = jax.lax.scan(step, (theta, opt.init(theta)), jnp.arange(steps))
        return theta, hist
    theta_SP, hist = jax.vmap(fit)(a_SP, b_SP, theta_SP, jnp.arange(a_SP.shape[0]))
    return jax.vmap(unravel)(theta_SP), hist


def _flat(params_S: PyTree) -> jax.Array:
    return jax.vmap(lambda p: ravel_pytree(p)[0])(params_S)


@jax.jit
def _curve_directions(a_S: PyTree, control_S: PyTree, b_S: PyTree) -> jax.Array:
    """(S, 2, P) flat (theta - a, b - a)."""
    a = _flat(a_S)
    return jnp.stack([_flat(control_S) - a, _flat(b_S) - a], axis=1)


def curve_losses(problem: Problem, curve: Curve, num: int = 25, data: Any = None,
                 chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The loss along a curve at `num` evenly spaced t in [0, 1].

    Returns:
      `(ts (num,), losses (num,))`, losses (S, num) with a seed axis.

    Example:
      >>> ts, losses = curve_losses(p, curve, num=41)
    """
    num = check_int("num", num, 2)
    a_S, had = with_seed_axis(problem, curve.start, "curve.start")
    dirs = _curve_directions(a_S, with_seed_axis(problem, curve.control, "curve.control")[0],
                             with_seed_axis(problem, curve.end, "curve.end")[0])
    ts = np.linspace(0.0, 1.0, num, dtype=np.float32)
    coords = np.asarray(coefficients(curve.kind, ts))
    losses = grid_losses(problem, a_S, dirs, coords, data, chunk)
    return ts, drop_seed_axis(np.asarray(losses), had)


def align_pair(problem: Problem, params_a: PyTree, params_b: PyTree) -> PyTree:
    """`params_b` moved onto `params_a`'s labelling by `gdlab.symmetry.align` (weight
    matching; seed axes pair up)."""
    _pair(problem, params_a, params_b)
    return symmetry.align(problem, params_a, params_b)


def compare_curve(problem: Problem, params_a: PyTree, params_b: PyTree,
                  key: int | jax.Array, *, align: bool = False, num: int = 25,
                  data: Any = None, **fit_kwargs) -> CurveComparison:
    """Train a curve between two minima and compare its losses with the straight path's.

    Args:
      problem: its loss is evaluated.
      params_a, params_b: the two minima (a leading seed axis S on both: S pairs).
      key: int or JAX key of the fit.
      align: first move `params_b` onto `params_a`'s labelling with
        `gdlab.symmetry.align` (weight matching).
      num: points along each path.
      data: the data the losses are evaluated on (default: the problem's).
      **fit_kwargs: `fit_curve` options (kind, steps, learning_rate, batch_size).

    Returns:
      A `CurveComparison`.

    Example:
      >>> c = compare_curve(p, a, b, key=0, steps=500); c.line_barrier, c.curve_barrier
    """
    note = "naive (no alignment asked)"
    aligned = bool(align)
    if aligned:
        params_b = align_pair(problem, params_a, params_b)
        note = "params_b aligned onto params_a by gdlab.symmetry.align (weight matching)"
    curve = fit_curve(problem, params_a, params_b, key, data=data, **fit_kwargs)
    ts, curve_loss = curve_losses(problem, curve, num, data)
    _, line_loss = interpolate(problem, params_a, params_b, num=num, data=data)
    return CurveComparison(ts, line_loss, curve_loss, line_loss.max(-1), curve_loss.max(-1),
                           _barrier(line_loss), _barrier(curve_loss), curve, aligned, note)


def _barrier(losses_T: np.ndarray) -> np.ndarray:
    """Largest loss on the path minus the mean of its two end losses."""
    return losses_T.max(-1) - 0.5 * (losses_T[..., 0] + losses_T[..., -1])
