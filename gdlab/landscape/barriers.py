"""Barriers on straight paths between networks, naive or after weight matching.

The barrier between a and b is Git Re-Basin's (Ainsworth et al., 2023, eq. 1): the
highest value of a metric on the straight path (1 - t) a + t b, t in [0, 1], minus the
mean of its values at the two ends. With `metric="loss"` it is the loss barrier; with
`metric="error"` (the problem's "error" metric, the classifiers' misclassified
fraction) it is the error barrier of Frankle et al. (2020), who call two networks
linearly mode connected when it is about 0 (they use < 2%). `align=True` first moves b
onto a's labelling of its hidden units (`gdlab.symmetry.align`), the barrier "modulo
permutations" of Entezari et al. (2022).

Params may carry a leading seed axis S on either side (pairs a_s, b_s; a single network
pairs with every seed of the other): results are then (S,). One module-level jitted
kernel evaluates every path (static: the metric function and the number of points; the
endpoints and the data are traced); the number of pairs is padded to one of 8 buckets
per power of two (`padded_count`), so repeated calls compile a few programs at most.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from gdlab import symmetry
from gdlab._checks import InputError, check_int, check_type
from gdlab._tree import flatten_one, flatten_seeds
from gdlab.landscape import paths
from gdlab.problem import Problem

PyTree = Any
Align = bool | Callable[[PyTree, PyTree], PyTree]


def metric_fn(problem: Problem, metric: str) -> Callable[[PyTree, PyTree], jax.Array]:
    """The problem's loss ("loss") or one of its `metrics` by name, or an InputError."""
    check_type("metric", metric, str, "a metric name such as 'loss' or 'error'")
    if metric == "loss":
        return problem.loss
    if metric not in problem.metrics:
        raise InputError(f"problem {problem.name!r} has no metric {metric!r}; it has: "
                         f"{', '.join(['loss', *problem.metrics])} (metric='error' needs a "
                         "classifier's metrics, e.g. problems.CLASSIFICATION_METRICS)")
    return problem.metrics[metric]


def path_values(problem: Problem, params_a: PyTree, params_b: PyTree, *, data: Any = None,
                metric: str = "loss", align: Align = False,
                num: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """The metric along the straight path from a to b, at `num` evenly spaced points.

    Args:
      problem: the problem whose loss or metric is evaluated.
      params_a, params_b: the ends; either may carry a leading seed axis S.
      data: the batch evaluated on (default: the problem's training data).
      metric: "loss" or the name of one of the problem's metrics (e.g. "error").
      align: True moves b onto a's labelling first (`gdlab.symmetry.align`); or an
        `align(a, b) -> b` function of one pair.
      num: points per path, ends included (>= 2).

    Returns:
      (alphas (num,), values (num,) or (S, num)); values[..., 0] at a, [..., -1] at b.

    Example:
      >>> alphas, naive = path_values(p, a, b)
      >>> _, aligned = path_values(p, a, b, align=True)
    """
    num = check_int("num", num, 2)
    fn = metric_fn(problem, metric)
    a_SP, b_SP, batched = _pairs(problem, params_a, params_b, align)
    values = _evaluate(fn, a_SP, b_SP, _like(problem), _data(problem, data), num)
    return np.linspace(0.0, 1.0, num), values if batched else values[0]


def barrier(problem: Problem, params_a: PyTree, params_b: PyTree, data: Any = None,
            metric: str = "loss", align: Align = False, num: int = 25) -> float | np.ndarray:
    """Barrier on the straight path from a to b: max minus the mean of the ends.

    Args:
      problem: the problem whose loss or metric is evaluated.
      params_a, params_b: the ends; either may carry a leading seed axis S (pairs).
      data: the batch evaluated on (default: the problem's training data).
      metric: "loss" (loss barrier) or a metric name ("error": Frankle et al.'s error
        barrier).
      align: True: weight-match b to a first (`gdlab.symmetry.align`); or a function.
      num: points per path, ends included (>= 2).

    Returns:
      A float, or (S,) barriers when either side has a seed axis.

    Example:
      >>> gdlab.landscape.barrier(p, a, b), gdlab.landscape.barrier(p, a, b, align=True)
    """
    _, values = path_values(problem, params_a, params_b, data=data, metric=metric,
                            align=align, num=num)
    out = path_barrier(values)
    return float(out) if np.ndim(out) == 0 else out


def path_barrier(values: np.ndarray) -> np.ndarray:
    """Max of the values on the path minus the mean of the two ends (last axis)."""
    values = np.asarray(values, np.float64)
    return values.max(axis=-1) - 0.5 * (values[..., 0] + values[..., -1])


def barrier_matrix(problem: Problem, params: PyTree | list, data: Any = None,
                   metric: str = "loss", align: Align = False, num: int = 25, *,
                   num_points: int | None = None) -> np.ndarray:
    """(S, S) barriers between every pair of networks (0 on the diagonal).

    The S (S - 1) / 2 paths are evaluated in one compiled call; with `align=True`,
    j is weight-matched to i for the pair (i, j), i < j, all pairs batched.

    Args:
      problem: the problem whose loss or metric is evaluated.
      params: params with a leading seed axis S, or a list of S params (no seed axis).
      data, metric, align, num: see `barrier` (`num_points` is an older name of `num`).

    Returns:
      (S, S) symmetric barriers.

    Example:
      >>> gdlab.landscape.barrier_matrix(p, runs.params, align=True)
    """
    num = check_int("num", num if num_points is None else num_points, 2)
    fn = metric_fn(problem, metric)
    stacked = _stacked(params)
    s = int(np.shape(jax.tree.leaves(stacked)[0])[0]) if jax.tree.leaves(stacked) else 0
    out = np.zeros((s, s))
    if s < 2:
        return out
    i, j = np.triu_indices(s, k=1)
    a = jax.tree.map(lambda x: np.asarray(x)[i], stacked)
    b = jax.tree.map(lambda x: np.asarray(x)[j], stacked)
    a_SP, b_SP, _ = _pairs(problem, a, b, align)
    values = _evaluate(fn, a_SP, b_SP, _like(problem), _data(problem, data), num)
    out[i, j] = out[j, i] = path_barrier(values)
    return out


# --- internals --------------------------------------------------------------------------


def _stacked(params: PyTree | list) -> PyTree:
    if isinstance(params, list | tuple) and params and not isinstance(params[0], np.ndarray
                                                                      | jax.Array | float):
        return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *params)
    if isinstance(params, list | tuple) and params:
        return np.stack([np.asarray(x) for x in params])
    return params


