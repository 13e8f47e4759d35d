"""The minima atlas: which minimum each seed landed in, and which minima are the same.

Two stages. `classify_endpoints(problem, runs)` is the expensive one, once per run: the
gradient norm and the extreme Hessian eigenvalues of every endpoint, and its status
(minimum, saddle, not converged, diverged). `map_minima(problem, runs, endpoints)` is the
cheap one, re-runnable with other tolerances: it clusters the minima in parameter space
and counts them three ways: raw, modulo the problem's symmetry, and as functions (same
predictions on a probe batch). `find_minima` is the two in one call.

Real networks (`equivalence`, at the end of this module) rarely end in minima that
`classify_endpoints` would accept, so their seeds are compared at four nested levels:
points (parameter distance) >= modulo symmetry (canonical forms) >= modes (linearly
connected after weight matching: the barrier of the error or loss on the straight path
below a tolerance) >= functions (identical predicted labels on held-out data). Each
level's count comes with Chao1 and its 95% interval. `refine` polishes endpoints by
full-batch L-BFGS or gradient descent first, counts how many converge, and warns when
the loss has no finite minimiser (cross-entropy on separable data without weight decay).
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gdlab._checks import InputError, check_choice, check_flag, check_int, check_positive
from gdlab._tree import flatten_one, flatten_seeds
from gdlab.atlas.cluster import cluster_points, first_seen, join_partitions
from gdlab.core.runs import Runs
from gdlab.landscape import curvature
from gdlab.landscape.paths import connected_groups
from gdlab.problem import Problem
from gdlab.stats import chao1, wilson_interval

MINIMUM, SADDLE, NOT_CONVERGED, DIVERGED = "minimum", "saddle", "not_converged", "diverged"
DEFAULT_HESS_TOL = 1e-3


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
      endpoints: the classification the atlas was mapped from (`classify_endpoints`);
        pass it to `map_minima` to map again with other tolerances.
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
    endpoints: Endpoints | None = None

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

    def save(self, directory, overwrite: bool = False):
        """Save the atlas whole in `directory` (atomic; `gdlab.load_atlas` reads it)."""
        from gdlab.atlas.saved import save_atlas  # saved imports this module
        return save_atlas(self, directory, overwrite)

    def to_dataframe(self):
        """A pandas DataFrame with one row per minimum: loss, seeds, basin fraction with
        its 95% interval, kind, distances, Hessian extremes, symmetry and function class."""
        import pandas as pd
        rows = [{"minimum": i, "loss": m.loss, "count": m.count, "fraction": m.fraction,
                 "fraction_lo": m.ci[0], "fraction_hi": m.ci[1], "kind": m.kind,
                 "mean_distance": m.mean_distance, "max_distance": m.max_distance,
                 "hessian_min": m.hessian_min, "hessian_max": m.hessian_max,
                 "symmetry_class": m.symmetry_class, "function_class": m.function_class}
                for i, m in enumerate(self.minima)]
        return pd.DataFrame(rows, columns=["minimum", "loss", "count", "fraction",
                                           "fraction_lo", "fraction_hi", "kind",
                                           "mean_distance", "max_distance", "hessian_min",
                                           "hessian_max", "symmetry_class", "function_class"])


@dataclasses.dataclass(frozen=True, eq=False)
class Endpoints:
    """How every endpoint of a set of runs ended: the expensive part of the atlas.

    Made by `classify_endpoints`; `map_minima` maps it into minima at any distance,
    barrier and function tolerance, and `with_tolerances` re-thresholds it at another
    gradient or Hessian tolerance, both without a new gradient or Hessian pass.

    Attributes:
      grad_norm: (S,) full-data gradient norm at each endpoint.
      hessian_extremes: (S, 2) smallest and largest Hessian eigenvalue at every endpoint
        that did not diverge (NaN for diverged seeds).
      diverged: (S,) bool, the seed diverged in training.
      status: (S,) "minimum", "saddle", "not_converged" or "diverged".
      grad_tol: a seed is converged when its gradient norm is at most this.
      hess_tol: a converged seed is a saddle when its smallest eigenvalue is below
        -hess_tol x |largest eigenvalue|.
      init_grad_norm_median: median gradient norm at the seeds' starts (it sets the
        default `grad_tol`).
    """

    grad_norm: np.ndarray
    hessian_extremes: np.ndarray
    diverged: np.ndarray
    status: np.ndarray
    grad_tol: float
    hess_tol: float
    init_grad_norm_median: float

    @property
    def num_seeds(self) -> int:
        return len(self.grad_norm)

    @property
    def converged(self) -> np.ndarray:
        """(S,) bool: gradient norm within `grad_tol` and not diverged."""
        return _converged(self.grad_norm, self.diverged, self.grad_tol)

    @property
    def tolerances(self) -> dict[str, float]:
        return {"grad_tol": self.grad_tol, "hess_tol": self.hess_tol}

    def with_tolerances(self, *, grad_tol: float | None = None,
                        hess_tol: float | None = None) -> Endpoints:
        """The same endpoints classified at other tolerances (None keeps the current one).

        Example:
          >>> strict = endpoints.with_tolerances(grad_tol=1e-6)
        """
        grad_tol = self.grad_tol if grad_tol is None else check_positive("grad_tol", grad_tol)
        hess_tol = self.hess_tol if hess_tol is None else check_positive("hess_tol", hess_tol)
        return _classified(self.grad_norm, self.hessian_extremes, self.diverged, grad_tol,
                           hess_tol, self.init_grad_norm_median)


def classify_endpoints(problem: Problem, runs: Runs, *, grad_tol: float | None = None,
                       hess_tol: float = DEFAULT_HESS_TOL, max_exact_params: int = 100,
                       lanczos_iters: int = 40) -> Endpoints:
    """Gradient norm, extreme Hessian eigenvalues and status of every endpoint.

    The expensive stage of the atlas, once per run: one gradient pass over the
    endpoints, one over the starts (for the default `grad_tol`), and one Hessian pass
    over every endpoint that did not diverge, so that `Endpoints.with_tolerances` can
    move `grad_tol` without a new pass. Each pass compiles once per (problem, S).

    Args:
      problem: the problem the runs trained.
      runs: `gdlab.Runs` of that problem.
      grad_tol: a seed is converged when its full-data gradient norm is at most this
        (default 1e-4 x max(1, median gradient norm at the seeds' starts)).
      hess_tol: a converged seed is a saddle when its smallest Hessian eigenvalue is
        below -hess_tol x |largest eigenvalue|; else a minimum.
      max_exact_params: exact Hessian up to this many parameters; Lanczos beyond.
      lanczos_iters: Lanczos steps (Hessian-vector products) per endpoint.

    Returns:
      An `Endpoints`, for `map_minima`.

    Example:
      >>> endpoints = gdlab.atlas.classify_endpoints(p, runs, grad_tol=1e-3)
      >>> endpoints.status[:4]
    """
    _check_runs(problem, runs)
    grad_tol = _optional_tol("grad_tol", grad_tol)
    hess_tol = check_positive("hess_tol", hess_tol)
    max_exact_params = check_int("max_exact_params", max_exact_params, 0)
    lanczos_iters = check_int("lanczos_iters", lanczos_iters, 1)
    grad_norm = _grad_norms(problem, runs.params)
    init_median = float(np.nanmedian(_grad_norms(problem, runs.init_params)))
    grad_tol = 1e-4 * max(1.0, init_median) if grad_tol is None else grad_tol
    extremes = _live_extremes(problem, runs, max_exact_params, lanczos_iters)
    return _classified(grad_norm, extremes, np.asarray(runs.diverged), grad_tol, hess_tol,
                       init_median)


def _grad_norms(problem: Problem, params_S: Any) -> np.ndarray:
    """(S,) gradient norms on the problem's data, as NumPy."""
    return np.asarray(curvature.grad_norms(problem, params_S, problem.data))


def _live_extremes(problem: Problem, runs: Runs, max_exact_params: int,
                   lanczos_iters: int) -> np.ndarray:
    """(S, 2) Hessian extremes of every seed that did not diverge (NaN for the others)."""
    live = ~np.asarray(runs.diverged)
    out = np.full((runs.num_seeds, 2), np.nan)
    if not live.any():
        return out
    # Diverged rows stand in for a live seed: one shape (S) whichever seeds diverged, and
    # no Hessian of a blown-up model.
    rows = np.where(live, np.arange(runs.num_seeds), np.flatnonzero(live)[0])
    params = jax.tree.map(lambda x: np.asarray(x)[rows], runs.params)
    extremes = curvature.hessian_extremes(problem, params, problem.data, max_exact_params,
                                          lanczos_iters)
    out[live] = np.asarray(extremes)[live]
    return out


def _converged(grad_norm: np.ndarray, diverged: np.ndarray, grad_tol: float) -> np.ndarray:
    return (grad_norm <= grad_tol) & ~diverged & np.isfinite(grad_norm)


def _classified(grad_norm, extremes, diverged, grad_tol, hess_tol, init_median) -> Endpoints:
    """Endpoints with the status at these tolerances."""
    status = _status(diverged, _converged(grad_norm, diverged, grad_tol), extremes, hess_tol)
    return Endpoints(grad_norm=grad_norm, hessian_extremes=extremes, diverged=diverged,
                     status=status, grad_tol=float(grad_tol), hess_tol=float(hess_tol),
                     init_grad_norm_median=init_median)


def map_minima(problem: Problem, runs: Runs, endpoints: Endpoints, *,
               dist_tol: float | None = None, func_tol: float | None = None,
               barrier_tol: float | None = None, connect: bool = True,
               probe: Any = None) -> Atlas:
    """Cluster the endpoints classified as minima into a census: the cheap stage.

    Re-run it freely with other tolerances: no gradient or Hessian is computed. Its
    compiled kernels (paths between clusters, the symmetry's canonical form,
    predictions) take the number of clusters as their shape, so a tolerance that
    changes that number compiles them once for the new count.

    Args:
      problem: the problem the runs trained.
      runs: `gdlab.Runs` of that problem.
      endpoints: `classify_endpoints(problem, runs)` (or `atlas.endpoints`).
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

    Returns:
      An `Atlas`. When no seed ends in a minimum the atlas holds no minima (not an error).

    Example:
      >>> endpoints = gdlab.atlas.classify_endpoints(p, runs)
      >>> [gdlab.atlas.map_minima(p, runs, endpoints, dist_tol=t).num_minima
      ...  for t in (1e-3, 1e-2, 1e-1)]
    """
    _check_runs(problem, runs)
    _check_endpoints(endpoints, runs)
    connect = check_flag("connect", connect)
    dist_tol, func_tol, barrier_tol = _map_tols(dist_tol, func_tol, barrier_tol)
    flat_SP = flatten_seeds(runs.params).astype(np.float64)
    dist_tol, barrier_tol = _default_tols(runs, flat_SP, dist_tol, barrier_tol)
    group = lambda x_SP, loss_S: _group(problem, x_SP, loss_S, dist_tol,
                                        barrier_tol if connect else None)
    labels, reps = _raw_minima(endpoints.status == MINIMUM, flat_SP, runs.final_loss, group)
    sym_class, n_sym = _symmetry_classes(problem, runs.params, reps, group,
                                         runs.final_loss[reps])
    func_class, n_func, func_tol = _function_classes(problem, runs.params, reps, probe, func_tol,
                                                     sym_class)
    extremes = np.where(endpoints.converged[:, None], endpoints.hessian_extremes, np.nan)
    minima = _minima(runs, labels, reps, flat_SP, extremes, sym_class, func_class)
    counts = np.array([m.count for m in minima])
    return Atlas(labels=labels, status=endpoints.status, minima=minima,
                 grad_norm=endpoints.grad_norm, hessian_extremes=extremes,
                 num_symmetry_classes=n_sym, num_function_classes=n_func,
                 chao1=chao1(counts) if len(counts) else 0.0,
                 tolerances={**endpoints.tolerances, "dist_tol": float(dist_tol),
                             "barrier_tol": float(barrier_tol) if connect else None,
                             "func_tol": None if func_tol is None else float(func_tol)},
                 endpoints=endpoints)


def find_minima(problem: Problem, runs: Runs, *, grad_tol: float | None = None,
                hess_tol: float | None = None, dist_tol: float | None = None,
                func_tol: float | None = None, barrier_tol: float | None = None,
                connect: bool = True, probe: Any = None, max_exact_params: int = 100,
                lanczos_iters: int = 40, endpoints: Endpoints | None = None) -> Atlas:
    """Classify every endpoint and cluster the minima into a census.

    `classify_endpoints` then `map_minima`; pass `endpoints` (e.g. `atlas.endpoints` of
    an earlier call) to skip the classification, re-thresholded at `grad_tol` and
    `hess_tol` when they are given.

    Args:
      problem: the problem the runs trained.
      runs: `gdlab.Runs` of that problem.
      grad_tol, hess_tol, max_exact_params, lanczos_iters: see `classify_endpoints`
        (hess_tol default 1e-3).
      dist_tol, func_tol, barrier_tol, connect, probe: see `map_minima`.
      endpoints: a classification of these runs to reuse.

    Returns:
      An `Atlas`. When no seed ends in a minimum the atlas holds no minima (not an error).

    Example:
      >>> atlas = gdlab.find_minima(problems.himmelblau(), runs)
      >>> atlas.num_minima
      4
    """
    _map_tols(dist_tol, func_tol, barrier_tol)  # bad input raises before any compile
    check_flag("connect", connect)
    if endpoints is None:
        endpoints = classify_endpoints(
            problem, runs, grad_tol=grad_tol,
            hess_tol=DEFAULT_HESS_TOL if hess_tol is None else hess_tol,
            max_exact_params=max_exact_params, lanczos_iters=lanczos_iters)
    elif grad_tol is not None or hess_tol is not None:
        _check_endpoints(endpoints, runs)
        endpoints = endpoints.with_tolerances(grad_tol=grad_tol, hess_tol=hess_tol)
    return map_minima(problem, runs, endpoints, dist_tol=dist_tol, func_tol=func_tol,
                      barrier_tol=barrier_tol, connect=connect, probe=probe)


def _optional_tol(name: str, value: float | None) -> float | None:
    """None, or a finite tolerance > 0."""
    return None if value is None else check_positive(name, value, "or None for the default")


def _map_tols(dist_tol, func_tol, barrier_tol) -> tuple[float | None, ...]:
    """The checked tolerances of `map_minima`."""
    return (_optional_tol("dist_tol", dist_tol), _optional_tol("func_tol", func_tol),
            _optional_tol("barrier_tol", barrier_tol))


def _default_tols(runs: Runs, flat_SP: np.ndarray, dist_tol, barrier_tol) -> tuple[float, float]:
    """dist_tol and barrier_tol, defaults filled in from the endpoints and the start loss."""
    if dist_tol is None:
        dist_tol = 1e-3 * max(1.0, float(np.median(np.linalg.norm(flat_SP, axis=1))))
    if barrier_tol is None:
        barrier_tol = 1e-5 * max(float(np.nanmedian(np.abs(runs.loss_history[:, 0]))), 1e-30)
    return dist_tol, barrier_tol


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


def _check_endpoints(endpoints: Any, runs: Runs) -> None:
    if not isinstance(endpoints, Endpoints):
        raise InputError(f"endpoints must be gdlab.atlas.Endpoints (from classify_endpoints), "
                         f"got {type(endpoints).__name__}")
    if endpoints.num_seeds != runs.num_seeds or \
            not np.array_equal(endpoints.diverged, runs.diverged):
        raise InputError(f"endpoints classify {endpoints.num_seeds} seeds that are not these "
                         f"runs' {runs.num_seeds}: classify_endpoints(problem, runs) first")


def _status(diverged, converged, extremes, hess_tol) -> np.ndarray:
    status = np.full(len(diverged), NOT_CONVERGED, dtype=object)
    status[diverged] = DIVERGED
    lo, hi = extremes[:, 0], extremes[:, 1]
    saddle = converged & (lo < -hess_tol * np.maximum(np.abs(hi), 1e-12))
    status[converged & ~saddle] = MINIMUM
    status[saddle] = SADDLE
    return status.astype(str)


def _raw_minima(is_min: np.ndarray, flat_SP: np.ndarray, loss_S: np.ndarray,
                group: Callable) -> tuple[np.ndarray, list[int]]:
    """(S,) minimum index per seed (-1 if none) and each minimum's representative seed."""
    raw = np.full(len(is_min), -1, np.int64)
    if is_min.any():
        raw[is_min] = group(flat_SP[is_min], loss_S[is_min])
    return _order_clusters(raw, loss_S)


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


@functools.partial(jax.jit, static_argnames="fn")
def _vmapped(fn: Callable, params_M: Any, *shared: Any) -> Any:
    """`fn(params, *shared)` of every minimum: one compile per (fn, M)."""
    return jax.vmap(fn, (0, *(None,) * len(shared)))(params_M, *shared)


def _group(problem, x_SP, loss_S, dist_tol, barrier_tol) -> np.ndarray:
    """Cluster ids: within `dist_tol`, then clusters joined by flat paths (if barrier_tol)."""
    labels = cluster_points(x_SP, dist_tol)
    if barrier_tol is None or labels.max() < 1:
        return labels
    reps = [(m := np.flatnonzero(labels == c))[np.argmin(loss_S[m])]
            for c in range(labels.max() + 1)]
    return connected_groups(problem, x_SP[reps], barrier_tol)[labels]


def _symmetry_classes(problem, params_S, reps, group, loss_M) -> tuple[np.ndarray, int]:
    if not reps:
        return np.zeros(0, np.int64), 0
    if problem.symmetry is None:
        return np.arange(len(reps)), len(reps)
    canon = _vmapped(problem.symmetry, _take(params_S, reps))
    classes = group(flatten_seeds(canon).astype(np.float64), loss_M)
    return first_seen(classes), int(classes.max() + 1)


def _function_classes(problem, params_S, reps, probe, func_tol, sym_class):
    if problem.predict is None or problem.data is None:
        return np.full(len(reps), -1, np.int64), None, func_tol
    if not reps:
        return np.zeros(0, np.int64), 0, func_tol
    if probe is None:
        probe = jax.tree.map(lambda a: np.asarray(a)[:512], problem.data)
    preds = _vmapped(problem.predict, _take(params_S, reps), probe)
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
    tol = check_positive("tol", tol)
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


# --- real networks: refinement, modes, functions, nested counts ------------------------
#
# A trained network's endpoint is rarely a minimum in the sense of `classify_endpoints`:
# cross-entropy on data the net fits exactly has no finite minimiser (scaling the output
# layer up always lowers it), and SGD stops anywhere in a wide valley. So "the same
# minimum" is asked at three coarser levels, each a partition of the seeds coarser than
# the one before (`equivalence`):
#
#   points    >= modulo symmetry >= modes                   >= functions
#   (distance)   (canonical form)   (linear mode connectivity  (same predicted labels on
#                                    after weight matching)     held-out data)
#
# Each level joins its own relation with the finer levels' (a class of a finer level
# lies inside one class of every coarser level), so the counts nest; the un-joined
# count of each relation is kept beside it (`Equivalence.distinct`).


@dataclasses.dataclass(frozen=True)
class Refined:
    """Endpoints polished by full-batch descent (`refine`).

    Attributes:
      params: refined params, leading axis S.
      loss: (S,) training loss at the end.
      grad_norm: (S,) full-data gradient norm at the end.
      converged: (S,) gradient norm within `grad_tol`.
      unbounded: (S,) the loss has no finite minimiser near the refined endpoint
        (`no_finite_minimiser`: zero training error and the loss falling all along the
        ray that scales the output layer up; cross-entropy on separable data).
      loss_trace, grad_trace: (S, steps) loss and gradient norm before each step.
      grad_tol: the convergence tolerance used.
      method: "lbfgs" or "gd".
    """

    params: Any
    loss: np.ndarray
    grad_norm: np.ndarray
    converged: np.ndarray
    unbounded: np.ndarray
    loss_trace: np.ndarray
    grad_trace: np.ndarray
    grad_tol: float
    method: str

    @property
    def num_converged(self) -> int:
        return int(self.converged.sum())

    def as_runs(self, problem: Problem) -> Runs:
        """Runs holding the refined endpoints (for `find_minima`, `equivalence`)."""
        return Runs.from_endpoints(problem, self.params)


REFINE_METHODS = ("lbfgs", "gd")


def refine(problem: Problem, runs: Runs | Any, *, steps: int = 200,
           grad_tol: float | None = None, method: str = "lbfgs", learning_rate: float = 0.1,
           data: Any = None, warn: bool = True) -> Refined:
    """Polish endpoints by full-batch descent until the gradient norm is below `grad_tol`.

    Every seed runs up to `steps` steps of L-BFGS (optax, zoom line search) or plain
    gradient descent on the full training data, vmapped (one compile per problem, S and
    steps), and stops moving once its gradient norm is within `grad_tol`; a step that
    would give non-finite params is not taken. Warns when the loss has no
    finite minimiser near an endpoint (`no_finite_minimiser`): then even "converged"
    endpoints are not minima, and seeds are better compared as modes or functions
    (`equivalence`), or trained with weight decay.

    Args:
      problem: the problem the runs trained.
      runs: `gdlab.Runs` (or params with a leading seed axis S).
      steps: descent steps per seed (>= 1).
      grad_tol: converged when the gradient norm is at most this (default 1e-4 x
        max(1, median gradient norm at the runs' starts); 1e-4 for bare params).
      method: "lbfgs" or "gd".
      learning_rate: step size of "gd".
      data: the data descended on (default: the problem's training data).
      warn: warn when the loss looks unbounded below its values (no finite minimiser).

    Returns:
      A `Refined`.

    Example:
      >>> refined = gdlab.atlas.refine(p, runs, steps=300)
      >>> refined.num_converged, refined.unbounded.sum()
    """
    from gdlab.atlas.functions import params_of

    steps = check_int("steps", steps, 1)
    check_choice("method", method, REFINE_METHODS)
    learning_rate = check_positive("learning_rate", learning_rate)
    data = problem.data if data is None else data
    params = jax.tree.map(jnp.asarray, params_of(runs))
    if grad_tol is None:
        start = 1.0 if not isinstance(runs, Runs) else float(np.nanmedian(
            _grad_norms(problem, runs.init_params)))
        grad_tol = 1e-4 * max(1.0, start)
    grad_tol = check_positive("grad_tol", grad_tol)
    out, loss_ST, grad_ST, loss, gnorm = _refine_kernel(
        problem.loss, params, data, jnp.float32(learning_rate), jnp.float32(grad_tol),
        method=method, steps=steps)
    loss, gnorm = np.asarray(loss, np.float64), np.asarray(gnorm, np.float64)
    loss_ST, grad_ST = np.asarray(loss_ST, np.float64), np.asarray(grad_ST, np.float64)
    unbounded = no_finite_minimiser(problem, out, data)
    refined = Refined(params=jax.tree.map(np.asarray, out), loss=loss, grad_norm=gnorm,
                      converged=np.isfinite(gnorm) & (gnorm <= grad_tol), unbounded=unbounded,
                      loss_trace=loss_ST, grad_trace=grad_ST, grad_tol=grad_tol, method=method)
    if warn and unbounded.any():
        warnings.warn(_unbounded_message(int(unbounded.sum()), len(unbounded)), stacklevel=2)
    return refined


def _unbounded_message(k: int, s: int) -> str:
    return (f"{k} of {s} seeds fit the training data exactly and their loss keeps falling as "
            "the output layer is scaled up: the loss has no finite minimiser there "
            "(cross-entropy on separable data without weight decay: the weights grow "
            "without bound), so these endpoints are not minima and a small gradient only "
            "says how far descent went. Add weight decay (e.g. "
            "problems.digits(weight_decay=1e-3)) or compare the seeds as modes and functions "
            "(gdlab.atlas.equivalence)")


RAY = (1.0, 2.0, 4.0, 8.0, 16.0)  # output-layer scales probed by `no_finite_minimiser`


def no_finite_minimiser(problem: Problem, params_S: Any, data: Any = None) -> np.ndarray:
    """(S,) the loss has no finite minimiser near each seed: zero training error and the
    loss never rising, and lower at the end, along the ray that scales the output layer
    (kernel and bias) by 1, 2, 4, 8, 16.

    Scaling the output layer scales the logits exactly, so at zero training error (every
    margin positive) cross-entropy falls along that ray towards 0 for ever: the seed is
    not near a minimum, whatever its gradient norm. Weight decay turns the ray back up
    (a false alarm only for weight decay so small that the minimiser is over 16x away).
    The output layer is the last layer of the params' Dense/Conv chain (every leaf when
    the params are no such chain). Needs the problem's "error" metric (else all False).

    Example:
      >>> gdlab.atlas.minima.no_finite_minimiser(p, runs.params).mean()
    """
    data = problem.data if data is None else data
    params_S = jax.tree.map(jnp.asarray, params_S)
    s = int(np.shape(jax.tree.leaves(params_S)[0])[0])
    if "error" not in problem.metrics or data is None:
        return np.zeros(s, bool)
    err = np.asarray(_vmapped(problem.metrics["error"], params_S, data))
    ray = np.asarray(_ray_losses(problem.loss, params_S, data, _output_leaves(problem), RAY))
    # Never rising, and lower at the end: float32 cross-entropy underflows to 0 along
    # the ray for large margins, so the tail may be flat.
    falling = np.all(np.diff(ray, axis=1) <= 0, axis=1) & (ray[:, -1] < ray[:, 0]) & \
        np.all(np.isfinite(ray), axis=1)
    return (err == 0) & falling


def _output_leaves(problem: Problem) -> tuple[int, ...]:
    from gdlab.symmetry import layers_of

    shapes = problem.params_shape()
    try:
        last = layers_of(shapes)[-1]
    except InputError:
        return tuple(range(len(jax.tree.leaves(shapes))))
    return tuple(i for i in (last.kernel, last.bias) if i is not None)


@functools.partial(jax.jit, static_argnames=("loss", "leaves", "scales"))
def _ray_losses(loss, params_S, data, leaves: tuple[int, ...], scales: tuple[float, ...]):
    """(S, len(scales)) loss with the chosen leaves scaled by each factor."""
    def one(params):
        flat, treedef = jax.tree.flatten(params)
        def at(c):
            moved = [x * c if i in leaves else x for i, x in enumerate(flat)]
            return loss(jax.tree.unflatten(treedef, moved), data)
        return jnp.stack([at(c) for c in scales])
    return jax.lax.map(one, params_S, batch_size=32)


@functools.partial(jax.jit, static_argnames=("loss", "method", "steps"))
def _refine_kernel(loss, params_S, data, learning_rate, grad_tol, method: str, steps: int):
    """Kernel of `refine`: (params, loss (S, T), grad norm (S, T), final loss, final norm).
    A seed stops moving once its gradient norm is within grad_tol."""
    norm = lambda g: jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(g)))

    def one(params):
        f = lambda p: loss(p, data)
        opt = optax.lbfgs() if method == "lbfgs" else optax.sgd(learning_rate)
        value_and_grad = optax.value_and_grad_from_state(f) if method == "lbfgs" else None

        def step(carry, _):
            p, state = carry
            if method == "lbfgs":
                value, grad = value_and_grad(p, state=state)
                updates, new_state = opt.update(grad, state, p, value=value, grad=grad,
                                                value_fn=f)
            else:
                value, grad = jax.value_and_grad(f)(p)
                updates, new_state = opt.update(grad, state, p)
            new = optax.apply_updates(p, updates)
            ok = jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(new)]))
            ok = ok & (norm(grad) > grad_tol)  # converged seeds stay put
            keep = lambda a, b: jax.tree.map(lambda x, y: jnp.where(ok, x, y), a, b)
            return (keep(new, p), keep(new_state, state)), (value, norm(grad))

        (p, _), (values, norms) = jax.lax.scan(step, (params, opt.init(params)), None,
                                               length=steps)
        value, grad = jax.value_and_grad(f)(p)
        return p, values, norms, value, norm(grad)
    return jax.lax.map(one, params_S, batch_size=32)


