import jax
import jax.numpy as jnp
import matplotlib.colors
import numpy as np
import pytest

import gdlab
from gdlab import problems
from gdlab._tree import flatten_one, flatten_seeds
from gdlab.atlas.cluster import cluster_points, join_partitions
from gdlab.atlas.minima import classify_endpoints, find_minima, map_minima
from gdlab.landscape.curvature import exact_extremes, lanczos_extremes
from gdlab.landscape.paths import connected_groups
from gdlab.stats import chao1, wilson_interval
from gdlab.symmetry import align_tanh_mlp, tanh_mlp_canonical


def train(problem, lr, steps, seeds):
    config = gdlab.TrainConfig(learning_rate=lr, steps=steps, eval_every=steps)
    return gdlab.train(problem, config, seeds=seeds)


@pytest.mark.parametrize("name, lr, steps, seeds", [("least_squares", 0.5, 500, 256),
                                                    ("logistic", 1.0, 2000, 64),
                                                    ("quadratic", 0.1, 500, 256)])
def test_convex_controls_have_exactly_one_minimum_at_the_reference(name, lr, steps, seeds):
    problem = problems.get(name)
    atlas = find_minima(problem, train(problem, lr, steps, seeds))
    assert atlas.num_minima == 1 and atlas.minima[0].count == seeds
    assert np.all(atlas.labels == 0)
    ref = flatten_one(problem.known_minima[0].params)
    assert np.max(np.abs(flatten_one(atlas.minima[0].params) - ref)) < 1e-4
    assert atlas.minima[0].ci == pytest.approx(wilson_interval(seeds, seeds))
    assert atlas.minima[0].ci[0] > (0.98 if seeds >= 256 else 0.94)


SURFACES = [("himmelblau", 0.01, 2000), ("six_hump_camel", 0.002, 5000),
            ("styblinski_tang", 0.01, 2000), ("three_hump_camel", 5e-4, 20000),
            ("rosenbrock", 1e-3, 20000)]


@pytest.mark.parametrize("name, lr, steps", SURFACES)
def test_surfaces_find_exactly_the_listed_minima(name, lr, steps):
    problem = problems.get(name)
    atlas = find_minima(problem, train(problem, lr, steps, 2048))
    assert atlas.num_minima == len(problem.known_minima)
    assert atlas.status_counts()["diverged"] == 0
    tol = 2e-4 if name == "rosenbrock" else 1e-4  # float32 GD along the narrow valley
    known = np.array([np.asarray(m.params) for m in problem.known_minima])
    for m in atlas.minima:
        assert np.min(np.linalg.norm(known - np.asarray(m.params), axis=1)) < tol
        assert m.hessian_min > 0
    fractions = [m.fraction for m in atlas.minima]
    assert sum(fractions) == pytest.approx(1.0)
    keys = [(round(m.loss, 6), -m.count) for m in atlas.minima]  # by loss, then count
    assert keys == sorted(keys)
    assert atlas.chao1 == atlas.num_minima  # every minimum seen many times


def _saddle_problem():
    return gdlab.Problem(name="saddle", init=lambda k: jax.random.normal(k, (2,)),
                         loss=lambda p, b: p[0] ** 2 - p[1] ** 2 + 0.25 * p[1] ** 4)


def test_saddle_endpoint_is_classified_as_saddle():
    problem = _saddle_problem()
    ends = jnp.array([[0.0, 0.0], [0.0, np.sqrt(2.0)], [0.0, -np.sqrt(2.0)], [0.3, 0.1]])
    atlas = find_minima(problem, gdlab.Runs.from_endpoints(problem, ends), grad_tol=1e-4)
    assert atlas.status.tolist() == ["saddle", "minimum", "minimum", "not_converged"]
    assert atlas.num_minima == 2 and atlas.labels[0] == -1 and atlas.labels[3] == -1
    assert atlas.hessian_extremes[0, 0] == pytest.approx(-2.0, rel=1e-5)


def _random_mlp(key, widths=(3, 5, 4, 2)):
    module = problems.MLP(hidden=widths[1:-1], out=widths[-1])
    return module, module.init(jax.random.key(key), jnp.zeros((1, widths[0])))["params"]


def _permute_and_flip(params, key):
    """A random element of the symmetry group applied to every hidden layer."""
    rng = np.random.default_rng(key)
    params = jax.tree.map(np.asarray, params)
    names = sorted(params)
    for layer in range(len(names) - 1):
        h = params[names[layer]]["bias"].shape[0]
        perm, sign = rng.permutation(h), rng.choice([-1.0, 1.0], h)
        cur, nxt = params[names[layer]], params[names[layer + 1]]
        cur["kernel"] = (cur["kernel"] * sign)[:, perm]
        cur["bias"] = (cur["bias"] * sign)[perm]
        nxt["kernel"] = (nxt["kernel"] * sign[:, None])[perm]
    return params


