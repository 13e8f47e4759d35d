import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close

import gdlab
from gdlab import problems
from gdlab._tree import flatten_seeds
from gdlab.atlas.minima import match_known_minima
from gdlab.core import engine


def cfg(**kw):
    base = dict(optimizer="sgd", learning_rate=0.1, steps=20, eval_every=10)
    return gdlab.TrainConfig(**{**base, **kw})


def tree_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                     strict=True))


def test_least_squares_every_seed_reaches_closed_form():
    problem = problems.least_squares(n=128, d=4, noise=0.1)
    runs = gdlab.train(problem, cfg(learning_rate=0.5, steps=400, eval_every=100), seeds=64)
    sol = problem.known_minima[0].params
    err_w = np.abs(runs.params["w"] - np.asarray(sol["w"])[None]).max()
    err_b = np.abs(runs.params["b"] - np.asarray(sol["b"])).max()
    assert max(err_w, err_b) < 1e-4
    assert runs.params["w"].shape == (64, 4) and runs.final_loss.shape == (64,)
    assert not runs.diverged.any()


@pytest.mark.parametrize("name, lr, steps", [("himmelblau", 0.01, 1500),
                                             ("six_hump_camel", 0.002, 4000)])
def test_surfaces_converged_seeds_end_at_listed_minima(name, lr, steps):
    problem = problems.get(name)
    runs = gdlab.train(problem, cfg(learning_rate=lr, steps=steps, eval_every=steps), seeds=512)
    grad_norm = np.linalg.norm(jax.vmap(jax.grad(problem.loss), (0, None))(runs.params, None),
                               axis=1)
    converged = grad_norm < 1e-3
    assert converged.mean() > 0.95
    match = match_known_minima(problem, runs, tol=1e-3)
    assert np.all(match.index[converged] >= 0)
    assert np.all(match.counts > 0)  # every listed minimum is reached by some seed


def test_loss_history_and_eval_steps():
    problem = problems.quadratic()
    runs = gdlab.train(problem, cfg(steps=25, eval_every=10), seeds=8)
    np.testing.assert_array_equal(runs.eval_steps, [0, 10, 20, 25])
    assert runs.loss_history.shape == (8, 4)
    np.testing.assert_array_equal(runs.final_loss, runs.loss_history[:, -1])
    assert np.all(np.diff(runs.eval_seconds) >= 0)
    direct = jax.vmap(problem.loss, (0, None))(jnp.asarray(runs.params), None)
    np.testing.assert_allclose(runs.final_loss, direct, rtol=1e-6)
    init = jax.vmap(problem.loss, (0, None))(jnp.asarray(runs.init_params), None)
    np.testing.assert_allclose(runs.loss_history[:, 0], init, rtol=1e-6)
    assert np.all(runs.loss_history[:, -1] < runs.loss_history[:, 0])


def _ts(n=256):
    return problems.teacher_student(d_in=3, hidden=8, n=n)