@dataclasses.dataclass(frozen=True)
class Level:
    """One level of `Equivalence`: a partition of the seeds.

    Attributes:
      name: "points", "symmetry", "modes" or "functions".
      labels: (S,) class of each seed (-1: left out, e.g. diverged).
      sizes: seeds per class (by class id).
      chao1: estimated number of classes, seen and unseen (Chao1, bias-corrected).
      chao1_ci: its 95% interval (Chao's log-normal interval).
    """

    name: str
    labels: np.ndarray
    sizes: np.ndarray
    chao1: float
    chao1_ci: tuple[float, float]

    @property
    def count(self) -> int:
        return len(self.sizes)


def chao1_interval(counts: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Chao's log-normal interval for the bias-corrected Chao1 richness estimate.

    Variance of the bias-corrected form (Chao 2005; EstimateS); the interval is
    S_obs + T / K .. S_obs + T K with T = Chao1 - S_obs and
    K = exp(z sqrt(log(1 + var / T^2))) (Chao 1987). No singletons: [S_obs, S_obs].
    """
    counts = np.asarray(counts)
    counts = counts[counts > 0]
    s_obs, f1, f2 = len(counts), int(np.sum(counts == 1)), int(np.sum(counts == 2))
    t = chao1(counts) - s_obs
    if f1 == 0 or t <= 0:
        return float(s_obs), float(s_obs)
    var = (f1 * (f1 - 1) / (2 * (f2 + 1)) + f1 * (2 * f1 - 1) ** 2 / (4 * (f2 + 1) ** 2)
           + f1**2 * f2 * (f1 - 1) ** 2 / (4 * (f2 + 1) ** 4))
    from scipy import stats as scipy_stats  # here: importing it takes about a second
    k = np.exp(scipy_stats.norm.ppf(0.5 + confidence / 2) * np.sqrt(np.log1p(var / t**2)))
    return float(s_obs + t / k), float(s_obs + t * k)


def _level(name: str, labels_L: np.ndarray, live: np.ndarray) -> Level:
    labels = np.full(len(live), -1, np.int64)
    labels[live] = first_seen(labels_L)
    sizes = np.bincount(labels[live], minlength=int(labels.max(initial=-1)) + 1)
    return Level(name=name, labels=labels, sizes=sizes,
                 chao1=chao1(sizes) if len(sizes) else 0.0, chao1_ci=chao1_interval(sizes))


@dataclasses.dataclass(frozen=True)
class Equivalence:
    """Which seeds found "the same minimum", at four nested levels (`equivalence`).

    Attributes:
      points, symmetry, modes, functions: the nested `Level`s (counts never increase
        from one to the next).
      distinct: each relation's own class count before joining with the finer levels:
        {"symmetry": canonical forms, "modes": linearly connected groups, "functions":
        distinct predicted-label vectors (or output clusters)}.
      disagreement: (S, S) fraction of held-out examples on which two seeds' labels
        differ (classifiers; None otherwise or when not asked).
      pairs: (K, 2) the seed pairs whose barrier was measured (nearest neighbours after
        alignment to one reference seed).
      pair_barriers: (K,) their barriers (after pairwise weight matching when aligned).
      metric: the barrier's metric ("error" or "loss").
      tolerances: dist_tol, barrier_tol, func_tol.
      notes: caveats found on the way (e.g. a loss without finite minimiser).
      timings: seconds per stage.
      no_minimiser: (S,) the seed has zero training error and a loss falling for ever
        along the output layer's scale (`no_finite_minimiser`): not near any minimum.
    """

    points: Level
    symmetry: Level
    modes: Level
    functions: Level
    distinct: dict[str, int]
    disagreement: np.ndarray | None
    pairs: np.ndarray
    pair_barriers: np.ndarray
    metric: str
    tolerances: dict[str, float | None]
    notes: tuple[str, ...]
    timings: dict[str, float]
    no_minimiser: np.ndarray | None = None

    @property
    def levels(self) -> tuple[Level, ...]:
        return (self.points, self.symmetry, self.modes, self.functions)

    @property
    def mean_disagreement(self) -> float | None:
        """Mean over pairs of seeds of their disagreement (None without it)."""
        d = self.disagreement
        if d is None or len(d) < 2:
            return None
        return float(d[np.triu_indices(len(d), 1)].mean())

    def counts(self) -> dict[str, int]:
        return {level.name: level.count for level in self.levels}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for level in self.levels:
            out[level.name] = level.count
            out[f"{level.name}_chao1"] = level.chao1
            out[f"{level.name}_chao1_ci"] = level.chao1_ci
        out.update({f"distinct_{k}": v for k, v in self.distinct.items()})
        out["mean_disagreement"] = self.mean_disagreement
        return out


def equivalence(problem: Problem, runs: Runs, *, data: Any = None, barrier_data: Any = None,
                metric: str | None = None, barrier_tol: float | None = None,
                dist_tol: float | None = None, func_tol: float | None = None,
                neighbours: int = 4, num: int = 25, align: bool = True,
                disagreement: bool = True, seeds: Any = None) -> Equivalence:
    """Count the distinct "minima" of real networks: points, modulo symmetry, modes, functions.

    - points: endpoints joined by chains of distances within `dist_tol` (parameter
      space; exact pairwise distances by matrix products);
    - modulo symmetry: canonical forms (`problem.symmetry`) likewise;
    - modes: seeds joined when the barrier of `metric` on the straight path between
      them, after weight matching (`gdlab.symmetry.align`), is at most `barrier_tol`
      (linear mode connectivity, Frankle et al. 2020; Entezari et al. 2022). Each seed is
      tested against its `neighbours` nearest seeds once all are aligned to the
      lowest-loss seed (S x neighbours barriers, not S^2), and groups are the connected
      components of the joined pairs (single linkage);
    - functions: identical predicted labels on the held-out `data` (classifiers), or
      outputs within `func_tol` RMS (regression).

    Seeds that diverged, and seeds not in `seeds`, are left out (label -1). The levels
    nest by construction (each
    joins its relation with the finer ones); `Equivalence.distinct` keeps each
    relation's own count.

    Args:
      problem: the problem the runs trained (with `predict` for functions).
      runs: `gdlab.Runs` (e.g. `refine(...).as_runs(problem)` for polished endpoints).
      data: held-out data for functions and disagreement (default: `test_data`, else the
        training data).
      barrier_data: data of the mode barriers (default: the training data).
      metric: the barrier's metric (default: "error" for classifiers, else "loss").
      barrier_tol: largest barrier of one mode (default: 0.02 for "error", Frankle et
        al.'s threshold; for "loss", 1e-3 x the median loss at the seeds' starts, or
        1e-3 x max(1, median final loss) for runs without a history).
      dist_tol: distance of one point (default 1e-3 x max(1, median endpoint norm)).
      func_tol: regression outputs' RMS tolerance (default 1e-3 x max(1, output RMS)).
      neighbours: nearest seeds whose barrier each seed is tested against.
      num: points per straight path.
      align: weight-match before measuring barriers (needs `problem.symmetry`); False
        gives naive linear connectivity.
      disagreement: also compute the (S, S) label disagreement (classifiers).
      seeds: compare only these seeds (a boolean mask or indices), e.g. the zero-loss ones.

    Returns:
      An `Equivalence`.

    Example:
      >>> eq = gdlab.atlas.equivalence(p, runs)
      >>> eq.counts()        # {'points': 256, 'symmetry': 256, 'modes': 3, 'functions': 1}
      >>> eq.distinct["functions"], eq.mean_disagreement
    """
    from gdlab.atlas import functions
    from gdlab.landscape.barriers import barrier as path_barrier_of
    from gdlab.landscape.barriers import metric_fn

    _check_runs(problem, runs)
    neighbours = check_int("neighbours", neighbours, 1)
    num = check_int("num", num, 2)
    dist_tol, func_tol = _optional_tol("dist_tol", dist_tol), _optional_tol("func_tol", func_tol)
    metric = metric or ("error" if "error" in problem.metrics else "loss")
    metric_fn(problem, metric)  # bad names raise before anything runs
    barrier_tol = _optional_tol("barrier_tol", barrier_tol) or _default_barrier_tol(runs, metric)
    if align and problem.symmetry is None:
        align = False
    clock = _Clock()
    live = ~np.asarray(runs.diverged) & np.isfinite(runs.final_loss) & \
        _seed_mask(seeds, runs.num_seeds)
    if not live.any():
        raise InputError("no seed left to compare (every chosen seed diverged)")
    params_L = jax.tree.map(lambda x: np.asarray(x)[live], runs.params)
    flat_L = flatten_seeds(params_L).astype(np.float64)
    if dist_tol is None:
        dist_tol = 1e-3 * max(1.0, float(np.median(np.linalg.norm(flat_L, axis=1))))
    points = close_groups(flat_L, dist_tol)
    canon = _canonical_classes(problem, params_L, dist_tol)
    sym = join_partitions(points, canon)
    clock("points and symmetry")
    pairs, barriers_K = _mode_pairs(problem, params_L, runs.final_loss[live], neighbours,
                                    align, lambda a, b: path_barrier_of(
                                        problem, a, b, data=barrier_data, metric=metric,
                                        num=num))
    connected = _components(len(flat_L), pairs[barriers_K <= barrier_tol])
    modes = join_partitions(sym, connected)
    clock("modes")
    funcs, func_tol = functions.function_classes(problem, params_L, data, func_tol)
    nested = join_partitions(modes, funcs)
    dis = None
    if disagreement and problem.predict is not None:
        out = functions.outputs(problem, params_L, data)
        if functions.is_classifier(problem, out):
            dis = functions.label_disagreement(np.argmax(out, axis=-1).reshape(len(out), -1))
    clock("functions")
    ids = np.flatnonzero(live)
    unbounded = np.zeros(runs.num_seeds, bool)
    unbounded[live] = no_finite_minimiser(problem, params_L)
    return Equivalence(
        points=_level("points", points, live), symmetry=_level("symmetry", sym, live),
        modes=_level("modes", modes, live), functions=_level("functions", nested, live),
        distinct={"symmetry": int(canon.max()) + 1, "modes": int(connected.max()) + 1,
                  "functions": int(funcs.max()) + 1},
        disagreement=dis, pairs=ids[pairs] if len(pairs) else pairs, pair_barriers=barriers_K,
        metric=metric, tolerances={"dist_tol": float(dist_tol), "barrier_tol": barrier_tol,
                                   "func_tol": func_tol},
        notes=tuple(_notes(live, align, problem, unbounded)), timings=clock.seconds,
        no_minimiser=unbounded)


class _Clock:
    """Seconds per named stage."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = now - self._last
        self._last = now


def _default_barrier_tol(runs: Runs, metric: str) -> float:
    if metric == "error":
        return 0.02
    if runs.loss_history.shape[1] < 2:  # no history (Runs.from_endpoints): O(1) losses
        return 1e-3 * max(1.0, float(np.nanmedian(np.abs(runs.final_loss))))
    return 1e-3 * max(float(np.nanmedian(np.abs(runs.loss_history[:, 0]))), 1e-12)


def _seed_mask(seeds: Any, s: int) -> np.ndarray:
    """(S,) bool from None (all), a boolean mask or seed indices."""
    if seeds is None:
        return np.ones(s, bool)
    arr = np.asarray(seeds)
    if arr.dtype == bool and arr.shape == (s,):
        return arr
    if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer) and \
            (arr.size == 0 or (arr.min() >= 0 and arr.max() < s)):
        mask = np.zeros(s, bool)
        mask[arr] = True
        return mask
    raise InputError(f"seeds must be a boolean mask of the {s} seeds or indices in 0..{s - 1}, "
                     f"got {seeds!r}")


