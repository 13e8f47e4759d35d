"""A problem's symmetry, derived from its model and checked on the model itself.

`for_problem(problem)` reads the Dense/Conv layers from the params tree, tries the
orders in which their shapes chain (the tree's own order first: an nnx `State` sorts
attribute names, so "head" may come before "layers"), and keeps the first order under
which a random permutation of every hidden layer leaves the model's outputs unchanged
on a few training inputs. The activation's symmetry is then found the same way, per
hidden layer (or checked, when `activation` is given): random sign flips of one layer's
units, random positive rescalings of them. A residual connection, a normalisation layer
or attention breaks the chain and the derivation fails with an InputError saying so.

Checks run the model (one compiled, vmapped call) on a handful of training inputs at
random params drawn from the shapes alone (kernels N(0, 1/fan_in), biases N(0, 0.1)),
so zero-initialised biases or output layers cannot hide a broken symmetry and no
initialiser runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from gdlab._checks import InputError
from gdlab.problem import Problem
from gdlab.symmetry.spec import (
    Symmetry,
    actions_for,
    chain_orders,
    chain_spec,
    layers_of,
    leaf_shapes_of,
)

PyTree = Any
PROBE_EXAMPLES = 8
RTOL = 1e-4  # of the outputs' scale: float32 rounding of a rescaled chain is ~1e-6


class SymmetryNote(UserWarning):
    """An adapter could not derive its model's symmetry (`problem.symmetry` is None)."""


def for_problem(problem: Problem, activation: Any = None, *, seed: int = 0) -> Symmetry:
    """The Symmetry of a problem's model, derived from its params and checked on it.

    Args:
      problem: a Problem with `predict` and training data (the adapters' problems).
      activation: the hidden activation (a name, a function, or one per hidden layer),
        checked on the model; None finds each layer's from the model (sign flips are a
        symmetry: odd; positive rescalings: homogeneous; neither: permutations only).
      seed: seed of the random checks.

    Returns:
      A `Symmetry`.

    Raises:
      InputError: the params are not a Dense/Conv chain, no order of the layers is one
        whose units can be permuted, or the given activation's symmetry changes the
        model's outputs.

    Example:
      >>> p = problems.from_nnx(MyMLP, x, y, problems.cross_entropy, symmetry=None)
      >>> gdlab.symmetry.for_problem(p).describe()
    """
    if problem.predict is None or problem.data is None:
        raise InputError(f"problem {problem.name!r} has no predict function or no data: "
                         "use gdlab.symmetry.for_model(params, activation) instead")
    shapes = problem.params_shape()
    layers = layers_of(shapes)
    if len(layers) < 2:
        raise InputError(f"problem {problem.name!r} has {len(layers)} layer(s): no hidden "
                         "units to permute")
    probe = _Probe.of(problem, layers, seed)
    orders = chain_orders(layers)
    for i, order in enumerate(orders):
        sym = chain_spec(order, leaf_shapes_of(shapes), ["permute"] * (len(order) - 1))
        if activation is not None:
            sym = _with_actions(sym, actions_for(activation, len(sym.groups)))
        # One model call checks the order and, under it, the activation's symmetry.
        moves = [(sym, sym.random_element(seed)[0], _ones(sym)), *_activation_moves(sym, seed)]
        ok = probe.unchanged_all(moves)
        if ok[0]:
            return _concluded(problem.name, sym, activation, ok[1:])
        if i == 0 and len(orders) > 1:
            continue
    raise _not_a_chain(problem.name, layers, orders)


def _ones(sym: Symmetry) -> list[np.ndarray]:
    return [np.ones(g.size, np.float32) for g in sym.groups]


def _activation_moves(sym: Symmetry, seed: int) -> list:
    """Moves checking the activation: the given one's random element, or per hidden
    layer a random sign flip and a random rescaling of that layer alone."""
    if any(g.action != "permute" for g in sym.groups):
        return [(sym, *sym.random_element(seed))]
    rng = np.random.default_rng(seed)
    ident = [np.arange(g.size) for g in sym.groups]
    moves = []
    for i, g in enumerate(sym.groups):
        signs = np.where(np.arange(g.size) % 2 == 0, -1.0, 1.0)[rng.permutation(g.size)]
        scales = np.exp(rng.uniform(np.log(0.5), np.log(2.0), g.size))
        for m in (signs, scales):
            mults = _ones(sym)
            mults[i] = m.astype(np.float32)
            moves.append((sym, ident, mults))
    return moves


