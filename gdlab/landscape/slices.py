"""Loss slices: along a straight line between two points, and on random 1-D and 2-D
slices around a point (Li et al. 2018, "Visualizing the loss landscape of neural nets"),
or on the plane through three points (Garipov et al. 2018).

Random directions are Gaussian, then normalised per leaf of the params: per filter
("filter": each output unit's incoming weights, the last axis of a flax Dense kernel
`(in, out)` or Conv kernel `(h, w, in, out)`, is rescaled to the norm of the same filter
of the params), per layer ("layer": the whole leaf) or not at all ("none"). With
`ignore="biasbn"` (the default, as in the loss-landscape repository) 1-D and 0-d leaves
(biases, norm scales) get a zero direction.

Compile discipline: two module-level kernels, `_normalize_flat` (directions normalised
to the params; the Gaussian draws themselves are made on the host by NumPy from the key)
and `_grid_losses` (the loss at `origin + coords @ directions` for every grid point, one
vmapped call chunked by `lax.map(batch_size=chunk)`); their static arguments
are the problem's loss (by identity) and small settings, so a repeated slice of the same
shapes compiles nothing, also at a new point, with new keys, spans or data.

Params may carry a leading seed axis S (detected against `problem.params_shape()`); the
results then carry it too, each seed with its own directions (seed i, direction k: a
NumPy generator seeded by (key data, i, k); params without a seed axis are seed 0).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gdlab._checks import InputError, check_choice, check_int, check_real
from gdlab._tree import flatten_one
from gdlab.core.sampling import _mix as mix32
from gdlab.core.seeds import as_key
from gdlab.problem import Problem

PyTree = Any
LossFn = Callable[[Any, Any], jax.Array]
NORMALIZE = ("filter", "layer", "none")
IGNORE = ("biasbn", None)
_EPS = 1e-10  # as the loss-landscape repository: a zero filter stays zero


@dataclasses.dataclass(frozen=True)
class Slice:
    """Losses on a 1-D or 2-D slice of the loss landscape.

    Attributes:
      alphas: (A,) coordinates along the first direction.
      betas: (B,) coordinates along the second direction; None for a 1-D slice.
      loss: (A, B) losses, `loss[i, j]` at `origin + alphas[i] d1 + betas[j] d2`
        ((A,) for 1-D); a leading seed axis S when the params had one.
      directions: the directions as params pytrees (each with the seed axis if any).
      origin: the params at coordinates (0, 0).
      points: optional (Q, 2) (or (S, Q, 2)) coordinates of marked points (the three
        points of a plane, a projected trajectory).
      normalize: how the directions were normalised ("filter", "layer", "none").
    """

    alphas: np.ndarray
    betas: np.ndarray | None
    loss: np.ndarray
    directions: tuple[PyTree, ...] = ()
    origin: PyTree = None
    points: np.ndarray | None = None
    normalize: str = "none"

    @property
    def ndim(self) -> int:
        """1 or 2: the slice's dimension."""
        return 1 if self.betas is None else 2


# --- params with or without a seed axis ------------------------------------------------


def seed_axis(problem: Problem, params: PyTree, name: str = "params") -> bool:
    """True when every leaf of `params` has one leading axis more than the problem's."""
    ref = problem.params_shape()
    ref_leaves, ref_tree = jax.tree.flatten(ref)
    leaves, tree = jax.tree.flatten(params)
    if tree != ref_tree:
        raise InputError(f"{name} does not have the structure of problem "
                         f"{problem.name!r}'s params: {tree} vs {ref_tree}")
    pairs = [(tuple(r.shape), tuple(np.shape(x))) for r, x in zip(ref_leaves, leaves,
                                                                  strict=True)]
    if all(r == x for r, x in pairs):
        return False
    lead = {x[0] for r, x in pairs if len(x) == len(r) + 1 and x[1:] == r}
    if len(lead) == 1 and all(len(x) == len(r) + 1 and x[1:] == r for r, x in pairs):
        return True
    raise InputError(f"{name} leaves have shapes {[x for _, x in pairs]}; expected the "
                     f"problem's {[r for r, _ in pairs]}, or those with one leading seed "
                     "axis S shared by every leaf")


