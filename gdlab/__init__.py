"""gdlab: a lab for gradient descent.

Train thousands of random seeds of a problem at once (JIT-compiled `jax.grad`, `lax.scan`
over steps, `jax.vmap` over seeds, sharded over devices) and study where they land.

Example:
  >>> import gdlab
  >>> from gdlab import problems
  >>> cfg = gdlab.TrainConfig(optimizer="sgd", learning_rate=1e-2, steps=2000, eval_every=100)
  >>> runs = gdlab.train(problems.himmelblau(), cfg, seeds=4096, key=0)
"""

from gdlab import problems
from gdlab.config import TrainConfig
from gdlab.minima import Atlas, Minimum, find_minima
from gdlab.problem import KnownMinimum, Problem
from gdlab.runs import Runs, load_runs
from gdlab.train import train

__version__ = "0.1.0"
__all__ = ["Atlas", "KnownMinimum", "Minimum", "Problem", "Runs", "TrainConfig", "find_minima",
           "load_runs", "problems", "train"]
