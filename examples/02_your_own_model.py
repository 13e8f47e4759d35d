# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # Your own model and data: a flax nnx MLP on scikit-learn's digits
#
# A model written with flax nnx, real data (1797 8x8 images, a stratified 1400/397
# split), many seeds trained at once, test accuracy measured during training, and a
# learning-rate sweep compiled once. `GDLAB_EXAMPLES_SMOKE=1` shrinks seeds and steps.

# %%
import os

import flax.nnx as nnx
import jax
import numpy as np
import pandas as pd

import gdlab
from gdlab import problems

SMOKE = os.environ.get("GDLAB_EXAMPLES_SMOKE") == "1"
SEEDS, STEPS = (16, 200) if SMOKE else (256, 2000)

split = problems.datasets.digits_split()   # standardised, fixed split
print(split.x_train.shape, split.x_test.shape)


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, 32, rngs=rngs)
        self.out = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.hidden(x)))


problem = problems.from_nnx(MLP, split.x_train, split.y_train, problems.cross_entropy,
                            metrics=problems.CLASSIFICATION_METRICS,
                            test=(split.x_test, split.y_test), name="digits-nnx")
print(problem.symmetry.describe())   # derived from the model: permutations, ReLU rescaling

# %%
config = gdlab.TrainConfig(optimizer="adam", learning_rate=3e-3, steps=STEPS, batch_size=32,
                           eval_every=STEPS // 10)
runs = gdlab.train(problem, config, seeds=SEEDS, progress=False)
acc = runs.final("test/accuracy")
print(f"test accuracy over {SEEDS} seeds: {acc.mean():.4f} +- {acc.std():.4f} "
      f"[{acc.min():.4f}, {acc.max():.4f}]")

# %% [markdown]
# A second call with the same shapes compiles nothing (`cache_hit`), and a sweep trains
# every learning rate x seed in one compiled program.

# %%
again = gdlab.train(problem, config, seeds=SEEDS, progress=False)
print("compile seconds", again.timings["compile_seconds"], "cache hit",
      again.timings.get("cache_hit"))
np.testing.assert_array_equal(runs.final_loss, again.final_loss)

sweep = gdlab.sweep(problem, config, seeds=SEEDS // 2, learning_rate=[1e-3, 3e-3, 1e-2, 3e-2, 1e-1])
header, rows = sweep.table(metrics=("test/accuracy",))
print(pd.DataFrame(rows, columns=header))
print("best learning rate by test accuracy:", sweep.best(metric="test/accuracy"))
