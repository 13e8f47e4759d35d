"""Run directories: one whole save at a time, checked on load, one writer at a time.

A run directory holds a run's two files, `runs.json` (metadata, the JSON skeletons of the
params pytrees, the SHA-256 of the arrays file) and `arrays.npz` (every array), and may
hold anything else a study keeps beside them (report.md, figures, `checkpoints/`,
subdirectories): a save replaces the run's two files and touches nothing else.

Whole-run saves (`save_run`), under the directory's lock:
  1. stage: the new run is written into a private sibling `DIR/.gdlab-save-<random>/`
     (`arrays.npz`, then `runs.json.staged` holding the arrays' SHA-256), each fsynced;
  2. commit: one rename, `.gdlab-save-<random>` -> `DIR/.gdlab-commit`: from this
     instant the new save is the run;
  3. roll forward: rename the staged arrays, then the staged metadata, over
     `DIR/arrays.npz` and `DIR/runs.json`; remove the empty `.gdlab-commit`.
Readers take each file from `.gdlab-commit/` while it still holds it, else from `DIR`, so a
process killed at any instant leaves the old run (killed before 2), the new one (after
2), or, for a first save killed before 2, no run at all; never a mix. The next save
(or `recover`) finishes an interrupted roll forward and deletes abandoned stages, so
nothing left behind blocks it. Loads check the arrays against the recorded SHA-256 (a
file truncated or replaced behind gdlab's back is refused, naming it). Concurrent loads
during a save of the same directory may fail and should be retried.

`RunLock(DIR)` (an `fcntl.flock` on `DIR/.gdlab.lock`, which records the holder's pid
and host) admits one writer per directory: the kernel drops the lock when its process
dies, so a crashed run never blocks the next. It is re-entrant within one thread.

Params pytrees of any kind (dicts, NamedTuples, flax nnx `State`, equinox modules,
dataclasses) are stored leaf by leaf under `prefix + jax.tree_util.keystr(path)`, with a
JSON skeleton that rebuilds dict/list/tuple/None exactly. Other nodes are rebuilt
exactly from a problem's `params_shape()` (`unflatten_like`); without one they come
back as nested dicts keyed by path segments (`decode_tree` reports which types).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import hashlib
import json
import numbers
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.tree_util import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey, keystr

from gdlab._checks import InputError

try:
    import fcntl
except ImportError:  # no flock (Windows): writers are not serialised
    fcntl = None

METADATA = "runs.json"
ARRAYS = "arrays.npz"
LOCK = ".gdlab.lock"
COMMIT = ".gdlab-commit"
STAGE_PREFIX = ".gdlab-save-"
STAGED_METADATA = METADATA + ".staged"
_PROBE = ".gdlab-probe-"
_STAGED = {ARRAYS: ARRAYS, METADATA: STAGED_METADATA}  # file in DIR -> its name when staged

# ----------------------------------------------------------------------------- checks


def holds_run(directory: str | os.PathLike) -> bool:
    """True when `directory` holds a saved run (or a committed save being rolled forward)."""
    path = Path(directory)
    return (path / METADATA).is_file() or (path / COMMIT / STAGED_METADATA).is_file()


def check_writable(directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Prove (before any work) that a run can be written to `directory`.

    The directory may exist or not; its nearest existing ancestor must be a writable
    directory (proven by creating and removing a temporary file there); the missing
    directories below it are created when the run is saved.

    Args:
      directory: the run directory.
      overwrite: allow it to already hold a run (which a save then replaces).

    Returns:
      `directory` as a Path.
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise InputError(f"output path {str(path)!r} exists and is not a directory")
    _prove_writable(path)
    if holds_run(path) and not overwrite:
        raise InputError(f"output directory {str(path)!r} already holds a run; choose a new "
                         "directory or pass overwrite=True (--overwrite) to replace it")
    return path


def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _prove_writable(path: Path) -> None:
    """InputError unless a file can be created in the nearest existing ancestor of `path`."""
    base = _nearest_existing(path)
    where = "it" if base == Path(os.path.abspath(path)) else \
        f"its nearest existing ancestor {str(base)!r}"
    if not base.is_dir():
        raise InputError(f"output directory {str(path)!r} cannot be created: {where} is a "
                         "file, not a directory; choose another output path")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=_PROBE)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise InputError(f"output directory {str(path)!r} is not writable: {where} does not "
                         f"accept a new file ({err.strerror}); choose a writable output "
                         "path (the nearest existing directory must be writable)") from err


def check_run_dir(directory: str | os.PathLike) -> Path:
    """`directory` as a Path if it holds a run, else an InputError saying what it is."""
    path = Path(directory)
    if not path.exists():
        raise InputError(f"run directory {str(path)!r} does not exist")
    if not path.is_dir():
        hint = f"; pass its directory {str(path.parent)!r}" if path.name == METADATA else ""
        raise InputError(f"{str(path)!r} is a file, not a run directory{hint}")
    if not holds_run(path):
        below = sorted(str(p.parent) for p in path.glob(f"*/{METADATA}"))[:5]
        hint = f"; runs found below it: {', '.join(below)}" if below else ""
        raise InputError(f"{str(path)!r} holds no saved run (no {METADATA}){hint}")
    return path


# ----------------------------------------------------------------------------- files


def _write_file(path: Path, write: Callable[[Any], Any]) -> None:
    """Call `write(file)` on a new file at `path` and fsync it."""
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    """Call `write(file)` on a temporary file beside `path`, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        _write_file(Path(tmp), write)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, default=_jsonable).encode()


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as JSON atomically."""
    atomic_write(path, lambda f: f.write(_json_bytes(obj)))


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as one .npz atomically."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file; an InputError naming the file if it is damaged."""
    try:
        # Our own handle: np.load leaves the file open when it cannot parse it.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError as err:
        raise InputError(f"{str(path)!r} is missing") from err
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as err:
        raise InputError(f"{str(path)!r} is truncated or corrupt and cannot be read "
                         f"({type(err).__name__}: {err})") from err


