"""Pytree helpers for params with a leading seed axis S."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def flatten_seeds(params_S: Any) -> np.ndarray:
    """(S, P) matrix: each seed's params raveled in leaf order."""
    leaves = jax.tree.leaves(params_S)
    s = np.shape(leaves[0])[0]
    return np.concatenate([np.asarray(x).reshape(s, -1) for x in leaves], axis=1)


def flatten_one(params: Any) -> np.ndarray:
    """(P,) vector of one params pytree."""
    return np.concatenate([np.asarray(x).ravel() for x in jax.tree.leaves(params)])


def unravel_like(abstract_params: Any) -> Callable[[jax.Array], Any]:
    """Function mapping a (P,) vector back to params shaped like `abstract_params`."""
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), abstract_params)
    return ravel_pytree(zeros)[1]
