"""Permutation specs: where every hidden unit's weights sit in a network's params.

A network that is a chain of Dense or Conv layers (each layer's outputs, through an
elementwise activation, are the next layer's inputs) has one *unit group* per hidden
layer. Its units (a Dense layer's outputs, a Conv layer's channels) can be permuted
together with their incoming weights (the layer's kernel output axis and its bias) and
their outgoing weights (the next layer's kernel input axis) without changing the
function. After Conv -> flatten -> Dense, channel c feeds a strided set of Dense input
rows; an `Axis` views the Dense input axis as (outer, units, inner) so that set is one
axis entry (channels-last flatten, flax: rows p * C + c, outer = positions; channels-
first, equinox: rows c * P + p, inner = positions).

The activation adds its own symmetry per unit (`UnitGroup.action`):

- "sign": odd activations (tanh): negate a unit's incoming weights, bias and outgoing
  weights together;
- "scale": positively homogeneous ones (relu, leaky relu): incoming weights and bias
  times c > 0, outgoing weights divided by c;
- "sign_scale": linear units (both);
- "permute": every other elementwise activation (gelu, sigmoid, ...): permutations only.

This is Git Re-Basin's permutation spec (Ainsworth et al., 2023: for each permutation,
the (parameter, axis) pairs it acts on), with leaves named by their index in
`jax.tree.leaves(params)` order so that flax linen dicts, nnx `State`s and equinox
modules are treated alike. `for_model` reads a spec from a params tree; `for_problem`
also orders the layers by the forward pass and checks the spec on the model itself.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import InputError

PyTree = Any
ACTIONS = ("permute", "sign", "scale", "sign_scale")

# Activation names by the symmetry they add to the permutations.
ODD = ("tanh", "hard_tanh", "softsign", "sin", "arctan")
HOMOGENEOUS = ("relu", "leaky_relu")
LINEAR = ("linear", "identity")
PLAIN = ("gelu", "sigmoid", "silu", "swish", "elu", "selu", "celu", "softplus", "relu6",
         "mish", "log_sigmoid", "hard_sigmoid", "hard_silu", "hard_swish")
_ACTION_OF = {**dict.fromkeys(ODD, "sign"), **dict.fromkeys(HOMOGENEOUS, "scale"),
              **dict.fromkeys(LINEAR, "sign_scale"), **dict.fromkeys(PLAIN, "permute")}
KERNELS = ("kernel", "weight")  # flax (..., in, out); equinox / torch (out, in, ...)


@dataclasses.dataclass(frozen=True)
class Axis:
    """One axis of one leaf that a unit group acts on.

    Attributes:
      leaf: index of the leaf in `jax.tree.leaves(params)`.
      axis: axis of that leaf (no seed axis), viewed as (outer, units, inner).
      outer, inner: the view's other factors (1 and 1 except after a flatten).
    """

    leaf: int
    axis: int
    outer: int = 1
    inner: int = 1


@dataclasses.dataclass(frozen=True)
class UnitGroup:
    """The hidden units of one layer: what a permutation of them moves.

    Attributes:
      layer: the layer whose outputs the units are (its path in the params tree).
      size: number of units K.
      incoming: axes scaled by a unit's multiplier (kernel output axis, bias).
      outgoing: axes divided by it (the next layer's kernel input axis).
      action: the activation's own symmetry, one of `ACTIONS`.
    """

    layer: str
    size: int
    incoming: tuple[Axis, ...]
    outgoing: tuple[Axis, ...]
    action: str = "permute"

    @property
    def signs(self) -> bool:
        """Units may be negated (odd or linear activation)."""
        return self.action in ("sign", "sign_scale")

    @property
    def scales(self) -> bool:
        """Units may be rescaled by c > 0 (positively homogeneous activation)."""
        return self.action in ("scale", "sign_scale")


@dataclasses.dataclass(frozen=True)
class Layer:
    """A Dense or Conv layer found in a params tree (leaf indices and dimensions)."""

    path: str
    kernel: int
    bias: int | None
    d_in: int
    d_out: int
    in_axis: int
    out_axis: int
    conv: bool
    channels_first: bool


@dataclasses.dataclass(frozen=True)
class Symmetry:
    """The symmetry group of a Dense/Conv chain: a permutation spec plus activations.

    Calling it gives the canonical form (`Problem.symmetry`'s contract: params ->
    canonical params; jit- and vmap-able). Hashable by value, so jitted analyses that
    take it as a static argument compile once per spec and shape.

    Attributes:
      groups: one `UnitGroup` per hidden layer, in forward order.
      layers: the layers' paths in forward order (the last one is the output layer).
      leaf_shapes: the shape of every params leaf (`jax.tree.leaves` order).

    Example:
      >>> sym = gdlab.symmetry.for_model(params, activation="relu")
      >>> canonical = sym(params)           # same for every permuted, rescaled copy
      >>> other = sym.random_transform(params, seed=0)   # same function, other params
    """

    groups: tuple[UnitGroup, ...]
    layers: tuple[str, ...]
    leaf_shapes: tuple[tuple[int, ...], ...]

    def __call__(self, params: PyTree) -> PyTree:
        from gdlab.symmetry.ops import canonical
        return canonical(self, params)

    def apply(self, params: PyTree, perms: Sequence[Any], multipliers: Sequence[Any]) -> PyTree:
        """params moved by one group element: per group, new unit j = old unit perms[g][j],
        its incoming weights times multipliers[g] (old unit order), outgoing divided."""
        from gdlab.symmetry.ops import transform
        return transform(self, params, perms, multipliers)

    def random_element(self, seed: int = 0, low: float = 0.5,
                       high: float = 2.0) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(perms, multipliers) of a random group element: uniform permutations, random
        signs where units may be negated, scales log-uniform in [low, high] where they
        may be rescaled."""
        rng = np.random.default_rng(seed)
        perms, mults = [], []
        for g in self.groups:
            perms.append(rng.permutation(g.size))
            m = np.ones(g.size)
            if g.scales:
                m = m * np.exp(rng.uniform(np.log(low), np.log(high), g.size))
            if g.signs:
                m = m * rng.choice([-1.0, 1.0], g.size)
            mults.append(m.astype(np.float32))
        return perms, mults

    def random_transform(self, params: PyTree, seed: int = 0) -> PyTree:
        """params moved by a random group element (`random_element(seed)`): the same
        function, other parameters."""
        return self.apply(params, *self.random_element(seed))

    def without_rescaling(self) -> Symmetry:
        """The subgroup without rescalings (e.g. under weight decay, which a rescaling
        of a relu unit changes although the function stays)."""
        drop = {"scale": "permute", "sign_scale": "sign"}
        return dataclasses.replace(self, groups=tuple(
            dataclasses.replace(g, action=drop.get(g.action, g.action)) for g in self.groups))

    def log10_order(self) -> float:
        """log10 of the finite part of the group's size: prod K! (x 2^K with signs)."""
        return sum(math.lgamma(g.size + 1) / math.log(10)
                   + (g.size * math.log10(2) if g.signs else 0.0) for g in self.groups)

    def describe(self) -> str:
        """One line per hidden layer: units and the symmetry acting on them."""
        words = {"permute": "permutations", "sign": "permutations x sign flips",
                 "scale": "permutations x positive rescaling",
                 "sign_scale": "permutations x nonzero rescaling"}
        return "; ".join(f"{g.layer}: {g.size} units, {words[g.action]}" for g in self.groups)


# --- reading layers from a params tree --------------------------------------------------


def layers_of(params_like: PyTree) -> list[Layer]:
    """Every Dense/Conv layer of a params tree, in natural order of their paths.

    A layer is a node holding a `kernel` (flax: `(..., in, out)`) or `weight` (equinox:
    `(out, in, ...)`) leaf and optionally a `bias`; nnx `State` leaves (`.value`) are
    read through. Any other leaf (a norm's scale, an embedding, ...) is an InputError:
    only Dense/Conv chains have a spec here.
    """
    nodes: dict[tuple, dict[str, tuple[int, tuple[int, ...]]]] = {}
    for index, (path, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(params_like)[0]):
        keys = [_key(k) for k in path]
        if len(keys) > 1 and keys[-1] == "value" and keys[-2] in (*KERNELS, "bias"):
            keys = keys[:-1]  # nnx Variable
        name = keys[-1] if keys else None
        if name not in (*KERNELS, "bias"):
            raise InputError(f"params leaf {jax.tree_util.keystr(path)} (shape "
                             f"{tuple(np.shape(leaf))}) is neither a kernel/weight nor a bias: "
                             "a symmetry is derived only for chains of Dense/Conv layers")
        nodes.setdefault(tuple(keys[:-1]), {})[name] = (index, tuple(np.shape(leaf)))
    if not nodes:
        raise InputError("params have no leaves: nothing to derive a symmetry from")
    return [_layer(parent, leaves) for parent, leaves in sorted(nodes.items(),
                                                                key=lambda kv: _natural(kv[0]))]


def _key(k) -> Any:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return getattr(k, attr)
    return k


def _natural(keys: tuple) -> tuple:
    """Sort key: Dense_2 before Dense_10, layers[2] before layers[10]."""
    out = []
    for k in keys:
        for chunk in re.split(r"(\d+)", str(k)):
            if chunk:
                out.append((0, int(chunk), "") if chunk.isdigit() else (1, 0, chunk))
    return tuple(out)


def _layer(parent: tuple, leaves: dict) -> Layer:
    path = "/".join(map(str, parent)) or "<root>"
    kernel_name = next((k for k in KERNELS if k in leaves), None)
    if kernel_name is None:
        raise InputError(f"layer {path!r} has a bias but no kernel/weight")
    (kernel, kshape), bias = leaves[kernel_name], leaves.get("bias")
    if len(kshape) < 2:
        raise InputError(f"layer {path!r}: {kernel_name} has shape {kshape}; expected a "
                         "Dense (2-D) or Conv (>= 3-D) kernel")
    first = kernel_name == "weight"
    out_axis, in_axis = (0, 1) if first else (len(kshape) - 1, len(kshape) - 2)
    d_out, d_in = kshape[out_axis], kshape[in_axis]
    if bias is not None and (bias[1][:1] != (d_out,) or math.prod(bias[1]) != d_out):
        raise InputError(f"layer {path!r}: bias shape {bias[1]} does not match its "
                         f"{d_out} outputs")
    return Layer(path=path, kernel=kernel, bias=None if bias is None else bias[0],
                 d_in=d_in, d_out=d_out, in_axis=in_axis, out_axis=out_axis,
                 conv=len(kshape) > 2, channels_first=first)


# --- chains and specs --------------------------------------------------------------------


def link(cur: Layer, nxt: Layer) -> Axis | None:
    """The axis of `nxt`'s kernel that `cur`'s units feed, or None if shapes do not chain."""
    if nxt.d_in == cur.d_out:
        return Axis(nxt.kernel, nxt.in_axis)
    if cur.conv and not nxt.conv and nxt.d_in % cur.d_out == 0:  # flatten
        positions = nxt.d_in // cur.d_out
        return Axis(nxt.kernel, nxt.in_axis, *((1, positions) if cur.channels_first
                                              else (positions, 1)))
    return None


def chain_spec(layers: Sequence[Layer], leaf_shapes: tuple, actions: Sequence[str]) -> Symmetry:
    """The Symmetry of `layers` as a chain in this order (an InputError if shapes break)."""
    groups = []
    for i, (cur, nxt) in enumerate(itertools.pairwise(layers)):
        out = link(cur, nxt)
        if out is None:
            raise InputError(f"layer {cur.path!r} has {cur.d_out} outputs but the next layer "
                             f"{nxt.path!r} takes {nxt.d_in} inputs: not a Dense/Conv chain")
        incoming = (Axis(cur.kernel, cur.out_axis),
                    *(() if cur.bias is None else (Axis(cur.bias, 0),)))
        groups.append(UnitGroup(cur.path, cur.d_out, incoming, (out,), actions[i]))
    return Symmetry(groups=tuple(groups), layers=tuple(layer.path for layer in layers),
                    leaf_shapes=leaf_shapes)


def chain_orders(layers: Sequence[Layer], limit: int = 24) -> list[list[Layer]]:
    """Orders of the layers in which every layer feeds the next (natural order first)."""
    if all(link(a, b) is not None for a, b in itertools.pairwise(layers)):
        found = [list(layers)]
    else:
        found = []

    def extend(order, rest):
        if len(found) >= limit:
            return
        if not rest:
            if order != list(layers):
                found.append(order)
            return
        for i, nxt in enumerate(rest):
            if not order or link(order[-1], nxt) is not None:
                extend([*order, nxt], rest[:i] + rest[i + 1:])
    if len(layers) <= 8:
        extend([], list(layers))
    return found


def leaf_shapes_of(params_like: PyTree) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(np.shape(x)) for x in jax.tree.leaves(params_like))


