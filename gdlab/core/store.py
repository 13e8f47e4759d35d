"""Run directories: arrays in one .npz, metadata in one JSON, every file written atomically.

A run directory is complete when its `runs.json` exists; it is written last. Nothing
that already holds a run is overwritten unless the caller says so.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from gdlab._checks import InputError

METADATA = "runs.json"
ARRAYS = "arrays.npz"


def holds_run(directory: str | os.PathLike) -> bool:
    """True when `directory` already contains a saved run."""
    return (Path(directory) / METADATA).exists()


def check_writable(directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse (before any work) to write into a directory that holds a run or is a file."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise InputError(f"output path {str(path)!r} exists and is not a directory")
    if holds_run(path) and not overwrite:
        raise InputError(f"output directory {str(path)!r} already holds a run; choose a new "
                         "directory or pass overwrite=True (--overwrite) to replace it")
    return path


def atomic_write(path: Path, write) -> None:
    """Call `write(file)` on a temporary file beside `path`, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=_jsonable).encode()))


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def encode_tree(tree: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """JSON skeleton of a pytree of dicts/lists/tuples/None; leaves go into `arrays`."""
    if isinstance(tree, dict):
        if not all(isinstance(k, str) for k in tree):
            raise InputError(f"cannot save a params dict with non-string keys {list(tree)}")
        return {"dict": {k: encode_tree(v, f"{prefix}/{k}", arrays) for k, v in tree.items()}}
    if isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields"):
        kind = "list" if isinstance(tree, list) else "tuple"
        return {kind: [encode_tree(v, f"{prefix}/{i}", arrays) for i, v in enumerate(tree)]}
    if tree is None:
        return {"none": None}
    if hasattr(tree, "shape") or np.isscalar(tree):
        arrays[prefix] = np.asarray(tree)
        return {"leaf": prefix}
    raise InputError(f"cannot save params node of type {type(tree).__name__} at {prefix!r}; "
                     "supported containers are dict, list, tuple and None")


def decode_tree(skeleton: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of `encode_tree`."""
    (kind, value), = skeleton.items()
    if kind == "dict":
        return {k: decode_tree(v, arrays) for k, v in value.items()}
    if kind in ("list", "tuple"):
        items = [decode_tree(v, arrays) for v in value]
        return items if kind == "list" else tuple(items)
    if kind == "none":
        return None
    return arrays[value]