def _like(problem: Problem) -> PyTree:
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), problem.params_shape())


def _data(problem: Problem, data: Any) -> Any:
    return problem.data if data is None else data


def seed_axis(problem: Problem, params: PyTree, what: str) -> int | None:
    """S when every leaf has a leading seed axis, None when params are one network."""
    expected = [tuple(s.shape) for s in jax.tree.leaves(problem.params_shape())]
    leaves = jax.tree.leaves(params)
    got = [tuple(np.shape(x)) for x in leaves]
    if got == expected:
        return None
    if len(got) == len(expected) and got and all(g[1:] == e for g, e in zip(got, expected,
                                                                             strict=True)) \
            and len({g[0] for g in got}) == 1:
        return got[0][0]
    raise InputError(f"{what} have leaf shapes {got}; problem {problem.name!r} has {expected} "
                     "(optionally with one leading seed axis S)")


def _pairs(problem: Problem, params_a: PyTree, params_b: PyTree,
           align: Align) -> tuple[np.ndarray, np.ndarray, bool]:
    """(S, P) flat ends of every pair (b aligned if asked) and whether a seed axis was given."""
    sa, sb = seed_axis(problem, params_a, "params_a"), seed_axis(problem, params_b, "params_b")
    if sa is not None and sb is not None and sa != sb:
        raise InputError(f"params_a hold {sa} seeds and params_b {sb}: pairs need the same "
                         "seed count (or one network on one side)")
    if align is None:
        align = False
    if align is True:
        params_b = symmetry.align(problem, params_a, params_b)
    elif callable(align):
        params_b = _align_each(align, params_a, params_b, sa, sb)
    elif align is not False:
        raise InputError(f"align must be True, False or a function align(a, b) -> b, "
                         f"got {align!r}")
    s = sa or sb
    if align is not False:  # aligned b carries the pairs' seed axis whenever one side did
        sb = s
    return _flat(params_a, sa, s or 1), _flat(params_b, sb, s or 1), s is not None


def _flat(tree: PyTree, seeds: int | None, s: int) -> np.ndarray:
    x = flatten_seeds(tree) if seeds is not None else flatten_one(tree)[None]
    return np.ascontiguousarray(np.broadcast_to(x, (s, x.shape[1])), np.float32)


def _align_each(align, params_a, params_b, sa, sb) -> PyTree:
    """A one-pair `align(a, b)` applied to every pair."""
    s = sa or sb
    if s is None:
        return align(params_a, params_b)
    take = lambda tree, seeds, i: tree if seeds is None else jax.tree.map(
        lambda x: np.asarray(x)[i], tree)
    moved = [align(take(params_a, sa, i), take(params_b, sb, i)) for i in range(s)]
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *moved)


def _evaluate(fn, a_SP: np.ndarray, b_SP: np.ndarray, like: PyTree, data: Any,
              num: int) -> np.ndarray:
    """(S, num) values on every path; S padded (<= 12.5%) to a bucket for the kernel."""
    s = a_SP.shape[0]
    padded = padded_count(s)
    if padded != s:
        pad = lambda x: np.concatenate([x, np.repeat(x[:1], padded - s, axis=0)])
        a_SP, b_SP = pad(a_SP), pad(b_SP)
    out = paths.path_kernel(fn, a_SP, b_SP, like, data, num_points=num)
    return np.asarray(out, np.float64)[:s]


def padded_count(s: int) -> int:
    """s rounded up to a multiple of 2^(bits - 4): 8 buckets per power of two, so a few
    compiles cover every count and padding wastes at most 1/8."""
    step = 1 << max(0, s.bit_length() - 4)
    return -(-s // step) * step