def test_permuted_sign_flipped_mlp_same_outputs_same_canonical_form():
    module, params = _random_mlp(0)
    x = jax.random.normal(jax.random.key(1), (50, 3))
    for key in range(5):
        other = _permute_and_flip(params, key)
        np.testing.assert_allclose(module.apply({"params": other}, x),
                                   module.apply({"params": params}, x), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(flatten_one(tanh_mlp_canonical(other)),
                                   flatten_one(tanh_mlp_canonical(params)), atol=1e-6)
    assert not np.allclose(flatten_one(_permute_and_flip(params, 0)), flatten_one(params))


def test_weight_matching_undoes_a_permutation_and_flip():
    _, params = _random_mlp(2, widths=(4, 6, 1))
    other = _permute_and_flip(params, 7)
    aligned = align_tanh_mlp(params, other)
    np.testing.assert_allclose(flatten_one(aligned), flatten_one(params), atol=1e-6)


def test_teacher_student_raw_minima_collapse_under_symmetry():
    problem = problems.teacher_student(d_in=2, hidden=3, n=128, key=1)
    config = gdlab.TrainConfig(optimizer="adam", learning_rate=0.02, steps=2000,
                               eval_every=2000)
    runs = gdlab.train(problem, config, seeds=64)
    atlas = find_minima(problem, runs, grad_tol=1e-3, dist_tol=0.05)
    assert atlas.num_minima > atlas.num_symmetry_classes >= atlas.num_function_classes >= 1


def test_lanczos_matches_exact_hessian_extremes():
    problem = problems.teacher_student(d_in=3, hidden=4, n=64)
    params = jax.vmap(problem.init)(jax.random.split(jax.random.key(0), 4))
    exact = exact_extremes(problem, params, problem.data)
    approx = lanczos_extremes(problem, params, problem.data, iters=40)
    np.testing.assert_allclose(approx, exact, rtol=1e-3, atol=1e-4)


def test_clustering_is_invariant_to_seed_order():
    rng = np.random.default_rng(0)
    centres = rng.uniform(-5, 5, (7, 3))
    x = centres[rng.integers(0, 7, 3000)] + 1e-4 * rng.standard_normal((3000, 3))
    labels = cluster_points(x, 1e-2)
    assert labels.max() + 1 == 7
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(len(x))
        np.testing.assert_array_equal(cluster_points(x[perm], 1e-2), labels[perm])


def test_clustering_separates_by_tolerance_and_handles_many_points():
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0015]]), 30000, axis=0)
    assert cluster_points(x, 1e-3).max() + 1 == 3
    assert cluster_points(x, 1e-2).max() + 1 == 2


def test_find_minima_is_invariant_to_seed_order():
    problem = problems.himmelblau()
    runs = train(problem, 0.01, 1000, 300)
    perm = np.random.default_rng(0).permutation(300)
    shuffled = gdlab.Runs.from_endpoints(problem, runs.params[perm])
    a, b = find_minima(problem, runs), find_minima(problem, shuffled)
    np.testing.assert_array_equal(a.labels[perm], b.labels)


