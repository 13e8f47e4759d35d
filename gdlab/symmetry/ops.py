"""Group actions on params: move units, read their weights, the canonical form.

Every function works on the list of a network's leaves (`jax.tree.leaves` order) with
`lead` leading seed axes (0 under jit/vmap with `jax.numpy`, 1 for NumPy batches of
seeds in weight matching) and an array namespace `xp` (`jax.numpy` or `numpy`).
Per group, a *permutation* `perm` says new unit j = old unit perm[j]; a *multiplier*
`mult` (old unit order) multiplies a unit's incoming weights and divides its outgoing
ones (signs: +-1, rescalings: c > 0).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import InputError
from gdlab.symmetry.spec import Axis, Symmetry, UnitGroup

PyTree = Any


def unit_view(x, ax: Axis, size: int, lead: int):
    """`x` reshaped so the group's units are one axis; (view, position of that axis)."""
    a = lead + ax.axis
    shape = tuple(x.shape)
    return x.reshape((*shape[:a], ax.outer, size, ax.inner, *shape[a + 1:])), a + 1


def _along(v, ndim: int, pos: int, lead: int):
    """(lead..., K) values shaped to broadcast along axis `pos` of an ndim-array."""
    return v.reshape(tuple(v.shape[:lead]) + (1,) * (pos - lead) + (v.shape[-1],)
                     + (1,) * (ndim - pos - 1))


def move_leaf(x, ax: Axis, size: int, perm, mult, lead: int, xp):
    """One leaf with the units on `ax` multiplied by `mult`, then permuted by `perm`."""
    view, pos = unit_view(x, ax, size, lead)
    if mult is not None:
        view = view * _along(mult, view.ndim, pos, lead).astype(view.dtype)
    if perm is not None and lead == 0:
        view = xp.take(view, perm, axis=pos)
    elif perm is not None:
        view = xp.take_along_axis(view, _along(perm, view.ndim, pos, lead), axis=pos)
    return view.reshape(x.shape)


def move_group(leaves: list, group: UnitGroup, perm, mult, lead: int, xp) -> list:
    """The leaves with one group's units moved (incoming x mult, outgoing / mult)."""
    out = list(leaves)
    for ax in group.incoming:
        out[ax.leaf] = move_leaf(out[ax.leaf], ax, group.size, perm, mult, lead, xp)
    inverse = None if mult is None else 1.0 / mult
    for ax in group.outgoing:
        out[ax.leaf] = move_leaf(out[ax.leaf], ax, group.size, perm, inverse, lead, xp)
    return out


def features(leaves: list, group: UnitGroup, lead: int, xp, which: str = "both"):
    """(lead..., K, F) each unit's incoming (and/or outgoing) weights, concatenated."""
    axes = {"in": group.incoming, "out": group.outgoing,
            "both": group.incoming + group.outgoing}[which]
    parts = []
    for ax in axes:
        view, pos = unit_view(leaves[ax.leaf], ax, group.size, lead)
        view = xp.moveaxis(view, pos, lead)
        parts.append(view.reshape((*tuple(view.shape[:lead + 1]), -1)))
    return xp.concatenate(parts, axis=-1)


def normaliser(leaves: list, group: UnitGroup, lead: int, xp):
    """(lead..., K) multipliers taking every unit to its orbit's normal form: incoming
    norm 1 (rescalable units; zero units stay), largest incoming entry positive
    (units that may be negated); None for permutations only."""
    if group.action == "permute":
        return None
    f = features(leaves, group, lead, xp, "in")
    mult = xp.ones(f.shape[:-1], f.dtype)
    if group.scales:
        norm = xp.sqrt(xp.sum(f * f, axis=-1))
        mult = xp.where(norm > 0, 1.0 / xp.where(norm > 0, norm, 1.0), 1.0).astype(f.dtype)
    if group.signs:
        pivot = xp.take_along_axis(f, xp.argmax(xp.abs(f), axis=-1)[..., None], axis=-1)
        mult = mult * xp.where(pivot[..., 0] < 0, -1.0, 1.0).astype(f.dtype)
    return mult


