"""Small statistics: Wilson intervals, Chao1 richness, class labels."""

from __future__ import annotations

import numpy as np


def wilson_interval(count: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion count/total."""
    if total <= 0:
        return (0.0, 1.0)
    from scipy import stats  # here: importing scipy.stats takes about a second
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = count / total
    denom = 1 + z**2 / total
    centre = (p + z**2 / (2 * total)) / denom
    half = z * np.sqrt(p * (1 - p) / total + z**2 / (4 * total**2)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def chao1(counts: np.ndarray) -> float:
    """Chao1 estimate of the total number of classes (minima), seen and unseen.

    Bias-corrected form S_obs + f1 (f1 - 1) / (2 (f2 + 1)), where f1 and f2 are the
    numbers of classes seen exactly once and exactly twice.
    """
    counts = np.asarray(counts)
    counts = counts[counts > 0]
    f1, f2 = int(np.sum(counts == 1)), int(np.sum(counts == 2))
    return float(len(counts) + f1 * (f1 - 1) / (2 * (f2 + 1)))


def first_seen(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0..K-1 in order of first appearance."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.reshape(np.shape(labels))]