def read_json(path: Path) -> Any:
    """The JSON in `path`; an InputError naming the file if it is missing or damaged."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise InputError(f"{str(path)!r} is missing") from err
    except (ValueError, OSError) as err:
        raise InputError(f"{str(path)!r} is truncated or corrupt ({err})") from err


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make renames inside `path` durable (best effort: some file systems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


# ----------------------------------------------------------------------------- whole-run saves


def save_run(directory: str | os.PathLike, arrays: dict[str, np.ndarray],
             metadata: dict[str, Any], overwrite: bool = False) -> Path:
    """Replace the run in `directory` by (arrays, metadata) as one atomic switch.

    Args:
      directory: the run directory (created if missing); its other files are kept.
      arrays: every array of the run, saved as `arrays.npz`.
      metadata: JSON-able metadata, saved as `runs.json` with the arrays' SHA-256 added.
      overwrite: allow replacing a run already saved there.

    Returns:
      The run directory.
    """
    path = check_writable(directory, overwrite)
    with RunLock(path):
        recover(path)
        check_writable(path, overwrite)  # again, under the lock
        _commit(path, _stage(path, arrays, metadata))
        _roll_forward(path)
    return path


def _stage(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> Path:
    """Write the whole new run into a private stage directory inside `path`."""
    stage = path / f"{STAGE_PREFIX}{secrets.token_hex(6)}"
    try:
        stage.mkdir()
        _write_file(stage / ARRAYS, lambda f: np.savez(f, **arrays))
        meta = {**metadata, "arrays": {"file": ARRAYS, "sha256": sha256(stage / ARRAYS)}}
        _write_file(stage / STAGED_METADATA, lambda f: f.write(_json_bytes(meta)))
        fsync_dir(stage)
        return stage
    except BaseException as err:
        shutil.rmtree(stage, ignore_errors=True)
        if not isinstance(err, OSError):
            raise
        raise OSError(err.errno, f"could not save the run to {str(path)!r}: {err.strerror or err}"
                      f"; nothing was changed there (any earlier run is intact); free space "
                      "or fix the directory and save again") from err


def _commit(path: Path, stage: Path) -> None:
    """The switch: one rename makes the staged save the run."""
    try:
        os.rename(stage, path / COMMIT)
    except OSError as err:
        shutil.rmtree(stage, ignore_errors=True)
        raise OSError(err.errno, f"could not save the run to {str(path)!r}: {err.strerror}; "
                      "nothing was changed there (any earlier run is intact)") from err
    fsync_dir(path)


def _roll_forward(path: Path) -> None:
    """Move a committed save's files into place and remove its empty commit directory."""
    commit = path / COMMIT
    if not commit.is_dir():
        return
    for name, staged in _STAGED.items():
        if (commit / staged).exists():
            os.replace(commit / staged, path / name)
    fsync_dir(path)
    shutil.rmtree(commit, ignore_errors=True)


