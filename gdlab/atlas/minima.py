"""The minima atlas: which minimum each seed landed in, and which minima are the same.

`find_minima(problem, runs)` classifies every endpoint (minimum, saddle, not converged,
diverged) from its gradient norm and extreme Hessian eigenvalues, clusters the minima in
parameter space, and counts them three ways: raw, modulo the problem's symmetry, and as
functions (same predictions on a probe batch).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import InputError
from gdlab._tree import flatten_one, flatten_seeds, unravel_like
from gdlab.atlas.cluster import cluster_points, first_seen, join_partitions
from gdlab.core.runs import Runs
from gdlab.landscape import curvature
from gdlab.landscape.paths import connected_groups
from gdlab.problem import Problem
from gdlab.stats import chao1, wilson_interval

MINIMUM, SADDLE, NOT_CONVERGED, DIVERGED = "minimum", "saddle", "not_converged", "diverged"


@dataclasses.dataclass(frozen=True)
class Minimum:
    """One distinct minimum found by the seeds.

    Attributes:
      params: representative params (the member endpoint with the lowest loss).
      loss: loss at the representative.
      count: seeds that landed here.
      fraction: count / all seeds (the basin's share of the init distribution).
      ci: 95% Wilson interval of `fraction`.
      kind: "global" if its loss is within tolerance of the lowest found, else "local".
      mean_distance, max_distance: members' distances to the representative.
      hessian_min, hessian_max: extreme Hessian eigenvalues at the representative
        (hessian_max is the sharpness).
      symmetry_class, function_class: index of its class modulo symmetry / as a function.
    """

    params: Any
    loss: float
    count: int
    fraction: float
    ci: tuple[float, float]
    kind: str
    mean_distance: float
    max_distance: float
    hessian_min: float
    hessian_max: float
    symmetry_class: int
    function_class: int


@dataclasses.dataclass(frozen=True)
class Atlas:
    """Census of the minima that a set of runs landed in.

    Attributes:
      labels: (S,) index into `minima`, -1 when the seed did not end in a minimum.
      status: (S,) "minimum", "saddle", "not_converged" or "diverged".
      minima: distinct minima, ordered by loss then by count (descending).
      grad_norm: (S,) full-data gradient norm at each endpoint.
      hessian_extremes: (S, 2) smallest and largest Hessian eigenvalue (NaN where not
        computed: diverged or not converged seeds).
      num_symmetry_classes: distinct minima modulo the problem's symmetry.
      num_function_classes: distinct functions: minima modulo symmetry, further joined
        when their predictions agree (None when the problem has no `predict`); so
        num_minima >= num_symmetry_classes >= num_function_classes.
      chao1: estimated total number of minima, seen and unseen (Chao1).
      tolerances: the tolerances used.
    """

    labels: np.ndarray
    status: np.ndarray
    minima: list[Minimum]
    grad_norm: np.ndarray
    hessian_extremes: np.ndarray
    num_symmetry_classes: int
    num_function_classes: int | None
    chao1: float
    tolerances: dict[str, float]

    @property
    def num_minima(self) -> int:
        return len(self.minima)

    def status_counts(self) -> dict[str, int]:
        return {k: int(np.sum(self.status == k)) for k in (MINIMUM, SADDLE, NOT_CONVERGED,
                                                            DIVERGED)}

    def class_counts(self, level: str) -> np.ndarray:
        """Seeds per class at `level`: "minimum", "symmetry" or "function" (by class id)."""
        if level == "minimum":
            return np.array([m.count for m in self.minima], np.int64)
        if level not in ("symmetry", "function"):
            raise InputError(f"level must be 'minimum', 'symmetry' or 'function', got {level!r}")
        ids = np.array([getattr(m, f"{level}_class") for m in self.minima], np.int64)
        if ids.size and ids.min() < 0:
            raise InputError("this atlas has no function classes (the problem has no predict)")
        return np.bincount(ids, weights=self.class_counts("minimum"),
                           minlength=int(ids.max(initial=-1)) + 1).astype(np.int64)

    def summary(self) -> dict[str, Any]:
        return {"minima": self.num_minima, "modulo_symmetry": self.num_symmetry_classes,
                "functions": self.num_function_classes, "chao1": self.chao1,
                **self.status_counts()}


def find_minima(problem: Problem, runs: Runs, *, grad_tol: float | None = None,
                hess_tol: float = 1e-3, dist_tol: float | None = None,
                func_tol: float | None = None, barrier_tol: float | None = None,
                connect: bool = True, probe: Any = None, max_exact_params: int = 100,
                lanczos_iters: int = 40) -> Atlas:
    """Classify every endpoint and cluster the minima into a census.

    Args:
      problem: the problem the runs trained.
      runs: `gdlab.Runs` of that problem.
      grad_tol: a seed is converged when its full-data gradient norm is below this
        (default 1e-4 x max(1, median gradient norm at the seeds' starts)).
      hess_tol: a converged seed is a saddle when its smallest Hessian eigenvalue is
        below -hess_tol x |largest eigenvalue|; else a minimum.
      dist_tol: endpoints within this Euclidean distance are the same minimum
        (default 1e-3 x max(1, median endpoint norm)).
      func_tol: minima whose predictions on the probe batch differ by at most this (RMS)
        are the same function (default 1e-3 x max(1, RMS of the predictions)).
      barrier_tol: with `connect`, two clusters (each tested against its 8 nearest) are
        one minimum when their losses agree within this and the straight path between
        them rises at most this above the higher end: a flat valley of degenerate minima
        (e.g. an MLP's) is one minimum however long it is (default 1e-5 x the median
        loss at the seeds' starts). Applied in raw space and modulo symmetry.
      connect: merge flat-connected clusters (see `barrier_tol`); False counts clusters
        by distance alone.
      probe: batch for functional equivalence (default: the first 512 data points).
      max_exact_params: exact Hessian up to this many parameters; Lanczos beyond.
      lanczos_iters: Lanczos steps (Hessian-vector products) per endpoint.

    Returns:
      An `Atlas`. When no seed ends in a minimum the atlas holds no minima (not an error).

    Example:
      >>> atlas = gdlab.find_minima(problems.himmelblau(), runs)
      >>> atlas.num_minima
      4
    """
    _check_runs(problem, runs)
    for name, tol in (("grad_tol", grad_tol), ("hess_tol", hess_tol), ("dist_tol", dist_tol),
                      ("func_tol", func_tol), ("barrier_tol", barrier_tol)):
        if tol is not None and not (np.isfinite(tol) and tol > 0):
            raise InputError(f"{name} must be a finite number > 0 (or None for the default), "
                             f"got {tol!r}")
    data = problem.data
    params = jax.tree.map(jnp.asarray, runs.params)
    grad_norm = np.asarray(curvature.grad_norms(problem, params, data))
    if grad_tol is None:
        init_norm = np.asarray(curvature.grad_norms(
            problem, jax.tree.map(jnp.asarray, runs.init_params), data))
        grad_tol = 1e-4 * max(1.0, float(np.nanmedian(init_norm)))
    converged = (grad_norm <= grad_tol) & ~runs.diverged & np.isfinite(grad_norm)
    extremes = np.full((runs.num_seeds, 2), np.nan)
    if converged.any():
        sub = jax.tree.map(lambda x: x[converged], params)
        extremes[converged] = np.asarray(curvature.hessian_extremes(
            problem, sub, data, max_exact_params, lanczos_iters))
    status = _status(runs.diverged, converged, extremes, hess_tol)

    flat_SP = flatten_seeds(runs.params).astype(np.float64)
    if dist_tol is None:
        dist_tol = 1e-3 * max(1.0, float(np.median(np.linalg.norm(flat_SP, axis=1))))
    if barrier_tol is None:
        barrier_tol = 1e-5 * max(float(np.nanmedian(np.abs(runs.loss_history[:, 0]))), 1e-30)
    group = lambda x_SP, loss_S: _group(problem, x_SP, loss_S, dist_tol,
                                        barrier_tol if connect else None)
    is_min = status == MINIMUM
    raw = np.full(runs.num_seeds, -1, np.int64)
    if is_min.any():
        raw[is_min] = group(flat_SP[is_min], runs.final_loss[is_min])
    labels, reps = _order_clusters(raw, runs.final_loss)
    sym_class, n_sym = _symmetry_classes(problem, runs.params, reps, group,
                                         runs.final_loss[reps])
    func_class, n_func, func_tol = _function_classes(problem, runs.params, reps, probe, func_tol,
                                                     sym_class)
    minima = _minima(runs, labels, reps, flat_SP, extremes, sym_class, func_class)
    counts = np.array([m.count for m in minima])
    return Atlas(labels=labels, status=status, minima=minima, grad_norm=grad_norm,
                 hessian_extremes=extremes, num_symmetry_classes=n_sym,
                 num_function_classes=n_func, chao1=chao1(counts) if len(counts) else 0.0,
                 tolerances={"grad_tol": float(grad_tol), "hess_tol": float(hess_tol),
                             "dist_tol": float(dist_tol),
                             "barrier_tol": float(barrier_tol) if connect else None,
                             "func_tol": None if func_tol is None else float(func_tol)})


def _check_runs(problem: Problem, runs: Runs) -> None:
    if not isinstance(runs, Runs):
        raise InputError(f"runs must be gdlab.Runs, got {type(runs).__name__}")
    if runs.num_seeds == 0:
        raise InputError("runs hold no seeds; nothing to analyse")
    expected = jax.tree.map(lambda s: tuple(s.shape), problem.params_shape())
    got = jax.tree.map(lambda x: tuple(np.shape(x)[1:]), runs.params)
    if jax.tree.structure(expected) != jax.tree.structure(got) or \
            jax.tree.leaves(expected) != jax.tree.leaves(got):
        raise InputError(f"runs' params {got} do not match problem {problem.name!r} params "
                         f"{expected}: were these runs trained on another problem?")


def _status(diverged, converged, extremes, hess_tol) -> np.ndarray:
    status = np.full(len(diverged), NOT_CONVERGED, dtype=object)
    status[diverged] = DIVERGED
    lo, hi = extremes[:, 0], extremes[:, 1]
    saddle = converged & (lo < -hess_tol * np.maximum(np.abs(hi), 1e-12))
    status[converged & ~saddle] = MINIMUM
    status[saddle] = SADDLE
    return status.astype(str)


def _order_clusters(raw: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Relabel clusters by (loss, -count, first seed); representatives = lowest-loss members."""
    keys, reps = [], []
    for c in range(raw.max() + 1):
        members = np.flatnonzero(raw == c)
        rep = members[np.argmin(loss[members])]
        keys.append((round(float(loss[rep]), 6), -len(members), int(rep)))
        reps.append(int(rep))
    order = sorted(range(len(keys)), key=keys.__getitem__)
    remap = np.full(max(len(keys), 1), -1, np.int64)
    remap[order] = np.arange(len(order))
    labels = np.where(raw >= 0, remap[np.maximum(raw, 0)], -1)
    return labels, [reps[i] for i in order]


def _take(params_S: Any, idx: list[int]) -> Any:
    return jax.tree.map(lambda x: np.asarray(x)[np.asarray(idx, np.int64)], params_S)


def _group(problem, x_SP, loss_S, dist_tol, barrier_tol) -> np.ndarray:
    """Cluster ids: within `dist_tol`, then clusters joined by flat paths (if barrier_tol)."""
    labels = cluster_points(x_SP, dist_tol)
    if barrier_tol is None or labels.max() < 1:
        return labels
    reps = [(m := np.flatnonzero(labels == c))[np.argmin(loss_S[m])]
            for c in range(labels.max() + 1)]
    unravel = unravel_like(problem.params_shape())
    groups = connected_groups(problem, x_SP[reps], unravel, barrier_tol)
    return groups[labels]


def _symmetry_classes(problem, params_S, reps, group, loss_M) -> tuple[np.ndarray, int]:
    if not reps:
        return np.zeros(0, np.int64), 0
    if problem.symmetry is None:
        return np.arange(len(reps)), len(reps)
    canon = jax.vmap(problem.symmetry)(jax.tree.map(jnp.asarray, _take(params_S, reps)))
    classes = group(flatten_seeds(canon).astype(np.float64), loss_M)
    return first_seen(classes), int(classes.max() + 1)


def _function_classes(problem, params_S, reps, probe, func_tol, sym_class):
    if problem.predict is None or problem.data is None:
        return np.full(len(reps), -1, np.int64), None, func_tol
    if not reps:
        return np.zeros(0, np.int64), 0, func_tol
    if probe is None:
        probe = jax.tree.map(lambda a: a[:512], problem.data)
    preds = jax.vmap(problem.predict, (0, None))(jax.tree.map(jnp.asarray, _take(params_S, reps)),
                                                 probe)
    flat = np.asarray(preds, np.float64).reshape(len(reps), -1)
    if func_tol is None:
        func_tol = 1e-3 * max(1.0, float(np.sqrt(np.mean(flat**2))))
    # RMS difference <= func_tol  <=>  Euclidean distance <= func_tol * sqrt(outputs).
    close = cluster_points(flat, func_tol * np.sqrt(flat.shape[1]))
    classes = join_partitions(close, sym_class)  # equal modulo symmetry => same function
    return classes, int(classes.max() + 1), func_tol


def _minima(runs, labels, reps, flat_SP, extremes, sym_class, func_class) -> list[Minimum]:
    total = runs.num_seeds
    best = min((float(runs.final_loss[r]) for r in reps), default=0.0)
    out = []
    for m, rep in enumerate(reps):
        members = np.flatnonzero(labels == m)
        dist = np.linalg.norm(flat_SP[members] - flat_SP[rep], axis=1)
        loss = float(runs.final_loss[rep])
        out.append(Minimum(
            params=jax.tree.map(lambda x, r=rep: np.asarray(x)[r], runs.params), loss=loss,
            count=len(members), fraction=len(members) / total,
            ci=wilson_interval(len(members), total),
            kind="global" if loss <= best + 1e-6 * max(1.0, abs(best)) else "local",
            mean_distance=float(dist.mean()), max_distance=float(dist.max()),
            hessian_min=float(extremes[rep, 0]), hessian_max=float(extremes[rep, 1]),
            symmetry_class=int(sym_class[m]), function_class=int(func_class[m])))
    return out


@dataclasses.dataclass(frozen=True)
class KnownMatch:
    """Which known minimum each seed ended at.

    Attributes:
      index: (S,) index into `problem.known_minima`, -1 when no known minimum is
        within `tol` (or the seed diverged).
      distance: (S,) Euclidean distance to the nearest known minimum.
      counts: (M,) seeds per known minimum.
    """

    index: np.ndarray
    distance: np.ndarray
    counts: np.ndarray


def match_known_minima(problem: Problem, runs: Runs, tol: float = 1e-3) -> KnownMatch:
    """Assign every seed's endpoint to the nearest of the problem's known minima."""
    if not problem.known_minima:
        raise InputError(f"problem {problem.name!r} lists no known minima")
    if not tol > 0:
        raise InputError(f"tol must be > 0, got {tol!r}")
    ends_SP = flatten_seeds(runs.params)
    known_MP = np.stack([flatten_one(m.params) for m in problem.known_minima])
    if ends_SP.shape[1] != known_MP.shape[1]:
        raise InputError(f"runs have {ends_SP.shape[1]} params per seed but problem "
                         f"{problem.name!r} has {known_MP.shape[1]}: runs of another problem?")
    dist_SM = np.linalg.norm(ends_SP[:, None, :] - known_MP[None, :, :], axis=-1)
    nearest = np.argmin(dist_SM, axis=1)
    distance = dist_SM[np.arange(len(nearest)), nearest]
    index = np.where((distance <= tol) & ~runs.diverged, nearest, -1)
    counts = np.bincount(index[index >= 0], minlength=len(known_MP))
    return KnownMatch(index=index, distance=distance, counts=counts)
