"""An Atlas on disk: saved whole with one atomic switch (the store's run format), loaded
back equal, its minima's params rebuilt in the problem's exact pytree when given one.

The directory holds `arrays.npz` (per-seed labels, status, gradient norms, Hessian
extremes; per-minimum scalars and stacked params; the endpoints' classification) and
`runs.json` (kind "atlas", counts, tolerances, the arrays' SHA-256), written by
`gdlab.core.store.save_run`, so a killed save leaves the previous atlas or the new one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from gdlab._checks import InputError
from gdlab.atlas.minima import Atlas, Endpoints, Minimum
from gdlab.core import store
from gdlab.problem import Problem

KIND = "atlas"
FORMAT = 1
_SCALARS = ("loss", "count", "fraction", "kind", "mean_distance", "max_distance",
            "hessian_min", "hessian_max", "symmetry_class", "function_class")


def save_atlas(atlas: Atlas, directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save `atlas` in `directory` (created if missing); returns the directory.

    Example:
      >>> atlas.save("runs/ts/atlas")                      # doctest: +SKIP
      >>> gdlab.load_atlas("runs/ts/atlas", problem=p)     # doctest: +SKIP
    """
    arrays = {"labels": np.asarray(atlas.labels), "status": np.asarray(atlas.status, "U16"),
              "grad_norm": np.asarray(atlas.grad_norm),
              "hessian_extremes": np.asarray(atlas.hessian_extremes)}
    for name in _SCALARS:
        arrays[f"minima/{name}"] = np.asarray([getattr(m, name) for m in atlas.minima],
                                              "U16" if name == "kind" else None)
    arrays["minima/ci"] = np.asarray([m.ci for m in atlas.minima], np.float64).reshape(-1, 2)
    skeleton = None
    if atlas.minima:
        stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                               *[m.params for m in atlas.minima])
        skeleton = store.encode_tree(stacked, "minima/params", arrays)
    endpoints = None
    if atlas.endpoints is not None:
        e = atlas.endpoints
        for name in ("grad_norm", "hessian_extremes", "diverged"):
            arrays[f"endpoints/{name}"] = np.asarray(getattr(e, name))
        arrays["endpoints/status"] = np.asarray(e.status, "U16")  # object arrays: str
        endpoints = {"grad_tol": e.grad_tol, "hess_tol": e.hess_tol,
                     "init_grad_norm_median": e.init_grad_norm_median}
    metadata = {"kind": KIND, "format": FORMAT, "num_minima": atlas.num_minima,
                "num_symmetry_classes": atlas.num_symmetry_classes,
                "num_function_classes": atlas.num_function_classes, "chao1": atlas.chao1,
                "tolerances": atlas.tolerances, "params_tree": skeleton,
                "endpoints": endpoints}
    return store.save_run(directory, arrays, metadata, overwrite=overwrite)


def load_atlas(directory: str | os.PathLike, problem: Problem | None = None) -> Atlas:
    """The Atlas saved in `directory` by `Atlas.save`; with `problem`, each minimum's
    params in the problem's exact pytree (nnx State, equinox module, ...), else as
    nested dicts keyed by path segments."""
    path, meta, arrays = store.read_run(directory)
    if meta.get("kind") != KIND:
        raise InputError(f"{str(path)!r} holds a saved run, not an atlas; load it with "
                         "gdlab.load_runs, or save an atlas with atlas.save(directory)")
    params = _minima_params(meta, arrays, problem, path)
    minima = [Minimum(params=params[i], ci=tuple(float(c) for c in arrays["minima/ci"][i]),
                      **{name: _scalar(arrays[f"minima/{name}"][i]) for name in _SCALARS})
              for i in range(meta["num_minima"])]
    endpoints = None
    if meta["endpoints"] is not None:
        endpoints = Endpoints(**{name: arrays[f"endpoints/{name}"] for name in
                                 ("grad_norm", "hessian_extremes", "diverged")},
                              status=arrays["endpoints/status"].astype(object),
                              **meta["endpoints"])
    return Atlas(labels=arrays["labels"], status=arrays["status"].astype(object),
                 minima=minima, grad_norm=arrays["grad_norm"],
                 hessian_extremes=arrays["hessian_extremes"],
                 num_symmetry_classes=meta["num_symmetry_classes"],
                 num_function_classes=meta["num_function_classes"], chao1=meta["chao1"],
                 tolerances=meta["tolerances"], endpoints=endpoints)


def _minima_params(meta: dict, arrays: dict, problem: Problem | None, path: Path) -> list:
    if meta["params_tree"] is None:
        return []
    if problem is None:
        stacked = store.decode_tree(meta["params_tree"], arrays)
    else:
        saved = store.saved_leaves(meta["params_tree"], arrays)
        stacked = store.unflatten_like(problem.params_shape(), saved, lead=1,
                                       where=f"atlas {str(path)!r} minima params")
    return [jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(meta["num_minima"])]


def _scalar(x: Any) -> Any:
    """A NumPy scalar as the Python value the Minimum held."""
    return x.item() if hasattr(x, "item") else x