def recover(directory: str | os.PathLike) -> None:
    """Finish a save interrupted after its commit; delete what abandoned saves left.

    Call only while holding the directory's `RunLock` (as `save_run` does).
    """
    path = Path(directory)
    _roll_forward(path)
    for stage in path.glob(f"{STAGE_PREFIX}*"):
        shutil.rmtree(stage, ignore_errors=True)
    for probe in path.glob(f"{_PROBE}*"):  # left by `check_writable` in a killed process
        probe.unlink(missing_ok=True)


def current_file(directory: Path, name: str) -> Path:
    """Where the current save's file `name` (METADATA or ARRAYS) is right now."""
    staged = Path(directory) / COMMIT / _STAGED[name]
    return staged if staged.exists() else Path(directory) / name


def read_run(directory: str | os.PathLike) -> tuple[Path, dict[str, Any], dict[str, np.ndarray]]:
    """(directory, metadata, arrays) of the run saved in `directory`, checked whole.

    Args:
      directory: a run directory written by `save_run` (or by gdlab 0.2).

    Returns:
      The directory as a Path, the metadata and every array; an InputError naming the
      file if one is missing, damaged or does not match the recorded checksum.
    """
    path = check_run_dir(directory)
    meta = read_json(current_file(path, METADATA))
    arrays_file = current_file(path, ARRAYS)
    if not isinstance(meta, dict):
        raise InputError(f"run {str(path)!r}: {METADATA} holds no run metadata")
    if not arrays_file.is_file():
        raise InputError(f"run {str(path)!r}: its arrays file {str(arrays_file)!r} is missing; "
                         "restore the run from a copy or train it again")
    expected = meta.get("arrays", {}).get("sha256")
    if expected is not None and sha256(arrays_file) != expected:
        raise InputError(f"run {str(path)!r}: {str(arrays_file)!r} does not match the SHA-256 "
                         f"recorded in {METADATA} (truncated, modified, or from another save); "
                         "nothing was loaded: restore the run from a copy or train it again")
    try:
        return path, meta, read_arrays(arrays_file)
    except InputError as err:
        raise InputError(f"run {str(path)!r}: {err}; restore the run from a copy or train it "
                         "again") from err


# ----------------------------------------------------------------------------- lock


@dataclasses.dataclass
class _Held:
    """A lock this process holds: its file descriptor, owner thread and claims."""

    fd: int | None
    thread: int
    claims: int = 0
    held: bool = False  # by `hold_lock`, until `release_lock`
    created: list[Path] = dataclasses.field(default_factory=list)


_HELD: dict[str, _Held] = {}
_HELD_GUARD = threading.Lock()


