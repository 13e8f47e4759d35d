"""Run directories: any pytree stored, whole-run atomic saves (killed at random), locks."""

import dataclasses
import errno
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdlab
from gdlab import problems
from gdlab.core import checkpoint, store
from gdlab.core.runs import Runs, UnsavedRun

FIXTURES = Path(__file__).parent / "fixtures"
S = 3


def _runs(params, marker: int = 0, s: int = S) -> Runs:
    """Runs built directly (no training), every array carrying `marker`."""
    full = lambda *shape: np.full(shape, marker, np.float32)
    return Runs(params=params, init_params=params, final_loss=full(s), loss_history=full(s, 2),
                eval_steps=np.arange(2), eval_seconds=np.zeros(2),
                diverged_at=np.full(s, -1, np.int32), seed_ids=np.arange(s),
                timings={"marker": float(marker)}, manifest={"marker": marker})


def _marked(marker: int) -> Runs:
    """Runs of small params whose every array holds `marker`."""
    return _runs({"w": np.full((S, 2), marker, np.float32)}, marker)


def _stack(make, s: int = S):
    """Params of `s` seeds: `make(i)` stacked on a leading axis."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                        *[make(i) for i in range(s)])


def _problem(init) -> gdlab.Problem:
    return gdlab.Problem(name="mine", init=init, loss=lambda p, batch: jnp.float32(0.0), data=None)


def _assert_tree_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def q(path) -> str:
    """`path` as a regular expression matching itself."""
    return re.escape(str(path))


def _listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


# ----------------------------------------------------------------------------- gdlab 0.2 runs


def test_a_run_saved_by_gdlab_0_2_still_loads_bit_for_bit():
    # tests/fixtures/runs_v0_2: teacher_student(d_in=2, hidden=3, n=16), 3 seeds x 4 steps,
    # trajectories=2, saved by gdlab 0.2 (format 1); the expected hashes were taken then.
    expected = json.loads((FIXTURES / "runs_v0_2_expected.json").read_text())
    runs = gdlab.load_runs(FIXTURES / "runs_v0_2")
    digest = lambda x: [list(x.shape), str(x.dtype),
                        hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()]
    for field in ("params", "init_params", "trajectory"):
        for path, x in jax.tree_util.tree_flatten_with_path(getattr(runs, field))[0]:
            assert digest(x) == expected[field + jax.tree_util.keystr(path)]
    for field in ("final_loss", "loss_history", "eval_steps", "eval_seconds", "diverged_at",
                  "seed_ids"):
        assert digest(getattr(runs, field)) == expected[field], field
    problem = problems.teacher_student(d_in=2, hidden=3, n=16)
    exact = gdlab.load_runs(FIXTURES / "runs_v0_2", problem=problem)
    _assert_tree_equal(exact.params, runs.params)
    _assert_tree_equal(exact.trajectory, runs.trajectory)


# ----------------------------------------------------------------------------- any pytree


class Pair(NamedTuple):
    w: jax.Array
    b: jax.Array


@flax.struct.dataclass
class Scaled:
    w: jax.Array
    scale: float = flax.struct.field(pytree_node=False, default=2.0)


def _nnx_init(key):
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(2, 3, rngs=rngs)
            self.heads = nnx.List([nnx.Linear(3, 1, rngs=rngs), nnx.Linear(3, 2, rngs=rngs)])
    return nnx.state(Net(nnx.Rngs(params=key)), nnx.Param)


def _eqx_init(key):
    eqx = pytest.importorskip("equinox")
    return eqx.filter(eqx.nn.MLP(2, 1, 3, 2, key=key), eqx.is_array)


KINDS = {
    "namedtuple": lambda key: Pair(jax.random.normal(key, (2,), jnp.bfloat16), jnp.zeros(1)),
    "struct_dataclass": lambda key: Scaled(jax.random.normal(key, (2, 2))),
    "nnx_state": _nnx_init,
    "equinox_module": _eqx_init,
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_any_pytree_round_trips_exactly_given_the_problem(kind, tmp_path):
    init = KINDS[kind]
    params = _stack(lambda i: init(jax.random.key(i)))
    saved = _runs(params).save(tmp_path / "run")
    loaded = gdlab.load_runs(saved, problem=_problem(init))
    _assert_tree_equal(loaded.params, params)
    _assert_tree_equal(loaded.init_params, params)
    with pytest.warns(UserWarning, match=r"cannot be rebuilt without their classes.*problem="):
        plain = gdlab.load_runs(saved)
    # Without the problem: the same arrays, as dicts keyed by path segments.
    by_path = {jax.tree_util.keystr(p): x for p, x in
               jax.tree_util.tree_flatten_with_path(params)[0]}
    assert len(jax.tree.leaves(plain.params)) == len(by_path)
    assert sorted(x.tobytes() for x in jax.tree.leaves(plain.params)) == \
        sorted(np.asarray(x).tobytes() for x in by_path.values())


def test_plain_containers_round_trip_exactly_without_the_problem(tmp_path):
    params = {"a": [np.arange(6, dtype=np.int8).reshape(S, 2), (np.ones((S,), bool), None)],
              "b": np.ones((S, 2), jnp.bfloat16), "n": {3: np.zeros((S, 0), np.float16)},
              "d": (), "e": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = gdlab.load_runs(_runs(params).save(tmp_path / "run"))
    _assert_tree_equal(loaded.params, params)
    assert list(loaded.params) == list(params)  # insertion order kept
    assert loaded.params["b"].dtype == jnp.bfloat16


def test_arrays_are_keyed_by_tree_path(tmp_path):
    params = _stack(lambda i: KINDS["nnx_state"](jax.random.key(i)))
    saved = _runs(params).save(tmp_path / "run")
    with np.load(saved / store.ARRAYS) as z:
        names = set(z.files)
    assert "params['hidden']['kernel'].value" in names
    assert "init_params['heads'][1]['bias'].value" in names


@pytest.mark.parametrize("params, match", [
    ({"w": np.ones((S, 2)), "act": jax.nn.relu}, r"params\['act'\].*not an array"),
    ({"w": np.ones((S, 2)), "name": "mlp"}, r"params\['name'\].*str, not an array"),
    ({"key": jax.random.split(jax.random.key(0), S)}, r"params\['key'\].*jax.random.key_data"),
    ({"w": np.array([None] * S, dtype=object)}, r"params\['w'\].*without pickle"),
    ({(1, 2): np.ones((S, 2))}, r"dict key \(1, 2\) is a tuple"),
])
def test_unsavable_params_are_refused_before_anything_is_written(params, match, tmp_path):
    with pytest.raises(gdlab.InputError, match=match):
        store.check_savable(params)
    with pytest.raises(gdlab.InputError, match=match):
        _runs(params).save(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_equinox_module_with_its_activation_is_refused_with_a_hint():
    eqx = pytest.importorskip("equinox")
    mlp = eqx.nn.MLP(2, 1, 3, 1, key=jax.random.key(0))
    with pytest.raises(gdlab.InputError, match=r"params\.activation.*eqx\.partition"):
        store.check_savable(mlp)


def test_train_checks_the_params_are_savable_before_compiling(tmp_path, monkeypatch):
    from gdlab.core import engine
    monkeypatch.setattr(engine, "get_engine", lambda *a, **k: pytest.fail("compiled"))
    bad = gdlab.Problem(name="tuple_key", init=lambda key: {(0, 1): jax.random.normal(key, (2,))},
                        loss=lambda p, batch: jnp.sum(p[(0, 1)] ** 2), data=None)
    cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=2, eval_every=2)
    with pytest.raises(gdlab.InputError, match=r"cannot save params\[\(0, 1\)\]: dict key"):
        gdlab.train(bad, cfg, seeds=2, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("other, match", [
    (problems.teacher_student(d_in=2, hidden=4, n=16),
     r"params\['Dense_0'\]\['bias'\]: the saved leaf is float32\[3, 3\], the problem's is "
     r"float32\[4\]"),
    (problems.himmelblau(), r"the problem's leaf params is not in the saved run"),
])
def test_loading_with_another_problem_names_the_first_mismatch(other, match):
    with pytest.raises(gdlab.InputError, match=match):
        gdlab.load_runs(FIXTURES / "runs_v0_2", problem=other)


# ----------------------------------------------------------------------------- damaged runs


def _copy_fixture(tmp_path) -> Path:
    return Path(shutil.copytree(FIXTURES / "runs_v0_2", tmp_path / "old"))


def test_arrays_of_another_save_are_refused_naming_the_file_and_run(tmp_path):
    a = _marked(1).save(tmp_path / "a")
    b = _marked(2).save(tmp_path / "b")
    shutil.copy(b / store.ARRAYS, a / store.ARRAYS)  # a torn run: b's arrays, a's metadata
    with pytest.raises(gdlab.InputError, match=rf"run '{q(a)}'.*{store.ARRAYS}.*SHA-256.*"
                                               r"restore the run"):
        gdlab.load_runs(a)


@pytest.mark.parametrize("fixture", [False, True])
def test_a_truncated_arrays_file_is_refused_naming_the_file_and_run(fixture, tmp_path):
    run = _copy_fixture(tmp_path) if fixture else \
        _runs({"w": np.zeros((S, 100), np.float32)}).save(tmp_path / "run")
    data = (run / store.ARRAYS).read_bytes()
    (run / store.ARRAYS).write_bytes(data[: len(data) // 2])
    match = "truncated or corrupt" if fixture else "SHA-256"  # gdlab 0.2 recorded no hash
    with pytest.raises(gdlab.InputError, match=rf"run '{q(run)}'.*{store.ARRAYS}'.*{match}"):
        gdlab.load_runs(run)


def test_corrupt_or_missing_run_files_are_named(tmp_path):
    run = _marked(0).save(tmp_path / "run")
    (run / store.METADATA).write_text('{"format_version": 2, "tre')
    with pytest.raises(gdlab.InputError, match=rf"{store.METADATA}' is truncated or corrupt"):
        gdlab.load_runs(run)
    run = _marked(0).save(tmp_path / "run2")
    (run / store.ARRAYS).unlink()
    with pytest.raises(gdlab.InputError, match=rf"arrays file '.*{store.ARRAYS}' is missing"):
        gdlab.load_runs(run)


def test_directories_that_are_not_runs_get_a_clear_message(tmp_path):
    study = tmp_path / "study"
    _marked(0).save(study / "himmelblau")
    (study / "report.md").write_text("# report")
    with pytest.raises(gdlab.InputError, match=r"holds no saved run.*runs found below it: "
                                               r".*study/himmelblau"):
        gdlab.load_runs(study)
    with pytest.raises(gdlab.InputError, match="does not exist"):
        gdlab.load_runs(tmp_path / "nothing")
    with pytest.raises(gdlab.InputError, match=r"is a file, not a run directory; pass its "
                                               r"directory"):
        gdlab.load_runs(study / "himmelblau" / store.METADATA)
    with pytest.raises(gdlab.InputError, match="is a file, not a run directory"):
        gdlab.load_runs(study / "report.md")


# ----------------------------------------------------------------------------- atomic saves


def _marker(path: Path) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runs = gdlab.load_runs(path)
    m = runs.manifest["marker"]
    for leaf in [*jax.tree.leaves(runs.params), runs.final_loss, runs.loss_history]:
        assert np.all(leaf == m), "arrays of one save under the metadata of another"
    assert runs.timings["marker"] == m
    return m


def _study_dir(tmp_path) -> Path:
    """A study directory holding a report, figures and a subdirectory beside its run."""
    path = tmp_path / "study"
    (path / "figures").mkdir(parents=True)
    (path / "figures" / "loss.png").write_bytes(b"png")
    (path / "report.md").write_text("# report")
    _marked(5).save(path / "sub")
    return path


STUDY_FILES = ["figures", "report.md", "sub"]


def test_overwriting_a_run_keeps_the_studys_other_files(tmp_path):
    path = _study_dir(tmp_path)
    _marked(1).save(path)
    _marked(2).save(path, overwrite=True)
    assert _marker(path) == 2 and _marker(path / "sub") == 5
    assert _listing(path) == sorted([store.ARRAYS, store.METADATA, *STUDY_FILES])
    assert (path / "figures" / "loss.png").read_bytes() == b"png"


def _stage(path: Path, marker: int) -> Path:
    """The stage directory of a save of `marker`, written but not committed."""
    runs = _marked(marker)
    arrays = {"final_loss": runs.final_loss, "loss_history": runs.loss_history,
              "eval_steps": runs.eval_steps, "eval_seconds": runs.eval_seconds,
              "diverged_at": runs.diverged_at, "seed_ids": runs.seed_ids}
    trees = {name: store.encode_tree(runs.params, name, arrays)
             for name in ("params", "init_params")}
    return store._stage(path, arrays, {"format_version": 2, "trees": trees,
                                       "timings": runs.timings, "manifest": runs.manifest})


def _interrupt(path: Path, marker: int, moved: int) -> None:
    """A save of `marker` killed after its commit with `moved` of its files moved."""
    os.rename(_stage(path, marker), path / store.COMMIT)
    for name in [store.ARRAYS, store.METADATA][:moved]:
        os.replace(path / store.COMMIT / store._STAGED[name], path / name)


@pytest.mark.parametrize("moved", [0, 1, 2])
def test_a_save_interrupted_after_its_switch_loads_as_the_new_run(moved, tmp_path):
    path = _study_dir(tmp_path)
    _marked(1).save(path)
    _interrupt(path, 2, moved)
    assert store.holds_run(path) and _marker(path) == 2
    _marked(3).save(path, overwrite=True)
    assert _marker(path) == 3
    assert _listing(path) == sorted([store.ARRAYS, store.METADATA, *STUDY_FILES])


def test_a_save_killed_before_its_switch_leaves_the_old_run_or_none(tmp_path):
    path = _study_dir(tmp_path)
    _stage(path, 1)  # a first save killed while staging
    assert not store.holds_run(path)
    with pytest.raises(gdlab.InputError, match="holds no saved run"):
        gdlab.load_runs(path)
    _marked(2).save(path)  # not blocked by the leftover
    _stage(path, 3)
    assert _marker(path) == 2
    _marked(4).save(path, overwrite=True)
    assert _listing(path) == sorted([store.ARRAYS, store.METADATA, *STUDY_FILES])


def test_a_first_save_interrupted_after_its_switch_is_a_run(tmp_path):
    (tmp_path / "run").mkdir()
    _interrupt(tmp_path / "run", 7, 0)
    assert store.holds_run(tmp_path / "run") and _marker(tmp_path / "run") == 7
    with pytest.raises(gdlab.InputError, match="already holds a run"):
        _marked(8).save(tmp_path / "run")


def _enospc_after(monkeypatch, nbytes: int):
    """Make np.savez write `nbytes` and then fail as on a full disk."""
    def full_disk(file, *args, **kwds):
        file.write(b"x" * nbytes)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(np, "savez", full_disk)


def test_a_full_disk_leaves_the_earlier_run_intact_and_nothing_blocking(tmp_path, monkeypatch):
    path = _study_dir(tmp_path)
    _marked(1).save(path)
    with monkeypatch.context() as m:
        _enospc_after(m, 1000)
        with pytest.raises(OSError, match=rf"could not save the run to '{q(path)}': No space "
                                          r"left.*earlier run is intact") as err:
            _marked(2).save(path, overwrite=True)
        assert err.value.errno == errno.ENOSPC
        with pytest.raises(OSError, match="No space left"):
            _marked(2).save(tmp_path / "new")
    assert _marker(path) == 1
    assert _listing(path) == sorted([store.ARRAYS, store.METADATA, *STUDY_FILES])
    assert not (tmp_path / "new").exists()  # the directory the failed first save made
    _marked(3).save(path, overwrite=True)  # the retry
    assert _marker(path) == 3


def test_a_full_disk_during_a_checkpoint_keeps_the_older_ones(tmp_path, monkeypatch):
    state = {"x": np.zeros(3, np.float32)}
    checkpoint.save(tmp_path, 10, state, {"evals": np.zeros((1, 4))}, "f")
    with monkeypatch.context() as m:
        _enospc_after(m, 100)
        with pytest.raises(OSError, match=rf"checkpoint of step 20 of run '{q(tmp_path)}'.*"
                                          "No space left.*older checkpoints are intact"):
            checkpoint.save(tmp_path, 20, state, {"evals": np.zeros((1, 4))}, "f")
    assert _listing(tmp_path / checkpoint.CHECKPOINTS) == ["step-000000000010"]
    found = checkpoint.load_latest(tmp_path, {"x": jnp.zeros(3, jnp.float32)}, "f")
    assert found[0] == 10


def test_train_saves_the_run_elsewhere_when_its_directory_fails(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = store._stage

    def fail_for_out(path, arrays, metadata):
        if Path(path) == out:
            raise OSError(errno.ENOSPC, f"could not save the run to {str(out)!r}: No space")
        return real(path, arrays, metadata)
    monkeypatch.setattr(store, "_stage", fail_for_out)
    cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=4, eval_every=2)
    with pytest.raises(UnsavedRun, match=rf"could not be saved to '{q(out)}'.*saved to '.*"
                                         r"gdlab-unsaved-himmelblau-.*' instead") as err:
        gdlab.train(problems.himmelblau(), cfg, seeds=2, out=out)
    rescued = err.value.rescued
    try:
        np.testing.assert_array_equal(gdlab.load_runs(rescued).params, err.value.runs.params)
    finally:
        shutil.rmtree(rescued)
    assert not (out / store.LOCK).exists()  # the lock was released


# ----------------------------------------------------------------------------- writable


def test_an_output_path_under_a_file_is_refused_naming_the_file(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    file = tmp_path / "file"
    with pytest.raises(gdlab.InputError, match=rf"nearest existing ancestor '{q(file)}' is a file"):
        store.check_writable(tmp_path / "file" / "a" / "run")
    from gdlab.core import engine
    monkeypatch.setattr(engine, "get_engine", lambda *a, **k: pytest.fail("compiled"))
    cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=2, eval_every=2)
    with pytest.raises(gdlab.InputError, match="is a file"):
        gdlab.train(problems.himmelblau(), cfg, seeds=2, out=tmp_path / "file" / "run")


def test_an_unwritable_ancestor_is_refused_before_anything_is_created(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(store.tempfile, "mkstemp", refuse)
    path = tmp_path / "a" / "b"
    with pytest.raises(gdlab.InputError, match=rf"'{q(path)}' is not writable: its nearest existing"
                                               rf" ancestor '{q(tmp_path)}' does not accept a new "
                                               r"file \(Permission denied\)"):
        store.check_writable(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_directory_is_refused(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(gdlab.InputError, match="is not writable"):
        store.check_writable(tmp_path / "ro" / "run")


# ----------------------------------------------------------------------------- fault injection

SERVER = r"""
import itertools, os, sys, time, traceback
from pathlib import Path
import numpy as np
from gdlab.core import checkpoint, store
from gdlab.core.runs import Runs

