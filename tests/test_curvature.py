"""The Hessian's spectrum (top-k Lanczos, Hutchinson trace, SLQ density) and sharpness,
against oracles: quadratics with a known Hessian and exact `eigh` on a small MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import count_compiles
from jax.flatten_util import ravel_pytree
from test_landscape import np_params, tiny_mlp

import gdlab
from gdlab.landscape import curvature, sharpness


def known_hessian(eigenvalues, key=0, rotate=True, centre=None):
    """1/2 (x - c)^T A (x - c) with A = Q diag(eigenvalues) Q^T; returns (problem, A)."""
    eig = np.asarray(eigenvalues, np.float64)
    rng = np.random.default_rng(key)
    q = np.linalg.qr(rng.standard_normal((eig.size, eig.size)))[0] if rotate else np.eye(eig.size)
    a = (q * eig) @ q.T
    c = rng.uniform(-1, 1, eig.size) if centre is None else np.asarray(centre)
    a_j, c_j = jnp.asarray(a, jnp.float32), jnp.asarray(c, jnp.float32)
    p = gdlab.Problem(name="known", init=lambda k: jax.random.normal(k, (eig.size,)),
                      loss=lambda x, batch: 0.5 * (x - c_j) @ (a_j @ (x - c_j)))
    return p, a, c


CLUSTERS = np.repeat([1.0, 5.0, 20.0], [10, 20, 10])  # 40 eigenvalues, 3 distinct


@pytest.fixture(scope="module")
def clustered():
    return known_hessian(CLUSTERS)


@pytest.fixture(scope="module")
def mlp():
    return tiny_mlp(n=48, h=6)


SEEDS_S = np.random.default_rng(0).standard_normal((2, 40)).astype(np.float32)


def test_top_eigenvalues_of_a_known_hessian_are_exact_largest_first(clustered):
    p, _, _ = clustered  # 3 distinct eigenvalues: Lanczos finds an invariant subspace after
    top = curvature.top_eigenvalues(p, SEEDS_S, k=12, iters=40)  # 3 steps and restarts
    assert top.shape == (2, 12)
    np.testing.assert_allclose(top, np.broadcast_to(np.repeat([20.0, 5.0], [10, 2]), (2, 12)),
                               rtol=1e-4)
    deflated = curvature.top_eigenvalues(p, SEEDS_S[0], k=3, iters=10, deflate=True)
    np.testing.assert_allclose(deflated, [20.0, 20.0, 20.0], rtol=1e-4)


def test_hutchinson_trace_is_exact_on_a_diagonal_and_unbiased_otherwise(clustered):
    p_diag, a_diag, _ = known_hessian(np.arange(1.0, 9.0), rotate=False)
    est = curvature.hessian_trace(p_diag, np.zeros(8, np.float32), key=0, probes=10)
    np.testing.assert_allclose(est.trace, np.trace(a_diag), rtol=1e-6)  # v^T D v = tr D
    assert est.stderr < 1e-5 and est.probes == 10
    p, a, _ = clustered
    est = curvature.hessian_trace(p, SEEDS_S, key=1, probes=400)
    assert est.trace.shape == (2,) and np.all(est.stderr > 0)
    assert np.all(np.abs(est.trace - np.trace(a)) < 4 * est.stderr)


def test_spectral_density_peaks_at_the_known_eigenvalues(clustered):
    p, _, _ = clustered
    grid, density = curvature.spectral_density(p, SEEDS_S[0], key=0, runs=30, iters=20,
                                               sigma=0.3)
    np.testing.assert_allclose(np.sum(density) * (grid[1] - grid[0]), 1.0, atol=1e-3)
    peaks = grid[1:-1][(density[1:-1] > density[:-2]) & (density[1:-1] > density[2:])]
    np.testing.assert_allclose(peaks, [1.0, 5.0, 20.0], atol=0.05)
    nodes, weights = curvature.spectral_measure(p, SEEDS_S[0], key=0, runs=30, iters=20)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    mass = [weights[np.abs(nodes - lam) < 0.1].sum() / 30 for lam in (1.0, 5.0, 20.0)]
    np.testing.assert_allclose(mass, [0.25, 0.5, 0.25], atol=0.08)  # cluster fractions
    _, d2 = curvature.density_from_measure(nodes, weights, grid=np.array([5.0, 12.0]),
                                           sigma=0.3)
    assert d2[0] > 100 * d2[1]


def mlp_calls(mlp):
    """top-k and trace with the settings both MLP tests share (one compile each)."""
    return [lambda x, d: curvature.top_eigenvalues(mlp, x, k=4, data=d, iters=mlp.num_params()),
            lambda x, d: curvature.hessian_trace(mlp, x, key=0, probes=200, data=d)]


def test_lanczos_top_k_matches_eigh_on_a_small_mlp_full_data_and_a_batch(mlp):
    params = np_params(mlp, key=3)
    flat, unravel = ravel_pytree(params)
    hessian = jax.jit(jax.hessian(lambda f, d: mlp.loss(unravel(f), d)))
    idx = np.random.default_rng(0).integers(0, mlp.num_data, mlp.num_data)
    batch = jax.tree.map(lambda x: np.asarray(x)[idx], mlp.data)  # a resampled batch
    top_k, trace = mlp_calls(mlp)
    for data in (mlp.data, batch):
        truth = np.sort(np.linalg.eigvalsh(np.asarray(hessian(flat, data), np.float64)))[::-1]
        np.testing.assert_allclose(top_k(params, data), truth[:4], rtol=1e-3, atol=1e-5)
        est = trace(params, data)
        assert abs(est.trace - truth.sum()) < 4 * est.stderr + 1e-5


def test_repeated_curvature_calls_compile_nothing(mlp, clustered):
    params, moved = np_params(mlp, key=3), np_params(mlp, key=4)
    new = jax.tree.map(lambda x: np.asarray(x) + 1.0, mlp.data)
    calls = mlp_calls(mlp)
    p, _, _ = clustered
    density = lambda x: curvature.spectral_density(p, x, key=0, runs=30, iters=20, sigma=0.3)
    first = [call(params, mlp.data) for call in calls]
    density(SEEDS_S[0])
    with count_compiles() as compiles:
        again = [call(params, mlp.data) for call in calls]
        for call in calls:
            call(moved, new)
        density(SEEDS_S[1])
    assert compiles.count == 0, compiles
    np.testing.assert_array_equal(again[0], first[0])


@pytest.mark.parametrize("call, match", [
    (lambda p, x: curvature.top_eigenvalues(p, x, k=0), "k must be"),
    (lambda p, x: curvature.top_eigenvalues(p, x, k=41), "k must be"),
    (lambda p, x: curvature.top_eigenvalues(p, x, k=5, iters=3), "iters must be"),
    (lambda p, x: curvature.hessian_trace(p, x, key=0, probes=1), "probes must be"),
    (lambda p, x: curvature.spectral_density(p, x, key=0, runs=0), "runs must be"),
    (lambda p, x: curvature.spectral_density(p, x, key="a"), "key must be"),
    (lambda p, x: curvature.top_eigenvalues(p, np.zeros((2, 3)), k=1), "leading seed axis"),
    (lambda p, x: sharpness.epsilon_sharpness(p, x, key=0, epsilon=0.0), "epsilon must be"),
])
def test_bad_curvature_inputs_raise_input_errors(clustered, call, match):
    p, _, _ = clustered
    with pytest.raises(gdlab.InputError, match=match):
        call(p, np.zeros(40, np.float32))


def test_density_from_measure_rejects_a_bad_grid():
    with pytest.raises(gdlab.InputError, match="grid"):
        curvature.density_from_measure(np.ones((1, 2)), np.ones((1, 2)) / 2, grid=np.ones((2, 2)))
    with pytest.raises(gdlab.InputError, match="sigma"):
        curvature.density_from_measure(np.ones((1, 2)), np.ones((1, 2)) / 2, sigma=-1.0)


# --- sharpness -------------------------------------------------------------------------


def test_epsilon_sharpness_of_a_diagonal_quadratic_is_its_box_corner():
    eig = np.arange(1.0, 7.0)
    centre = np.linspace(-2, 2, 6)
    p, _, _ = known_hessian(eig, rotate=False, centre=centre)
    eps = 1e-2
    minima = np.stack([centre, centre]).astype(np.float32)
    out = sharpness.epsilon_sharpness(p, minima, key=0, epsilon=eps, steps=8)
    corner = 0.5 * np.sum(eig * (eps * (np.abs(centre) + 1)) ** 2)  # every vertex is a max
    np.testing.assert_allclose(out["max_loss"], corner, rtol=1e-3)
    np.testing.assert_allclose(out["epsilon_sharpness"], 100 * corner, rtol=1e-3)
    assert out["loss"].shape == (2,)


def test_sharpness_of_many_minima_at_once(clustered):
    p, a, c = clustered
    minima = np.stack([c, c]).astype(np.float32)
    out = sharpness.sharpness(p, minima, key=0, probes=400)
    assert set(out) == {"loss", "top_eigenvalue", "trace", "trace_stderr",
                        "epsilon_sharpness", "max_loss"}
    assert all(v.shape == (2,) for v in out.values())
    np.testing.assert_allclose(out["top_eigenvalue"], 20.0, rtol=1e-4)
    assert np.all(np.abs(out["trace"] - np.trace(a)) < 4 * out["trace_stderr"])
    assert np.all(out["epsilon_sharpness"] > 0) and np.all(out["loss"] < 1e-6)
