"""Endpoints versus minima known in advance (the full minima atlas builds on this)."""

from __future__ import annotations

import dataclasses

import numpy as np

from gdlab.problem import Problem
from gdlab.runs import Runs
from gdlab.tree import flatten_one, flatten_seeds


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
        raise ValueError(f"problem {problem.name!r} lists no known minima")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    ends_SP = flatten_seeds(runs.params)
    known_MP = np.stack([flatten_one(m.params) for m in problem.known_minima])
    if ends_SP.shape[1] != known_MP.shape[1]:
        raise ValueError(f"runs have {ends_SP.shape[1]} params per seed but problem "
                         f"{problem.name!r} has {known_MP.shape[1]}: runs of another problem?")
    dist_SM = np.linalg.norm(ends_SP[:, None, :] - known_MP[None, :, :], axis=-1)
    nearest = np.argmin(dist_SM, axis=1)
    distance = dist_SM[np.arange(len(nearest)), nearest]
    index = np.where((distance <= tol) & ~runs.diverged, nearest, -1)
    counts = np.bincount(index[index >= 0], minlength=len(known_MP))
    return KnownMatch(index=index, distance=distance, counts=counts)
