import dataclasses
import json
import os

import jax
import numpy as np
import pytest
from helpers import assert_trees_equal

import gdlab
from gdlab import problems
from gdlab.core import store


@pytest.fixture(scope="module")
def ts_runs():
    problem = problems.teacher_student(d_in=2, hidden=3, n=64)
    config = gdlab.TrainConfig(learning_rate=0.1, steps=10, batch_size=8, eval_every=5)
    return gdlab.train(problem, config, seeds=6)


def test_save_load_round_trips_bit_for_bit(ts_runs, tmp_path):
    ts_runs.save(tmp_path / "run")
    loaded = gdlab.load_runs(tmp_path / "run")
    assert jax.tree.structure(loaded.params) == jax.tree.structure(ts_runs.params)
    assert_trees_equal(loaded.params, ts_runs.params, dtype=True)
    for name in ("final_loss", "loss_history", "eval_steps", "eval_seconds", "diverged_at",
                 "seed_ids"):
        assert np.array_equal(getattr(loaded, name), getattr(ts_runs, name)), name
    assert np.array_equal(loaded.diverged, ts_runs.diverged)
    assert loaded.timings == ts_runs.timings
    assert loaded.manifest["problem"]["name"] == "teacher_student"
    assert loaded.metrics.keys() == ts_runs.metrics.keys()
    for name, values in ts_runs.metrics.items():
        assert np.array_equal(loaded.metrics[name], values), name


def test_loading_with_the_problem_rebuilds_its_params_tree(ts_runs, tmp_path):
    problem = problems.teacher_student(d_in=2, hidden=3, n=64)
    loaded = gdlab.load_runs(ts_runs.save(tmp_path / "run"), problem=problem)
    assert jax.tree.structure(loaded.params) == jax.tree.structure(problem.params_shape())
    assert_trees_equal(loaded.params, ts_runs.params, dtype=True)
    with pytest.raises(ValueError, match=r"problem must be a gdlab\.Problem"):
        gdlab.load_runs(tmp_path / "run", problem="teacher_student")


def test_manifest_records_what_reproduces_the_run(ts_runs):
    m = ts_runs.manifest
    for key in ("config", "key", "seeds", "versions", "devices", "xla_flags", "git_revision"):
        assert key in m
    assert m["config"]["batch_size"] == 8 and m["seeds"]["count"] == 6
    assert {"jax", "jaxlib", "optax", "flax"} <= set(m["versions"])
    json.dumps(m)  # JSON-serialisable


def test_refuses_to_overwrite_a_saved_run(ts_runs, tmp_path):
    ts_runs.save(tmp_path)
    before = (tmp_path / store.ARRAYS).read_bytes()
    with pytest.raises(ValueError, match=r"already holds a run.*overwrite=True"):
        ts_runs.save(tmp_path)
    assert (tmp_path / store.ARRAYS).read_bytes() == before
    ts_runs.save(tmp_path, overwrite=True)


def test_train_checks_out_dir_before_compiling(ts_runs, tmp_path, monkeypatch):
    ts_runs.save(tmp_path)
    from gdlab.core import engine
    monkeypatch.setattr(engine, "compile_engine", lambda *a, **k: pytest.fail("compiled"))
    config = gdlab.TrainConfig(learning_rate=0.1, steps=3, eval_every=3)
    with pytest.raises(ValueError, match="already holds a run"):
        gdlab.train(problems.himmelblau(), config, seeds=2, out=tmp_path)


def test_train_out_saves_the_run(tmp_path):
    config = gdlab.TrainConfig(learning_rate=0.01, steps=5, eval_every=5)
    runs = gdlab.train(problems.himmelblau(), config, seeds=3, out=tmp_path / "h")
    assert np.array_equal(gdlab.load_runs(tmp_path / "h").params, runs.params)


def test_no_temporary_files_left_behind(ts_runs, tmp_path):
    ts_runs.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [store.ARRAYS, store.METADATA]


def test_load_from_an_empty_directory_raises(tmp_path):
    with pytest.raises(ValueError, match="holds no saved run"):
        gdlab.load_runs(tmp_path)


def test_tree_encoding_round_trips_nested_containers():
    tree = {"a": [np.ones(2), (np.zeros(1), None)], "b": np.float32(3.0), "c": {1: np.ones(1)}}
    arrays = {}
    skeleton = store.encode_tree(tree, "p", arrays)
    back = store.decode_tree(json.loads(json.dumps(skeleton)), arrays)
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    assert sorted(arrays) == ["p['a'][0]", "p['a'][1][0]", "p['b']", "p['c'][1]"]
    with pytest.raises(ValueError, match=r"dict key \(1,\) is a tuple"):
        store.encode_tree({(1,): np.ones(1)}, "p", {})


def test_trajectory_records_the_first_seeds_at_every_evaluation(tmp_path):
    cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=40, eval_every=10)
    runs = gdlab.train(problems.himmelblau(), cfg, seeds=16, key=3, trajectories=5)
    assert runs.trajectory.shape == (5, len(runs.eval_steps), 2)
    np.testing.assert_array_equal(runs.trajectory[:, 0], runs.init_params[:5])
    np.testing.assert_array_equal(runs.trajectory[:, -1], runs.params[:5])
    # The point recorded at step 10 is where a 10-step run of the same seeds ends.
    short = gdlab.train(problems.himmelblau(), dataclasses.replace(cfg, steps=10), seeds=5, key=3)
    np.testing.assert_allclose(runs.trajectory[:, 1], short.params, rtol=1e-6)
    loaded = gdlab.load_runs(runs.save(tmp_path / "run"))
    np.testing.assert_array_equal(loaded.trajectory, runs.trajectory)


