"""Symmetries derived from the model: permutation specs, canonical forms, weight matching,
and barriers on straight paths (gdlab.symmetry, gdlab.landscape.barriers).

Oracle: every transform of a network by its symmetry group leaves its outputs unchanged,
maps to the same canonical form, and aligns back to the original (barrier 0).
"""

from __future__ import annotations

import warnings

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gdlab
from gdlab import problems, symmetry
from gdlab._tree import flatten_one, flatten_seeds
from gdlab.landscape import barriers
from tests.helpers import count_compiles

RNG = np.random.default_rng(0)
X = RNG.standard_normal((48, 5)).astype(np.float32)
Y = (np.arange(48) % 3).astype(np.int32)


class NNXNet(nnx.Module):
    """Two hidden layers; the State sorts "head" before "layers": not the forward order."""

    def __init__(self, rngs, act=nnx.relu):
        self.layers = nnx.List([nnx.Linear(5, 7, rngs=rngs), nnx.Linear(7, 6, rngs=rngs)])
        self.head = nnx.Linear(6, 3, rngs=rngs)
        self.act = act

    def __call__(self, x):
        for layer in self.layers:
            x = self.act(layer(x))
        return self.head(x)


class NNXCNN(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 4, (3, 3), padding="SAME", rngs=rngs)
        self.out = nnx.Linear(4 * 8 * 8, 10, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.conv(x))
        return self.out(h.reshape(h.shape[0], -1))


class NNXResidual(nnx.Module):
    def __init__(self, rngs):
        self.a = nnx.Linear(5, 5, rngs=rngs)
        self.b = nnx.Linear(5, 3, rngs=rngs)

    def __call__(self, x):
        return self.b(nnx.relu(self.a(x)) + x)


class EqxCNN(eqx.Module):
    conv: eqx.nn.Conv2d
    out: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.conv = eqx.nn.Conv2d(1, 4, 3, padding=1, key=k1)
        self.out = eqx.nn.Linear(4 * 8 * 8, 10, key=k2)

    def __call__(self, x):
        return self.out(jnp.tanh(self.conv(x)).reshape(-1))


def _digits_images(n=32, channels_first=False):
    p = problems.digits(model="cnn")
    x, y = np.asarray(p.data["x"][:n]), np.asarray(p.data["y"][:n])
    return (np.moveaxis(x, -1, 1) if channels_first else x), y


def _architectures():
    """{name: (problem, expected actions per hidden layer)}."""
    xi, yi = _digits_images()
    xe, _ = _digits_images(channels_first=True)
    ce, m = problems.cross_entropy, problems.CLASSIFICATION_METRICS
    return {
        "linen tanh MLP": (problems.from_flax(problems.MLP(hidden=(6,), out=3), X, Y, ce,
                                              metrics=m), ["sign"]),
        "linen relu MLP 2 hidden": (problems.digits(hidden=(16, 8)), ["scale", "scale"]),
        "linen CNN on digits": (problems.digits(model="cnn", hidden=(4, 6)),
                                ["scale", "scale"]),
        "nnx relu MLP": (problems.from_nnx(NNXNet, X, Y, ce, metrics=m), ["scale", "scale"]),
        "nnx tanh MLP": (problems.from_nnx(lambda r: NNXNet(r, jnp.tanh), X, Y, ce),
                         ["sign", "sign"]),
        "nnx gelu MLP": (problems.from_nnx(lambda r: NNXNet(r, nnx.gelu), X, Y, ce),
                         ["permute", "permute"]),
        "nnx CNN": (problems.from_nnx(NNXCNN, xi, yi, ce), ["scale"]),
        "equinox MLP": (problems.from_equinox(
            lambda k: eqx.nn.MLP(5, 3, 8, 2, activation=jax.nn.relu, key=k), X, Y, ce),
            ["scale", "scale"]),
        "equinox tanh CNN (channels first)": (problems.from_equinox(EqxCNN, xe, yi, ce),
                                              ["sign"]),
    }


@pytest.fixture(scope="module")
def architectures():
    return _architectures()


