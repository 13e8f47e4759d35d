# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # The main study: convex versus non-convex
#
# Many seeds of gradient descent on convex problems (least squares, logistic regression,
# a quadratic) and non-convex ones (Himmelblau, six-hump camel, Styblinski-Tang, a
# teacher-student MLP); `gdlab.find_minima` maps where they land. Open this file in
# Jupyter with jupytext (`jupytext --to notebook 01_main_study.py`), or run it as a script.
# `GDLAB_EXAMPLES_SMOKE=1` runs the study's smoke mode (seconds) instead of the full one
# (about a minute on a 2-core CPU).

# %%
import dataclasses
import os
import tempfile
from pathlib import Path

import pandas as pd

import gdlab
from gdlab.experiments import convexity

SMOKE = os.environ.get("GDLAB_EXAMPLES_SMOKE") == "1"
config = convexity.get_config(smoke=SMOKE)
if SMOKE:  # two problems: a convex one and Himmelblau
    config = dataclasses.replace(config, entries=config.entries[:2])
out = Path(tempfile.mkdtemp()) / "convexity"
convexity.run(config, out=out)

# %% [markdown]
# Every table of the report is a CSV beside it: one row per problem here.

# %%
summary = pd.read_csv(out / "summary.csv")
summary[["problem", "surface", "seeds", "minima", "modulo_symmetry", "functions", "chao1"]]

# %% [markdown]
# Convex problems have one minimum; every seed reaches it.

# %%
convex = summary[summary.surface == "convex"]
assert (convex.minima == 1).all(), convex
print(convex[["problem", "minima", "median_final_loss"]].to_string(index=False))

# %% [markdown]
# Per seed: which minimum Himmelblau's seeds reached (its four minima take a quarter each).

# %%
seeds = pd.read_csv(out / "himmelblau" / "seeds.csv")
print(seeds.groupby("minimum").size() / len(seeds))
runs = gdlab.load_runs(out / "himmelblau")   # the saved run itself
print(runs.num_seeds, "seeds, final loss median", float(pd.Series(runs.final_loss).median()))
