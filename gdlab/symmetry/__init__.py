"""Symmetries of networks: transformations of the parameters that leave the function
unchanged (hidden-unit permutations, sign flips, positive rescalings), canonical forms
and weight matching (`align`).

A layer of its own, below the landscape and the atlas: barriers after alignment and
classes modulo symmetry both use it.

- `spec`: the permutation spec of a Dense/Conv chain (`Symmetry`, `for_model`), with
  the activation's own symmetry per hidden layer (sign flips, positive rescalings);
- `derive`: `for_problem`, a problem's spec derived from its model and checked on it;
- `ops`: group actions and the canonical form (calling a `Symmetry`);
- `match`: weight matching (`align`);
- `tanh`: the earlier tanh-MLP canonical form and matching (kept for its callers).
"""

from gdlab.symmetry.derive import SymmetryNote, for_problem
from gdlab.symmetry.match import align, symmetry_of
from gdlab.symmetry.spec import ACTIONS, Axis, Symmetry, UnitGroup, for_model, layers_of
from gdlab.symmetry.tanh import align_tanh_mlp, tanh_mlp_canonical

__all__ = ["ACTIONS", "Axis", "Symmetry", "SymmetryNote", "UnitGroup", "align",
           "align_tanh_mlp", "for_model", "for_problem", "layers_of", "symmetry_of",
           "tanh_mlp_canonical"]