class RunLock:
    """One writer per run directory: `with RunLock(directory): ...`.

    An `fcntl.flock` on `directory/.gdlab.lock` (the directory and missing parents are
    created, and removed again on release if still empty). A second process is refused
    at once with an InputError naming the holder (pid, host, command); the kernel drops
    the lock of a process that dies, so no stale lock outlives a crash. Re-entrant
    within one thread; another thread of the same process is refused.

    Args:
      directory: the run directory to lock.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.path = self.directory / LOCK
        self._key = os.path.abspath(self.path)
        self._claimed = False

    def acquire(self) -> RunLock:
        """Take the lock (or one more claim on it in this thread); returns self."""
        with _HELD_GUARD:
            held = _HELD.get(self._key)
            if held is None:
                held = _HELD[self._key] = _lock(self.directory, self.path)
            elif held.thread != threading.get_ident():
                raise InputError(f"output directory {str(self.directory)!r} is being written by "
                                 "another thread of this process; use one directory per thread")
            held.claims += 1
            self._claimed = True
        return self

    def release(self) -> None:
        """Drop this claim; the last one unlocks and deletes the lock file."""
        with _HELD_GUARD:
            if self._claimed:
                self._claimed = False
                _HELD[self._key].claims -= 1
                _drop_if_unused(self._key)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def hold_lock(directory: str | os.PathLike) -> None:
    """Lock `directory` until `release_lock` (or this process ends), e.g. across training.

    Holding it again from the same thread (a retry after an error) keeps the one lock.
    """
    lock = RunLock(directory).acquire()
    with _HELD_GUARD:
        _HELD[lock._key].held = True
    lock.release()


def release_lock(directory: str | os.PathLike) -> None:
    """Release a lock taken by `hold_lock` (nothing if it is not held)."""
    key = os.path.abspath(Path(directory) / LOCK)
    with _HELD_GUARD:
        if key in _HELD:
            _HELD[key].held = False
            _drop_if_unused(key)


def _drop_if_unused(key: str) -> None:
    held = _HELD[key]
    if held.claims == 0 and not held.held:
        del _HELD[key]
        _unlock(Path(key), held)


def _lock(directory: Path, path: Path) -> _Held:
    """Create `directory` if needed and flock its lock file, or refuse naming the holder."""
    created = _make_dirs(directory)
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _flock(fd, path)
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):  # not unlinked by a releasing holder meanwhile
            _write_holder(fd)
            return _Held(fd, threading.get_ident(), created=created)
        os.close(fd)
    raise InputError(f"could not take the lock {str(path)!r}: it keeps being replaced")


def _flock(fd: int, path: Path) -> None:
    """Lock `fd` now or raise an InputError naming the holder; warn where locks don't exist."""
    try:
        if fcntl is None:
            raise OSError(errno.ENOSYS, "no fcntl module on this platform")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise InputError(f"output directory {str(path.parent)!r} is in use: {_holder(path)} "
                         f"holds its lock {str(path)!r}; wait for it to finish or choose "
                         "another directory") from None
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        warnings.warn(f"cannot lock {str(path)!r} ({err.strerror}): this file system has no "
                      "locks, so two processes writing there are not detected", stacklevel=5)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _make_dirs(directory: Path) -> list[Path]:
    """Create `directory` and its missing parents; the created ones, deepest first."""
    missing, p = [], Path(os.path.abspath(directory))
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    directory.mkdir(parents=True, exist_ok=True)
    return missing


def _write_holder(fd: int) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
            "since": datetime.datetime.now().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)


def _holder(path: Path) -> str:
    """'pid N on host H (since T: command)', from the lock file, as far as it is readable."""
    try:
        info = json.loads(path.read_text())
        return (f"pid {info['pid']} on host {info['host']} (since {info['since']}: "
                f"{info['command'][:120]})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _unlock(path: Path, held: _Held) -> None:
    """Delete the lock file, unlock, and remove directories the lock created if empty."""
    with contextlib.suppress(OSError):
        path.unlink()
    if held.fd is not None:
        os.close(held.fd)
    for d in held.created:
        with contextlib.suppress(OSError):
            d.rmdir()


# ----------------------------------------------------------------------------- pytrees


def check_savable(params_like: Any, where: str = "params") -> None:
    """Raise an InputError (before training) if a params pytree cannot be saved.

    Args:
      params_like: params, or their abstract shapes (e.g. `problem.params_shape()`).
      where: the name the message gives the tree.
    """
    seen = set()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params_like)[0]:
        name = where + keystr(path)
        why = _unsavable_leaf(leaf) or _unsavable_path(path)
        if why:
            raise InputError(f"cannot save {name}: {why}")
        if name in seen:
            raise InputError(f"cannot save {where}: two leaves have the same path {name}")
        seen.add(name)


