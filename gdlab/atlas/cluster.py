"""Deterministic, order-invariant clustering of many points within a distance tolerance.

Leader clustering along a sweep: points are put in a canonical order (lexicographic),
projected on their first principal axis and sorted; each unassigned point in that order
leads a cluster of the unassigned points within `tol` of it, found among the points whose
projection lies within `tol` (a binary search), so memory stays O(S) and time is close to
O(S log S) when clusters are tight. A final pass merges clusters whose centroids lie within
`tol`, so a leader at the edge of a blob does not split it.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gdlab._checks import InputError, check_positive
from gdlab.stats import first_seen


def _canonical_order(x_SP: np.ndarray) -> np.ndarray:
    return np.lexsort(x_SP.T[::-1])


def _principal_axis(x_SP: np.ndarray) -> np.ndarray:
    centred = x_SP - x_SP.mean(axis=0)
    if x_SP.shape[0] < 2 or not np.any(centred):
        axis = np.zeros(x_SP.shape[1])
        axis[0] = 1.0
        return axis
    # A random sketch keeps this cheap for huge S; the sweep is exact for any axis.
    sample = centred[:: max(1, len(centred) // 20000)]
    axis = np.linalg.svd(sample, full_matrices=False)[2][0]
    return axis * np.sign(axis[np.argmax(np.abs(axis))])


def _leaders(x_SP: np.ndarray, tol: float) -> np.ndarray:
    proj = x_SP @ _principal_axis(x_SP)
    order = np.argsort(proj, kind="stable")
    proj_sorted = proj[order]
    labels = np.full(len(x_SP), -1, np.int64)
    nxt = 0
    for pos, i in enumerate(order):
        if labels[i] >= 0:
            continue
        hi = np.searchsorted(proj_sorted, proj[i] + tol, side="right")
        cand = order[pos:hi]
        cand = cand[labels[cand] < 0]
        close = np.linalg.norm(x_SP[cand] - x_SP[i], axis=1) <= tol
        labels[cand[close]] = nxt
        nxt += 1
    return labels


def _merge_close_centroids(x_SP: np.ndarray, labels: np.ndarray, tol: float) -> np.ndarray:
    count = labels.max() + 1
    sums = np.zeros((count, x_SP.shape[1]))
    np.add.at(sums, labels, x_SP)
    centroids = sums / np.bincount(labels, minlength=count)[:, None]
    from scipy.cluster.hierarchy import DisjointSet  # here: a slow import
    sets = DisjointSet(range(count))
    inner = _leaders(centroids, tol)
    for group in range(inner.max() + 1):
        members = np.flatnonzero(inner == group)
        for m in members[1:]:
            sets.merge(members[0], m)
    roots = np.array([min(sets.subset(i)) for i in range(count)])
    _, dense = np.unique(roots, return_inverse=True)
    return dense[labels]


def cluster_points(x_SP: np.ndarray, tol: float) -> np.ndarray:
    """(S,) cluster ids (0..K-1) of the rows of `x_SP`: points within `tol` share a cluster.

    Ids are numbered in the canonical (lexicographic) order of each cluster's first point,
    so they do not depend on the order of the rows.
    """
    x_SP = np.asarray(x_SP, np.float64)
    if x_SP.ndim != 2:
        raise InputError(f"expected an (S, P) array, got shape {x_SP.shape}")
    tol = check_positive("tol", tol)
    if len(x_SP) == 0:
        return np.zeros(0, np.int64)
    order = _canonical_order(x_SP)
    labels_sorted = _merge_close_centroids(x_SP[order], _leaders(x_SP[order], tol), tol)
    labels = np.empty(len(x_SP), np.int64)
    labels[order] = first_seen(labels_sorted)  # numbered in canonical order
    return labels


def join_partitions(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Finest partition coarser than both: items share a class if linked by a or b."""
    a, b = first_seen(np.asarray(a)), first_seen(np.asarray(b))
    m, ka = len(a), int(a.max(initial=-1)) + 1
    items = np.arange(m)
    graph = coo_matrix((np.ones(2 * m), (np.concatenate([items, items]),
                                          np.concatenate([m + a, m + ka + b]))),
                       shape=(m + ka + int(b.max(initial=-1)) + 1,) * 2)
    return first_seen(connected_components(graph, directed=False)[1][:m])
