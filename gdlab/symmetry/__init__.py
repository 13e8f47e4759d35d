"""Symmetries of networks: transformations of the parameters that leave the function
unchanged (hidden-unit permutations, sign flips, positive rescalings), canonical forms
and weight matching (`align`).

A layer of its own, below the landscape and the atlas: barriers after alignment and
classes modulo symmetry both use it.
"""

from gdlab.symmetry.tanh import align_tanh_mlp, tanh_mlp_canonical

__all__ = ["align_tanh_mlp", "tanh_mlp_canonical"]