def _unsavable_leaf(leaf: Any) -> str | None:
    """Why `leaf` cannot be stored in an .npz, or None."""
    if isinstance(leaf, numbers.Number):
        return None
    dtype, shape = getattr(leaf, "dtype", None), getattr(leaf, "shape", None)
    if dtype is None or shape is None:
        return (f"the leaf is a {type(leaf).__name__}, not an array; every params leaf must "
                "be an array (keep static parts out of the params, e.g. eqx.partition)")
    if jax.dtypes.issubdtype(dtype, jax.dtypes.extended):
        return f"the leaf is a {dtype} array (a JAX key?); store jax.random.key_data(...)"
    if np.dtype(dtype).kind == "O" or _storage_dtype(np.dtype(dtype)) is None:
        return f"arrays of dtype {dtype} cannot be saved without pickle"
    return None


def _unsavable_path(path: tuple) -> str | None:
    for k in path:
        if isinstance(k, DictKey) and not isinstance(k.key, str | int):
            return (f"dict key {k.key!r} is a {type(k.key).__name__}; saved params need "
                    "str or int keys")
    return None


def _storage_dtype(dtype: np.dtype) -> np.dtype | None:
    """The dtype an .npz stores `dtype` as: itself, unsigned bits (bfloat16, ...), or None."""
    descr = np.lib.format.dtype_to_descr(dtype)
    if dtype.kind != "O" and np.lib.format.descr_to_dtype(descr) == dtype:
        return dtype
    with contextlib.suppress(TypeError):
        if np.dtype(jax.numpy.dtype(dtype.name)) == dtype:
            return np.dtype(f"u{dtype.itemsize}")
    return None


def encode_tree(tree: Any, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """JSON skeleton of any pytree; its leaves go into `arrays` as `prefix + keystr(path)`."""
    check_savable(tree, prefix)
    return _encode(tree, (), prefix, arrays)


def _encode(node: Any, path: tuple, prefix: str, arrays: dict[str, np.ndarray]) -> dict:
    if node is None:
        return {"none": None}
    if type(node) is dict:
        return {"dict": [[k, _encode(v, (*path, DictKey(k)), prefix, arrays)]
                         for k, v in node.items()]}
    if type(node) in (list, tuple):
        return {type(node).__name__: [_encode(v, (*path, SequenceKey(i)), prefix, arrays)
                                      for i, v in enumerate(node)]}
    children = _one_level(node)
    if children is None:
        return _encode_leaf(node, prefix + keystr(path), arrays)
    return {"node": {"type": f"{type(node).__module__}.{type(node).__qualname__}",
                     "children": [[_segment(k), _encode(c, (*path, k), prefix, arrays)]
                                  for k, c in children]}}


def _one_level(node: Any) -> list[tuple[Any, Any]] | None:
    """[(key entry, child)] of a pytree node, or None for a leaf."""
    # Not jax.tree_util.flatten_one_level_with_keys: it names every NamedTuple field
    # after the first (jax 0.10).
    pairs = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)[0]
    if len(pairs) == 1 and pairs[0][0] == () and pairs[0][1] is node:
        return None
    return [(path[0], child) for path, child in pairs]


def _encode_leaf(leaf: Any, key: str, arrays: dict[str, np.ndarray]) -> dict:
    a = np.asarray(leaf)
    stored = _storage_dtype(a.dtype)
    if stored == a.dtype:
        arrays[key] = a
        return {"leaf": key}
    arrays[key] = a.view(stored)
    return {"leaf": key, "dtype": a.dtype.name}


_SEGMENTS = {DictKey: ("key", "key"), SequenceKey: ("index", "idx"),
             GetAttrKey: ("attr", "name"), FlattenedIndexKey: ("flat", "key")}


def _segment(k: Any) -> list:
    """A key path entry as JSON: [kind, value]."""
    kind, field = _SEGMENTS.get(type(k), ("other", None))
    return [kind, getattr(k, field) if field else str(k)]


def _entry(segment: list) -> Any:
    """Inverse of `_segment` (an "other" entry becomes a DictKey of its text)."""
    kind, value = segment
    return {"key": DictKey, "index": SequenceKey, "attr": GetAttrKey,
            "flat": FlattenedIndexKey}.get(kind, DictKey)(value)


