"""Symmetries of tanh MLPs: canonical forms and weight matching.

Hidden units of a layer can be permuted, and for an odd activation (tanh) each unit's
incoming weights, bias and outgoing weights can be negated together, without changing
the network's function. Params are flax `MLP` params: {"Dense_0": {"kernel", "bias"}, ...}.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from gdlab._checks import InputError

Params = dict[str, Any]


def _layer_names(params: Params) -> list[str]:
    names = sorted(params, key=lambda k: int(k.rsplit("_", 1)[-1]))
    if not names or any(not k.startswith("Dense_") for k in names):
        raise InputError(f"expected flax MLP params with Dense_i layers, got keys {list(params)}")
    return names


def _apply(params: Params, layer: int, sign_H, order_H) -> Params:
    """Flip unit signs then permute units of hidden layer `layer` (and the next layer's rows)."""
    names = _layer_names(params)
    out = {k: dict(v) for k, v in params.items()}
    cur, nxt = out[names[layer]], out[names[layer + 1]]
    cur["kernel"] = (cur["kernel"] * sign_H[None, :])[:, order_H]
    cur["bias"] = (cur["bias"] * sign_H)[order_H]
    nxt["kernel"] = (nxt["kernel"] * sign_H[:, None])[order_H, :]
    return out


def tanh_mlp_canonical(params: Params) -> Params:
    """Canonical representative of a tanh MLP's symmetry orbit (jit- and vmap-friendly).

    Per hidden layer, first to last: flip each unit so the largest-magnitude entry of its
    incoming weights and bias is positive, then order units by decreasing norm of
    (incoming, bias, outgoing).
    """
    names = _layer_names(params)
    for layer in range(len(names) - 1):
        cur, nxt = params[names[layer]], params[names[layer + 1]]
        feats = jnp.concatenate([cur["kernel"], cur["bias"][None, :]], axis=0)
        pivot = jnp.take_along_axis(feats, jnp.argmax(jnp.abs(feats), axis=0)[None, :], axis=0)
        sign = jnp.where(pivot[0] < 0, -1.0, 1.0).astype(feats.dtype)
        size = (jnp.sum(feats**2, axis=0) + jnp.sum(nxt["kernel"] ** 2, axis=1))
        params = _apply(params, layer, sign, jnp.argsort(-size, stable=True))
    return params


def align_tanh_mlp(reference: Params, other: Params) -> Params:
    """`other` permuted and sign-flipped to best match `reference` (weight matching).

    For each hidden layer in turn, a linear assignment (scipy) pairs units by the
    absolute inner product of their (incoming, bias, outgoing) weights; the sign of the
    product decides the flip. Exact for one hidden layer; for deeper nets it is the
    usual single forward pass of weight matching.
    """
    names = _layer_names(reference)
    other = {k: {n: np.asarray(a) for n, a in v.items()} for k, v in other.items()}
    for layer in range(len(names) - 1):
        fa = _unit_features(reference, names, layer)
        fb = _unit_features(other, names, layer)
        sim_HH = fa.T @ fb
        rows, cols = linear_sum_assignment(-np.abs(sim_HH))
        order = cols[np.argsort(rows)]
        sign = np.where(sim_HH[np.arange(len(order)), order] < 0, -1.0, 1.0)
        flipped = _apply(other, layer, np.ones_like(sign), order)
        other = _apply(flipped, layer, sign.astype(fa.dtype), np.arange(len(order)))
    return other


def _unit_features(params: Params, names: list[str], layer: int) -> np.ndarray:
    cur, nxt = params[names[layer]], params[names[layer + 1]]
    return np.concatenate([np.asarray(cur["kernel"]), np.asarray(cur["bias"])[None, :],
                           np.asarray(nxt["kernel"]).T], axis=0)