def actions_for(activation: Any, num_groups: int) -> list[str]:
    """Per hidden layer, the action of `activation` (a name, a known function, or one
    of those per hidden layer)."""
    if isinstance(activation, str) or callable(activation):
        return [_action(activation)] * num_groups
    if isinstance(activation, Sequence) and len(activation) == num_groups:
        return [_action(a) for a in activation]
    raise InputError(f"activation must be a name ({', '.join(sorted(_ACTION_OF))}), a known "
                     f"activation function, or a sequence of {num_groups} of those (one per "
                     f"hidden layer), got {activation!r}")


def _action(activation: Any) -> str:
    if callable(activation) and not isinstance(activation, str):
        name = _FUNCTIONS.get(id(activation))
        if name is None:
            raise InputError(f"unknown activation function {activation!r}: pass its name "
                             f"(one of {', '.join(sorted(_ACTION_OF))})")
        activation = name
    if activation not in _ACTION_OF:
        raise InputError(f"unknown activation {activation!r}; known: "
                         f"{', '.join(sorted(_ACTION_OF))}")
    return _ACTION_OF[activation]


def _known_functions() -> dict[int, str]:
    """Activation functions by id (module-level singletons of jax and flax)."""
    import flax.linen as nn
    table = {jnp.tanh: "tanh", jax.nn.relu: "relu", jax.nn.leaky_relu: "leaky_relu",
             jax.nn.gelu: "gelu", jax.nn.sigmoid: "sigmoid", jax.nn.silu: "silu",
             jax.nn.elu: "elu", jax.nn.selu: "selu", jax.nn.celu: "celu",
             jax.nn.softplus: "softplus", jax.nn.relu6: "relu6", jax.nn.soft_sign: "softsign",
             jax.nn.hard_tanh: "hard_tanh", jnp.sin: "sin", jnp.arctan: "arctan",
             nn.relu: "relu", nn.tanh: "tanh", nn.gelu: "gelu", nn.sigmoid: "sigmoid"}
    return {id(f): name for f, name in table.items()}