def _children(skeleton: dict) -> tuple[str, list[tuple[Any, Any, dict]]]:
    """(kind, [(rebuilt key, path entry, child skeleton)]) of a non-leaf skeleton node."""
    (kind, value), = skeleton.items()
    if kind == "dict":
        items = value.items() if isinstance(value, dict) else value  # gdlab 0.2: a mapping
        return kind, [(k, DictKey(k), v) for k, v in items]
    if kind in ("list", "tuple"):
        return kind, [(i, SequenceKey(i), v) for i, v in enumerate(value)]
    if kind == "node":
        return kind, [(seg[1], _entry(seg), v) for seg, v in value["children"]]
    if kind == "none":
        return kind, []
    raise InputError(f"unknown pytree node {kind!r} in the run's metadata")


def decode_tree(skeleton: dict, arrays: dict[str, np.ndarray],
                replaced: set[str] | None = None) -> Any:
    """Inverse of `encode_tree` for dict/list/tuple/None; other nodes become dicts.

    The type names of nodes rebuilt as dicts are added to `replaced`.
    """
    if "leaf" in skeleton:
        return _decode_leaf(skeleton, arrays)
    kind, children = _children(skeleton)
    if kind == "none":
        return None
    built = [(k, decode_tree(v, arrays, replaced)) for k, _, v in children]
    if kind == "node" and replaced is not None:
        replaced.add(skeleton["node"]["type"])
    if kind in ("list", "tuple"):
        items = [v for _, v in built]
        return items if kind == "list" else tuple(items)
    return dict(built)


def _decode_leaf(skeleton: dict, arrays: dict[str, np.ndarray]) -> np.ndarray:
    key = skeleton["leaf"]
    if key not in arrays:
        raise InputError(f"the arrays file has no array {key!r}, which the metadata lists")
    a = arrays[key]
    return a.view(jax.numpy.dtype(skeleton["dtype"])) if "dtype" in skeleton else a


def saved_leaves(skeleton: dict, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{keystr(path): array} of every leaf of a saved tree, in skeleton order."""
    out = {}

    def walk(node, path):
        if "leaf" in node:
            out[keystr(path)] = _decode_leaf(node, arrays)
            return
        for _, entry, child in _children(node)[1]:
            walk(child, (*path, entry))
    walk(skeleton, ())
    return out


def unflatten_like(like: Any, saved: dict[str, np.ndarray], lead: int = 0,
                   where: str = "params") -> Any:
    """The saved leaves rebuilt into the exact pytree structure of `like`.

    Args:
      like: a pytree of the target structure (arrays or ShapeDtypeStructs).
      saved: `saved_leaves` of the stored tree.
      lead: leading axes the saved leaves have beyond `like`'s (1 for seeds S).
      where: the tree's name in messages.

    Returns:
      The pytree; an InputError naming the first leaf whose path, shape or dtype differs.
    """
    pairs, treedef = jax.tree_util.tree_flatten_with_path(like)
    names = [keystr(p) for p, _ in pairs]
    _check_same_paths(names, list(saved), where)
    for name, (_, leaf) in zip(names, pairs, strict=True):
        a = saved[name]
        if a.shape[lead:] != tuple(leaf.shape) or a.dtype != leaf.dtype or a.ndim < lead:
            raise InputError(f"{where}{name}: the saved leaf is {a.dtype}{list(a.shape)}, the "
                             f"problem's is {np.dtype(leaf.dtype)}{list(leaf.shape)} (after "
                             f"{lead} leading seed/evaluation axes); is this the run's problem?")
    return jax.tree_util.tree_unflatten(treedef, [saved[n] for n in names])


def _check_same_paths(expected: list[str], found: list[str], where: str) -> None:
    found_set, expected_set = set(found), set(expected)
    missing = [n for n in expected if n not in found_set]
    extra = [n for n in found if n not in expected_set]
    if missing or extra:
        first = (f"the problem's leaf {where}{missing[0]} is not in the saved run"
                 if missing else f"the saved leaf {where}{extra[0]} is not in the problem's")
        raise InputError(f"{where}: the saved params do not match the problem's structure: "
                         f"{first} (saved: {', '.join(found[:6])}"
                         f"{', ...' if len(found) > 6 else ''}); is this the run's problem?")