def with_seed_axis(problem: Problem, params: PyTree, name: str = "params") -> tuple[PyTree, bool]:
    """`(params_S, had_axis)`: params with a leading seed axis (added when missing)."""
    had = seed_axis(problem, params, name)
    return (params if had else _add_axis(params)), had


@jax.jit
def _add_axis(tree: PyTree) -> PyTree:
    """Every leaf with a new leading axis of 1 (one program for the whole tree)."""
    return jax.tree.map(lambda x: jnp.asarray(x)[None], tree)


def num_seeds(params_S: PyTree) -> int:
    """S of params with a leading seed axis."""
    return int(np.shape(jax.tree.leaves(params_S)[0])[0])


def drop_seed_axis(x: Any, had_axis: bool) -> Any:
    """`x` (a pytree with a leading seed axis) without it when the input had none; NumPy
    leaves are indexed on the host, JAX leaves in one program."""
    if had_axis:
        return x
    if all(isinstance(a, np.ndarray) for a in jax.tree.leaves(x)):
        return jax.tree.map(lambda a: a[0], x)
    return _first(x)


@jax.jit
def _first(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda a: a[0], tree)


def data_or_default(problem: Problem, data: Any) -> Any:
    """`data`, or the problem's training data when None."""
    return problem.data if data is None else data


def _span(span: float | Sequence[float], name: str = "span") -> tuple[float, float]:
    """(lo, hi) from a half-width `r` (-> (-r, r)) or a pair."""
    if isinstance(span, Sequence) and not isinstance(span, str):
        if len(span) != 2:
            raise InputError(f"{name} must be a number r (for [-r, r]) or a pair (lo, hi), "
                             f"got {span!r}")
        lo, hi = (check_real(f"{name}[{i}]", v) for i, v in enumerate(span))
    else:
        hi = check_real(name, span, low=0.0, open_low=True)
        lo = -hi
    if not hi > lo:
        raise InputError(f"{name} must have lo < hi, got {span!r}")
    return lo, hi


