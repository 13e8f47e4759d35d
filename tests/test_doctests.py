"""The public examples in docstrings run and give what they show."""

import doctest
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdlab
from gdlab import problems

# Modules whose examples are runnable as written (others show illustrative calls on
# results the reader has, e.g. `runs`, and say so).
MODULES = ["gdlab", "gdlab.config", "gdlab.problem", "gdlab.core.train", "gdlab.core.sweep",
           "gdlab.batch.scaling", "gdlab.problems.adapters", "gdlab.problems.datasets"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), report=True,
                             extraglobs={"gdlab": gdlab, "problems": problems, "jax": jax,
                                         "jnp": jnp, "np": np},
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples to run"
    assert result.failed == 0