_FUNCTIONS = _known_functions()


def for_model(params_like: PyTree, activation: Any) -> Symmetry:
    """The Symmetry of a Dense/Conv chain, read from its params tree.

    Layers are the nodes holding a `kernel`/`weight` leaf (and a `bias`), taken in
    natural order of their paths (Dense_2 before Dense_10); use `for_problem` when the
    tree's order may not be the forward order (nnx `State` sorts attribute names).

    Args:
      params_like: params of one network (arrays or `jax.ShapeDtypeStruct`s, no seed
        axis): flax linen `{"Dense_0": {"kernel", "bias"}, ...}`, an nnx `State`, an
        equinox MLP's params.
      activation: the hidden layers' activation: a name ("relu", "tanh", "gelu", ...),
        an activation function (`jax.nn.relu`, `jnp.tanh`, ...), or one per hidden layer.

    Returns:
      A `Symmetry` (callable: the canonical form).

    Example:
      >>> p = problems.digits(model="mlp", hidden=(32, 16))
      >>> gdlab.symmetry.for_model(p.params_shape(), "relu").describe()
      'Dense_0: 32 units, permutations x positive rescaling; Dense_1: 16 units, ...'
    """
    layers = layers_of(params_like)
    if len(layers) < 2:
        raise InputError(f"params hold {len(layers)} layer(s): no hidden units to permute")
    return chain_spec(layers, leaf_shapes_of(params_like),
                      actions_for(activation, len(layers) - 1))
