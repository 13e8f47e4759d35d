"""Pytree helpers for params with a leading seed axis S."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def flatten_seeds(params_S: Any) -> np.ndarray:
    """(S, P) matrix: each seed's params raveled in leaf order."""
    leaves = jax.tree.leaves(params_S)
    s = np.shape(leaves[0])[0]
    return np.concatenate([np.asarray(x).reshape(s, -1) for x in leaves], axis=1)


def flatten_one(params: Any) -> np.ndarray:
    """(P,) vector of one params pytree."""
    return np.concatenate([np.asarray(x).ravel() for x in jax.tree.leaves(params)])

