"""Weight matching: move one network onto another's labelling of its hidden units.

`align(problem, params_a, params_b)` is Git Re-Basin's weight matching (Ainsworth et
al., 2023, algorithm 1): per hidden layer, a linear assignment (scipy's
`linear_sum_assignment`) pairs the units of a and b by the inner product of their
weights (incoming, bias and outgoing, with the other layers' current matching applied),
coordinate ascent over the layers in a random order until no assignment changes. For
units that may be negated (tanh) the assignment uses |inner product| and its sign
flips the unit. For units that may be rescaled (relu) both networks are first brought
to unit incoming norm per unit, so the matching is scale-invariant; afterwards each of
b's units gets the scale that brings it closest to its partner in a (`closest_scales`:
permutations alone, as in Git Re-Basin, would leave b's own scales). The first sweep
goes forward on incoming weights only (each layer's inputs are then already matched, so
an exact copy is undone in that sweep); the later ones use all of a unit's weights.
With one hidden layer one sweep is exact.

Seeds are batched: a and b may each carry a leading seed axis S (pairs a_s, b_s); the
assignments run per pair on the host, everything else is vectorised NumPy.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from scipy.optimize import linear_sum_assignment

from gdlab._checks import InputError, check_int
from gdlab.symmetry.ops import check_leaves, features, move_group, normalise
from gdlab.symmetry.spec import Symmetry, for_model

PyTree = Any


def symmetry_of(problem_or_symmetry: Any) -> Symmetry:
    """The `Symmetry` of a problem (its `symmetry` field), or the argument itself.

    A problem whose symmetry is the older `tanh_mlp_canonical` gets the equivalent spec
    (a tanh MLP); a problem with no symmetry is an InputError.
    """
    from gdlab.symmetry.tanh import tanh_mlp_canonical

    if isinstance(problem_or_symmetry, Symmetry):
        return problem_or_symmetry
    sym = getattr(problem_or_symmetry, "symmetry", None)
    name = getattr(problem_or_symmetry, "name", type(problem_or_symmetry).__name__)
    if isinstance(sym, Symmetry):
        return sym
    if sym is tanh_mlp_canonical:
        return for_model(problem_or_symmetry.params_shape(), "tanh")
    if sym is None:
        raise InputError(f"problem {name!r} has no symmetry (problem.symmetry is None): set "
                         "one with gdlab.symmetry.for_model(params, activation=...) or "
                         "for_problem(problem)")
    raise InputError(f"problem {name!r} has a symmetry function {sym!r} that is not a "
                     "gdlab.symmetry.Symmetry: alignment needs the permutation spec "
                     "(gdlab.symmetry.for_model / for_problem)")


def align(problem: Any, params_a: PyTree, params_b: PyTree, *, max_sweeps: int = 30,
          seed: int = 0) -> PyTree:
    """params_b permuted (and rescaled or sign-flipped where that is a symmetry) to
    match params_a: weight matching.

    Args:
      problem: a Problem whose `symmetry` is a `gdlab.symmetry.Symmetry` (the built-ins
        and the adapters set it), or the Symmetry itself.
      params_a: the reference network, or a batch of them (leading seed axis S).
      params_b: the network(s) to move; with a seed axis on either, pairs are
        (a_s, b_s) (a single network is paired with every seed of the other).
      max_sweeps: at most this many sweeps over the layers (deep nets; one hidden
        layer needs one).
      seed: order of the layers in the sweeps after the first (forward order).

    Returns:
      params_b's structure (with a seed axis when either input had one): the same
      function as params_b, labelled like params_a. NumPy arrays.

    Example:
      >>> b_aligned = gdlab.symmetry.align(p, runs_a_params, runs_b_params)
      >>> gdlab.landscape.barrier(p, runs_a_params, b_aligned)   # == align=True
    """
    sym = symmetry_of(problem)
    max_sweeps = check_int("max_sweeps", max_sweeps, 1)
    la, _, a_seeds = _batch(sym, params_a, "params_a")
    lb, treedef, b_seeds = _batch(sym, params_b, "params_b")
    s = _pair_count(la, lb, a_seeds, b_seeds)
    dtype = lb[0].dtype
    la = [np.broadcast_to(x, (s, *x.shape[1:])).astype(np.float64) for x in la]
    lb = [np.broadcast_to(x, (s, *x.shape[1:])).astype(np.float64) for x in lb]
    out = match_leaves(sym, la, lb, max_sweeps, seed)
    out = [x.astype(dtype) for x in out]
    if a_seeds is None and b_seeds is None:
        out = [x[0] for x in out]
    return jax.tree.unflatten(treedef, out)


def match_leaves(sym: Symmetry, la: list, lb: list, max_sweeps: int, seed: int) -> list:
    """b's leaves (leading axis S) matched to a's; both float arrays shaped alike."""
    la_raw = la
    la, mult_a = normalise(la, sym.groups, 1, np)
    lb, _ = normalise(lb, sym.groups, 1, np)
    rng = np.random.default_rng(seed)
    order = list(range(len(sym.groups)))
    for sweep in range(max_sweeps):
        changed = False
        # Sweep 0 matches layer by layer on incoming weights only: each layer's inputs are
        # matched already, so an exact copy is undone here (outgoing weights would mix in
        # the next layer's unmatched labelling); later sweeps use all the weights.
        which = "in" if sweep == 0 and len(order) > 1 else "both"
        for gi in (order if sweep == 0 else rng.permutation(order)):
            g = sym.groups[gi]
            sim_SKK = np.einsum("ski,sli->skl", features(la, g, 1, np, which),
                                features(lb, g, 1, np, which))
            perm, mult, moved = _assign(sim_SKK, g.signs)
            if moved.any():
                lb = move_group(lb, g, perm, mult, 1, np)
                changed = True
        if (not changed and sweep > 0) or len(order) == 1:
            break
    for g, m in zip(sym.groups, mult_a, strict=True):  # back to a's scales and signs
        if m is not None:
            lb = move_group(lb, g, None, 1.0 / m, 1, np)
    return closest_scales(sym, la_raw, lb)


GRID = np.exp(np.linspace(-2.0, 2.0, 41))  # relative scales tried per unit


def closest_scales(sym: Symmetry, la: list, lb: list, sweeps: int = 3) -> list:
    """b's rescalable units rescaled (c > 0: incoming x c, outgoing / c) to bring b as
    close to a as its orbit allows with the matching fixed: per unit, the c minimising
    |c v_b - v_a|^2 + |w_b / c - w_a|^2 (v incoming, w outgoing weights), on a grid then
    polished by Newton steps, layer by layer (`sweeps` times: layers share weights)."""
    groups = [g for g in sym.groups if g.scales]
    for _ in range(sweeps if len(groups) > 1 else min(sweeps, 1)):
        for g in groups:
            va, vb = features(la, g, 1, np, "in"), features(lb, g, 1, np, "in")
            wa, wb = features(la, g, 1, np, "out"), features(lb, g, 1, np, "out")
            lb = move_group(lb, g, None, _best_scale(va, vb, wa, wb), 1, np)
    return lb


def _best_scale(va, vb, wa, wb) -> np.ndarray:
    """(S, K) argmin over c > 0 of A c^2 - 2 B c + D / c^2 - 2 C / c."""
    a, b = np.sum(vb * vb, -1), np.sum(va * vb, -1)
    c_, d = np.sum(wa * wb, -1), np.sum(wb * wb, -1)
    f = lambda c: a * c**2 - 2 * b * c + d / c**2 - 2 * c_ / c
    values = f(GRID[:, None, None])
    c = GRID[np.argmin(values, axis=0)]
    for _ in range(3):  # Newton on f'(c), kept only where it lowers f
        d1 = 2 * a * c - 2 * b - 2 * d / c**3 + 2 * c_ / c**2
        d2 = 2 * a + 6 * d / c**4 - 4 * c_ / c**3
        step = np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 0.0)
        new = np.clip(c - step, c / 2, c * 2)
        c = np.where(f(new) < f(c), new, c)
    return c


def _assign(sim_SKK: np.ndarray, signs: bool) -> tuple[np.ndarray, np.ndarray | None,
                                                        np.ndarray]:
    """Per pair, the assignment maximising the similarity: (perm (S, K), multipliers in
    b's old unit order (S, K) or None, (S,) whether anything moved)."""
    s, k, _ = sim_SKK.shape
    score = np.abs(sim_SKK) if signs else sim_SKK
    perm = np.empty((s, k), np.int64)
    for i in range(s):
        perm[i] = linear_sum_assignment(score[i], maximize=True)[1]
    moved = np.any(perm != np.arange(k), axis=1)
    if not signs:
        return perm, None, moved
    chosen = np.take_along_axis(sim_SKK, perm[..., None], axis=-1)[..., 0]
    flip = np.where(chosen < 0, -1.0, 1.0)
    mult = np.empty_like(flip)
    np.put_along_axis(mult, perm, flip, axis=1)
    return perm, mult, moved | np.any(flip < 0, axis=1)


def _batch(sym: Symmetry, params: PyTree, what: str) -> tuple[list, Any, int | None]:
    """(leaves with a leading seed axis, treedef, S or None when params had none)."""
    leaves, treedef = jax.tree.flatten(params)
    leaves = [np.asarray(x) for x in leaves]
    shapes = tuple(x.shape for x in leaves)
    if shapes == sym.leaf_shapes:
        return [x[None] for x in leaves], treedef, None
    check_leaves(sym, leaves, 1, what)
    return leaves, treedef, int(leaves[0].shape[0])


def _pair_count(la, lb, a_seeds, b_seeds) -> int:
    if a_seeds is not None and b_seeds is not None and a_seeds != b_seeds:
        raise InputError(f"params_a hold {a_seeds} seeds and params_b {b_seeds}: pairs need "
                         "the same seed count (or one network on one side)")
    return a_seeds or b_seeds or 1
