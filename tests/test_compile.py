"""Compile discipline: analyses compile once per shape and take data as arguments.

Each test makes a first call (it may compile), then counts the XLA programs compiled by
the same call again and by the call on new data of the same shape: both must be zero,
which also proves the data is an input of the compiled program, not a constant in it.
"""

import dataclasses

import jax
import numpy as np
import pytest
from helpers import count_compiles

import gdlab
from gdlab import problems
from gdlab._tree import flatten_seeds
from gdlab.atlas import classify_endpoints, find_minima, map_minima
from gdlab.batch.noise import noise_scale, track_noise_scale
from gdlab.landscape import curvature
from gdlab.landscape.paths import barrier_matrix, path_losses
from gdlab.symmetry import align_tanh_mlp


def assert_compiles_nothing(fn, *args, **kwargs):
    """Call `fn` and fail, naming the programs, if it compiled any."""
    with count_compiles() as compiles:
        out = fn(*args, **kwargs)
    assert compiles.count == 0, compiles
    return out


@pytest.fixture(scope="module")
def mlp():
    """A teacher-student MLP (symmetry, predict, flat valleys) and 48 trained seeds."""
    problem = problems.teacher_student(d_in=2, hidden=3, n=64, key=1)
    config = gdlab.TrainConfig(optimizer="adam", learning_rate=0.02, steps=400, eval_every=400)
    return problem, gdlab.train(problem, config, seeds=48, progress=False)


def new_data(problem, key=7):
    """The problem's data with fresh values of the same shapes and dtypes."""
    rng = np.random.default_rng(key)
    return jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(x.dtype), problem.data)


def test_count_compiles_counts_a_fresh_program_and_restores_the_cache():
    was = jax.config.jax_enable_compilation_cache
    with count_compiles() as compiles:
        assert not jax.config.jax_enable_compilation_cache
        jax.jit(lambda x: 2 * x + 1)(np.float32(3.0))
    assert compiles.count == 1 and compiles.seconds > 0
    assert jax.config.jax_enable_compilation_cache == was


def test_find_minima_twice_on_the_same_runs_compiles_nothing(mlp):
    problem, runs = mlp
    first = find_minima(problem, runs, grad_tol=1e-3, dist_tol=0.05)
    again = assert_compiles_nothing(find_minima, problem, runs, grad_tol=1e-3, dist_tol=0.05)
    assert first.num_minima >= 2 and first.num_function_classes  # every kernel ran
    np.testing.assert_array_equal(again.labels, first.labels)
    np.testing.assert_array_equal(again.hessian_extremes, first.hessian_extremes)


def test_map_minima_at_other_tolerances_compiles_only_for_a_new_cluster_count(mlp):
    problem, runs = mlp
    endpoints = classify_endpoints(problem, runs, grad_tol=1e-3)
    base = map_minima(problem, runs, endpoints, dist_tol=0.05)
    same = assert_compiles_nothing(map_minima, problem, runs, endpoints, dist_tol=0.05,
                                   barrier_tol=2 * base.tolerances["barrier_tol"])
    assert same.num_minima <= base.num_minima
    assert_compiles_nothing(map_minima, problem, runs, endpoints, dist_tol=0.05, connect=False)
    with count_compiles() as compiles:  # other cluster counts: their shapes, nothing else
        for tol in (0.01, 0.5):
            map_minima(problem, runs, endpoints, dist_tol=tol)
    assert set(compiles.names) <= {"jit(path_kernel)", "jit(_vmapped)"}, compiles


def test_a_new_grad_tol_reuses_the_classification(mlp):
    problem, runs = mlp
    atlas = find_minima(problem, runs, grad_tol=1e-3, dist_tol=0.05)
    loose = assert_compiles_nothing(atlas.endpoints.with_tolerances, grad_tol=1e-2)
    strict = find_minima(problem, runs, grad_tol=1e-3, dist_tol=0.05,
                         endpoints=loose.with_tolerances(grad_tol=1e-3))
    np.testing.assert_array_equal(strict.labels, atlas.labels)
    assert np.sum(loose.status == "minimum") >= np.sum(atlas.status == "minimum")


@pytest.mark.parametrize("fn", [curvature.grad_norms, curvature.exact_extremes,
                                curvature.lanczos_extremes, curvature.hessian_extremes])
def test_curvature_repeated_and_on_new_data_compiles_nothing(mlp, fn):
    problem, runs = mlp
    first = fn(problem, runs.params, problem.data)
    again = assert_compiles_nothing(fn, problem, runs.params, problem.data)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(first))
    other = assert_compiles_nothing(fn, problem, runs.params, new_data(problem))
    assert not np.array_equal(np.asarray(other), np.asarray(first))


def test_paths_and_barriers_repeated_and_on_new_data_compile_nothing(mlp):
    problem, runs = mlp
    flat = flatten_seeds(runs.params).astype(np.float32)
    path_losses(problem, flat[:8], flat[8:16])
    assert_compiles_nothing(path_losses, problem, flat[:8], flat[8:16])
    assert_compiles_nothing(path_losses, problem, flat[16:24], flat[24:32],
                            data=new_data(problem))
    reps = [jax.tree.map(lambda x, i=i: np.asarray(x)[i], runs.params) for i in range(4)]
    barrier_matrix(problem, reps)
    assert_compiles_nothing(barrier_matrix, problem, reps, align=align_tanh_mlp)
    other = dataclasses.replace(problem, data=new_data(problem))  # same functions
    assert_compiles_nothing(barrier_matrix, other, reps[::-1])


@pytest.fixture(scope="module")
def ls():
    return problems.least_squares(n=256, d=6)


@pytest.mark.parametrize("kwargs", [dict(), dict(hessian=True),
                                    dict(method="two_batch", batch_sizes=(4, 64))])
def test_noise_scale_repeated_and_on_new_data_compiles_nothing(ls, kwargs):
    params = ls.init(jax.random.key(0))
    first = noise_scale(ls, params, **kwargs)
    assert assert_compiles_nothing(noise_scale, ls, params, **kwargs) == first
    moved = jax.tree.map(lambda x: x + 0.5, params)
    assert_compiles_nothing(noise_scale, ls, moved, data=new_data(ls), key=1, **kwargs)


def test_track_noise_scale_repeated_and_on_new_data_compiles_nothing(ls):
    config = gdlab.TrainConfig(learning_rate=0.1, steps=1, batch_size=16, eval_every=1)
    first = track_noise_scale(ls, config, [0, 3, 7], seeds=2)
    again = assert_compiles_nothing(track_noise_scale, ls, config, [0, 3, 7], seeds=2)
    np.testing.assert_array_equal(again.b_simple, first.b_simple)
    other = dataclasses.replace(ls, data=new_data(ls))  # new training data, same functions
    assert_compiles_nothing(track_noise_scale, other, config, [1, 2, 9], seeds=[3, 5], key=2)