def _canonical_classes(problem: Problem, params_L: Any, dist_tol: float) -> np.ndarray:
    """(L,) classes of the canonical forms within dist_tol (each seed its own without)."""
    n = len(flatten_seeds(params_L))
    if problem.symmetry is None:
        return np.arange(n)
    canon = _vmapped(problem.symmetry, jax.tree.map(jnp.asarray, params_L))
    return close_groups(flatten_seeds(canon).astype(np.float64), dist_tol)


def _mode_pairs(problem, params_L, loss_L, neighbours, align, barrier_fn):
    """(K, 2) candidate pairs (nearest neighbours) and their barriers."""
    from gdlab.symmetry import align as weight_match

    n = len(loss_L)
    if n < 2:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    flat = flatten_seeds(params_L)
    if align:  # one shared labelling, so that distances mean something
        ref = jax.tree.map(lambda x: x[int(np.argmin(loss_L))], params_L)
        flat = flatten_seeds(weight_match(problem, ref, params_L))
    pairs = knn_pairs(flat.astype(np.float32), min(neighbours, n - 1))
    a = jax.tree.map(lambda x: x[pairs[:, 0]], params_L)
    b = jax.tree.map(lambda x: x[pairs[:, 1]], params_L)
    if align:
        b = weight_match(problem, a, b)
    return pairs, np.atleast_1d(barrier_fn(a, b))


