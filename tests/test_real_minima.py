""""The same minimum" for real networks: refinement, modes, functions, nested counts
(gdlab.atlas.equivalence, refine, disagreement).

Oracles: a realizable teacher-student trained to its global minimum has one minimum up
to symmetry (and one function); a net and its randomly permuted, rescaled copy are one
point modulo symmetry with barrier 0 after alignment; two independently trained narrow
nets have a clearly positive naive barrier.
"""

from __future__ import annotations

import dataclasses
import warnings

import jax
import numpy as np
import optax
import pytest

import gdlab
from gdlab import problems
from gdlab.atlas import functions
from gdlab.atlas.minima import chao1_interval, close_groups, knn_pairs, no_finite_minimiser
from tests.helpers import count_compiles


@pytest.fixture(scope="module")
def teacher_student():
    """A realizable 3-2-1 tanh teacher-student; cosine-decayed Adam reaches loss < 1e-8
    on about half the seeds (the rest stop at local minima, loss ~ 1e-3)."""
    p = problems.teacher_student(d_in=3, hidden=2, n=128, key=1)
    cfg = gdlab.TrainConfig(optimizer="adam", steps=2000, eval_every=1000,
                            learning_rate=optax.cosine_decay_schedule(0.03, 2000, alpha=1e-3))
    return p, gdlab.train(p, cfg, seeds=32, key=0)


@pytest.fixture(scope="module")
def narrow():
    """4 seeds of a narrow ReLU MLP on digits (64-8-10), trained by SGD with momentum."""
    p = problems.digits(hidden=(8,))
    cfg = gdlab.TrainConfig(optimizer="momentum", learning_rate=0.05, steps=800, batch_size=64,
                            eval_every=400)
    return p, gdlab.train(p, cfg, seeds=4, key=0)


def _seed(params_S, i):
    return jax.tree.map(lambda x: np.asarray(x)[i], params_S)


def _stack(*trees):
    return jax.tree.map(lambda *xs: np.stack(xs), *trees)


def _runs_of(p, params_S, like):
    """Runs holding given endpoints (one compiled loss call; Runs.from_endpoints runs
    its loss op by op)."""
    loss = np.asarray(jax.jit(jax.vmap(p.loss, (0, None)))(params_S, p.data), np.float32)
    s = len(loss)
    return dataclasses.replace(like, params=params_S, init_params=params_S, final_loss=loss,
                               loss_history=loss[:, None], eval_steps=np.zeros(1, np.int64),
                               eval_seconds=np.zeros(1), diverged_at=np.full(s, -1, np.int32),
                               seed_ids=np.arange(s), metrics={}, trajectory=None)


def test_realizable_teacher_student_global_minima_are_one_class_and_one_function(
        teacher_student):
    p, runs = teacher_student
    best = runs.final_loss < 1e-8
    assert best.sum() >= 4, np.sort(runs.final_loss)
    eq = gdlab.atlas.equivalence(p, runs, seeds=best, dist_tol=0.02)
    assert eq.points.count >= 2  # distinct copies of the minimum in parameter space...
    assert eq.symmetry.count == eq.modes.count == eq.functions.count == 1  # ...one up to symmetry
    assert eq.distinct == {"symmetry": 1, "modes": 1, "functions": 1}
    assert eq.metric == "loss" and np.all(eq.pair_barriers < 1e-6)
    assert np.all(eq.points.labels[~best] == -1)