def test_vmapped_seed_equals_same_seed_alone():
    problem = _ts()
    config = cfg(steps=30, batch_size=16, eval_every=15)
    many = gdlab.train(problem, config, seeds=8, key=3)
    alone = gdlab.train(problem, config, seeds=[5], key=3, devices=jax.devices()[:1])
    for a, b in zip(jax.tree.leaves(many.params), jax.tree.leaves(alone.params), strict=True):
        np.testing.assert_allclose(a[5], b[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(many.loss_history[5], alone.loss_history[0], rtol=1e-5)


def test_adding_seeds_keeps_existing_ones():
    problem = problems.himmelblau()
    few = gdlab.train(problem, cfg(learning_rate=0.01), seeds=5, key=9)
    more = gdlab.train(problem, cfg(learning_rate=0.01), seeds=40, key=9)
    np.testing.assert_allclose(more.init_params[:5], few.init_params, rtol=0, atol=0)
    np.testing.assert_allclose(more.params[:5], few.params, rtol=1e-6)


def test_same_config_twice_is_bitwise_identical():
    problem = _ts()
    config = cfg(steps=30, batch_size=16, sampling="epoch", eval_every=10)
    a = gdlab.train(problem, config, seeds=12, key=1)
    b = gdlab.train(problem, config, seeds=12, key=1)
    assert tree_equal(a.params, b.params)
    assert np.array_equal(a.loss_history, b.loss_history)


def test_four_devices_equal_one(devices):
    problem = _ts()
    config = cfg(steps=30, batch_size=16, eval_every=10, optimizer="adam", learning_rate=1e-2)
    four = gdlab.train(problem, config, seeds=10, devices=devices)
    one = gdlab.train(problem, config, seeds=10, devices=devices[:1])
    assert len(four.manifest["devices"]) == 4 and len(one.manifest["devices"]) == 1
    assert_trees_close(four.params, one.params)


SETTINGS_CONFIG = dict(steps=25, batch_size=8, eval_every=10, optimizer="momentum")


@pytest.fixture(scope="module")
def default_settings_run():
    return gdlab.train(_ts(), cfg(**SETTINGS_CONFIG), seeds=12)


@pytest.mark.parametrize("setting", [dict(seed_block=3, unroll=3), dict(devices=1),
                                     dict(seed_block=2, unroll=2, devices=2)])
def test_engine_settings_do_not_change_results(setting, default_settings_run):
    """Chunk size, unroll and device count are speed settings: same numbers as the default."""
    if "devices" in setting:
        setting = {**setting, "devices": jax.devices()[:setting["devices"]]}
    a = default_settings_run
    b = gdlab.train(_ts(), cfg(**SETTINGS_CONFIG), seeds=12, **setting)
    assert_trees_close(a.params, b.params)
    np.testing.assert_allclose(a.loss_history, b.loss_history, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_unroll_is_rejected(bad):
    with pytest.raises(ValueError, match=r"unroll must be an integer >= 1 .* got"):
        gdlab.train(problems.himmelblau(), cfg(), seeds=2, unroll=bad)


def test_a_few_seeds_use_no_more_devices_than_seeds():
    runs = gdlab.train(problems.himmelblau(), cfg(steps=2, eval_every=2), seeds=1)
    assert len(runs.manifest["devices"]) == 1 and len(jax.devices()) > 1


def test_sampling_rng_threefry_still_trains_and_differs_from_hash():
    problem = _ts()
    hashed = gdlab.train(problem, cfg(steps=10, batch_size=4, eval_every=10), seeds=2)
    threefry = gdlab.train(problem, cfg(steps=10, batch_size=4, eval_every=10,
                                        sampling_rng="threefry"), seeds=2)
    assert np.all(np.isfinite(threefry.final_loss))
    assert not np.allclose(hashed.final_loss, threefry.final_loss)


def test_seed_block_does_not_change_results():
    problem = _ts()
    config = cfg(steps=20, batch_size=8, eval_every=10)
    a = gdlab.train(problem, config, seeds=16, seed_block=1)
    b = gdlab.train(problem, config, seeds=16, seed_block=4)
    assert_trees_close(a.params, b.params)


@pytest.mark.parametrize("sampling", ["with_replacement", "epoch"])
def test_scan_engine_equals_plain_python_loop(sampling):
    problem = problems.least_squares(n=40, d=3)
    config = cfg(steps=7, batch_size=6, sampling=sampling, eval_every=7, optimizer="momentum")
    key, seed = jax.random.key(4), 2
    runs = gdlab.train(problem, config, seeds=[seed], key=4, devices=jax.devices()[:1])
    opt = config.make_optimizer()
    sampler = engine.build_sampler(problem, config)
    state = engine.make_init(problem, opt, sampler)(jnp.int32(seed), key)
    step = jax.jit(engine.make_step(problem, opt, sampler))
    for t in range(config.steps):
        state = step(state, jnp.int32(t), problem.data)
    for a, b in zip(jax.tree.leaves(runs.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_allclose(a[0], b, rtol=1e-6, atol=1e-7)


def _quartic():
    """x -> sum(x^4): GD with lr 0.1 diverges from |x_i| > sqrt(5) and converges otherwise."""
    return gdlab.Problem(name="quartic",
                         init=lambda k: jax.random.uniform(k, (2,), minval=-3.0, maxval=3.0),
                         loss=lambda x, batch: jnp.sum(x ** 4))


def test_diverging_seeds_are_flagged_at_the_right_step_and_others_untouched():
    problem = _quartic()
    config = cfg(learning_rate=0.1, steps=40, eval_every=10)
    runs = gdlab.train(problem, config, seeds=64)
    assert 0 < runs.diverged.sum() < 64
    # Oracle: one seed's plain SGD update, jitted whole (so XLA fuses it as the engine
    # does), in a Python loop; the first step whose result is not finite.
    update = jax.jit(lambda x: x - 0.1 * jax.grad(problem.loss)(x, None))
    for i in range(64):
        x, expected = jnp.asarray(runs.init_params[i]), -1
        for t in range(config.steps):
            nxt = update(x)
            if not bool(jnp.all(jnp.isfinite(nxt))):
                expected = t
                break
            x = nxt
        assert runs.diverged_at[i] == expected, i
        if expected >= 0:
            np.testing.assert_allclose(runs.params[i], np.asarray(x), rtol=1e-5)  # last finite
    assert np.all(np.isfinite(runs.params))
    kept = runs.seed_ids[~runs.diverged]
    clean = gdlab.train(problem, config, seeds=kept.tolist())
    assert not clean.diverged.any()
    assert np.array_equal(clean.params, runs.params[~runs.diverged])
    # Seeds frozen in an earlier chunk stay frozen in later ones (the unguarded fast path
    # restores them): one chunk per step gives the same result.
    per_step = gdlab.train(problem, cfg(learning_rate=0.1, steps=40, eval_every=1), seeds=64)
    np.testing.assert_array_equal(per_step.diverged_at, runs.diverged_at)
    np.testing.assert_allclose(per_step.params, runs.params, rtol=1e-6)


def test_time_based_evaluation_records_wall_time():
    problem = problems.himmelblau()
    config = cfg(learning_rate=0.01, steps=3000, eval_every=None, eval_every_seconds=1e-6,
                 chunk_steps=500)
    runs = gdlab.train(problem, config, seeds=16)
    np.testing.assert_array_equal(runs.eval_steps, [0, 500, 1000, 1500, 2000, 2500, 3000])
    assert np.all(np.diff(runs.eval_seconds) > 0)
    slow = gdlab.train(problem, cfg(learning_rate=0.01, steps=3000, eval_every=None,
                                    eval_every_seconds=3600.0, chunk_steps=500), seeds=16)
    np.testing.assert_array_equal(slow.eval_steps, [0, 3000])


def test_eval_data_is_used_for_the_loss():
    problem = problems.least_squares(n=64, d=2)
    held_out = jax.tree.map(lambda a: a[:8] * 2.0, problem.data)
    runs = gdlab.train(problem, cfg(steps=5, eval_every=5), seeds=4, eval_data=held_out)
    direct = jax.vmap(problem.loss, (0, None))(jax.tree.map(jnp.asarray, runs.params), held_out)
    np.testing.assert_allclose(runs.final_loss, direct, rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"])
def test_every_optimizer_reduces_the_loss(optimizer):
    problem = problems.quadratic(condition_number=4.0)
    runs = gdlab.train(problem, cfg(optimizer=optimizer, learning_rate=0.05, steps=200,
                                    eval_every=200), seeds=8)
    assert np.all(runs.final_loss < 0.1 * runs.loss_history[:, 0])


def test_optax_transformation_and_schedule_train():
    problem = problems.quadratic()
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1))
    a = gdlab.train(problem, cfg(optimizer=tx, learning_rate=None, steps=300), seeds=4)
    sched = optax.exponential_decay(0.2, transition_steps=100, decay_rate=0.5)
    b = gdlab.train(problem, cfg(learning_rate=sched, steps=300), seeds=4)
    assert np.all(a.final_loss < 1e-6) and np.all(b.final_loss < 1e-6)


def test_flatten_seeds_shape():
    runs = gdlab.train(_ts(n=32), cfg(steps=2, eval_every=2), seeds=3)
    assert flatten_seeds(runs.params).shape == (3, 3 * 8 + 8 + 8 + 1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(seeds=0), r"seeds must be a positive number of seeds .* got 0"),
    (dict(seeds=-4), r"got -4"),
    (dict(seeds=[1, 1]), r"seed ids must be unique"),
    (dict(seeds=[-1]), r"seed ids must lie in \[0, 2\*\*31\), got min -1"),
    (dict(key="abc"), r"key must be an int or a typed JAX key.*'abc'"),
    (dict(seed_block=0), r"seed_block must be an integer >= 1 \(or None\), got 0"),
])
def test_bad_train_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gdlab.train(problems.himmelblau(), cfg(), **{"seeds": 2, **kwargs})


def test_batch_size_larger_than_data_raises():
    problem = problems.least_squares(n=50)
    with pytest.raises(ValueError, match=r"batch_size=51 is larger than the N=50 data points.*"
                                         r"valid: 1..50"):
        gdlab.train(problem, cfg(batch_size=51), seeds=2)
    with pytest.raises(ValueError, match=r"batch_size=4 but problem 'himmelblau' has no data"):
        gdlab.train(problems.himmelblau(), cfg(batch_size=4), seeds=2)


def test_non_scalar_loss_raises_before_compiling():
    problem = gdlab.Problem(name="vec", init=lambda k: jnp.zeros(3), loss=lambda p, b: p * 2)
    with pytest.raises(ValueError, match=r"'vec'.*shape \(3,\).*must return a scalar"):
        gdlab.train(problem, cfg(), seeds=2)


def test_init_and_batch_order_vary_separately():
    problem = problems.teacher_student(d_in=2, hidden=4, n=64)
    config = gdlab.TrainConfig(learning_rate=0.05, steps=20, batch_size=4, eval_every=10)
    both = gdlab.train(problem, config, seeds=4, progress=False)
    same_init = gdlab.train(problem, config, seeds=4, init_seeds=2, progress=False)
    same_order = gdlab.train(problem, config, seeds=4, data_seeds=[1, 1, 1, 1], progress=False)
    first = lambda runs: jax.tree.leaves(runs.init_params)[0]
    # One init for every seed, each its own batch order: equal starts, different ends.
    assert np.all(first(same_init) == first(both)[2])
    assert len({float(v) for v in same_init.final_loss}) == 4
    # Each its own init, one batch order: the starts of `both`; seed 1 is seed 1 of `both`.
    np.testing.assert_array_equal(first(same_order), first(both))
    np.testing.assert_array_equal(same_order.final_loss[1], both.final_loss[1])
    assert same_order.manifest["data_ids"] == [1, 1, 1, 1]
    assert "init_ids" not in same_order.manifest


@pytest.mark.parametrize("kwargs, match", [
    (dict(init_seeds=[0, 1]), r"init_seeds must be an int or one int per seed \(4\)"),
    (dict(data_seeds=-1), r"seed ids must lie in \[0, 2\*\*31\)"),
])
def test_bad_randomness_sources_are_rejected(kwargs, match):
    config = gdlab.TrainConfig(learning_rate=0.05, steps=2, eval_every=1)
    with pytest.raises(gdlab.InputError, match=match):
        gdlab.train(problems.himmelblau(), config, seeds=4, **kwargs)


def test_data_that_would_not_fit_on_every_device_is_refused_before_anything_runs(
        monkeypatch, tmp_path, devices):
    from gdlab.core import devices as dev
    problem = problems.least_squares(n=4096, d=16)  # 4096 x 17 float32: 272 KiB
    monkeypatch.setattr(dev, "memory_bytes", lambda device: 200 * 1024)
    monkeypatch.setattr(engine, "get_engine", lambda *a, **k: pytest.fail("compiled"))
    cfg = gdlab.TrainConfig(learning_rate=0.1, steps=4, eval_every=2)
    with pytest.raises(gdlab.InputError, match=r"4096 training points.*2 device\(s\).*"
                                               r"does not fit"):
        gdlab.train(problem, cfg, seeds=4, devices=devices[:2], out=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written, not even the lock


def test_convolutions_get_seed_block_one_on_cpu_dense_models_a_larger_one():
    """The measured rule: XLA:CPU runs convolutions batched over seeds slower per seed
    than one seed's, so a model with one maps over single seeds."""
    from gdlab.core import train as core_train
    config = cfg(steps=4, batch_size=8, eval_every=4)
    lanes = core_train.Lanes(np.arange(16), {})
    blocks = {}
    for model in ("cnn", "mlp"):
        problem = problems.digits(model=model)
        assert engine.uses_convolution(problem, config, problem.data) == (model == "cnn")
        plan = core_train.make_plan(problem, config, lanes, 0, devices=jax.devices()[:1])
        blocks[model] = plan.seed_block
    assert blocks["cnn"] == 1 and blocks["mlp"] > 1
