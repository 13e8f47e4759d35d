import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import gdlab
from gdlab import problems
from gdlab.problem import check_loss_is_scalar

ALL = sorted(problems.BUILTINS)


def _small_batch(problem, n=16):
    if problem.data is None:
        return None
    return jax.tree.map(lambda a: a[:n], problem.data)


@pytest.mark.parametrize("name", ALL)
def test_check_grads_on_every_builtin(name):
    problem = problems.get(name)
    params = problem.init(jax.random.key(3))
    batch = _small_batch(problem)
    f = lambda p: problem.loss(p, batch)
    # float32 central differences: loose tolerance, but a wrong gradient is off by O(1).
    # A small step keeps the differences of ReLU nets (digits, mnist1d) off their kinks.
    check_grads(f, (params,), order=1, modes=("rev",), eps=1e-3, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("name", ALL)
def test_builtin_loss_is_scalar_and_finite(name):
    problem = problems.get(name)
    params = problem.init(jax.random.key(0))
    value = problem.loss(params, _small_batch(problem))
    assert value.shape == () and np.isfinite(value)


SURFACES = ["himmelblau", "six_hump_camel", "three_hump_camel", "branin", "styblinski_tang",
            "rastrigin", "rosenbrock", "quadratic"]


@pytest.mark.parametrize("name", SURFACES)
def test_known_minima_are_exact_minima(name):
    problem = problems.get(name)
    assert problem.known_minima
    points = jnp.stack([jnp.asarray(m.params) for m in problem.known_minima])
    at = lambda fn: np.asarray(jax.jit(jax.vmap(lambda p: fn(p, None)))(points))  # one compile
    values, grads, hessians = (at(fn) for fn in (problem.loss, jax.grad(problem.loss),
                                                 jax.hessian(problem.loss)))
    np.testing.assert_allclose(values, [m.loss for m in problem.known_minima], atol=1e-4)
    scale = 1.0 + np.abs(hessians).max(axis=(1, 2))
    assert np.all(np.linalg.norm(grads, axis=1) < 1e-4 * scale)
    assert np.all(np.linalg.eigvalsh(hessians.astype(np.float64)).min(axis=1) > 0)


LITERATURE = {  # number of local minima in the domain and global value, from the literature
    "himmelblau": (4, 0.0), "six_hump_camel": (6, -1.0316), "three_hump_camel": (3, 0.0),
    "branin": (3, 0.397887), "styblinski_tang": (4, -78.33233), "rastrigin": (121, 0.0),
    "rosenbrock": (1, 0.0),
}


@pytest.mark.parametrize("name", sorted(LITERATURE))
def test_known_minima_match_literature(name):
    count, best = LITERATURE[name]
    problem = problems.get(name)
    assert len(problem.known_minima) == count
    assert min(m.loss for m in problem.known_minima) == pytest.approx(best, abs=1e-4)
    assert sum(m.kind == "global" for m in problem.known_minima) >= 1
    pts = np.array([np.asarray(m.params) for m in problem.known_minima])
    (x0, x1), (y0, y1) = problem.domain
    assert np.all((pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1))


def test_himmelblau_literature_coordinates():
    pts = np.array([np.asarray(m.params) for m in problems.himmelblau().known_minima])
    literature = [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186),
                  (3.584428, -1.848126)]
    for xy in literature:
        assert np.min(np.linalg.norm(pts - np.array(xy), axis=1)) < 2e-6


@pytest.mark.parametrize("name", ["least_squares", "logistic"])
def test_convex_reference_solution_has_zero_gradient(name):
    problem = problems.get(name)
    sol = problem.known_minima[0].params
    g = jax.grad(problem.loss)(sol, problem.data)
    assert max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(g)) < 1e-5
    assert float(problem.loss(sol, problem.data)) == pytest.approx(problem.known_minima[0].loss,
                                                                  rel=1e-5)