def normalise(leaves: list, groups: Sequence[UnitGroup], lead: int, xp) -> tuple[list, list]:
    """Leaves with every group normalised (forward order) and the multipliers used."""
    mults = []
    for g in groups:
        mult = normaliser(leaves, g, lead, xp)
        if mult is not None:
            leaves = move_group(leaves, g, None, mult, lead, xp)
        mults.append(mult)
    return leaves, mults


def canonical_leaves(sym: Symmetry, leaves: list) -> list:
    """The canonical form of one network's leaves (jax.numpy, no seed axis).

    First every group's activation symmetry is normalised, first layer to last (each
    layer's normal form then no longer depends on the scales or signs of the layers
    before it); then every group's units are sorted by decreasing squared norm of their
    incoming and outgoing weights, which no permutation of the neighbouring layers
    changes. So any two members of one orbit map to the same params (up to rounding, and
    to ties between units of equal norm, which generic trained networks do not have).
    """
    leaves, _ = normalise(leaves, sym.groups, 0, jnp)
    for g in sym.groups:
        f = features(leaves, g, 0, jnp)
        order = jnp.argsort(-jnp.sum(f * f, axis=-1), stable=True)
        leaves = move_group(leaves, g, order, None, 0, jnp)
    return leaves


def canonical(sym: Symmetry, params: PyTree) -> PyTree:
    """`Symmetry.__call__`: the canonical form of one network (jit- and vmap-able).

    Compiled once per (spec, shapes) when called outside a trace; inlined inside one.
    """
    leaves, treedef = jax.tree.flatten(params)
    check_leaves(sym, leaves, 0, "params")
    return jax.tree.unflatten(treedef, _canonical_kernel(sym, [jnp.asarray(x) for x in leaves]))


@functools.partial(jax.jit, static_argnums=0)
def _canonical_kernel(sym: Symmetry, leaves: list) -> list:
    return canonical_leaves(sym, leaves)


def transform(sym: Symmetry, params: PyTree, perms: Sequence[Any],
              multipliers: Sequence[Any]) -> PyTree:
    """`Symmetry.apply`: one network (no seed axis) moved by (perms, multipliers);
    NumPy arrays out for concrete params, traced jnp arrays inside jit or vmap."""
    if len(perms) != len(sym.groups) or len(multipliers) != len(sym.groups):
        raise InputError(f"need one permutation and one multiplier vector per hidden layer "
                         f"({len(sym.groups)}), got {len(perms)} and {len(multipliers)}")
    leaves, treedef = jax.tree.flatten(params)
    check_leaves(sym, leaves, 0, "params")
    # Concrete arrays move on the host (NumPy: nothing to compile); traced ones in jnp.
    xp = jnp if any(isinstance(x, jax.core.Tracer) for x in leaves) else np
    leaves = [xp.asarray(x) for x in leaves]
    for g, perm, mult in zip(sym.groups, perms, multipliers, strict=True):
        perm, mult = xp.asarray(perm), xp.asarray(mult)
        if perm.shape != (g.size,) or mult.shape != (g.size,):
            raise InputError(f"group {g.layer!r} has {g.size} units; got a permutation "
                             f"shaped {perm.shape} and multipliers shaped {mult.shape}")
        leaves = move_group(leaves, g, perm, mult, 0, xp)
    return jax.tree.unflatten(treedef, leaves)


def check_leaves(sym: Symmetry, leaves: list, lead: int, what: str) -> None:
    """An InputError unless the leaves have the spec's shapes (after `lead` seed axes)."""
    shapes = tuple(tuple(np.shape(x))[lead:] for x in leaves)
    if shapes != sym.leaf_shapes:
        raise InputError(f"{what} have leaf shapes {shapes}{' after the seed axis' if lead else ''}"
                         f", but the symmetry was derived for {sym.leaf_shapes}: params of "
                         "another model?")