def test_permuted_rescaled_copy_is_one_point_modulo_symmetry_with_zero_aligned_barrier(narrow):
    p, runs = narrow
    a, b = _seed(runs.params, 0), _seed(runs.params, 1)
    copy = p.symmetry.random_transform(a, seed=3)
    batch = jax.tree.map(lambda x: np.asarray(x)[:64], p.data)
    np.testing.assert_allclose(np.asarray(jax.jit(p.predict)(copy, batch)),
                               np.asarray(jax.jit(p.predict)(a, batch)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gdlab._tree.flatten_one(p.symmetry(copy)),
                               gdlab._tree.flatten_one(p.symmetry(a)), atol=1e-5)
    assert abs(gdlab.landscape.barrier(p, a, copy, align=True)) < 1e-5
    assert gdlab.landscape.barrier(p, a, copy) > 0.1  # naive: the copy looks far away
    ends = _runs_of(p, _stack(a, copy, b), runs)
    eq = gdlab.atlas.equivalence(p, ends)
    assert eq.points.count == 3 and eq.symmetry.count == 2
    assert eq.symmetry.labels[0] == eq.symmetry.labels[1] != eq.symmetry.labels[2]
    assert eq.disagreement[0, 1] == 0 and eq.disagreement[0, 2] > 0


def test_independent_narrow_nets_have_a_clearly_positive_naive_barrier(narrow):
    p, runs = narrow
    a, b = (jax.tree.map(lambda x, s=s: np.asarray(x)[s], runs.params)
            for s in (slice(0, 2), slice(2, 4)))
    naive_loss = gdlab.landscape.barrier(p, a, b)
    naive_err = gdlab.landscape.barrier(p, a, b, metric="error")
    aligned_err = gdlab.landscape.barrier(p, a, b, metric="error", align=True)
    assert naive_loss.shape == (2,) and np.all(naive_loss > 0.3), naive_loss
    assert np.all(naive_err > 0.1), naive_err
    assert np.all(aligned_err < naive_err), (aligned_err, naive_err)


def test_disagreement_counts_differing_labels(narrow):
    p, runs = narrow
    d = gdlab.disagreement(p, runs, p.test_data)
    labels = functions.predicted_labels(p, runs)
    manual = (labels[:, None, :] != labels[None, :, :]).mean(axis=-1)
    np.testing.assert_allclose(d, manual, atol=1e-6)
    assert d.shape == (4, 4) and np.all(np.diag(d) == 0) and np.allclose(d, d.T)
    error = 1 - runs.final("test/accuracy")
    # two classifiers disagree at most where one of them errs
    assert np.all(d <= error[:, None] + error[None, :] + 1e-6)
    x = np.ones((8, 3), np.float32)
    regression = gdlab.Problem(name="linear", init=lambda k: jax.random.normal(k, (3,)),
                               loss=lambda w, b: 0.0, data={"x": x, "y": x[:, 0]},
                               predict=lambda w, b: b["x"] @ w)
    with pytest.raises(gdlab.InputError, match="not a classifier"):
        gdlab.disagreement(regression, np.zeros((2, 3), np.float32))


def test_equivalence_levels_nest_with_chao1_intervals(narrow):
    p, runs = narrow
    eq = gdlab.atlas.equivalence(p, runs)
    counts = [level.count for level in eq.levels]
    assert counts == sorted(counts, reverse=True)
    for level in eq.levels:
        lo, hi = level.chao1_ci
        assert level.count <= lo <= level.chao1 <= hi and level.sizes.sum() == 4
    assert eq.metric == "error" and eq.tolerances["barrier_tol"] == 0.02
    assert eq.distinct["functions"] >= eq.functions.count
    assert 0 < eq.mean_disagreement < 0.2
    with count_compiles() as compiles:
        again = gdlab.atlas.equivalence(p, runs)
    assert compiles.count == 0, compiles
    assert again.counts() == eq.counts()


def test_chao1_interval_and_the_exact_grouping_helpers():
    assert chao1_interval(np.array([3, 4, 5])) == (3.0, 3.0)  # no singletons: all seen
    lo, hi = chao1_interval(np.array([1, 1, 2, 3]))  # Chao1 = 4 + 2 * 1 / (2 * 2) = 4.5
    assert 4.0 <= lo < 4.5 < hi
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6))
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    pairs = knn_pairs(x, 3)
    for i in range(40):
        nearest = set(np.argsort(d[i])[1:4])
        got = {int(j) for a, b in pairs for j in (a, b) if i in (a, b)} - {i}
        assert nearest <= got
    tight = np.concatenate([x[:3], x[:3] + 1e-4, x[3:6]])
    labels = close_groups(tight, 1e-3)
    assert labels.max() + 1 == 6 and np.all(labels[:3] == labels[3:6])


def test_refine_warns_when_the_loss_has_no_finite_minimiser(narrow):
    p, runs = narrow
    with pytest.warns(UserWarning, match="no finite minimiser.*weight decay"):
        refined = gdlab.atlas.refine(p, runs, steps=30, method="gd", learning_rate=0.1,
                                     grad_tol=1e-4)
    assert refined.unbounded.any() and refined.loss_trace.shape == (4, 30)
    assert np.all(refined.loss <= refined.loss_trace[:, 0] + 1e-6)
    # With weight decay a minimiser exists: the test behind the warning says so.
    decayed = problems.digits(hidden=(8,), weight_decay=1e-2)
    assert not no_finite_minimiser(decayed, refined.params).any()


def test_refine_with_lbfgs_converges_on_a_smooth_problem():
    p = gdlab.Problem(name="bowl", init=lambda k: jax.random.normal(k, (3,)),
                      loss=lambda w, b: 0.5 * (w[0] ** 2 + 10 * w[1] ** 2 + 100 * w[2] ** 2))
    params = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bowl has its minimiser: no warning
        refined = gdlab.atlas.refine(p, params, steps=20)  # bare params: grad_tol 1e-4
    assert refined.num_converged == 5 and np.all(np.abs(refined.params) < 1e-3)
    assert refined.grad_tol == 1e-4 and not refined.unbounded.any()


def test_bad_equivalence_inputs_are_rejected(narrow):
    p, runs = narrow
    with pytest.raises(gdlab.InputError, match="no metric 'f1'"):
        gdlab.atlas.equivalence(p, runs, metric="f1")
    with pytest.raises(gdlab.InputError, match="neighbours must be"):
        gdlab.atlas.equivalence(p, runs, neighbours=0)
    with pytest.raises(gdlab.InputError, match="seeds must be"):
        gdlab.atlas.equivalence(p, runs, seeds=[7])
    with pytest.raises(gdlab.InputError, match="method"):
        gdlab.atlas.refine(p, runs, method="newton")