def _concluded(name: str, sym: Symmetry, activation: Any, ok: np.ndarray) -> Symmetry:
    """The spec with the activation's symmetry the checks confirmed (or an InputError)."""
    if activation is not None and any(g.action != "permute" for g in sym.groups):
        if not ok[0]:
            raise InputError(f"problem {name!r}: with activation={activation!r} a random "
                             f"element of its symmetry ({sym.describe()}) changes the "
                             "model's outputs: is that the hidden layers' activation?")
        return sym
    if activation is not None:  # the activation adds nothing to the permutations
        return sym
    names = {(False, False): "permute", (True, False): "sign", (False, True): "scale",
             (True, True): "sign_scale"}
    pairs = ok.reshape(len(sym.groups), 2)
    return _with_actions(sym, [names[(bool(odd), bool(hom))] for odd, hom in pairs])


def _not_a_chain(name: str, layers, orders) -> InputError:
    paths = [layer.path for layer in layers]
    why = ("their shapes do not chain in any order" if not orders else
           f"permuting hidden units changes the outputs in each of the {len(orders)} orders "
           "whose shapes chain (residual connections, normalisation, attention or pooling "
           "across channels?)")
    return InputError(f"problem {name!r}: layers {paths} are not a plain Dense/Conv chain: "
                      f"{why}; pass symmetry=None, or your own Symmetry")


@dataclasses.dataclass
class _Probe:
    """Random params of the model, a few inputs and (after the first check) the
    outputs there."""

    predict: Any
    params: PyTree
    batch: PyTree
    outputs: np.ndarray | None = None

    @classmethod
    def of(cls, problem: Problem, layers, seed: int) -> _Probe:
        rng = np.random.default_rng(seed)
        fan_in = {layer.kernel: max(1, _size(shapes) // layer.d_out)
                  for layer, shapes in ((lay, _shape_of(problem, lay.kernel)) for lay in layers)}
        leaves, treedef = jax.tree.flatten(problem.params_shape())
        params = jax.tree.unflatten(treedef, [
            (rng.standard_normal(s.shape) / np.sqrt(fan_in.get(i, 10.0))).astype(s.dtype)
            for i, s in enumerate(leaves)])
        batch = jax.tree.map(lambda a: np.asarray(a)[:PROBE_EXAMPLES], problem.data)
        return cls(problem.predict, params, batch)

    def unchanged(self, sym: Symmetry, perms, mults) -> bool:
        return bool(self.unchanged_all([(sym, perms, mults)])[0])

    def unchanged_all(self, moves: list) -> np.ndarray:
        """(K,) bool per (sym, perms, mults): the outputs stay (one vmapped eager call,
        the unmoved params included the first time)."""
        moved = [sym.apply(self.params, perms, mults) for sym, perms, mults in moves]
        first = self.outputs is None
        stacked = jax.tree.map(lambda *xs: np.stack(xs), *([self.params] if first else []),
                               *moved)
        run = jax.jit(jax.vmap(self.predict, (0, None)))  # one compile beats eager ops
        out = np.asarray(run(stacked, self.batch), np.float64)
        if first:
            self.outputs, out = out[0], out[1:]
        scale = 1.0 + float(np.max(np.abs(self.outputs)))
        err = np.abs(out - self.outputs[None]).reshape(len(moves), -1).max(axis=1)
        return err <= RTOL * scale


def _shape_of(problem: Problem, leaf: int) -> tuple[int, ...]:
    return tuple(jax.tree.leaves(problem.params_shape())[leaf].shape)


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape))


def _with_actions(sym: Symmetry, actions) -> Symmetry:
    groups = tuple(dataclasses.replace(g, action=a) for g, a in zip(sym.groups, actions,
                                                                     strict=True))
    return dataclasses.replace(sym, groups=groups)