S, N = 4, 8192

def say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()

def make_runs(m):
    full = lambda *shape: np.full(shape, m, np.float32)
    return Runs(params={"w": full(S, N), "layers": [full(S, 3), (full(S, 2), None)]},
                init_params={"w": full(S, 4)}, final_loss=full(S), loss_history=full(S, 2),
                eval_steps=np.arange(2), eval_seconds=np.zeros(2),
                diverged_at=np.full(S, -1, np.int32), seed_ids=np.arange(S),
                timings={"marker": float(m)}, manifest={"marker": m})

def slowed(fn):  # widen the instants between a save's renames, so that kills land there too
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        time.sleep(0.003)
        return out
    return wrapped

def save_loop(kind, directory, first):
    os.rename, os.replace = slowed(os.rename), slowed(os.replace)
    if kind.startswith("ckpt"):
        import jax
        jax.process_index()  # start the backend before the first save is timed
    for m in itertools.count(first):
        say(f"start {m}")
        t = time.perf_counter()
        if kind == "runs":
            make_runs(m).save(directory, overwrite=store.holds_run(directory))
        else:
            step = 7 if kind == "ckpt-same" else m
            checkpoint.save(Path(directory), step, {"x": np.full(N, m, np.float32)},
                            {"evals": np.full((1, 3), m)}, "fp")
        say(f"done {m} {time.perf_counter() - t:.4f}")