def default_chunk(num_params: int, num_points: int) -> int:
    """Grid points per vectorised chunk: at most 256, and about 16 MB of params copies."""
    return int(max(1, min(256, num_points, (4 << 20) // max(num_params, 1))))


# --- keyed counter-based random numbers (cheap to compile) -----------------------------


def key_words(key: int | jax.Array) -> np.ndarray:
    """(2,) uint32 words from an int or JAX key (via NumPy's SeedSequence of its data)."""
    data = np.asarray(jax.random.key_data(as_key(key))).ravel()
    return np.random.SeedSequence([int(v) for v in data]).generate_state(2).astype(np.uint32)


def hash_bits(words: jax.Array, counters: tuple, size: int) -> jax.Array:
    """(size,) uint32 hashes of (words, counters..., position): independent-looking bits for
    every counter tuple (Wellons' lowbias32 mixer, as gdlab's mini-batch sampler). Inside
    kernels this replaces a random-bits program, which compiles several times slower."""
    word = words[1]
    for c in counters:
        word = mix32(jnp.asarray(c).astype(jnp.uint32) ^ word)
    return mix32(mix32(jnp.arange(size, dtype=jnp.uint32) ^ words[0]) ^ word)


def hash_rademacher(words: jax.Array, counters: tuple, size: int, dtype) -> jax.Array:
    """(size,) entries +-1 with probability 1/2 each (see `hash_bits`)."""
    return jnp.where((hash_bits(words, counters, size) >> 31) == 1, 1.0, -1.0).astype(dtype)


def hash_uniform(words: jax.Array, counters: tuple, size: int, dtype) -> jax.Array:
    """(size,) uniform draws in [0, 1) with 24 random bits each (see `hash_bits`)."""
    return ((hash_bits(words, counters, size) >> 8).astype(jnp.float32)
            * np.float32(2.0**-24)).astype(dtype)


# --- directions ------------------------------------------------------------------------


def normalize_direction(direction: PyTree, params: PyTree, normalize: str = "filter",
                        ignore: str | None = "biasbn") -> PyTree:
    """`direction` rescaled leaf by leaf to the scale of `params` (no seed axis; jittable).

    Args:
      direction: a pytree like `params`.
      params: the point the direction starts from.
      normalize: "filter" (each filter, the last axis of a >= 2-D leaf, gets the norm of
        the same filter of the params), "layer" (each leaf gets the leaf's norm) or
        "none".
      ignore: "biasbn" gives 1-D and 0-d leaves a zero direction; None normalises them
        too (as one filter each).

    Returns:
      The normalised direction.

    Example:
      >>> d = normalize_direction(jax.tree.map(jnp.ones_like, w), w, "filter")
    """
    check_choice("normalize", normalize, NORMALIZE)
    if ignore not in IGNORE:
        raise InputError(f"unknown ignore {ignore!r}; valid: 'biasbn' or None")
    return jax.tree.map(lambda d, w: _normalize_leaf(d, w, normalize, ignore), direction, params)


def _normalize_leaf(d: jax.Array, w: jax.Array, normalize: str, ignore: str | None) -> jax.Array:
    if d.ndim <= 1 and ignore == "biasbn":
        return jnp.zeros_like(d)
    if normalize == "none":
        return d
    axes = tuple(range(d.ndim - 1)) if normalize == "filter" and d.ndim >= 2 else None
    norm = lambda x: jnp.sqrt(jnp.sum(x * x, axis=axes, keepdims=axes is not None))
    return d * (norm(w) / (norm(d) + _EPS))


def random_direction(problem: Problem, params: PyTree, key: int | jax.Array,
                     normalize: str = "filter", ignore: str | None = "biasbn") -> PyTree:
    """A Gaussian direction normalised to `params` (`normalize_direction`).

    Args:
      problem: gives the params' structure.
      params: the point (a leading seed axis S gives one direction per seed).
      key: int or JAX key (seed i, direction 0: see the module docstring).
      normalize, ignore: as `normalize_direction`.

    Returns:
      A pytree like `params`.

    Example:
      >>> d = random_direction(p, params, key=0)
    """
    params_S, had = with_seed_axis(problem, params)
    _check_direction_settings(normalize, ignore)
    dirs_SKP, _ = _directions(params_S, as_key(key), num_dirs=1, normalize=normalize,
                              ignore=ignore)
    return drop_seed_axis(_unravel_dirs(params_S, dirs_SKP)[0], had)


def _check_direction_settings(normalize: str, ignore: str | None) -> None:
    check_choice("normalize", normalize, NORMALIZE)
    if ignore not in IGNORE:
        raise InputError(f"unknown ignore {ignore!r}; valid: 'biasbn' or None")


def _directions(params_S: PyTree, key: jax.Array, num_dirs: int, normalize: str,
                ignore: str | None) -> tuple[jax.Array, jax.Array]:
    """(S, K, P) normalised Gaussian directions and whether any is non-zero.

    The Gaussian draws are made on the host by NumPy (PCG64 seeded by the key's data, the
    seed i and the direction k: a random-bits program took longer to compile than the
    whole slice of a small model to run); only the normalisation is compiled.
    """
    leaves = jax.tree.leaves(params_S)
    size = sum(int(np.prod(np.shape(x)[1:])) for x in leaves)
    dtype = np.dtype(jnp.result_type(*leaves))
    entropy = [int(v) for v in np.asarray(jax.random.key_data(key)).ravel()]
    raw = np.stack([np.stack([np.random.default_rng([*entropy, i, k]).standard_normal(size)
                              for k in range(num_dirs)]) for i in range(num_seeds(params_S))])
    return _normalize_flat(raw.astype(dtype), params_S, normalize=normalize, ignore=ignore)


@functools.partial(jax.jit, static_argnames=("normalize", "ignore"))
def _normalize_flat(raw_SKP: jax.Array, params_S: PyTree, normalize: str,
                    ignore: str | None) -> tuple[jax.Array, jax.Array]:
    """(S, K, P) flat directions normalised to each seed's params, and any non-zero."""
    _, unravel = ravel_pytree(jax.tree.map(lambda x: x[0], params_S))

    def per_seed(raw_KP, params):
        norm = lambda d: ravel_pytree(_normalize_tree(unravel(d), params, normalize, ignore))[0]
        return jax.vmap(norm)(raw_KP)
    dirs = jax.vmap(per_seed)(raw_SKP, params_S)
    return dirs, jnp.any(dirs != 0)


def _normalize_tree(d: PyTree, w: PyTree, normalize: str, ignore: str | None) -> PyTree:
    return jax.tree.map(lambda a, b: _normalize_leaf(a, b, normalize, ignore), d, w)


def _unravel_dirs(params_S: PyTree, dirs_SKP: jax.Array) -> tuple[PyTree, ...]:
    """K pytrees of NumPy arrays (leading axis S) from (S, K, P) flat directions."""
    return jax.tree.map(np.asarray, _unravel_dirs_kernel(params_S, dirs_SKP))


@jax.jit
def _unravel_dirs_kernel(params_S: PyTree, dirs_SKP: jax.Array) -> tuple[PyTree, ...]:
    _, unravel = ravel_pytree(jax.tree.map(lambda x: x[0], params_S))
    return tuple(jax.vmap(unravel)(dirs_SKP[:, k]) for k in range(dirs_SKP.shape[1]))


def flat_params(params_S: PyTree) -> jax.Array:
    """(S, P) raveled params (`ravel_pytree` order)."""
    return _flat(params_S)


@jax.jit
def _flat(params_S: PyTree) -> jax.Array:
    return jax.vmap(lambda p: ravel_pytree(p)[0])(params_S)


# --- the grid kernel -------------------------------------------------------------------


def grid_losses(problem: Problem, params_S: PyTree, dirs_SKP: jax.Array,
                coords_SGK: jax.Array, data: Any = None, chunk: int | None = None) -> jax.Array:
    """(S, G) loss at `params_s + coords_sg @ dirs_s` for every seed s and grid point g.

    Args:
      problem: its loss is evaluated.
      params_S: origins, with a leading seed axis S.
      dirs_SKP: (S, K, P) flat directions (`ravel_pytree` order).
      coords_SGK: (S, G, K) coordinates of every grid point (or (G, K), shared).
      data: the batch the loss is evaluated on (default: the problem's data).
      chunk: grid points per vectorised chunk (default: `default_chunk`).

    Returns:
      (S, G) losses.

    Example:
      >>> grid_losses(p, params_S, dirs_SKP, coords_GK)
    """
    s, _, p = np.shape(dirs_SKP)
    coords_SGK = np.asarray(coords_SGK, np.float32)
    if coords_SGK.ndim == 2:  # shared by every seed: broadcast inside the kernel
        coords_SGK = coords_SGK[None]
    if coords_SGK.shape[0] not in (1, s):
        raise InputError(f"coords have {coords_SGK.shape[0]} seeds, directions {s}")
    g = coords_SGK.shape[1]
    chunk = default_chunk(p, g) if chunk is None else check_int("chunk", chunk, 1)
    # Equal chunks (the grid padded by fewer points than there are chunks): lax.map then
    # compiles one body, not a second one for a remainder.
    chunks = -(-g // chunk)
    chunk = -(-g // chunks)
    pad = chunks * chunk - g
    if pad:
        coords_SGK = np.concatenate([coords_SGK, np.zeros((coords_SGK.shape[0], pad,
                                                           coords_SGK.shape[2]), np.float32)], 1)
    data = data_or_default(problem, data)
    return _grid_losses(problem.loss, params_S, dirs_SKP, coords_SGK, data, chunk=chunk,
                        num_points=g)


@functools.partial(jax.jit, static_argnames=("loss", "chunk", "num_points"))
def _grid_losses(loss: LossFn, params_S: PyTree, dirs_SKP: jax.Array, coords_SGK: jax.Array,
                 data: Any, chunk: int, num_points: int) -> jax.Array:
    """Kernel of every slice: one compile per (loss, shapes, chunk); the first
    `num_points` of the (padded) grid are returned."""
    _, unravel = ravel_pytree(jax.tree.map(lambda x: x[0], params_S))
    origin_SP = jax.vmap(lambda p: ravel_pytree(p)[0])(params_S)
    coords_SGK = jnp.broadcast_to(coords_SGK, (dirs_SKP.shape[0], *coords_SGK.shape[1:]))
    coords_SGK = coords_SGK.astype(dirs_SKP.dtype)

    def per_seed(args):
        origin, dirs, coords = args
        at = lambda c: loss(unravel(origin + c @ dirs), data)
        return jax.lax.map(at, coords, batch_size=chunk)
    return jax.lax.map(per_seed, (origin_SP, dirs_SKP, coords_SGK))[:, :num_points]


def point_losses(problem: Problem, params_S: PyTree, data: Any = None,
                 chunk: int | None = None) -> jax.Array:
    """(S,) loss at each of S params (a leading axis on every leaf), chunked.

    Example:
      >>> point_losses(p, runs.params)
    """
    size = sum(int(np.prod(np.shape(x)[1:])) for x in jax.tree.leaves(params_S))
    chunk = default_chunk(size, num_seeds(params_S)) if chunk is None else check_int(
        "chunk", chunk, 1)
    return _point_losses(problem.loss, params_S, data_or_default(problem, data), chunk=chunk)


@functools.partial(jax.jit, static_argnames=("loss", "chunk"))
def _point_losses(loss: LossFn, params_S: PyTree, data: Any, chunk: int) -> jax.Array:
    return jax.lax.map(lambda p: loss(p, data), params_S, batch_size=chunk)


# --- public slices ---------------------------------------------------------------------


def interpolate(problem: Problem, params_a: PyTree, params_b: PyTree, num: int = 25,
                span: tuple[float, float] = (0.0, 1.0), data: Any = None,
                chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Loss on the straight line `(1 - alpha) a + alpha b`, also beyond the two points.

    Args:
      problem: its loss is evaluated.
      params_a, params_b: the two points (a leading seed axis S on both: S lines).
      num: points on the line, ends included (>= 2).
      span: (lo, hi) range of alpha; (0, 1) runs from a to b, (-0.5, 1.5) overshoots.
      data: the batch the loss is evaluated on (default: the problem's data).
      chunk: points per vectorised chunk.

    Returns:
      `(alphas (num,), losses (num,))`, losses (S, num) with a seed axis.

    Example:
      >>> alphas, losses = interpolate(p, a, b, num=41, span=(-0.5, 1.5))
    """
    num = check_int("num", num, 2)
    lo, hi = _span(span)
    a_S, had = with_seed_axis(problem, params_a, "params_a")
    b_S, had_b = with_seed_axis(problem, params_b, "params_b")
    if had != had_b or num_seeds(a_S) != num_seeds(b_S):
        raise InputError("params_a and params_b must both have the same leading seed axis S "
                         "or both have none")
    alphas = np.linspace(lo, hi, num, dtype=np.float32)
    losses = grid_losses(problem, a_S, _line_direction(a_S, b_S), alphas[:, None], data, chunk)
    return alphas, drop_seed_axis(np.asarray(losses), had)


@jax.jit
def _line_direction(a_S: PyTree, b_S: PyTree) -> jax.Array:
    """(S, 1, P) flat b - a."""
    return (_flat(b_S) - _flat(a_S))[:, None]


def slice_1d(problem: Problem, params: PyTree, key: int | jax.Array,
             normalize: str = "filter", span: float | tuple[float, float] = 1.0,
             num: int = 51, *, ignore: str | None = "biasbn", direction: PyTree = None,
             data: Any = None, chunk: int | None = None) -> Slice:
    """Loss along one random (normalised) direction through `params`.

    Args:
      problem: its loss is evaluated.
      params: the centre (a leading seed axis S: one slice per seed, own directions).
      key: int or JAX key of the random direction (each seed its own).
      normalize: "filter" (Li et al. 2018), "layer" or "none".
      span: half-width r (alphas in [-r, r]) or a pair (lo, hi).
      num: points, ends included (>= 2).
      ignore: "biasbn" (zero direction on 1-D leaves) or None.
      direction: a direction of your own (pytree like params); `normalize` still applies
        (pass "none" to keep it as given) and `key` is unused.
      data: the batch the loss is evaluated on (default: the problem's data).
      chunk: grid points per vectorised chunk.

    Returns:
      `Slice(alphas (num,), None, loss (num,) or (S, num), directions=(d,), ...)`.

    Example:
      >>> s = slice_1d(p, params, key=0, span=1.0, num=51)
    """
    return _random_slice(problem, params, key, normalize, (span,), num, ignore,
                         None if direction is None else (direction,), data, chunk)


def slice_2d(problem: Problem, params: PyTree, key: int | jax.Array,
             normalize: str = "filter", span: float | tuple[float, float] = 1.0,
             num: int = 51, *, ignore: str | None = "biasbn",
             directions: tuple[PyTree, PyTree] | None = None, data: Any = None,
             chunk: int | None = None) -> Slice:
    """Loss on the plane through `params` spanned by two random (normalised) directions.

    The whole num x num grid is one compiled, vmapped call (chunked by `chunk` points to
    bound memory); a repeated slice of the same shapes compiles nothing.

    Args:
      problem: its loss is evaluated.
      params: the centre (a leading seed axis S: one slice per seed, own directions).
      key: int or JAX key (each seed its own directions; the first is `slice_1d`'s).
      normalize: "filter" (Li et al. 2018), "layer" or "none".
      span: half-width r (both coordinates in [-r, r]) or a pair (lo, hi).
      num: points per axis (>= 2).
      ignore: "biasbn" (zero direction on 1-D leaves) or None.
      directions: two directions of your own (pytrees like params); `normalize` still
        applies (pass "none" to keep them as given) and `key` is unused.
      data: the batch the loss is evaluated on (default: the problem's data).
      chunk: grid points per vectorised chunk.

    Returns:
      `Slice(alphas (num,), betas (num,), loss (num, num) or (S, num, num), ...)` with
      `loss[i, j]` at `params + alphas[i] d1 + betas[j] d2`.

    Example:
      >>> s = slice_2d(p, runs.params, key=0, num=51)   # (S, 51, 51)
    """
    return _random_slice(problem, params, key, normalize, (span, span), num, ignore,
                         directions, data, chunk)


def _random_slice(problem: Problem, params: PyTree, key, normalize: str, spans: tuple,
                  num: int, ignore, given, data, chunk) -> Slice:
    """The body of `slice_1d` and `slice_2d`: K = len(spans) directions."""
    num = check_int("num", num, 2)
    _check_direction_settings(normalize, ignore)
    axes = [np.linspace(*_span(s), num, dtype=np.float32) for s in spans]
    params_S, had = with_seed_axis(problem, params)
    if given is None:
        dirs_SKP, nonzero = _directions(params_S, as_key(key), num_dirs=len(spans),
                                        normalize=normalize, ignore=ignore)
    else:
        dirs_SKP, nonzero = _given_directions(problem, params_S, had, given, normalize, ignore)
    _check_nonzero(nonzero, ignore)
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(spans))
    losses = grid_losses(problem, params_S, dirs_SKP, grid, data, chunk)
    losses = np.asarray(losses).reshape(-1, *([num] * len(spans)))
    dirs = drop_seed_axis(_unravel_dirs(params_S, dirs_SKP), had)
    return Slice(axes[0], axes[1] if len(spans) == 2 else None, drop_seed_axis(losses, had),
                 dirs, params, normalize=normalize)


def _given_directions(problem: Problem, params_S: PyTree, had: bool, given: Sequence[PyTree],
                      normalize: str, ignore) -> tuple[jax.Array, jax.Array]:
    """(S, K, P) flat directions from the caller's pytrees, normalised as asked."""
    given_S = []
    for k, d in enumerate(given):
        d_S, d_had = with_seed_axis(problem, d, f"directions[{k}]")
        if d_had and not had:
            raise InputError(f"directions[{k}] has a seed axis but params have none")
        given_S.append(d_S)
    return _normalized_flat(tuple(given_S), params_S, normalize=normalize, ignore=ignore)


@functools.partial(jax.jit, static_argnames=("normalize", "ignore"))
def _normalized_flat(given_S: tuple[PyTree, ...], params_S: PyTree, normalize: str,
                     ignore) -> tuple[jax.Array, jax.Array]:
    def one(d_S):
        d_S = jax.tree.map(lambda x, p: jnp.broadcast_to(x, p.shape).astype(p.dtype), d_S,
                           params_S)
        return jax.vmap(lambda d, w: ravel_pytree(_normalize_tree(d, w, normalize, ignore))[0])(
            d_S, params_S)
    dirs = jnp.stack([one(d) for d in given_S], axis=1)
    return dirs, jnp.any(dirs != 0)


def _check_nonzero(nonzero: jax.Array, ignore) -> None:
    if not bool(nonzero):
        hint = (" (ignore='biasbn' zeroes 1-D leaves, and every leaf here is 1-D: pass "
                "ignore=None)") if ignore == "biasbn" else ""
        raise InputError(f"every slice direction is zero{hint}")


def slice_plane(problem: Problem, params_a: PyTree, params_b: PyTree, params_c: PyTree,
                num: int = 51, margin: float = 0.25, data: Any = None,
                chunk: int | None = None) -> Slice:
    """Loss on the plane through three points (e.g. two minima and a curve's bend).

    Coordinates are Euclidean in parameter space: `a` at (0, 0), `b` at (|b - a|, 0),
    `c` above the first axis; the grid covers the three points plus `margin` of their
    extent on every side.

    Args:
      problem: its loss is evaluated.
      params_a, params_b, params_c: the three points (no seed axis).
      num: points per axis (>= 2).
      margin: fraction of the points' extent added on every side (>= 0).
      data: the batch the loss is evaluated on (default: the problem's data).
      chunk: grid points per vectorised chunk.

    Returns:
      `Slice` with `points` (3, 2), the coordinates of a, b and c.

    Example:
      >>> s = slice_plane(p, a, b, curve.control, num=41)
    """
    num = check_int("num", num, 2)
    margin = check_real("margin", margin, low=0.0)
    for name, x in (("params_a", params_a), ("params_b", params_b), ("params_c", params_c)):
        if seed_axis(problem, x, name):
            raise InputError(f"{name} must be one point (no seed axis) for slice_plane")
    flat = np.stack([flatten_one(x) for x in (params_a, params_b, params_c)]).astype(np.float64)
    u, v = flat[1] - flat[0], flat[2] - flat[0]
    e1 = u / max(np.linalg.norm(u), 1e-30)
    v = v - (v @ e1) * e1
    if np.linalg.norm(v) < 1e-12 * max(np.linalg.norm(u), 1e-30):
        raise InputError("the three points lie on one line: they span no plane")
    e2 = v / np.linalg.norm(v)
    points = np.stack([np.zeros(2), [u @ e1, 0.0], [(flat[2] - flat[0]) @ e1,
                                                    (flat[2] - flat[0]) @ e2]])
    lo, hi = points.min(0), points.max(0)
    pad = margin * (hi - lo).max()
    axes = [np.linspace(lo[i] - pad, hi[i] + pad, num, dtype=np.float32) for i in (0, 1)]
    a_S, _ = with_seed_axis(problem, params_a, "params_a")
    dtype = jnp.result_type(*jax.tree.leaves(problem.params_shape()))
    dirs = jnp.asarray(np.stack([e1, e2])[None], dtype)
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    losses = np.asarray(grid_losses(problem, a_S, dirs, grid, data, chunk))[0]
    return Slice(axes[0], axes[1], losses.reshape(num, num),
                 drop_seed_axis(_unravel_dirs(a_S, dirs), False), params_a, points, "none")
