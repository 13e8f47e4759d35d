"""Runs: every seed's result of one `gdlab.train` call, and its run directory on disk."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gdlab._checks import InputError, check_type
from gdlab.core import store
from gdlab.problem import Problem

FORMAT_VERSION = 2  # 2: leaves keyed by tree path, any pytree, arrays' SHA-256 (1: gdlab 0.2)
_READABLE = (1, 2)
_TREES = {"params": 1, "init_params": 1, "trajectory": 2}  # leading axes: (S,) or (K, E)
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
      metrics: {"train/loss": (S, E), "train/<metric>", "test/loss", "test/<metric>"}: the
        loss and every `problem.metrics` on the training data (or `eval_data`, then the
        prefix is "eval/") and on `problem.test_data`, at each evaluation.
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
    metrics: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def final(self, name: str) -> np.ndarray:
        """(S,) last measurement of metric `name` (e.g. "test/accuracy")."""
        if name not in self.metrics:
            raise InputError(f"no metric {name!r} in these runs; measured: "
                             f"{', '.join(self.metrics) or 'none'}")
        return self.metrics[name][:, -1]

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

    def to_dataframe(self, atlas: Any = None):
        """A pandas DataFrame with one row per seed: seed id, final loss, the last value of
        every metric ("final/<name>"), diverged step (-1 = never), the best measured train
        loss and its step; with an `atlas` of these runs, its label and status per seed.

        Example:
          >>> frame = runs.to_dataframe()       # doctest: +SKIP
          >>> frame.sort_values("final/test/accuracy").tail()  # doctest: +SKIP
        """
        import pandas as pd
        best = np.nanargmin(np.where(np.isfinite(self.loss_history), self.loss_history,
                                     np.nan), axis=1) if self.loss_history.size and \
            np.isfinite(self.loss_history).any(axis=1).all() else None
        columns = {"seed_id": self.seed_ids, "final_loss": self.final_loss,
                   "diverged_at": self.diverged_at}
        columns.update({f"final/{k}": v[:, -1] for k, v in self.metrics.items()})
        if best is not None:
            columns["best_loss"] = self.loss_history[np.arange(self.num_seeds), best]
            columns["best_step"] = self.eval_steps[best]
        if atlas is not None:
            if len(atlas.labels) != self.num_seeds:
                raise InputError(f"the atlas has {len(atlas.labels)} seeds, these runs "
                                 f"{self.num_seeds}: map the minima of these runs")
            columns.update(minimum=atlas.labels, status=atlas.status)
        return pd.DataFrame(columns)

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
        """Write the run directory as one atomic switch: the old save or the new, never a mix.

        Params may be any pytree of arrays (dicts, NamedTuples, flax nnx State, equinox
        modules, ...). Other files in the directory (report, figures, checkpoints) are
        kept; see `gdlab.core.store` for the protocol.

        Args:
          directory: the run directory (created if missing).
          overwrite: replace a run already saved there (else an InputError).

        Returns:
          The run directory.
        """
        arrays = {name: np.asarray(getattr(self, name)) for name in _ARRAY_FIELDS}
        arrays.update({f"metrics/{k}": np.asarray(v) for k, v in self.metrics.items()})
        trees = {name: store.encode_tree(getattr(self, name), name, arrays)
                 for name in _TREES if name != "trajectory" or self.trajectory is not None}
        return store.save_run(directory, arrays, {
            "format_version": FORMAT_VERSION, "trees": trees, "timings": self.timings,
            "manifest": self.manifest}, overwrite)


def load_runs(directory: str | os.PathLike, problem: Problem | None = None) -> Runs:
    """Load a run directory written by `Runs.save`; arrays round-trip bit for bit.

    Args:
      directory: the run directory (gdlab 0.2 runs load too).
      problem: the run's `gdlab.Problem`: params are rebuilt into the exact pytree of
        `problem.params_shape()` (paths, shapes and dtypes checked). Without it, dict,
        list, tuple and None nodes are rebuilt exactly and any other node (NamedTuple,
        nnx State, equinox module, ...) as a dict keyed by its path segments, with a
        warning that says so.

    Returns:
      The `gdlab.Runs`; an InputError naming the file if the run is damaged or torn.
    """
    path, meta, arrays = store.read_run(directory)
    version = meta.get("format_version")
    if version not in _READABLE:
        raise InputError(f"run {str(path)!r}: format {version!r} is not supported (this gdlab "
                         f"reads formats {', '.join(map(str, _READABLE))})")
    like = _params_like(problem)
    replaced: set[str] = set()
    trees = {name: _load_tree(meta["trees"][name], arrays, like, lead, name, replaced)
             for name, lead in _TREES.items() if name in meta["trees"]}
    if replaced:
        warnings.warn(f"run {str(path)!r}: its params hold {', '.join(sorted(replaced))} nodes, "
                      "which cannot be rebuilt without their classes; they are returned as "
                      "dicts keyed by path segments. Pass problem= to load_runs for the exact "
                      "pytree", stacklevel=2)
    missing = [name for name in _ARRAY_FIELDS if name not in arrays]
    if missing:
        raise InputError(f"run {str(path)!r}: {store.ARRAYS} lacks {', '.join(missing)}")
    return Runs(**trees, **{name: arrays[name] for name in _ARRAY_FIELDS},
                metrics={k.removeprefix("metrics/"): v for k, v in arrays.items()
                         if k.startswith("metrics/")},
                timings=meta["timings"], manifest=meta["manifest"])


def _params_like(problem: Problem | None) -> Any:
    if problem is None:
        return None
    check_type("problem", problem, Problem, "a gdlab.Problem (the run's problem) or None")
    return problem.params_shape()


def _load_tree(skeleton: dict, arrays: dict[str, np.ndarray], like: Any, lead: int, name: str,
               replaced: set[str]) -> Any:
    """One saved pytree: into `like`'s structure when given, else from its skeleton."""
    if like is None:
        return store.decode_tree(skeleton, arrays, replaced)
    return store.unflatten_like(like, store.saved_leaves(skeleton, arrays), lead, name)


class UnsavedRun(OSError):
    """Training finished but its run could not be written where asked.

    Attributes:
      runs: the `Runs`, still in memory.
      rescued: where the run was saved instead (None if that failed too).
    """

    def __init__(self, message: str, runs: Runs, rescued: Path | None):
        super().__init__(message)
        self.runs, self.rescued = runs, rescued


def save_or_rescue(runs: Runs, directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """`runs.save(directory)`; if that fails, save to a temporary directory and say where.

    Args:
      runs: the run to save.
      directory: the run directory.
      overwrite: replace a run already saved there.

    Returns:
      The run directory; raises `UnsavedRun` (naming the rescue directory) if the save
      failed (disk full, directory removed or made read-only during training, ...).
    """
    try:
        return runs.save(directory, overwrite=overwrite)
    except (OSError, InputError) as err:
        name = str(runs.manifest.get("problem", {}).get("name", "run"))
        try:
            rescued = runs.save(Path(tempfile.mkdtemp(prefix=f"gdlab-unsaved-{name[:40]}-")),
                                overwrite=True)
        except (OSError, InputError) as again:
            raise UnsavedRun(f"the run could not be saved to {str(directory)!r} ({err}), nor to "
                             f"a temporary directory ({again}); the Runs object is attached "
                             "to this error as .runs", runs, None) from err
        raise UnsavedRun(f"the run could not be saved to {str(directory)!r} ({err}); it was "
                         f"saved to {str(rescued)!r} instead: load it from there, or move it "
                         "once the problem is fixed", runs, rescued) from err