def _generic_params(problem, seed=0):
    """Random params from the shapes alone (NumPy: nothing compiles), biases nonzero."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: (rng.standard_normal(s.shape) / np.sqrt(
        max(1, np.prod(s.shape[:-1])) if len(s.shape) > 1 else 4.0)).astype(s.dtype),
        problem.params_shape())


def _stacked(problem, seeds):
    return jax.tree.map(lambda *xs: np.stack(xs), *[_generic_params(problem, i)
                                                    for i in range(seeds)])


def _zeros(problem):
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), problem.params_shape())


def _batch(problem, n=32):
    return jax.tree.map(lambda a: np.asarray(a)[:n], problem.data)


ARCHITECTURES = ["linen tanh MLP", "linen relu MLP 2 hidden", "linen CNN on digits",
                 "nnx relu MLP", "nnx tanh MLP", "nnx gelu MLP", "nnx CNN", "equinox MLP",
                 "equinox tanh CNN (channels first)"]


def test_the_architecture_list_is_complete(architectures):
    assert sorted(architectures) == sorted(ARCHITECTURES)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_gets_its_symmetry_and_every_transform_keeps_the_function(
        arch, architectures):
    p, actions = architectures[arch]
    sym = p.symmetry
    assert isinstance(sym, symmetry.Symmetry), arch
    assert [g.action for g in sym.groups] == actions, (arch, sym.describe())
    params = _generic_params(p)
    batch = _batch(p)
    predict = jax.jit(p.predict)
    ref = np.asarray(predict(params, batch))
    canon = flatten_one(sym(params))
    for seed in range(3):
        other = sym.random_transform(params, seed=seed)
        assert np.abs(flatten_one(other) - flatten_one(params)).max() > 0.1, arch
        np.testing.assert_allclose(predict(other, batch), ref, rtol=1e-5, atol=1e-5,
                                   err_msg=arch)
        np.testing.assert_allclose(flatten_one(sym(other)), canon, atol=1e-5, err_msg=arch)
        back = symmetry.align(p, params, other)
        assert jax.tree.structure(back) == jax.tree.structure(params), arch
        np.testing.assert_allclose(flatten_one(back), flatten_one(params), atol=1e-5,
                                   err_msg=arch)
    b = gdlab.landscape.barrier(p, params, sym.random_transform(params, seed=9),
                                data=batch, align=True)
    assert abs(b) < 1e-5, (arch, b)


def test_canonical_form_is_jittable_and_vmappable():
    p = problems.digits(hidden=(16, 8))
    stacked = _stacked(p, 4)
    canon = jax.tree.map(np.asarray, jax.jit(jax.vmap(p.symmetry))(stacked))
    for i in range(4):
        one = p.symmetry(jax.tree.map(lambda x, i=i: x[i], stacked))
        np.testing.assert_allclose(flatten_one(jax.tree.map(lambda x, i=i: x[i], canon)),
                                   flatten_one(one), atol=1e-6)
    # the normal form: relu units of the first layer have unit incoming norm
    w, b = canon["Dense_0"]["kernel"], canon["Dense_0"]["bias"]
    np.testing.assert_allclose(np.sqrt(np.sum(w**2, axis=1) + b**2), 1.0, rtol=1e-5)


def test_new_canonical_form_equals_the_tanh_mlp_one_and_legacy_symmetry_aligns():
    rng = np.random.default_rng(3)
    params = {f"Dense_{i}": {"kernel": rng.standard_normal(s).astype(np.float32),
                             "bias": rng.standard_normal(s[1]).astype(np.float32)}
              for i, s in enumerate([(3, 5), (5, 4), (4, 2)])}
    sym = symmetry.for_model(params, "tanh")
    np.testing.assert_allclose(flatten_one(sym(params)),
                               flatten_one(jax.jit(symmetry.tanh_mlp_canonical)(params)),
                               atol=1e-6)
    legacy = gdlab.Problem(name="legacy", init=lambda k: params, loss=lambda p, b: 0.0,
                           symmetry=symmetry.tanh_mlp_canonical)
    other = sym.random_transform(params, seed=1)
    np.testing.assert_allclose(flatten_one(symmetry.align(legacy, params, other)),
                               flatten_one(params), atol=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_weight_matching_recovers_a_deep_permutation_under_noise(activation):
    p = problems.digits(hidden=(24, 16, 12), activation=activation)
    params = _generic_params(p, 1)
    noise = jax.tree.map(lambda x: 0.02 * RNG.standard_normal(x.shape).astype(np.float32),
                         params)
    noisy = jax.tree.map(np.add, params, noise)
    other = p.symmetry.random_transform(noisy, seed=5)
    back = symmetry.align(p, params, other)
    np.testing.assert_allclose(flatten_one(p.symmetry(back)), flatten_one(p.symmetry(noisy)),
                               atol=1e-4)  # the same network...
    # ...labelled like params: as close as the noise (tanh: exactly noisy; relu: noisy
    # with params' unit scales), where a wrong unit anywhere would cost O(|params|).
    gap = np.linalg.norm(flatten_one(back) - flatten_one(params))
    assert gap < 2 * np.linalg.norm(flatten_one(noise)), gap
    if activation == "tanh":
        np.testing.assert_allclose(flatten_one(back), flatten_one(noisy), atol=1e-5)
    # batched: a seed axis on either side
    stack = jax.tree.map(lambda *xs: np.stack(xs), other, p.symmetry.random_transform(noisy, 6))
    both = symmetry.align(p, params, stack)
    assert flatten_seeds(both).shape == (2, p.num_params())
    np.testing.assert_allclose(flatten_seeds(both), np.stack([flatten_one(back)] * 2),
                               atol=1e-5)


def test_layers_are_read_in_natural_order_and_flatten_strides_are_found():
    shapes = {f"Dense_{i}": {"kernel": jax.ShapeDtypeStruct((4, 4), jnp.float32),
                             "bias": jax.ShapeDtypeStruct((4,), jnp.float32)}
              for i in range(12)}
    sym = symmetry.for_model(shapes, "relu")
    assert sym.layers == tuple(f"Dense_{i}" for i in range(12))  # Dense_2 before Dense_10
    cnn = problems.digits(model="cnn", hidden=(4,)).symmetry
    (out,) = cnn.groups[0].outgoing
    assert (out.outer, out.inner) == (64, 1)  # channels last: rows p * 4 + c
    assert cnn.log10_order() == pytest.approx(np.log10(24))


def test_weight_decay_keeps_permutations_only_for_relu():
    assert [g.action for g in problems.digits(weight_decay=1e-3).symmetry.groups] == ["permute"]
    assert [g.action for g in problems.digits(activation="tanh", weight_decay=1e-3)
            .symmetry.groups] == ["sign"]
    assert problems.digits(model="logistic").symmetry is None


def test_non_chain_models_get_no_symmetry_and_a_clear_note():
    with pytest.warns(symmetry.SymmetryNote, match="not a plain Dense/Conv chain"):
        p = problems.from_nnx(NNXResidual, X, Y, problems.cross_entropy)
    assert p.symmetry is None
    with pytest.raises(gdlab.InputError, match="not a plain Dense/Conv chain"):
        symmetry.for_problem(p)
    with pytest.raises(gdlab.InputError, match="no symmetry"):
        symmetry.align(p, _zeros(p), _zeros(p))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a linear model has nothing to note
        linear = problems.from_flax(nn.Dense(3), X, Y, problems.cross_entropy)
    assert linear.symmetry is None
    explicit = problems.from_nnx(NNXResidual, X, Y, problems.cross_entropy, symmetry=None)
    assert explicit.symmetry is None


def test_bad_symmetry_inputs_are_rejected_with_clear_errors():
    ce = problems.cross_entropy
    relu = problems.MLP(hidden=(8,), out=3, activation="relu")
    with pytest.raises(gdlab.InputError, match=r"activation='tanh'.*changes the model's outputs"):
        problems.from_flax(relu, X, Y, ce, activation="tanh")
    with pytest.raises(gdlab.InputError, match="symmetry must be 'auto'"):
        problems.from_flax(relu, X, Y, ce, symmetry="yes")
    with pytest.raises(gdlab.InputError, match="unknown activation 'swishy'"):
        symmetry.for_model(problems.digits().params_shape(), "swishy")
    with pytest.raises(gdlab.InputError, match="one per hidden layer"):
        symmetry.for_model(problems.digits(hidden=(4, 4)).params_shape(), ["relu"] * 3)
    with pytest.raises(gdlab.InputError, match=r"\['norm'\]\['scale'\].*neither a kernel"):
        symmetry.for_model({"norm": {"scale": np.ones(3)}, "Dense_0": {"kernel": np.ones((3, 3))}},
                           "relu")
    with pytest.raises(gdlab.InputError, match="no hidden units"):
        symmetry.for_model({"Dense_0": {"kernel": np.ones((3, 3))}}, "relu")
    p = problems.digits(hidden=(8,))
    params = _zeros(p)
    with pytest.raises(gdlab.InputError, match="leaf shapes"):
        p.symmetry(_zeros(problems.digits(hidden=(9,))))
    with pytest.raises(gdlab.InputError, match="same seed count"):
        symmetry.align(p, jax.tree.map(lambda x: np.stack([x] * 2), params),
                       jax.tree.map(lambda x: np.stack([x] * 3), params))
    with pytest.raises(gdlab.InputError, match="one permutation and one multiplier"):
        p.symmetry.apply(params, [], [])


# --- barriers ------------------------------------------------------------------------------


def _double_well():
    """loss(w) = (w^2 - 1)^2 in 1-D; error = 1 when |w| < 0.5 (a made-up metric)."""
    return gdlab.Problem(name="well", init=lambda k: jax.random.normal(k, (1,)),
                         loss=lambda w, b: jnp.sum((w**2 - 1.0) ** 2),
                         metrics={"error": lambda w, b: jnp.mean(jnp.abs(w) < 0.5)
                                  .astype(jnp.float32)})


def test_barrier_is_the_path_maximum_minus_the_mean_of_the_ends():
    well = _double_well()
    a, b = jnp.array([-1.0]), jnp.array([1.0])
    assert gdlab.landscape.barrier(well, a, b) == pytest.approx(1.0, abs=1e-6)  # at w = 0
    assert gdlab.landscape.barrier(well, a, b, metric="error") == pytest.approx(1.0)
    c = jnp.array([1.5])  # loss 1.5625 at c, the path's maximum: minus the ends' mean
    assert gdlab.landscape.barrier(well, b, c) == pytest.approx(1.5625 / 2, abs=1e-6)
    alphas, values = barriers.path_values(well, a, b, num=5)
    np.testing.assert_allclose(alphas, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(values, [0, 0.5625, 1, 0.5625, 0], atol=1e-6)
    # a leading seed axis on either side: (S,) barriers, a single end broadcast
    ends = jnp.array([[1.0], [-1.0], [1.5]])
    np.testing.assert_allclose(gdlab.landscape.barrier(well, a, ends), [1, 0, 1.5625 / 2],
                               atol=1e-5)
    m = gdlab.landscape.barrier_matrix(well, ends)
    assert m.shape == (3, 3) and np.allclose(m, m.T) and np.all(np.diag(m) == 0)
    assert m[0, 1] == pytest.approx(1.0, abs=1e-6)
    old_style = gdlab.landscape.barrier_matrix(well, [a, b], num_points=25)
    assert old_style[0, 1] == pytest.approx(1.0, abs=1e-6)


def test_barriers_compile_once_per_shape_and_reject_bad_input():
    p = problems.digits(hidden=(8,))
    stack = _stacked(p, 6)
    a = jax.tree.map(lambda x: x[:3], stack)
    b = jax.tree.map(lambda x: x[3:], stack)
    other_data = jax.tree.map(lambda x: np.asarray(x)[::-1], p.data)
    first = gdlab.landscape.barrier(p, a, b, align=True, metric="error")
    with count_compiles() as compiles:
        again = gdlab.landscape.barrier(p, b, a, align=True, metric="error")
        gdlab.landscape.barrier(p, a, b, align=True, metric="error", data=other_data)
    assert compiles.count == 0, compiles
    assert first.shape == again.shape == (3,)
    with pytest.raises(gdlab.InputError, match="no metric 'f1'"):
        gdlab.landscape.barrier(p, a, b, metric="f1")
    with pytest.raises(gdlab.InputError, match="leaf shapes"):
        gdlab.landscape.barrier(p, a, _zeros(problems.digits(hidden=(9,))))
    with pytest.raises(gdlab.InputError, match="num must be"):
        gdlab.landscape.barrier(p, a, b, num=1)
    with pytest.raises(gdlab.InputError, match="align must be"):
        gdlab.landscape.barrier(p, a, b, align="yes")
    assert barriers.padded_count(850) == 896 and barriers.padded_count(7) == 7
