"""Checkpoints of a running `gdlab.train`: saved atomically, verified on load, resumed bitwise.

A checkpoint is a directory `OUT/checkpoints/step-<step>/` holding `state.npz` (every
leaf of the engine state, keys as raw key data, plus the host loop's record so far) and
`meta.json` (written last: the step, a fingerprint of the run and the SHA-256 of
`state.npz`). It is written whole into `.tmp-step-<step>/` and renamed into place (under
the run directory's `store.RunLock`), and old ones are renamed to `.trash-...` before
they are deleted, so a process killed at any instant leaves only whole checkpoints
under `step-*` names; the next save deletes the leftovers. On resume the newest
checkpoint that passes its checks is used; a truncated or corrupt one is skipped with a
warning that names it, its run, and the older checkpoint tried instead (if any).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
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
_TMP, _TRASH = ".tmp-", ".trash-"  # checkpoints being written, and being deleted
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

    Every process must call it (the state is gathered); only process 0 writes, holding
    the run directory's lock. A checkpoint of a step saved before gets a new name
    (`step-<step>.<n>`), so the old one stays until the new one is complete.
    """
    root = directory(out)
    arrays = {f"state_{i}": dev.to_host(x) for i, x in enumerate(jax.tree.leaves(state))}
    arrays.update({f"record_{k}": np.asarray(v) for k, v in record.items()})
    if not dev.is_main_process():
        return root / f"step-{step:012d}"
    with store.RunLock(out):
        _clean(root)
        final = root / _free_name(root, step)
        tmp = root / f"{_TMP}{final.name}"
        _write(tmp, out, step, arrays, fingerprint)
        os.rename(tmp, final)
        store.fsync_dir(root)
        for old in _listing(root)[:-KEEP]:
            _discard(old)
    return final


def _write(tmp: Path, out: Path, step: int, arrays: dict[str, np.ndarray],
           fingerprint: str) -> None:
    """The whole checkpoint in directory `tmp`; a clear OSError (and no `tmp`) if it fails."""
    try:
        tmp.mkdir(parents=True)
        store.write_arrays(tmp / STATE, arrays)
        store.write_json(tmp / META, {"step": step, "fingerprint": fingerprint,
                                      "sha256": store.sha256(tmp / STATE)})
        store.fsync_dir(tmp)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(err.errno, f"could not write the checkpoint of step {step} of run "
                      f"{str(out)!r}: {err.strerror or err}; older checkpoints are intact") from err


def _listing(root: Path) -> list[Path]:
    """The checkpoint directories under `root`, oldest first (by step, then re-save)."""
    found = []
    for path in root.glob("step-*"):
        match = re.fullmatch(r"step-(\d+)(?:\.(\d+))?", path.name)
        if match and path.is_dir():
            found.append(((int(match[1]), int(match[2] or 0)), path))
    return [path for _, path in sorted(found)]


def _free_name(root: Path, step: int) -> str:
    """`step-<step>`, or `step-<step>.<n>` past every earlier save of the same step."""
    name = f"step-{step:012d}"
    gens = [int(p.name.partition(".")[2] or 0) for p in _listing(root)
            if p.name.partition(".")[0] == name]
    return name if not gens else f"{name}.{max(gens) + 1}"


def _discard(path: Path) -> None:
    """Delete a directory without ever leaving it half deleted under its own name."""
    trash = path.parent / f"{_TRASH}{path.name}-{secrets.token_hex(4)}"
    with contextlib.suppress(OSError):
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)


def _clean(root: Path) -> None:
    """Delete what killed saves left behind (temporary and half-deleted directories)."""
    for path in [*root.glob(f"{_TMP}*"), *root.glob(f"{_TRASH}*")]:
        shutil.rmtree(path, ignore_errors=True)


def load_latest(out: Path, like_state: Any, fingerprint: str):
    """(step, state, record) of the newest valid checkpoint in `out`, or None if none.

    `like_state` gives the structure, dtypes and shardings to restore into. A damaged
    checkpoint is skipped with a warning naming it and saying what is used instead.
    """
    found = _listing(directory(out))[::-1]
    for i, path in enumerate(found):
        try:
            return _load(path, like_state, fingerprint)
        except Exception as err:  # any damage: fall back to the previous checkpoint
            then = (f"trying the older checkpoint {found[i + 1].name}" if i + 1 < len(found)
                    else "no older checkpoint is left, so training starts from step 0")
            warnings.warn(f"skipping checkpoint {path} of run {str(out)!r}: {err}; {then}",
                          stacklevel=2)
    return None


def _load(path: Path, like_state: Any, fingerprint: str):
    meta = store.read_json(path / META)
    if meta.get("fingerprint") != fingerprint:
        raise InputError("it belongs to a different run (problem, config, seeds or key differ)")
    if not (path / STATE).is_file():
        raise InputError(f"{STATE} is missing")
    if store.sha256(path / STATE) != meta.get("sha256"):
        raise InputError(f"{STATE} does not match its checksum (truncated or modified)")
    arrays = store.read_arrays(path / STATE)
    leaves, treedef = jax.tree.flatten(like_state)
    if any(f"state_{i}" not in arrays for i in range(len(leaves))):
        raise InputError(f"{STATE} holds fewer state leaves than this run has")
    restored = [_from_numpy(arrays[f"state_{i}"], like) for i, like in enumerate(leaves)]
    record = {k.removeprefix("record_"): v for k, v in arrays.items() if k.startswith("record_")}
    return int(meta["step"]), jax.tree.unflatten(treedef, restored), record


def remove(out: Path) -> None:
    """Delete the checkpoints (process 0), e.g. once the finished run is saved."""
    if dev.is_main_process():
        for leftover in Path(out).glob(f"{_TRASH}{CHECKPOINTS}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if directory(out).is_dir():
            _discard(directory(out))


def exists(out: Path) -> bool:
    """True when `out` holds checkpoints (of an unfinished run)."""
    return bool(_listing(directory(out)))


def _from_numpy(a: np.ndarray, like: jax.Array) -> jax.Array:
    if jnp.issubdtype(like.dtype, jax.dtypes.prng_key):
        data = jax.random.key_data(like)
        if a.shape != data.shape or a.dtype != data.dtype:
            raise InputError(f"key leaf shaped {a.shape} {a.dtype}, expected {data.shape}")
        return jax.random.wrap_key_data(dev.put(a, data.sharding), impl=jax.random.key_impl(like))
    if a.shape != like.shape or a.dtype != like.dtype:
        raise InputError(f"leaf shaped {a.shape} {a.dtype}, expected {like.shape} {like.dtype}")
    return dev.put(a, like.sharding)


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
