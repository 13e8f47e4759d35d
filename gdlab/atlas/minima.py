"""The minima atlas: which minimum each seed landed in, and which minima are the same.

Two stages. `classify_endpoints(problem, runs)` is the expensive one, once per run: the
gradient norm and the extreme Hessian eigenvalues of every endpoint, and its status
(minimum, saddle, not converged, diverged). `map_minima(problem, runs, endpoints)` is the
cheap one, re-runnable with other tolerances: it clusters the minima in parameter space
and counts them three ways: raw, modulo the problem's symmetry, and as functions (same
predictions on a probe batch). `find_minima` is the two in one call.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from gdlab._checks import InputError, check_int, check_positive
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
