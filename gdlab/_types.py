"""The shape legend and the type aliases every module shares.

Arrays whose shapes matter carry suffixes (`loss_SE`, `params_S`, `x_ND`): one letter per
axis, one meaning per letter, everywhere in gdlab:

  S  seeds (the leading axis of `Runs`; one seed = one init and one data order)
  L  lanes: (seed, hyperparameter) pairs trained side by side in one compiled call
  G  grid points of a hyperparameter sweep (e.g. learning rates)
  T  training steps
  E  evaluations (loss measurements) along training
  B  mini-batch examples
  K  batch sizes of a batch-size sweep
  N  data points
  P  parameters of one seed (raveled)
  M  minima (or endpoint pairs, for path arrays)
  C  checkpoints along training (noise-scale tracking)
  D  input dimension
  H  hidden units of one layer
  R  repetitions inside one timed call

Words for groups of seeds and steps (the engine's vocabulary):
  seed block   seeds vmapped together on one device (`seed_block`); bounds temporaries
  seed group   seeds trained by one call of the compiled program (`seeds_per_call`);
               bounds the state held in memory
  chunk        steps run by one compiled call between host checks (`chunk_steps`)
  checkpoint   saved state of a running `train`, to resume from
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

PyTree = Any
Params = Any  # a pytree of float arrays: one seed's parameters
Batch = Any  # a pytree of arrays sharing leading axis B (or N), or None
InitFn = Callable[[jax.Array], Params]
LossFn = Callable[[Params, Batch], jax.Array]
