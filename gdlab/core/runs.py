"""Runs: every seed's result of one `gdlab.train` call, and its run directory on disk."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from gdlab._checks import InputError
from gdlab.core import store

FORMAT_VERSION = 1
_ARRAY_FIELDS = ("final_loss", "loss_history", "eval_steps", "eval_seconds", "diverged_at",
                 "seed_ids")


@dataclasses.dataclass(frozen=True, eq=False)
class Runs:
    """The result of training S seeds of one problem with one config.

    Attributes:
      params: final params, a pytree whose every leaf has leading axis S (NumPy arrays).
      init_params: the starting params of every seed, same structure.
      final_loss: (S,) loss on the evaluation data at the last step.
      loss_history: (S, E) loss at each evaluation (the first one is at step 0).
      eval_steps: (E,) step count at each evaluation.
      eval_seconds: (E,) wall seconds since training started, at each evaluation.
      diverged_at: (S,) step whose update gave non-finite params (-1 = never); a
        diverged seed keeps its last finite params and takes no further steps.
      seed_ids: (S,) the seed ids; seed i depends only on the run key and seed_ids[i].
      timings: compile_seconds, train_seconds, eval_seconds (first_eval_seconds of them
        the step-0 measurement), total_seconds,
        seed_steps_per_second.
      manifest: config, problem, key, versions, devices, XLA flags, git revision.
      trajectory: params of the first K seeds at every evaluation, leaves shaped
        (K, E, ...), when `train(..., trajectories=K)` asked for them; else None.
    """

    params: Any
    init_params: Any
    final_loss: np.ndarray
    loss_history: np.ndarray
    eval_steps: np.ndarray
    eval_seconds: np.ndarray
    diverged_at: np.ndarray
    seed_ids: np.ndarray
    timings: dict[str, float]
    manifest: dict[str, Any]
    trajectory: Any = None

    @property
    def diverged(self) -> np.ndarray:
        """(S,) bool: the seed's params became non-finite at some step."""
        return self.diverged_at >= 0

    @property
    def num_seeds(self) -> int:
        return int(self.seed_ids.shape[0])

    def summary(self) -> dict[str, Any]:
        """Final-loss quantiles, diverged count and timings, for tables and reports."""
        finite = self.final_loss[np.isfinite(self.final_loss)]
        qs = np.quantile(finite, [0.0, 0.25, 0.5, 0.75, 1.0]) if finite.size else [np.nan] * 5
        return {"seeds": self.num_seeds, "diverged": int(self.diverged.sum()),
                "loss_min": float(qs[0]), "loss_q25": float(qs[1]), "loss_median": float(qs[2]),
                "loss_q75": float(qs[3]), "loss_max": float(qs[4]), **self.timings}

    @classmethod
    def from_endpoints(cls, problem, params_S: Any, init_params_S: Any = None) -> Runs:
        """Runs holding given endpoints (e.g. trained elsewhere), for the analyses.

        The final loss is evaluated on the problem's full data; no training history.
        """
        import jax
        import jax.numpy as jnp
        params_S = jax.tree.map(np.asarray, params_S)
        loss = jax.vmap(problem.loss, (0, None))(jax.tree.map(jnp.asarray, params_S),
                                                 problem.data)
        s = int(np.shape(jax.tree.leaves(params_S)[0])[0])
        loss = np.asarray(loss, np.float32)
        return cls(params=params_S, init_params=params_S if init_params_S is None
                   else init_params_S, final_loss=loss, loss_history=loss[:, None],
                   eval_steps=np.zeros(1, np.int64), eval_seconds=np.zeros(1),
                   diverged_at=np.full(s, -1, np.int32), seed_ids=np.arange(s),
                   timings={}, manifest={"problem": {"name": problem.name},
                                         "source": "from_endpoints"})

    def save(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the run directory atomically (arrays first, metadata last).

        Refuses a directory that already holds a run unless `overwrite=True`.
        """
        path = store.check_writable(directory, overwrite)
        arrays = {name: np.asarray(getattr(self, name)) for name in _ARRAY_FIELDS}
        trees = {"params": store.encode_tree(self.params, "params", arrays),
                 "init_params": store.encode_tree(self.init_params, "init_params", arrays)}
        if self.trajectory is not None:
            trees["trajectory"] = store.encode_tree(self.trajectory, "trajectory", arrays)
        store.write_arrays(path / store.ARRAYS, arrays)
        store.write_json(path / store.METADATA, {
            "format_version": FORMAT_VERSION, "trees": trees, "timings": self.timings,
            "manifest": self.manifest})
        return path


def load_runs(directory: str | os.PathLike) -> Runs:
    """Load a run directory written by `Runs.save`; arrays round-trip bit for bit."""
    path = Path(directory)
    if not store.holds_run(path):
        raise InputError(f"{str(path)!r} holds no saved run (no {store.METADATA})")
    meta = json.loads((path / store.METADATA).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{str(path)!r}: run format {meta.get('format_version')!r} is not "
                         f"supported (this gdlab reads format {FORMAT_VERSION})")
    arrays = store.read_arrays(path / store.ARRAYS)
    return Runs(params=store.decode_tree(meta["trees"]["params"], arrays),
                init_params=store.decode_tree(meta["trees"]["init_params"], arrays),
                **{name: arrays[name] for name in _ARRAY_FIELDS},
                timings=meta["timings"], manifest=meta["manifest"],
                trajectory=store.decode_tree(meta["trees"]["trajectory"], arrays)
                if "trajectory" in meta["trees"] else None)
