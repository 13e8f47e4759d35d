"""Loss-landscape slices, trajectories and curves between minima, against oracles:
closed-form quadratics, per-filter norms, straight-line paths, a convex bowl."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import count_compiles

import gdlab
from gdlab import landscape
from gdlab.landscape import curves, slices, trajectories


def bowl(dim=6, key=0, diagonal=False):
    """A quadratic 1/2 (x - c)^T A (x - c) with A and c returned for the formula."""
    rng = np.random.default_rng(key)
    eig = np.linspace(1.0, 4.0, dim)
    q = np.eye(dim) if diagonal else np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    a = (q * eig) @ q.T
    c = rng.uniform(-1, 1, dim)
    a_j, c_j = jnp.asarray(a, jnp.float32), jnp.asarray(c, jnp.float32)
    p = gdlab.Problem(name="bowl", init=lambda k: jax.random.normal(k, (dim,)),
                      loss=lambda x, batch: 0.5 * (x - c_j) @ (a_j @ (x - c_j)))
    return p, a, c


def formula(a, c, x):
    r = np.asarray(x, np.float64) - c
    return 0.5 * np.einsum("...i,ij,...j->...", r, a, r)


def tiny_mlp(n=32, d=3, h=5, key=0):
    """A 3-5-1 tanh MLP (flax-style Dense params) on random data: cheap to compile."""
    rng = np.random.default_rng(key)
    data = {"x": jnp.asarray(rng.standard_normal((n, d)), jnp.float32),
            "y": jnp.asarray(rng.standard_normal((n, 1)), jnp.float32)}

    def init(k):
        k0, k1 = jax.random.split(k)
        return {"Dense_0": {"kernel": jax.random.normal(k0, (d, h)) / np.sqrt(d),
                            "bias": jnp.zeros(h)},
                "Dense_1": {"kernel": jax.random.normal(k1, (h, 1)) / np.sqrt(h),
                            "bias": jnp.zeros(1)}}

    def loss(w, batch):
        hidden = jnp.tanh(batch["x"] @ w["Dense_0"]["kernel"] + w["Dense_0"]["bias"][None])
        out = hidden @ w["Dense_1"]["kernel"] + w["Dense_1"]["bias"][None]
        return 0.5 * jnp.mean((out - batch["y"]) ** 2)
    return gdlab.Problem(name="tiny_mlp", init=init, loss=loss, data=data)


@pytest.fixture(scope="module")
def mlp():
    return tiny_mlp()


def np_params(problem, seeds=None, key=0):
    """Random params as host (NumPy) arrays, with a leading seed axis when `seeds`: no
    program compiles for them."""
    rng = np.random.default_rng(key)
    lead = () if seeds is None else (seeds,)
    return jax.tree.map(lambda s: (0.5 * rng.standard_normal(lead + s.shape)).astype(s.dtype),
                        problem.params_shape())


def layers_problem():
    """Params shaped like a conv net: a conv kernel, a dense kernel, a bias, a scalar."""
    def init(k):
        k1, k2, k3 = jax.random.split(k, 3)
        return {"conv": jax.random.normal(k1, (3, 3, 2, 4)), "dense": jax.random.normal(
            k2, (8, 5)), "bias": jax.random.normal(k3, (5,)), "scale": jnp.float32(2.0)}
    loss = lambda w, batch: sum(jnp.sum(x**2) for x in jax.tree.leaves(w))
    return gdlab.Problem(name="layers", init=init, loss=loss)


# --- slices ----------------------------------------------------------------------------


def test_slice_2d_of_a_quadratic_is_its_formula():
    p, a, c = bowl()
    x0 = p.init(jax.random.key(1))
    s = slices.slice_2d(p, x0, key=3, normalize="none", ignore=None, span=(-2.0, 1.0), num=9)
    assert s.loss.shape == (9, 9) and s.alphas[0] == -2.0 and s.betas[-1] == 1.0
    d1, d2 = (np.asarray(d, np.float64) for d in s.directions)
    pts = (np.asarray(x0)[None, None] + s.alphas[:, None, None] * d1
           + s.betas[None, :, None] * d2)
    np.testing.assert_allclose(s.loss, formula(a, c, pts), rtol=1e-4, atol=1e-4)
    one = slices.slice_1d(p, x0, key=3, normalize="none", ignore=None, span=(-2.0, 1.0), num=9)
    np.testing.assert_allclose(one.loss, formula(a, c, np.asarray(x0) + one.alphas[:, None] * d1),
                               rtol=1e-4, atol=1e-4)  # the first direction is slice_1d's


def test_filter_normalised_directions_match_each_filters_norm():
    p = layers_problem()
    w = np_params(p)
    norm = lambda x, axes: np.sqrt((np.asarray(x, np.float64) ** 2).sum(axis=axes))
    d = slices.random_direction(p, w, key=5, normalize="filter")
    for name, axes in (("conv", (0, 1, 2)), ("dense", (0,))):  # one filter per output unit
        np.testing.assert_allclose(norm(d[name], axes), norm(w[name], axes), rtol=1e-5)
    assert not np.any(d["bias"]) and float(d["scale"]) == 0.0  # ignore="biasbn"
    raw = jax.tree.map(lambda x: np.asarray(x) + 1.0, w)
    kept, layer, none = jax.jit(lambda r, w: [  # one program for the other settings
        slices.normalize_direction(r, w, "filter", ignore=None),
        slices.normalize_direction(r, w, "layer"), slices.normalize_direction(r, w, "none")])(
        raw, w)
    np.testing.assert_allclose(norm(kept["bias"], None), norm(w["bias"], None), rtol=1e-5)
    np.testing.assert_allclose(abs(float(kept["scale"])), abs(float(w["scale"])), rtol=1e-5)
    for name in ("conv", "dense"):
        np.testing.assert_allclose(norm(layer[name], None), norm(w[name], None), rtol=1e-5)
        np.testing.assert_allclose(none[name], raw[name])
    assert not np.allclose(norm(layer["dense"], (0,)), norm(w["dense"], (0,)))


def test_seed_axis_gives_one_slice_per_seed_with_its_own_directions(mlp):
    params_S = np_params(mlp, seeds=3)
    pick = lambda t, i: jax.tree.map(lambda x: np.asarray(x)[i], t)
    s = slices.slice_2d(mlp, params_S, key=4, num=7, span=0.5)
    assert s.loss.shape == (3, 7, 7)
    alone = slices.slice_2d(mlp, pick(params_S, 0), key=4, num=7, span=0.5)  # = seed 0
    np.testing.assert_allclose(alone.loss, s.loss[0], rtol=1e-5)
    again = slices.slice_2d(mlp, pick(params_S, 2), key=0, num=7, span=0.5, normalize="none",
                            directions=tuple(pick(d, 2) for d in s.directions))
    np.testing.assert_allclose(again.loss, s.loss[2], rtol=1e-5, atol=1e-6)
    assert not np.allclose(s.loss[1], s.loss[2])
    np.testing.assert_allclose(s.loss[:, 3, 3], slices.point_losses(mlp, params_S), rtol=1e-5)


def test_interpolate_hits_both_ends_and_overshoots_on_a_line():
    p, a, c = bowl()
    xa, xb = p.init(jax.random.key(1)), p.init(jax.random.key(2))
    alphas, losses = landscape.interpolate(p, xa, xb, num=9, span=(-0.5, 1.5))
    pts = (1 - alphas[:, None]) * np.asarray(xa) + alphas[:, None] * np.asarray(xb)
    np.testing.assert_allclose(losses, formula(a, c, pts), rtol=1e-4)
    np.testing.assert_allclose(losses[[2, 6]], [p.loss(xa, None), p.loss(xb, None)], rtol=1e-5)
    both = landscape.interpolate(p, jnp.stack([xa, xb]), jnp.stack([xb, xa]), num=9,
                                 span=(-0.5, 1.5))[1]
    np.testing.assert_allclose(both, np.stack([losses, losses[::-1]]), rtol=1e-4)


def test_plane_through_three_points_puts_them_at_their_coordinates():
    p, a, c = bowl()
    xa, xb, xc = (p.init(jax.random.key(i)) for i in (1, 2, 3))
    s = slices.slice_plane(p, xa, xb, xc, num=11, margin=0.2)
    np.testing.assert_allclose(s.points[1, 0], np.linalg.norm(np.asarray(xb) - np.asarray(xa)),
                               rtol=1e-5)
    e1, e2 = (np.asarray(d, np.float64) for d in s.directions)
    for (u, v), x in zip(s.points, (xa, xb, xc), strict=True):
        np.testing.assert_allclose(np.asarray(xa) + u * e1 + v * e2, x, atol=1e-5)
    grid = (np.asarray(xa)[None, None] + s.alphas[:, None, None] * e1
            + s.betas[None, :, None] * e2)
    np.testing.assert_allclose(s.loss, formula(a, c, grid), rtol=1e-4, atol=1e-4)


def test_a_repeated_slice_compiles_nothing_also_at_new_points_keys_and_data(mlp):
    params = np_params(mlp)
    moved = jax.tree.map(lambda x: x + 0.1, params)
    new = jax.tree.map(lambda x: np.asarray(x) + 1.0, mlp.data)
    first = slices.slice_2d(mlp, params, key=0, num=7)
    with count_compiles() as compiles:
        again = slices.slice_2d(mlp, params, key=0, num=7)
        slices.slice_2d(mlp, moved, key=1, num=7, span=2.0)
        other = slices.slice_2d(mlp, params, key=0, num=7, data=new)
    assert compiles.count == 0, compiles
    np.testing.assert_array_equal(again.loss, first.loss)
    assert not np.allclose(other.loss, first.loss)


@pytest.mark.parametrize("kwargs, match", [
    (dict(normalize="unit"), "unknown normalize"),
    (dict(ignore="bias"), "unknown ignore"),
    (dict(num=1), "num must be"),
    (dict(span=0.0), "span must be"),
    (dict(span=(1.0, 0.0)), "lo < hi"),
    (dict(span=(0.0, 1.0, 2.0)), "pair"),
    (dict(chunk=0), "chunk must be"),
])
def test_bad_slice_inputs_raise_input_errors(mlp, kwargs, match):
    with pytest.raises(gdlab.InputError, match=match):
        slices.slice_2d(mlp, np_params(mlp), key=0, **kwargs)


def test_bad_params_and_zero_directions_raise_input_errors(mlp):
    p, _, _ = bowl()
    with pytest.raises(gdlab.InputError, match="ignore=None"):  # every leaf 1-D, ignored
        slices.slice_2d(p, p.init(jax.random.key(0)), key=0)
    with pytest.raises(gdlab.InputError, match="structure"):
        slices.slice_1d(mlp, {"w": np.zeros(3)}, key=0)
    with pytest.raises(gdlab.InputError, match="leading seed axis"):
        slices.slice_1d(p, np.zeros((2, 3, 6)), key=0, ignore=None)
    with pytest.raises(gdlab.InputError, match="same leading seed axis"):
        landscape.interpolate(p, np.zeros(6), np.zeros((2, 6)))
    with pytest.raises(gdlab.InputError, match="one line"):
        slices.slice_plane(p, np.zeros(6), np.ones(6), 2 * np.ones(6))


# --- trajectories ----------------------------------------------------------------------


def test_pca_of_a_straight_line_explains_everything_with_one_component():
    p, _, _ = bowl()
    end, v = np.arange(6.0), np.linspace(-1, 1, 6)
    path = end + np.geomspace(3.0, 1e-3, 12)[:, None] * v  # uneven steps, one direction
    path[-1] = end
    pca = trajectories.trajectory_pca(p, np.stack([path, 2 * path]), components=3)
    np.testing.assert_allclose(pca.explained[:, 0], 1.0, atol=1e-9)
    np.testing.assert_allclose(np.abs(pca.components[0, 0]), np.abs(v) / np.linalg.norm(v),
                               atol=1e-9)
    assert pca.coords.shape == (2, 12, 3) and np.all(pca.coords[:, 0, 0] > 0)
    np.testing.assert_allclose(pca.off_plane, 0.0, atol=1e-9)


def test_trajectory_slice_reports_the_projection_mismatch():
    p, a, c = bowl()
    rng = np.random.default_rng(0)
    end = c + 0.1
    t = np.linspace(1.0, 0.0, 15)[:, None]
    flat = end + t * rng.standard_normal(6) + t**2 * rng.standard_normal(6)  # in a plane
    bent = flat + 2 * np.sin(3 * np.pi * t) * rng.standard_normal(6)  # leaves it
    ts = trajectories.trajectory_slice(p, np.stack([flat, bent]).astype(np.float32), num=9)
    assert ts.slice.loss.shape == (2, 9, 9) and ts.path.shape == (2, 15, 2)
    np.testing.assert_allclose(ts.true_loss, formula(a, c, np.stack([flat, bent])), rtol=1e-4)
    assert ts.max_abs_mismatch[0] < 1e-4 * ts.true_loss[0].max()
    assert ts.max_abs_mismatch[1] > 1e-3 and ts.pca.off_plane[1].max() > 0.1
    plane_pts = (ts.pca.end[1] + ts.path[1] @ ts.pca.components[1, :2])
    np.testing.assert_allclose(ts.plane_loss[1], formula(a, c, plane_pts), rtol=1e-4)
    one = trajectories.trajectory_slice(p, bent.astype(np.float32), num=9)  # one path
    np.testing.assert_allclose(one.mismatch, ts.mismatch[1], rtol=1e-4, atol=1e-6)
    assert one.slice.loss.shape == (9, 9)


def test_trajectory_pca_takes_pytree_paths_like_runs_trajectory(mlp):
    start, end = np_params(mlp, key=1), np_params(mlp, key=2)
    t = np.linspace(0.0, 1.0, 6)
    path = jax.tree.map(lambda a, b: ((1 - t) * a[..., None] + t * b[..., None])
                        .transpose(-1, *range(a.ndim))[None], start, end)  # (1, E, ...)
    pca = trajectories.trajectory_pca(mlp, path)
    assert pca.components.shape == (1, 2, mlp.num_params())
    np.testing.assert_allclose(pca.explained[0, 0], 1.0, atol=1e-6)
    with pytest.raises(gdlab.InputError, match="leaves must be"):
        trajectories.trajectory_pca(mlp, end)  # no path axis


# --- curves between minima -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bezier", "polychain"])
def test_a_curve_across_a_convex_bowl_stays_below_the_straight_paths_maximum(kind):
    p, _, c = bowl(dim=4, key=1, diagonal=True)
    xa = jnp.asarray(c + np.array([2.0, 0.5, 0.0, 0.0]), jnp.float32)
    xb = jnp.asarray(c + np.array([0.0, 0.0, 2.0, -1.0]), jnp.float32)
    cmp = curves.compare_curve(p, xa, xb, key=0, kind=kind, steps=300, learning_rate=0.05,
                               num=21)
    assert cmp.curve_loss[1:-1].max() < cmp.line_max
    assert cmp.curve_loss.mean() < cmp.line_loss.mean()
    np.testing.assert_allclose(cmp.curve_loss[[0, -1]], cmp.line_loss[[0, -1]], rtol=1e-5)
    assert not cmp.aligned and cmp.curve.train_loss.shape == (300,)
    np.testing.assert_allclose(cmp.line_barrier, cmp.line_max - 0.5 * (
        cmp.line_loss[0] + cmp.line_loss[-1]), rtol=1e-6)


def test_curves_for_many_pairs_at_once_and_on_mini_batches(mlp):
    params_S = np_params(mlp, seeds=4)
    a_S = jax.tree.map(lambda x: x[:2], params_S)
    b_S = jax.tree.map(lambda x: x[2:], params_S)
    curve = curves.fit_curve(mlp, a_S, b_S, key=1, steps=20, batch_size=8)
    assert curve.train_loss.shape == (2, 20)
    _, losses = curves.curve_losses(mlp, curve, num=5)
    ends = slices.point_losses(mlp, params_S)  # a_0, a_1, b_0, b_1
    np.testing.assert_allclose(losses[:, [0, -1]].T.ravel(), ends, rtol=1e-5)
    with pytest.raises(gdlab.InputError, match="kind"):
        curves.fit_curve(mlp, a_S, b_S, key=1, kind="spline")
    with pytest.raises(gdlab.InputError, match="batch_size"):
        curves.fit_curve(mlp, a_S, b_S, key=1, batch_size=10**6)


def test_curve_after_alignment_uses_weight_matching(mlp):
    a, b = np_params(mlp, key=0), np_params(mlp, key=1)
    p = dataclasses.replace(mlp, symmetry=gdlab.symmetry.for_model(mlp.params_shape(), "tanh"))
    cmp = curves.compare_curve(p, a, b, key=0, align=True, steps=5, num=5)
    assert cmp.aligned and "gdlab.symmetry.align" in cmp.note
    np.testing.assert_allclose(cmp.line_loss[-1], p.loss(b, p.data), rtol=1e-5)  # same function
    moved = cmp.curve.end
    assert not np.allclose(np.asarray(moved["Dense_0"]["kernel"]),
                           np.asarray(b["Dense_0"]["kernel"]))