def test_no_trajectory_unless_asked(ts_runs, tmp_path):
    assert ts_runs.trajectory is None
    assert gdlab.load_runs(ts_runs.save(tmp_path / "run")).trajectory is None


@pytest.mark.parametrize("bad", [-1, 17, 2.5, True])
def test_bad_trajectory_count_is_rejected(bad):
    cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=10, eval_every=10)
    with pytest.raises(ValueError, match=r"trajectories must be an integer in 0\.\.16"):
        gdlab.train(problems.himmelblau(), cfg, seeds=16, trajectories=bad)


def test_seeds_in_groups_give_the_same_runs_as_all_at_once(tmp_path):
    problem = problems.teacher_student(d_in=2, hidden=3, n=64)
    config = gdlab.TrainConfig(learning_rate=0.1, steps=30, batch_size=8, eval_every=10)
    whole = gdlab.train(problem, config, seeds=11, key=2, trajectories=2)
    grouped = gdlab.train(problem, config, seeds=11, key=2, trajectories=2, seeds_per_call=4)
    assert whole.manifest["seeds_per_call"] == 11 and grouped.manifest["seeds_per_call"] == 4
    assert_trees_equal(whole.params, grouped.params)
    for name in ("loss_history", "diverged_at", "seed_ids", "eval_steps"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(grouped, name))
    np.testing.assert_array_equal(whole.init_params["Dense_0"]["kernel"],
                                  grouped.init_params["Dense_0"]["kernel"])
    np.testing.assert_array_equal(jax.tree.leaves(whole.trajectory)[0],
                                  jax.tree.leaves(grouped.trajectory)[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(seeds_per_call=0), "seeds_per_call must be (a positive integer|an integer >= 1)"),
    (dict(seeds_per_call=2, trajectories=3), "trajectories=3 is more than the 2 seeds"),
])
def test_bad_seed_groups_are_rejected(kwargs, match):
    cfg = gdlab.TrainConfig(learning_rate=1e-2, steps=10, eval_every=10)
    with pytest.raises(ValueError, match=match):
        gdlab.train(problems.himmelblau(), cfg, seeds=8, **kwargs)


def test_state_memory_estimate_counts_params_and_optimizer_state():
    from gdlab.core.engine import state_bytes_per_seed
    sgd = gdlab.TrainConfig(learning_rate=0.1, steps=1, eval_every=1)
    adam = gdlab.TrainConfig(optimizer="adam", learning_rate=0.1, steps=1, eval_every=1)
    p = problems.quadratic()
    # Adam keeps two more params-sized float32 moments and an int32 step count than SGD.
    extra = state_bytes_per_seed(p, adam) - state_bytes_per_seed(p, sgd)
    assert extra == 2 * 4 * p.num_params() + 4


def _chunk_memory(seeds, block):
    """(model, XLA) bytes of the compiled chunk training `seeds` seeds on one device."""
    from gdlab.core import engine, train
    from gdlab.core.memory import xla_memory
    problem = problems.teacher_student(d_in=3, hidden=8, n=256)
    config = gdlab.TrainConfig(optimizer="adam", learning_rate=0.01, steps=20, batch_size=16,
                               eval_every=10)
    gdlab.train(problem, config, seeds=seeds, seed_block=block, devices=jax.devices()[:1])
    compiled = next(iter(list(engine._ENGINES.values())[-1].chunks.values()))
    data = sum(x.nbytes for x in jax.tree.leaves(problem.data))
    model = train.group_bytes(seeds, engine.state_bytes_per_seed(problem, config),
                              engine.step_memory(problem, config, problem.data, block)
                              .temp_bytes)
    return model, xla_memory(compiled).total_bytes - data


@pytest.mark.parametrize("seeds, block", [(8, 8), (64, 16)])
def test_group_memory_model_matches_xla_memory_of_the_compiled_chunk(seeds, block):
    """The chunk chooser's bytes (states x copies + one block's step temporaries) against
    XLA's memory analysis of the chunk gdlab.train compiled."""
    model, actual = _chunk_memory(seeds, block)
    assert 0.95 * actual <= model <= 1.6 * actual


def test_seeds_are_split_into_groups_that_fit_the_device_memory(monkeypatch):
    from gdlab.core import devices, engine, train
    problem = problems.teacher_student(d_in=2, hidden=3, n=64)
    config = gdlab.TrainConfig(learning_rate=0.1, steps=20, batch_size=8, eval_every=10)
    calls = []
    real = engine.step_memory
    monkeypatch.setattr(engine, "step_memory", lambda *a: calls.append(a) or real(*a))
    one = jax.devices()[:1]
    whole = gdlab.train(problem, config, seeds=64, seed_block=4, devices=one)
    assert whole.manifest["seeds_per_call"] == 64 and not calls  # the cheap bound fits
    state = engine.state_bytes_per_seed(problem, config)
    temp = real(problem, config, problem.data, 4).temp_bytes
    memory = train.group_bytes(20, state, temp) / train.MEMORY_SHARE + 1  # room for 20
    monkeypatch.setattr(devices, "memory_bytes", lambda device: memory)
    grouped = gdlab.train(problem, config, seeds=64, seed_block=4, devices=one)
    assert grouped.manifest["seeds_per_call"] == 20 and len(calls) == 1
    assert_trees_equal(whole.params, grouped.params)


def test_host_allocator_tuning_is_applied_once_and_can_be_switched_off():
    import platform
    import subprocess
    import sys

    from gdlab.core import devices
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt tuning applies to glibc only")
    assert devices.tune_host_allocator() is True and devices.tune_host_allocator() is True
    code = "from gdlab.core import devices; print(devices.tune_host_allocator())"
    env = {**os.environ, "GDLAB_MALLOC_TUNING": "0", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "False", out.stderr
