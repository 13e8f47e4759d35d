# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # Results as data: runs, minima and sweeps in pandas, and plots of them
#
# Train Himmelblau's surface from many seeds, save the run, load it back, map its minima,
# and read everything as DataFrames. `GDLAB_EXAMPLES_SMOKE=1` uses fewer seeds.

# %%
import os
import tempfile
from pathlib import Path

from matplotlib.figure import Figure

import gdlab
from gdlab import problems

SMOKE = os.environ.get("GDLAB_EXAMPLES_SMOKE") == "1"
out = Path(tempfile.mkdtemp())
problem = problems.himmelblau()
config = gdlab.TrainConfig(learning_rate=0.01, steps=1000, eval_every=50)
gdlab.train(problem, config, seeds=256 if SMOKE else 4096, out=out / "run", progress=False)

# %%
runs = gdlab.load_runs(out / "run")
atlas = gdlab.find_minima(problem, runs)
seeds = runs.to_dataframe(atlas)          # one row per seed
minima = atlas.to_dataframe()             # one row per minimum, with 95% intervals
print(minima[["minimum", "loss", "count", "fraction", "fraction_lo", "fraction_hi"]])
assert len(minima) == 4 and seeds["minimum"].ge(0).all()

# %%
fig = Figure(figsize=(6, 3), layout="constrained")
ax = fig.subplots()
for m, group in seeds.groupby("minimum"):
    ax.hist(group["final_loss"] + 1e-16, bins=20, alpha=0.6, label=f"minimum {m}")
ax.set_xscale("log")
ax.set_xlabel("final loss")
ax.set_ylabel("seeds")
ax.legend()
fig.savefig(out / "final_loss_by_minimum.png")

# %% [markdown]
# A learning-rate sweep as a frame: one row per grid point and seed.

# %%
sweep = gdlab.sweep(problem, config, seeds=64, learning_rate=[0.001, 0.003, 0.01])
frame = sweep.to_dataframe()
print(frame.groupby("learning_rate")["final_loss"].median())
