"""What a run records to be reproduced and audited: config, seeds, versions, devices."""

from __future__ import annotations

import datetime
import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from gdlab.config import TrainConfig
from gdlab.core import devices as dev
from gdlab.problem import Problem


def manifest(problem: Problem, config: TrainConfig, seed_ids, key, mesh, seed_block: int) -> dict:
    """What is needed to reproduce and audit a run."""
    import flax
    import jaxlib
    import optax
    contiguous = bool(np.all(seed_ids == np.arange(len(seed_ids))))
    return {
        "problem": {"name": problem.name, "spec": problem.spec,
                    "description": problem.description,
                    "num_params": problem.num_params(), "num_data": problem.num_data},
        "config": config.describe(),
        "key": np.asarray(jax.random.key_data(key)).tolist(),
        "seeds": {"count": len(seed_ids), "contiguous_from_zero": contiguous},
        "versions": {"gdlab": _gdlab_version(), "python": platform.python_version(),
                     "jax": jax.__version__,
                     "jaxlib": jaxlib.__version__, "optax": optax.__version__,
                     "flax": flax.__version__, "numpy": np.__version__},
        "devices": dev.describe(mesh.devices.flat), "processes": jax.process_count(),
        "seed_block": seed_block,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "git_revision": git_revision(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The gdlab checkout's git revision (with "-dirty" when modified), if any."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout
        return rev.stdout.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def _gdlab_version() -> str:
    from importlib import metadata
    try:
        return metadata.version("gdlab")
    except metadata.PackageNotFoundError:
        return "0+unknown"
