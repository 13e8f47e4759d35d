"""Checkpoints of a running `gdlab.train`: saved atomically, verified on load, resumed bitwise.

A checkpoint is a directory `OUT/checkpoints/step-<step>/` holding `state.npz` (every
leaf of the engine state, keys as raw key data, plus the host loop's record so far) and
`meta.json` (written last: the step, a fingerprint of the run and the SHA-256 of
`state.npz`). It is written under a temporary name and renamed into place, so a crash
leaves either the whole checkpoint or none. On resume the newest checkpoint that passes
its checks is used; a truncated or corrupt one is skipped with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import InputError
from gdlab.core import devices as dev
from gdlab.core import store

CHECKPOINTS = "checkpoints"
STATE, META = "state.npz", "meta.json"
KEEP = 2  # checkpoints kept: the newest and the one before, in case the newest is damaged
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped on SIGTERM after saving; rerun with --resume


class Preempted(Exception):
    """Training stopped on SIGTERM after saving a checkpoint; resume with `resume=True`."""

    def __init__(self, path: Path, step: int):
        super().__init__(f"stopped on SIGTERM at step {step}; checkpoint saved to {path}; "
                         "resume with resume=True (gdlab train ... --resume)")
        self.path, self.step = path, step


def directory(out: Path) -> Path:
    return Path(out) / CHECKPOINTS


def save(out: Path, step: int, state: Any, record: dict[str, Any], fingerprint: str) -> Path:
    """Write the checkpoint of `step` atomically and prune older ones; returns its path.

    Every process must call it (the state is gathered); only process 0 writes.
    """
    root = directory(out)
    final = root / f"step-{step:012d}"
    arrays = {f"state_{i}": dev.to_host(x) for i, x in enumerate(jax.tree.leaves(state))}
    arrays.update({f"record_{k}": np.asarray(v) for k, v in record.items()})
    if not dev.is_main_process():
        return final
    tmp = root / f".tmp-step-{step:012d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    store.write_arrays(tmp / STATE, arrays)
    store.write_json(tmp / META, {"step": step, "fingerprint": fingerprint,
                                  "sha256": _sha256(tmp / STATE)})
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(root.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_latest(out: Path, like_state: Any, fingerprint: str):
    """(step, state, record) of the newest valid checkpoint in `out`, or None if none.

    `like_state` gives the structure, dtypes and shardings to restore into.
    """
    for path in sorted(directory(out).glob("step-*"), reverse=True):
        try:
            return _load(path, like_state, fingerprint)
        except Exception as err:  # any damage: fall back to the previous checkpoint
            warnings.warn(f"skipping checkpoint {path}: {err}", stacklevel=2)
    return None


def _load(path: Path, like_state: Any, fingerprint: str):
    meta = json.loads((path / META).read_text())
    if meta.get("fingerprint") != fingerprint:
        raise InputError("it belongs to a different run (problem, config, seeds or key differ)")
    if _sha256(path / STATE) != meta["sha256"]:
        raise InputError(f"{STATE} does not match its checksum (truncated or modified)")
    arrays = store.read_arrays(path / STATE)
    leaves, treedef = jax.tree.flatten(like_state)
    restored = [_from_numpy(arrays[f"state_{i}"], like) for i, like in enumerate(leaves)]
    record = {k.removeprefix("record_"): v for k, v in arrays.items() if k.startswith("record_")}
    return int(meta["step"]), jax.tree.unflatten(treedef, restored), record


def remove(out: Path) -> None:
    """Delete the checkpoints (process 0), e.g. once the finished run is saved."""
    if dev.is_main_process():
        shutil.rmtree(directory(out), ignore_errors=True)


def exists(out: Path) -> bool:
    return any(directory(out).glob("step-*"))


def _from_numpy(a: np.ndarray, like: jax.Array) -> jax.Array:
    if jnp.issubdtype(like.dtype, jax.dtypes.prng_key):
        data = jax.random.key_data(like)
        if a.shape != data.shape or a.dtype != data.dtype:
            raise InputError(f"key leaf shaped {a.shape} {a.dtype}, expected {data.shape}")
        return jax.random.wrap_key_data(dev.put(a, data.sharding), impl=jax.random.key_impl(like))
    if a.shape != like.shape or a.dtype != like.dtype:
        raise InputError(f"leaf shaped {a.shape} {a.dtype}, expected {like.shape} {like.dtype}")
    return dev.put(a, like.sharding)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(*parts: Any) -> str:
    """A short hash of what must match for a checkpoint to belong to this run."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def sigterm_flag():
    """Yield a dict whose "set" becomes True on SIGTERM (only in the main thread)."""
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag["set"] = True
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)