def test_wilson_and_chao1_reference_values():
    lo, hi = wilson_interval(5, 20)
    assert lo == pytest.approx(0.1119, abs=1e-4) and hi == pytest.approx(0.4687, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0
    assert chao1(np.array([10, 5, 1, 1, 1, 2])) == pytest.approx(6 + 3 * 2 / (2 * 2))
    assert chao1(np.array([4, 4])) == 2


def test_runs_of_another_problem_raise():
    runs = train(problems.himmelblau(), 0.01, 10, 4)
    with pytest.raises(ValueError, match="another problem"):
        find_minima(problems.least_squares(), runs)


@pytest.mark.parametrize("kw", [dict(grad_tol=0.0), dict(hess_tol=-1.0), dict(dist_tol=np.nan)])
def test_bad_tolerances_raise(kw):
    runs = train(problems.himmelblau(), 0.01, 10, 4)
    with pytest.raises(ValueError, match=f"{next(iter(kw))} must be a finite number > 0"):
        find_minima(problems.himmelblau(), runs, **kw)


def test_find_minima_is_classify_then_map_and_reuses_endpoints():
    problem = problems.himmelblau()
    runs = train(problem, 0.01, 1000, 300)
    endpoints = classify_endpoints(problem, runs)
    atlas = find_minima(problem, runs)
    for other in (map_minima(problem, runs, endpoints),
                  find_minima(problem, runs, endpoints=atlas.endpoints)):
        np.testing.assert_array_equal(other.labels, atlas.labels)
        np.testing.assert_array_equal(other.hessian_extremes, atlas.hessian_extremes)
        assert other.tolerances == atlas.tolerances and other.num_minima == 4
    strict = endpoints.grad_tol / 1e3  # re-thresholded from the stored gradient norms
    again = find_minima(problem, runs, endpoints=endpoints, grad_tol=strict)
    fresh = find_minima(problem, runs, grad_tol=strict)
    np.testing.assert_array_equal(again.status, fresh.status)
    np.testing.assert_array_equal(again.labels, fresh.labels)
    assert again.tolerances["grad_tol"] == strict


def test_endpoints_measure_every_seed_that_did_not_diverge():
    problem = gdlab.Problem(name="quartic", init=lambda k: 2.0 * jax.random.normal(k, (1,)),
                            loss=lambda x, b: jnp.sum(x ** 4))
    runs = train(problem, 0.1, 50, 32)
    assert 0 < runs.diverged.sum() < 32
    endpoints = classify_endpoints(problem, runs, grad_tol=1e-2)
    assert np.isnan(endpoints.hessian_extremes[runs.diverged]).all()
    assert np.isfinite(endpoints.hessian_extremes[~runs.diverged]).all()
    assert np.all(endpoints.status[runs.diverged] == "diverged")
    loose = endpoints.with_tolerances(grad_tol=1e3)
    assert np.all(loose.status[~runs.diverged] == "minimum")


def test_bad_endpoints_and_classification_options_raise():
    problem = problems.himmelblau()
    runs, other = train(problem, 0.01, 10, 4), train(problem, 0.01, 10, 5)
    endpoints = classify_endpoints(problem, runs)
    with pytest.raises(gdlab.InputError, match="endpoints classify 4 seeds"):
        map_minima(problem, other, endpoints)
    with pytest.raises(gdlab.InputError, match=r"endpoints must be gdlab\.atlas\.Endpoints"):
        map_minima(problem, runs, None)
    with pytest.raises(gdlab.InputError, match="lanczos_iters must be an integer >= 1, got 0"):
        classify_endpoints(problem, runs, lanczos_iters=0)
    with pytest.raises(gdlab.InputError, match="max_exact_params must be an integer >= 0"):
        classify_endpoints(problem, runs, max_exact_params=-1)
    with pytest.raises(gdlab.InputError, match="grad_tol must be a finite number > 0"):
        endpoints.with_tolerances(grad_tol=-1.0)
    with pytest.raises(gdlab.InputError, match="dist_tol must be a finite number > 0"):
        map_minima(problem, runs, endpoints, dist_tol=0.0)


def test_all_diverged_gives_no_minima_not_a_crash():
    problem = gdlab.Problem(name="quartic", init=lambda k: jnp.full((1,), 10.0),
                            loss=lambda x, b: jnp.sum(x ** 4))
    runs = train(problem, 1.0, 20, 8)
    assert runs.diverged.all()
    atlas = find_minima(problem, runs)
    assert atlas.num_minima == 0 and atlas.minima == [] and np.all(atlas.labels == -1)
    assert atlas.status_counts()["diverged"] == 8


def test_flatten_seeds_matches_flatten_one():
    _, params = _random_mlp(3)
    stacked = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), params)
    np.testing.assert_allclose(flatten_seeds(stacked)[1], 2 * flatten_one(params))


def test_barrier_of_double_well_and_of_aligned_permuted_network():
    from gdlab.landscape.paths import barrier_matrix
    well = gdlab.Problem(name="well", init=lambda k: jnp.zeros(1),
                         loss=lambda x, b: jnp.sum((x ** 2 - 1) ** 2))
    m = barrier_matrix(well, [jnp.array([-1.0]), jnp.array([1.0])], num_points=25)
    assert m[0, 1] == pytest.approx(1.0, abs=1e-6) and m[1, 0] == m[0, 1] and m[0, 0] == 0
    problem = problems.teacher_student(d_in=2, hidden=4, n=64)
    params = problem.init(jax.random.key(0))
    other = _permute_and_flip(params, 3)
    naive = barrier_matrix(problem, [params, other])[0, 1]
    aligned = barrier_matrix(problem, [params, other], align=align_tanh_mlp)[0, 1]
    assert aligned == pytest.approx(0.0, abs=1e-6) and naive > 1e-3


def test_problem_spec_rebuilds_builtins():
    p = problems.teacher_student(d_in=2, hidden=3, n=32, key=4)
    q = problems.from_spec(p.spec)
    assert q.spec == p.spec and np.array_equal(q.data["y"], p.data["y"])
    with pytest.raises(ValueError, match="cannot rebuild a problem"):
        problems.from_spec(None)


def test_cli_minima_on_a_saved_run(tmp_path, capsys):
    from gdlab import cli
    assert cli.main(["train", "--problem", "himmelblau", "--seeds", "200", "--steps", "1500",
                     "--out", str(tmp_path / "h")]) == 0
    capsys.readouterr()
    assert cli.main(["minima", str(tmp_path / "h")]) == 0
    out = capsys.readouterr().out
    assert "200 seeds -> 4 minima" in out and "global" in out
    assert cli.main(["minima", str(tmp_path / "missing")]) == 2