def _sq_distances(x_SP: np.ndarray, chunk: int = 1024):
    """Yield (first row, squared distances of a chunk of rows to all rows), by matrix
    products: O(S^2 P) in BLAS, O(chunk S) memory."""
    x = np.asarray(x_SP, np.float64)
    sq = np.sum(x * x, axis=1)
    for lo in range(0, len(x), chunk):
        d = sq[lo:lo + chunk, None] + sq[None] - 2.0 * (x[lo:lo + chunk] @ x.T)
        yield lo, np.maximum(d, 0.0)


def knn_pairs(x_SP: np.ndarray, k: int) -> np.ndarray:
    """(K, 2) unique pairs i < j of every row and its k nearest rows."""
    rows = []
    for lo, d in _sq_distances(x_SP):
        d[np.arange(len(d)), np.arange(lo, lo + len(d))] = np.inf
        nearest = np.argpartition(d, k - 1, axis=1)[:, :k]
        rows.append(np.stack([np.repeat(np.arange(lo, lo + len(d)), k), nearest.ravel()], 1))
    return np.unique(np.sort(np.concatenate(rows), axis=1), axis=0)


def close_groups(x_SP: np.ndarray, tol: float) -> np.ndarray:
    """(S,) groups of rows joined by chains of distances <= tol (single linkage; exact
    for the many distinct points of real networks, where a sweep's SVD is the cost)."""
    rows = [np.argwhere(d <= tol * tol) + np.array([lo, 0]) for lo, d in _sq_distances(x_SP)]
    pairs = np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)
    return _components(len(x_SP), pairs)


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return first_seen(connected_components(graph, directed=False)[1])


def _notes(live: np.ndarray, align: bool, problem: Problem,
           unbounded: np.ndarray) -> list[str]:
    notes = []
    if not align:
        notes.append("barriers are naive (no weight matching): the problem has no symmetry"
                     if problem.symmetry is None else "barriers are naive (align=False)")
    if unbounded.any():
        notes.append(f"{int(unbounded.sum())} of {int(live.sum())} seeds have zero training "
                     "error and a loss that falls for ever as the output layer is scaled up: "
                     "no finite minimiser (add weight decay for minima); points and symmetry "
                     "classes then count where training stopped, modes and functions what "
                     "it found")
    return notes