def test_least_squares_closed_form_matches_lstsq():
    problem = problems.least_squares(n=64, d=3, noise=0.2, key=7)
    x, y = np.asarray(problem.data["x"], np.float64), np.asarray(problem.data["y"], np.float64)
    sol = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]
    got = problem.known_minima[0].params
    np.testing.assert_allclose(np.asarray(got["w"]), sol[:3], atol=1e-5)
    assert float(got["b"]) == pytest.approx(sol[3], abs=1e-5)


def test_surface_init_samples_inside_domain():
    problem = problems.branin()
    pts = jax.vmap(problem.init)(jax.random.split(jax.random.key(0), 2000))
    (x0, x1), (y0, y1) = problem.domain
    assert float(pts[:, 0].min()) >= x0 and float(pts[:, 0].max()) <= x1
    assert float(pts[:, 1].min()) >= y0 and float(pts[:, 1].max()) <= y1
    assert float(pts[:, 0].max()) - float(pts[:, 0].min()) > 0.9 * (x1 - x0)


def test_quadratic_condition_number():
    problem = problems.quadratic(dim=5, condition_number=100.0)
    h = jax.hessian(problem.loss)(jnp.zeros(5), None)
    eig = np.linalg.eigvalsh(np.asarray(h))
    assert eig.max() / eig.min() == pytest.approx(100.0, rel=1e-3)


def test_from_flax_adapter_matches_manual_loss():
    module = problems.MLP(hidden=(5,))
    x = jax.random.normal(jax.random.key(1), (20, 3))
    y = jax.random.normal(jax.random.key(2), (20, 1))
    p = problems.from_flax(module, x, y, lambda pred, t: jnp.sum((pred - t) ** 2), name="mine")
    params = p.init(jax.random.key(0))
    manual = jnp.mean(jnp.sum((module.apply({"params": params}, x) - y) ** 2, axis=1))
    assert float(p.loss(params, p.data)) == pytest.approx(float(manual), rel=1e-6)
    assert p.num_data == 20 and p.num_params() == 3 * 5 + 5 + 5 + 1


def test_data_leaves_with_different_leading_axes_raise():
    with pytest.raises(ValueError, match=r"different leading axes.*\['x'\].*10"):
        gdlab.Problem(name="bad", init=lambda k: jnp.zeros(2), loss=lambda p, b: 0.0,
                      data={"x": jnp.zeros((10, 2)), "y": jnp.zeros(9)})


def test_loss_that_is_not_scalar_raises():
    problem = gdlab.Problem(name="vector_loss", init=lambda k: jnp.zeros(3),
                            loss=lambda p, b: p ** 2)
    with pytest.raises(ValueError, match=r"vector_loss.*shape \(3,\).*scalar"):
        check_loss_is_scalar(problem, None)


def test_bad_problem_sizes_raise():
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        problems.least_squares(n=0)
    with pytest.raises(ValueError, match=r"condition_number must be >= 1, got 0\.5"):
        problems.quadratic(condition_number=0.5)
    with pytest.raises(ValueError, match="unknown problem 'nope'"):
        problems.get("nope")


def test_problem_data_as_python_lists_trains_as_the_same_arrays():
    import jax.numpy as jnp
    x, y = [[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]], [1.0, 2.0, 4.0]
    loss = lambda p, b: jnp.mean((b["x"] @ p["w"] - b["y"]) ** 2)
    init = lambda k: {"w": jnp.zeros(2)}
    lists = gdlab.Problem(name="l", init=init, loss=loss, data={"x": x, "y": y})
    arrays = gdlab.Problem(name="a", init=init, loss=loss,
                           data={"x": np.asarray(x, np.float32), "y": np.asarray(y, np.float32)})
    assert lists.data["x"].shape == (3, 2) and lists.num_data == 3
    cfg = gdlab.TrainConfig(learning_rate=0.01, steps=10)
    np.testing.assert_array_equal(gdlab.train(lists, cfg, seeds=2, progress=False).final_loss,
                                  gdlab.train(arrays, cfg, seeds=2, progress=False).final_loss)
    with pytest.raises(gdlab.InputError, match="not rectangular"):
        gdlab.Problem(name="r", init=init, loss=loss, data={"x": [[1.0], [1.0, 2.0]]})