def hold(directory):
    store.RunLock(directory).acquire()
    say("locked")
    time.sleep(600)

say("ready")
for line in sys.stdin:
    kind, directory, first = line.split()
    pid = os.fork()
    if pid == 0:
        try:
            hold(directory) if kind == "lock" else save_loop(kind, directory, int(first))
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        os._exit(1)
    say(f"pid {pid}")
    say(f"reaped {os.waitpid(pid, 0)[1]}")
"""


class Server:
    """A process that imports gdlab once, then forks a saving worker per trial."""

    def __init__(self, log: Path):
        self.log = open(log, "w+")
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.buffer = b""
        assert self.line(120.0) == "ready", self.stderr()

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:]

    def line(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            ready = select.select([self.proc.stdout], [], [], max(left, 0))[0]
            chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                pytest.fail(f"fault-injection server silent or gone: {self.stderr()}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def start(self, kind: str, directory: Path, first: int = 0) -> None:
        self.proc.stdin.write(f"{kind} {directory} {first}\n".encode())
        self.proc.stdin.flush()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout, self.log):
            stream.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("server") / "stderr.txt")
    yield s
    s.close()


@dataclasses.dataclass
class Trial:
    """What one worker reported before it was killed."""

    started: list
    done: list
    seconds: list


def _kill_during_a_save(server, kind, directory, first, rng, kill_in_save, seconds) -> Trial:
    """Start a worker saving in a loop; SIGKILL it at a random instant of save `kill_in_save`."""
    server.start(kind, directory, first)
    trial, pid, killed = Trial([], [], []), None, False
    while True:
        word, *rest = server.line().split()
        if word == "pid":
            pid = int(rest[0])
        elif word == "start":
            trial.started.append(int(rest[0]))
        elif word == "done":
            trial.done.append(int(rest[0]))
            trial.seconds.append(float(rest[1]))
        elif word == "reaped":
            status = int(rest[0])
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, \
                server.stderr()
            return trial
        if not killed and pid is not None and len(trial.started) >= kill_in_save:
            time.sleep(rng.uniform(0.0, 1.3 * seconds))
            os.kill(pid, signal.SIGKILL)
            killed = True


def _state(path: Path) -> str:
    """Which instant of a save the directory shows."""
    ckpts = path / checkpoint.CHECKPOINTS
    if ckpts.exists():
        names = [p.name for p in ckpts.iterdir()]
        return ("while writing" if any(n.startswith(".tmp-") for n in names) else
                "while pruning" if any(n.startswith(".trash-") for n in names) else "between")
    if (path / store.COMMIT).exists():
        return f"after the switch ({len(list((path / store.COMMIT).iterdir()))} files to move)"
    return "while staging" if any(path.glob(f"{store.STAGE_PREFIX}*")) else "between saves"


def _fault_trials(server, tmp_path, kind, trials, check, fresh_every=3, seed=0):
    """Run `trials` kill trials; every `fresh_every`-th a first save into a new directory."""
    rng, shared, marker, seconds = np.random.default_rng(seed), tmp_path / "shared", 0, 0.05
    outcomes, last = {}, {}
    for t in range(trials):
        fresh = t % fresh_every == 0
        path = tmp_path / f"fresh-{t}" if fresh else shared
        trial = _kill_during_a_save(server, kind, path, marker, rng,
                                    1 if fresh else int(rng.integers(1, 4)), seconds)
        seconds = float(np.median(trial.seconds)) if trial.seconds else seconds
        before = trial.done[-1] if trial.done else last.get(path)
        state = _state(path) if path.exists() else "no directory"
        got = check(path, before, trial.started[-1])
        found = "no run" if got is None else "old save" if got == before else "new save"
        outcomes[f"{found}, {state}"] = outcomes.get(f"{found}, {state}", 0) + 1
        last[path] = got
        marker = trial.started[-1] + 1
    print(f"{kind}: {trials} kills survived; outcomes: {outcomes}")
    return outcomes


def test_runs_save_survives_sigkill_at_random_instants(server, tmp_path):
    shared = _study_dir(tmp_path).rename(tmp_path / "shared")

    def check(path, before, started):
        if not store.holds_run(path):
            assert before is None, "a finished save was lost"
            got = None
        else:
            got = _marker(path)
            assert got in {before, started}, (got, before, started)
        if path == shared:
            assert set(STUDY_FILES) <= set(_listing(path))
            assert (path / "report.md").read_text() == "# report"
        else:  # nothing left behind blocks the next save
            _marked(-1).save(path, overwrite=got is not None)
            assert _marker(path) == -1
            assert _listing(path) == [store.ARRAYS, store.METADATA]
        return got
    outcomes = _fault_trials(server, tmp_path, "runs", 36, check)
    assert sum(outcomes.values()) == 36
    _marked(-2).save(shared, overwrite=True)
    assert _listing(shared) == sorted([store.ARRAYS, store.METADATA, *STUDY_FILES])


@pytest.mark.parametrize("kind", ["ckpt", "ckpt-same"])
def test_checkpoint_save_survives_sigkill_at_random_instants(server, kind, tmp_path):
    like = {"x": jnp.zeros(8192, jnp.float32)}

    def check(path, before, started):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no damaged checkpoint is ever visible
            found = checkpoint.load_latest(path, like, "fp")
            for each in checkpoint._listing(checkpoint.directory(path)):
                checkpoint._load(each, like, "fp")
        if found is None:
            assert before is None, "a finished checkpoint was lost"
            return None
        step, state, record = found
        got = int(np.asarray(state["x"])[0])
        assert np.all(np.asarray(state["x"]) == got) and np.all(record["evals"] == got)
        assert got in {before, started} and step == (7 if kind == "ckpt-same" else got)
        return got
    outcomes = _fault_trials(server, tmp_path, kind, 18, check, seed=1)
    assert sum(outcomes.values()) == 18
    checkpoint.save(tmp_path / "shared", 99, {"x": np.zeros(8192, np.float32)},
                    {"evals": np.zeros((1, 3))}, "fp")  # cleans what the kills left
    assert not [p for p in (tmp_path / "shared" / checkpoint.CHECKPOINTS).iterdir()
                if p.name.startswith(".")]


# ----------------------------------------------------------------------------- locks


def _hold_in_another_process(server, path: Path) -> int:
    server.start("lock", path)
    pid, locked = None, False
    while pid is None or not locked:  # the worker may say "locked" before the server's "pid"
        word, *rest = server.line().split()
        pid = int(rest[0]) if word == "pid" else pid
        locked = locked or word == "locked"
    return pid


def _kill(server, pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    while not server.line().startswith("reaped"):
        pass


def test_a_second_process_is_refused_at_once_naming_the_holder(server, tmp_path, monkeypatch):
    out = tmp_path / "run"
    pid = _hold_in_another_process(server, out)
    holder = rf"pid {pid} on host {socket.gethostname()}"
    try:
        with pytest.raises(gdlab.InputError, match=rf"'{q(out)}' is in use: {holder}"):
            _marked(0).save(out)
        from gdlab.core import engine
        monkeypatch.setattr(engine, "get_engine", lambda *a, **k: pytest.fail("compiled"))
        cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=2, eval_every=2)
        with pytest.raises(gdlab.InputError, match=rf"is in use: {holder}"):
            gdlab.train(problems.himmelblau(), cfg, seeds=2, out=out)
    finally:
        _kill(server, pid)
    # The holder died without releasing: its lock is gone with it.
    assert (out / store.LOCK).exists()
    _marked(4).save(out)
    assert _marker(out) == 4 and _listing(out) == [store.ARRAYS, store.METADATA]


def test_train_holds_the_lock_until_the_run_is_saved(tmp_path, monkeypatch):
    out, seen = tmp_path / "run", []
    real = Runs.save

    def save(self, directory, overwrite=False):
        seen.append((out / store.LOCK).exists())
        return real(self, directory, overwrite)
    monkeypatch.setattr(Runs, "save", save)
    cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=4, eval_every=2)
    gdlab.train(problems.himmelblau(), cfg, seeds=2, out=out)
    assert seen == [True]
    assert {store.ARRAYS, store.METADATA} <= set(_listing(out))
    assert not [name for name in _listing(out) if name.startswith(".")]  # no lock, no stage


def test_the_lock_is_reentrant_in_a_thread_and_refuses_other_threads(tmp_path):
    errors = []
    with store.RunLock(tmp_path / "run"), store.RunLock(tmp_path / "run"):
        _marked(0).save(tmp_path / "run")

        def other():
            try:
                store.RunLock(tmp_path / "run").acquire()
            except gdlab.InputError as err:
                errors.append(str(err))
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert (tmp_path / "run" / store.LOCK).exists()
    assert errors and "another thread of this process" in errors[0]
    assert not (tmp_path / "run" / store.LOCK).exists()


def test_a_lock_on_a_new_directory_removes_it_again_if_nothing_was_saved(tmp_path):
    with store.RunLock(tmp_path / "a" / "b"):
        assert (tmp_path / "a" / "b" / store.LOCK).exists()
    assert not (tmp_path / "a").exists()
