"""Checkpoints: saved atomically, damaged ones skipped, resumed runs bitwise identical."""

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from helpers import assert_trees_equal

import gdlab
from gdlab import problems
from gdlab.core import checkpoint

STEPS = 3000
ARGS = ["train", "--problem", "teacher_student", "--seeds", "8", "--steps", str(STEPS),
        "--lr", "0.05", "--batch-size", "16", "--eval-every", "50", "--key", "3"]


def _config():
    return gdlab.TrainConfig(learning_rate=0.05, steps=STEPS, batch_size=16, eval_every=50)


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted run the interrupted ones must reproduce bit for bit."""
    return gdlab.train(problems.teacher_student(), _config(), seeds=8, key=3)


def _assert_same(a, b):
    assert_trees_equal(a.params, b.params)
    np.testing.assert_array_equal(a.loss_history, b.loss_history)
    np.testing.assert_array_equal(a.eval_steps, b.eval_steps)
    np.testing.assert_array_equal(a.diverged_at, b.diverged_at)


def _start(out, *extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="4")
    return subprocess.Popen([sys.executable, "-m", "gdlab.cli", *ARGS, "--out", str(out),
                             "--checkpoint-every", "0", *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoints(proc, out, count, timeout=120.0):
    deadline = time.monotonic() + timeout
    while len(list((out / "checkpoints").glob("step-*"))) < count:
        if proc.poll() is not None:
            pytest.fail(f"training ended (rc {proc.returncode}) before a checkpoint: "
                        f"{proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail("no checkpoint appeared in time")
        time.sleep(0.005)


def _resume(out):
    return gdlab.train(problems.teacher_student(), _config(), seeds=8, key=3, out=out,
                       resume=True)


@pytest.mark.slow
def test_sigkill_part_way_then_resume_is_bitwise_identical(reference, tmp_path):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoints(proc, out, 2)
    proc.kill()
    proc.communicate(timeout=30)  # reaps it and closes its pipes
    assert proc.returncode == -signal.SIGKILL
    step = int(sorted((out / "checkpoints").glob("step-*"))[-1].name.split("-")[1])
    assert 0 < step < STEPS and not (out / "runs.json").exists()
    resumed = _resume(out)
    assert resumed.manifest["resumed_from_step"] == step
    _assert_same(resumed, reference)
    assert not (out / "checkpoints").exists()  # removed once the finished run is saved
    _assert_same(gdlab.load_runs(out), reference)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_with_the_documented_code(reference, tmp_path):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoints(proc, out, 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == checkpoint.EXIT_PREEMPTED == 75, err
    assert "stopped on SIGTERM at step" in err and "--resume" in err
    _assert_same(_resume(out), reference)


def test_truncated_latest_checkpoint_is_skipped_with_a_warning(reference, tmp_path):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoints(proc, out, 2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    saved = sorted((out / "checkpoints").glob("step-*"))
    assert len(saved) == checkpoint.KEEP
    newest = saved[-1]
    state = newest / checkpoint.STATE
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.warns(UserWarning, match=f"skipping checkpoint .*{newest.name}.*checksum"):
        resumed = _resume(out)
    assert resumed.manifest["resumed_from_step"] == int(saved[-2].name.split("-")[1])
    _assert_same(resumed, reference)


def test_checkpointing_every_chunk_in_process_changes_nothing(reference, tmp_path):
    runs = gdlab.train(problems.teacher_student(), _config(), seeds=8, key=3,
                       out=tmp_path / "run", checkpoint_every=0)
    _assert_same(runs, reference)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resume_with_no_checkpoint_starts_from_step_zero(tmp_path):
    cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=20, eval_every=10)
    a = gdlab.train(problems.himmelblau(), cfg, seeds=4, out=tmp_path / "a", resume=True)
    b = gdlab.train(problems.himmelblau(), cfg, seeds=4)
    assert a.manifest["resumed_from_step"] is None
    _assert_same(a, b)


def test_checkpoint_of_another_run_is_not_used(tmp_path):
    checkpoint.save(tmp_path, 10, {"x": np.zeros(3, np.float32)}, {"evals": np.zeros((1, 4))},
                    "another-run")
    with pytest.warns(UserWarning, match="belongs to a different run"):
        assert checkpoint.load_latest(tmp_path, {"x": np.zeros(3, np.float32)}, "this") is None


@pytest.mark.parametrize("kwargs, match", [
    (dict(checkpoint_every=5.0), "need an output directory"),
    (dict(resume=True), "need an output directory"),
    (dict(out="OUT", checkpoint_every=-1.0), "checkpoint_every must be a number of seconds"),
])
def test_bad_checkpoint_arguments_are_rejected(kwargs, match, tmp_path):
    if kwargs.get("out") == "OUT":
        kwargs["out"] = tmp_path / "run"
    cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=10, eval_every=10)
    with pytest.raises(ValueError, match=match):
        gdlab.train(problems.himmelblau(), cfg, seeds=4, **kwargs)


def test_unfinished_checkpoints_are_not_silently_discarded(tmp_path):
    checkpoint.save(tmp_path, 10, {"x": np.zeros(3, np.float32)}, {"evals": np.zeros((1, 4))},
                    "f")
    cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=10, eval_every=10)
    with pytest.raises(ValueError, match="holds checkpoints of an unfinished run"):
        gdlab.train(problems.himmelblau(), cfg, seeds=4, out=tmp_path)
    done = gdlab.train(problems.himmelblau(), cfg, seeds=4, out=tmp_path / "done")
    again = gdlab.train(problems.himmelblau(), cfg, seeds=4, out=tmp_path / "done", resume=True)
    np.testing.assert_array_equal(done.final_loss, again.final_loss)  # returned, not retrained
    with pytest.raises(ValueError, match="another config"):
        gdlab.train(problems.himmelblau(), dataclasses.replace(cfg, learning_rate=0.1), seeds=4,
                    out=tmp_path / "done", resume=True)
    with pytest.raises(ValueError, match="another seeds"):
        gdlab.train(problems.himmelblau(), cfg, seeds=5, out=tmp_path / "done", resume=True)


def _save(out, step, value, fp="f"):
    return checkpoint.save(out, step, {"x": np.full(3, value, np.float32)},
                           {"evals": np.zeros((1, 4))}, fp)


LIKE = {"x": jax.numpy.zeros(3, jax.numpy.float32)}


def test_a_damaged_checkpoint_is_named_with_its_run_and_what_is_used_instead(tmp_path):
    old, new = _save(tmp_path, 10, 1.0), _save(tmp_path, 20, 2.0)
    (new / checkpoint.STATE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.warns(UserWarning, match=rf"skipping checkpoint {re.escape(str(new))} of run "
                                         rf"'{re.escape(str(tmp_path))}': state.npz does not "
                                         rf"match its checksum.*trying the older checkpoint "
                                         rf"{old.name}"):
        step, state, _ = checkpoint.load_latest(tmp_path, LIKE, "f")
    assert step == 10 and float(state["x"][0]) == 1.0
    (old / checkpoint.META).write_text("{")
    with pytest.warns(UserWarning) as caught:
        assert checkpoint.load_latest(tmp_path, LIKE, "f") is None
    last = str(caught[-1].message)
    assert "meta.json' is truncated or corrupt" in last and old.name in last
    assert "no older checkpoint is left, so training starts from step 0" in last


def test_resaving_a_step_keeps_the_old_checkpoint_until_the_new_one_is_whole(tmp_path):
    first, second = _save(tmp_path, 5, 1.0), _save(tmp_path, 5, 2.0)
    assert (first.name, second.name) == ("step-000000000005", "step-000000000005.1")
    step, state, _ = checkpoint.load_latest(tmp_path, LIKE, "f")
    assert step == 5 and float(state["x"][0]) == 2.0


def test_leftovers_of_killed_checkpoint_writes_are_not_checkpoints_and_get_cleaned(tmp_path):
    root = checkpoint.directory(tmp_path)
    (root / ".tmp-step-000000000003").mkdir(parents=True)
    (root / ".trash-step-000000000001-abcd").mkdir()
    assert not checkpoint.exists(tmp_path)
    _save(tmp_path, 4, 1.0)
    assert sorted(p.name for p in root.iterdir()) == ["step-000000000004"]
    checkpoint.remove(tmp_path)
    assert not root.exists() and list(tmp_path.iterdir()) == []