def _valley_problem():
    """Two flat valleys w0 = +-1 (loss independent of w1), separated by a barrier of 1."""
    return gdlab.Problem(name="valleys", init=lambda k: jax.random.normal(k, (2,)), data=None,
                         loss=lambda p, b: (p[0] ** 2 - 1.0) ** 2)


def test_flat_valley_is_one_minimum_however_long():
    problem = _valley_problem()
    w1 = np.linspace(-3.0, 3.0, 40)
    ends = np.concatenate([np.stack([np.ones(40), w1], 1), np.stack([-np.ones(40), w1], 1)])
    runs = gdlab.Runs.from_endpoints(problem, jnp.asarray(ends, jnp.float32))
    atlas = find_minima(problem, runs, dist_tol=0.01, barrier_tol=1e-4)
    assert atlas.num_minima == 2
    assert sorted(m.count for m in atlas.minima) == [40, 40]
    assert len(set(atlas.labels[:40])) == 1 and atlas.labels[0] != atlas.labels[40]
    split = find_minima(problem, runs, dist_tol=0.01, connect=False)
    assert split.num_minima == 80 and split.tolerances["barrier_tol"] is None


def test_connected_groups_needs_equal_losses_and_a_flat_path():
    problem = gdlab.Problem(name="tilted", init=lambda k: jax.random.normal(k, (2,)), data=None,
                            loss=lambda p, b: (p[0] ** 2 - 1.0) ** 2 + 0.01 * p[1])
    pts = np.array([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    # Along w1 the loss rises by 0.01 per unit: joined under a loose tolerance only.
    assert connected_groups(problem, pts, tol=0.02).tolist() == [0, 0, 1]
    assert connected_groups(problem, pts, tol=0.005).tolist() == [0, 1, 2]


def test_join_partitions_links_through_either_relation():
    a = np.array([0, 0, 1, 2, 3])
    b = np.array([5, 6, 6, 7, 8])
    assert join_partitions(a, b).tolist() == [0, 0, 0, 1, 2]
    assert join_partitions(np.zeros(0, np.int64), np.zeros(0, np.int64)).tolist() == []


def test_bad_barrier_tolerance_raises():
    problem = _valley_problem()
    runs = gdlab.Runs.from_endpoints(problem, jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="barrier_tol must be a finite number > 0"):
        find_minima(problem, runs, barrier_tol=0.0)


def test_label_colours_are_distinct_per_minimum_and_grey_for_none():
    from gdlab.plots.figures import label_colours
    colours = label_colours(np.array([-1, *range(18)]))
    assert tuple(colours[0]) == matplotlib.colors.to_rgba("lightgrey")
    assert len({tuple(c) for c in colours}) == 19
    assert all(np.ptp(c) > 0.05 for c in colours[1:, :3])  # no minimum is drawn grey


def test_atlas_saves_and_loads_equal_with_its_endpoints(tmp_path):
    import dataclasses

    from gdlab.atlas.minima import Minimum
    from gdlab.atlas.saved import _SCALARS
    assert {f.name for f in dataclasses.fields(Minimum)} == {"params", "ci", *_SCALARS}
    p = problems.himmelblau()
    runs = gdlab.train(p, gdlab.TrainConfig(learning_rate=0.01, steps=300, eval_every=100),
                       seeds=64, progress=False)
    atlas = gdlab.find_minima(p, runs)
    atlas.save(tmp_path / "atlas")
    back = gdlab.load_atlas(tmp_path / "atlas", problem=p)
    np.testing.assert_array_equal(back.labels, atlas.labels)
    np.testing.assert_array_equal(back.status, atlas.status)
    np.testing.assert_array_equal(back.hessian_extremes, atlas.hessian_extremes)
    assert back.summary() == atlas.summary() and back.tolerances == atlas.tolerances
    assert back.to_dataframe().equals(atlas.to_dataframe())
    for a, b in zip(atlas.minima, back.minima, strict=True):
        assert jax.tree.structure(a.params) == jax.tree.structure(b.params)
        for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
            np.testing.assert_array_equal(np.asarray(x), y)
    # the endpoints came back too: mapping again gives the same atlas
    again = gdlab.map_minima(p, runs, back.endpoints)
    np.testing.assert_array_equal(again.labels, atlas.labels)
    with pytest.raises(ValueError, match="already"):
        atlas.save(tmp_path / "atlas")
    runs.save(tmp_path / "run")
    with pytest.raises(gdlab.InputError, match="not an atlas"):
        gdlab.load_atlas(tmp_path / "run")
