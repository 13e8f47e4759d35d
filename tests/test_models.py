"""Own models and real data: the linen / nnx / equinox adapters, metrics, datasets."""

import dataclasses
import doctest
import random
import socket

import equinox as eqx
import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import gdlab
from gdlab import problems
from gdlab.problems import adapters, datasets

# --- one network four ways: plain JAX, linen, nnx, equinox (MLP 4-8-3, ReLU) -----------


# NumPy draws the fixed values: jax.random.normal takes seconds to compile on a busy CPU.
def _toy_data(n=32):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(rng.integers(0, 3, n).astype(np.int32))


def _numpy_params(abstract, seed=0):
    """Concrete values for abstract params (any pytree of ShapeDtypeStructs), from NumPy."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: jnp.asarray(0.5 * rng.standard_normal(a.shape), a.dtype),
                        abstract)


def _plain_params():
    rng = np.random.default_rng(11)
    draw = lambda scale, *shape: jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)
    return {"W1": draw(0.5, 4, 8), "b1": draw(0.1, 8), "W2": draw(0.5, 8, 3), "b2": draw(0.1, 3)}


def _plain_predict(params, x_BD):
    h_BH = jax.nn.relu(x_BD @ params["W1"] + params["b1"][None, :])
    return h_BH @ params["W2"] + params["b2"][None, :]


def _plain_problem(x, y, params):
    """The plain-JAX way: a Problem is data plus pure init and loss."""
    def loss(p, batch):
        logits = _plain_predict(p, batch["x"])
        return jnp.mean(problems.cross_entropy(logits, batch["y"]))
    return gdlab.Problem(name="plain", init=lambda key: params, loss=loss,
                         data={"x": x, "y": y}, predict=lambda p, b: _plain_predict(p, b["x"]))


class NNXMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(4, 8, rngs=rngs)
        self.l2 = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.l2(nnx.relu(self.l1(x)))


def _linen_layout(w):
    return {"Dense_0": {"kernel": w["W1"], "bias": w["b1"]},
            "Dense_1": {"kernel": w["W2"], "bias": w["b2"]}}


def _from_linen(p):
    return {"W1": p["Dense_0"]["kernel"], "b1": p["Dense_0"]["bias"],
            "W2": p["Dense_1"]["kernel"], "b2": p["Dense_1"]["bias"]}


def _nnx_model(w):
    model = nnx.eval_shape(lambda: NNXMLP(nnx.Rngs(0)))  # abstract: every value set below
    state = nnx.state(model, nnx.Param)
    pure = {"l1": {"kernel": w["W1"], "bias": w["b1"]}, "l2": {"kernel": w["W2"], "bias": w["b2"]}}
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    return model


def _from_nnx(state):
    d = nnx.to_pure_dict(state)
    return {"W1": d["l1"]["kernel"], "b1": d["l1"]["bias"],
            "W2": d["l2"]["kernel"], "b2": d["l2"]["bias"]}


def _eqx_model(w):
    model = eqx.filter_eval_shape(eqx.nn.MLP, 4, 3, 8, 1, activation=jax.nn.relu,
                                  key=jax.random.key(0))  # abstract: every array set below
    where = lambda m: (m.layers[0].weight, m.layers[0].bias, m.layers[1].weight,
                       m.layers[1].bias)
    return eqx.tree_at(where, model, (w["W1"].T, w["b1"], w["W2"].T, w["b2"]))


def _from_eqx(m):
    t = lambda a: jnp.swapaxes(jnp.asarray(a), -1, -2)  # (out, in) -> (in, out)
    return {"W1": t(m.layers[0].weight), "b1": m.layers[0].bias,
            "W2": t(m.layers[1].weight), "b2": m.layers[1].bias}


def _four_ways():
    """{way: (problem whose init gives the shared values, params -> plain layout)}."""
    x, y = _toy_data()
    w = _plain_params()
    linen = problems.from_flax(problems.MLP(hidden=(8,), out=3, activation="relu"), x, y,
                               problems.cross_entropy)
    linen = dataclasses.replace(linen, init=lambda key: _linen_layout(w))
    return {"plain": (_plain_problem(x, y, w), lambda p: p),
            "linen": (linen, _from_linen),
            "nnx": (problems.from_nnx(_nnx_model(w), x, y, problems.cross_entropy), _from_nnx),
            "equinox": (problems.from_equinox(_eqx_model(w), x, y, problems.cross_entropy),
                        _from_eqx)}


def test_same_network_gives_same_loss_and_gradients_in_every_library():
    ways = _four_ways()
    plain, _ = ways["plain"]
    batch = plain.data
    w = plain.init(None)
    ref_loss, ref_grad = jax.value_and_grad(plain.loss)(w, batch)
    ref_out = plain.predict(w, batch)
    for name, (p, to_plain) in ways.items():
        params = p.init(None)  # every way's init returns the shared values
        loss, grad = jax.jit(jax.value_and_grad(p.loss))(params, batch)
        np.testing.assert_allclose(loss, ref_loss, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(jax.jit(p.predict)(params, batch), ref_out, atol=1e-5,
                                   err_msg=name)
        grad = to_plain(grad)
        for leaf in ref_grad:
            np.testing.assert_allclose(grad[leaf], ref_grad[leaf], atol=1e-5,
                                       err_msg=f"{name} {leaf}")


def test_same_network_gives_same_sgd_trajectory_in_every_library():
    cfg = gdlab.TrainConfig(optimizer="sgd", learning_rate=0.5, steps=6, eval_every=2)
    runs = {name: (gdlab.train(p, cfg, seeds=2, key=0), to_plain)
            for name, (p, to_plain) in _four_ways().items()}
    ref, _ = runs["plain"]
    assert ref.loss_history[0, -1] < ref.loss_history[0, 0] - 1e-3  # it trained
    for name, (r, to_plain) in runs.items():
        np.testing.assert_allclose(r.loss_history, ref.loss_history, atol=1e-5, err_msg=name)
        final = to_plain(r.params)
        for leaf in ref.params:
            assert final[leaf].shape == ref.params[leaf].shape  # (S, ...)
            np.testing.assert_allclose(final[leaf], ref.params[leaf], atol=1e-5,
                                       err_msg=f"{name} {leaf}")


# --- builders: fresh params per seed, pure, jit/vmap-able ------------------------------


def _builder_problem(name, x, y):
    if name == "nnx":
        return problems.from_nnx(NNXMLP, x, y, problems.cross_entropy)
    return problems.from_equinox(
        lambda key: eqx.nn.MLP(4, 3, 8, 1, activation=jax.nn.relu, key=key), x, y,
        problems.cross_entropy)


@pytest.mark.parametrize("name", ["nnx", "equinox"])  # linen: tests/test_problems.py
def test_builder_init_is_fresh_per_seed_deterministic_and_vmappable(name):
    x, y = _toy_data()
    p = _builder_problem(name, x, y)

    @jax.jit
    def seeds(keys):  # what gdlab does: init vmapped over seeds, then the loss's gradient
        params = jax.vmap(p.init)(keys)
        return params, jax.vmap(jax.grad(p.loss), in_axes=(0, None))(params, p.data)

    keys = lambda: jax.random.split(jax.random.key(3), 3)  # fresh arrays: keys are not reused
    (params, grads), (again, _) = seeds(keys()), seeds(keys())
    flat = lambda t: np.concatenate([np.reshape(v, (3, -1)) for v in jax.tree.leaves(t)], 1)
    assert not np.allclose(flat(params)[0], flat(params)[1])  # fresh per seed
    np.testing.assert_array_equal(flat(params), flat(again))  # and a function of the key
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert np.all(np.isfinite(flat(grads)))
    assert p.num_params() == 4 * 8 + 8 + 8 * 3 + 3


# --- nnx and equinox state that must stay fixed ----------------------------------------


class NNXWithState(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, eval_mode: bool = False):
        self.l1 = nnx.Linear(4, 8, rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.l2 = nnx.Linear(8, 3, rngs=rngs)
        if eval_mode:
            self.eval()

    def __call__(self, x):
        return self.l2(self.drop(nnx.relu(self.bn(self.l1(x)))))


def test_nnx_instance_is_copied_so_later_changes_do_not_leak_into_init():
    x, y = _toy_data()
    model = _nnx_model(_plain_params())
    p = problems.from_nnx(model, x, y, problems.cross_entropy)
    before = np.asarray(p.init(None)["l1"]["kernel"][...])
    model.l1.kernel[...] = jnp.zeros((4, 8))
    np.testing.assert_array_equal(p.init(None)["l1"]["kernel"][...], before)


def test_nnx_rejects_state_that_changes_and_says_to_call_eval():
    x, y = _toy_data()
    with pytest.raises(gdlab.InputError, match=r"bn\.mean.*model\.eval\(\)"):
        problems.from_nnx(NNXWithState, x, y, problems.cross_entropy)
    model = NNXWithState(nnx.Rngs(0))
    model.bn.eval()  # BatchNorm fixed, Dropout still random: still rejected
    with pytest.raises(gdlab.InputError, match=r"drop\.rngs\.count"):
        problems.from_nnx(model, x, y, problems.cross_entropy)


def test_nnx_in_eval_mode_trains_params_only_and_keeps_batch_stats():
    x, y = _toy_data()
    with pytest.warns(UserWarning, match=r"problem.symmetry is None: params leaf \['bn'\]"):
        p = problems.from_nnx(lambda rngs: NNXWithState(rngs, eval_mode=True), x, y,
                              problems.cross_entropy)
    params = _numpy_params(p.params_shape())
    assert {type(v).__name__ for v in jax.tree.leaves(
        params, is_leaf=lambda v: isinstance(v, nnx.Variable))} == {"Param"}
    assert set(nnx.to_pure_dict(params)) == {"l1", "bn", "l2"}  # bn scale and bias train
    reference = NNXWithState(nnx.Rngs(0), eval_mode=True)
    nnx.update(reference, params)
    np.testing.assert_allclose(p.predict(params, p.data), reference(x), atol=1e-6)
    np.testing.assert_array_equal(p.predict(params, p.data), p.predict(params, p.data))


def test_equinox_model_with_dropout_needs_inference_mode():
    class Net(eqx.Module):
        lin: eqx.nn.Linear
        drop: eqx.nn.Dropout

        def __init__(self, key):
            self.lin, self.drop = eqx.nn.Linear(4, 3, key=key), eqx.nn.Dropout(0.5)

        def __call__(self, x):
            return self.drop(self.lin(x))

    x, y = _toy_data()
    with pytest.raises(gdlab.InputError, match="inference_mode"):
        problems.from_equinox(Net, x, y, problems.cross_entropy)
    p = problems.from_equinox(lambda k: eqx.nn.inference_mode(Net(k)), x, y,
                              problems.cross_entropy)
    assert p.num_params() == 15


def test_equinox_builder_with_integer_buffer_keeps_its_values():
    class Permuted(eqx.Module):
        lin: eqx.nn.Linear
        order: jax.Array  # integer: static, not trained

        def __init__(self, key):
            self.lin, self.order = eqx.nn.Linear(4, 3, key=key), jnp.array([2, 0, 1])

        def __call__(self, x):
            return self.lin(x)[self.order]

    x, y = _toy_data(8)
    p = problems.from_equinox(Permuted, x, y, problems.cross_entropy)
    assert p.num_params() == 15
    w = _numpy_params(p.params_shape())
    expected = jax.vmap(w.lin)(x)[:, jnp.array([2, 0, 1])]
    np.testing.assert_allclose(p.predict(w, p.data), expected, atol=1e-6)


def test_equinox_batched_model():
    x, y = _toy_data()
    lin = _numpy_params(eqx.filter_eval_shape(eqx.nn.Linear, 4, 3, key=jax.random.key(0)))
    p = problems.from_equinox(lin, x, y, problems.cross_entropy)
    q = problems.from_equinox(eqx.filter_vmap(lin), x, y, problems.cross_entropy,
                              batched=True)
    w = p.init(None)
    np.testing.assert_allclose(p.predict(w, p.data), jax.vmap(lin)(x), atol=1e-6)
    assert q.predict(q.init(None), q.data).shape == (32, 3)
    with pytest.raises(gdlab.InputError, match="batched=True"):
        problems.from_equinox(eqx.filter_vmap(lin), x, y, problems.cross_entropy)


# --- bring your own data ---------------------------------------------------------------


def _linen(x, y, **kw):
    return problems.from_flax(problems.MLP(hidden=(4,), out=3), x, y, problems.cross_entropy,
                              **kw)


def test_lists_and_numpy_are_converted():
    x, y = _toy_data(8)
    p = _linen(np.asarray(x, np.float64).tolist(), np.asarray(y).tolist(),
               test=(np.asarray(x), np.asarray(y)))
    assert p.data["x"].dtype == jnp.float32 and p.data["x"].shape == (8, 4)
    assert p.data["y"].dtype == jnp.int32 and p.test_data["y"].shape == (8,)
    assert isinstance(p.data["x"], jax.Array)


def test_dict_inputs_are_converted_leaf_by_leaf():
    x, y = _toy_data(8)
    model = lambda rngs: _TwoInputs(rngs)
    p = problems.from_nnx(model, {"a": np.asarray(x), "b": np.asarray(x).tolist()}, y,
                          problems.cross_entropy)
    assert p.predict(_numpy_params(p.params_shape()), p.data).shape == (8, 3)
    with pytest.raises(gdlab.InputError, match=r"x\['b'\] has dtype <U"):
        problems.from_nnx(model, {"a": x, "b": [["s"] * 4] * 8}, y, problems.cross_entropy)


class _TwoInputs(nnx.Module):
    def __init__(self, rngs):
        self.lin = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.lin(jnp.concatenate([x["a"], x["b"]], axis=-1))


@pytest.mark.parametrize("adapter", ["linen", "nnx", "equinox"])
def test_bad_data_is_rejected_naming_the_array(adapter):
    x, y = _toy_data(8)
    make = {"linen": _linen,
            "nnx": lambda x, y, **kw: problems.from_nnx(NNXMLP, x, y, problems.cross_entropy,
                                                        **kw),
            "equinox": lambda x, y, **kw: problems.from_equinox(
                lambda k: eqx.nn.MLP(4, 3, 4, 1, key=k), x, y, problems.cross_entropy, **kw),
            }[adapter]
    bad_x = np.asarray(x).copy()
    bad_x[0, 1], bad_x[3, 2] = np.nan, np.inf
    with pytest.raises(gdlab.InputError, match=r"x has 2 non-finite values \(NaN or inf\)"):
        make(bad_x, y)
    bad_x[3, 2] = 1.0
    with pytest.raises(gdlab.InputError, match=r"test: x has 1 non-finite"):
        make(x, y, test=(bad_x, y))
    with pytest.raises(gdlab.InputError, match=r"y cannot be converted"):
        make(x, [[0, 1], [2]] * 4)
    with pytest.raises(gdlab.InputError, match=r"y has dtype object"):
        make(x, np.array([None] * 8))
    with pytest.raises(gdlab.InputError, match=r"different leading axes"):
        make(x, y[:5])
    with pytest.raises(gdlab.InputError, match=r"x_test has examples shaped \(5,\)"):
        make(x, y, test=(jnp.ones((3, 5)), y[:3]))
    with pytest.raises(gdlab.InputError, match=r"test must be a pair"):
        make(x, y, test=x)
    with pytest.raises(gdlab.InputError, match=r"metrics must map names"):
        make(x, y, metrics={"acc": 3})


def test_float_labels_with_nan_are_rejected():
    x, _ = _toy_data(8)
    y = np.zeros((8, 3), np.float32)
    y[2, 0] = np.nan
    mse = lambda pred, t: jnp.sum((pred - t) ** 2)
    with pytest.raises(gdlab.InputError, match=r"y has 1 non-finite values"):
        problems.from_flax(problems.MLP(hidden=(4,), out=3), x, y, mse)


def test_bad_models_are_rejected():
    x, y = _toy_data(8)
    with pytest.raises(gdlab.InputError, match=r"nnx\.Module or a builder"):
        problems.from_nnx(3, x, y, problems.cross_entropy)
    with pytest.raises(gdlab.InputError, match="builder returned int"):
        problems.from_nnx(lambda rngs: 3, x, y, problems.cross_entropy)
    with pytest.raises(gdlab.InputError, match="equinox Module or a builder"):
        problems.from_equinox("mlp", x, y, problems.cross_entropy)
    with pytest.raises(gdlab.InputError, match=r"on one example of x failed.*contracting"):
        problems.from_nnx(lambda rngs: nnx.Linear(5, 3, rngs=rngs), x, y,
                          problems.cross_entropy)


# --- classification helpers against numpy ----------------------------------------------


def _numpy_classification(logits, labels):
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    ce = -log_p[np.arange(len(labels)), labels]
    acc = np.mean(logits.argmax(axis=1) == labels)
    return ce, acc


def test_cross_entropy_accuracy_error_match_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 50).astype(np.int32)
    ce, acc = _numpy_classification(logits.astype(np.float64), labels)
    per_example = jax.vmap(problems.cross_entropy)(logits, labels)
    np.testing.assert_allclose(per_example, ce, rtol=1e-5)
    np.testing.assert_allclose(problems.accuracy(logits, labels), acc, rtol=1e-6)
    np.testing.assert_allclose(problems.error(logits, labels), 1 - acc, rtol=1e-6)
    assert problems.accuracy(logits, labels).shape == ()


def test_classification_metrics_on_a_problem_match_numpy():
    x, y = _toy_data()
    p = _linen(x, y, metrics=problems.CLASSIFICATION_METRICS, test=(x[:10], y[:10]))
    assert set(p.metrics) == {"accuracy", "error"}
    params = _numpy_params(p.params_shape(), seed=2)
    logits = np.asarray(p.predict(params, p.data), np.float64)
    ce, acc = _numpy_classification(logits, np.asarray(y))
    np.testing.assert_allclose(p.loss(params, p.data), ce.mean(), rtol=1e-5)
    np.testing.assert_allclose(p.metrics["accuracy"](params, p.data), acc, rtol=1e-6)
    np.testing.assert_allclose(p.metrics["error"](params, p.data), 1 - acc, rtol=1e-6)
    metrics = problems.metrics_from_outputs(p.predict, {"acc": problems.accuracy})
    own = gdlab.Problem(name="own", init=p.init, loss=p.loss, data=p.data, metrics=metrics)
    np.testing.assert_allclose(own.metrics["acc"](params, p.data), acc, rtol=1e-6)


# --- datasets --------------------------------------------------------------------------


def _row_hashes(x):
    return {hash(row.tobytes()) for row in np.ascontiguousarray(x)}


def test_digits_shapes_split_and_determinism():
    from sklearn.datasets import load_digits

    s = datasets.digits_split()
    assert s.x_train.shape == (1400, 64) and s.x_test.shape == (397, 64)
    assert s.x_train.dtype == np.float32 and s.y_train.dtype == np.int32
    again = datasets.digits_split.__wrapped__()  # uncached: built again from scratch
    for a, b in zip(dataclasses.astuple(s), dataclasses.astuple(again), strict=True):
        np.testing.assert_array_equal(a, b)
    train, test = _row_hashes(s.x_train), _row_hashes(s.x_test)
    assert len(train) == 1400 and len(test) == 397 and not train & test  # disjoint
    assert train | test == _row_hashes(load_digits().data.astype(np.float32))  # all used
    counts_train = np.bincount(s.y_train, minlength=10)
    counts_test = np.bincount(s.y_test, minlength=10)
    expected = (counts_train + counts_test) * 397 / 1797
    assert np.all(np.abs(counts_test - expected) <= 1)  # stratified


@pytest.mark.parametrize(("model", "shape", "num_params"), [
    ("mlp", (64,), 64 * 32 + 32 + 32 * 10 + 10), ("cnn", (8, 8, 1), 9 * 8 + 8 + 512 * 10 + 10),
    ("logistic", (64,), 650)])
def test_digits_problem_per_model(model, shape, num_params):
    p = problems.digits(model=model)
    assert p.data["x"].shape == (1400, *shape) and p.test_data["x"].shape == (397, *shape)
    assert p.data["x"].dtype == jnp.float32 and p.data["y"].dtype == jnp.int32
    assert p.num_params() == num_params and set(p.metrics) == {"accuracy", "error"}
    params = p.params_shape()  # abstract: shapes without compiling anything
    assert jax.eval_shape(p.predict, params, p.test_data).shape == (397, 10)
    for fn in (p.loss, *p.metrics.values()):
        assert jax.eval_shape(fn, params, p.test_data).shape == ()
    assert p.description.startswith("scikit-learn digits") and "397 test" in p.description
    rebuilt = problems.from_spec(p.spec)
    np.testing.assert_array_equal(rebuilt.test_data["x"], p.test_data["x"])


def test_digits_standardised_with_training_statistics_only():
    s = datasets.digits_split()
    p = problems.digits(standardize="feature")
    x_train = s.x_train.astype(np.float64)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    np.testing.assert_allclose(p.test_data["x"], (s.x_test - mean) / std, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(np.asarray(p.data["x"]).mean(axis=0), 0, atol=1e-5)
    moving = s.x_train.std(axis=0) > 0
    np.testing.assert_allclose(np.asarray(p.data["x"]).std(axis=0)[moving], 1, atol=1e-4)
    assert np.abs(np.asarray(p.test_data["x"]).mean(axis=0)).max() > 1e-3  # not its own stats
    g = problems.digits()  # default: "global"
    np.testing.assert_allclose(g.test_data["x"], (s.x_test - x_train.mean()) / x_train.std(),
                               atol=1e-5)


def test_dataset_arguments_are_checked():
    bad = [({"model": "svm"}, "model"), ({"activation": "sigmoid"}, "activation"),
           ({"weight_decay": -1.0}, "weight_decay"), ({"standardize": "minmax"}, "standardize"),
           ({"model": "logistic", "hidden": (8,)}, "logistic"), ({"hidden": (0,)}, "hidden"),
           ({"hidden": 32}, "hidden")]
    for kwargs, word in bad:
        with pytest.raises(gdlab.InputError, match=word):
            problems.digits(**kwargs)


def test_mnist1d_generates_offline_deterministically_and_isolates_global_rngs(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    before_np, before_py = np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    small = [datasets._generate_mnist1d(num_samples=300) for _ in range(2)]  # the same code
    np.testing.assert_array_equal(np.random.get_state()[1], before_np)  # noqa: NPY002
    assert random.getstate() == before_py
    for key in ("x", "y", "x_test", "y_test"):
        np.testing.assert_array_equal(small[0][key], small[1][key])
    s = datasets.mnist1d_split()
    assert s.x_train.shape == (4000, 40) and s.x_test.shape == (1000, 40)
    assert s.x_train.dtype == np.float32 and s.y_test.dtype == np.int32
    assert not _row_hashes(s.x_train) & _row_hashes(s.x_test)  # disjoint
    assert len(_row_hashes(s.x_train)) == 4000
    assert set(np.unique(s.y_train)) == set(np.unique(s.y_test)) == set(range(10))
    assert np.bincount(s.y_test).min() >= 80  # roughly balanced (mnist1d's own split)


@pytest.mark.parametrize(("model", "shape"), [("mlp", (40,)), ("cnn", (40, 1)),
                                              ("logistic", (40,))])
def test_mnist1d_problem_per_model(model, shape):
    p = problems.mnist1d(model=model, activation="gelu")  # mnist1d's own MLP: gelu
    assert p.data["x"].shape == (4000, *shape) and p.test_data["y"].shape == (1000,)
    assert p.data["y"].dtype == jnp.int32 and p.description.startswith("MNIST-1D")
    x = np.asarray(p.data["x"])
    assert abs(x.mean()) < 1e-5 and abs(x.std() - 1) < 1e-4  # global, training statistics
    params = p.params_shape()
    assert jax.eval_shape(p.predict, params, p.test_data).shape == (1000, 10)
    assert jax.eval_shape(p.metrics["accuracy"], params, p.test_data).shape == ()


def test_builtins_are_registered_with_their_activation_symmetry():
    assert problems.BUILTINS["digits"] is problems.digits
    assert problems.BUILTINS["mnist1d"] is problems.mnist1d
    actions = lambda p: {g.action for g in p.symmetry.groups}
    assert actions(problems.digits(activation="tanh")) == {"sign"}
    assert actions(problems.digits()) == {"scale"}  # relu: positive rescaling
    assert actions(problems.digits(activation="gelu")) == {"permute"}


def test_digits_logistic_regression_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    weight_decay = 1e-2  # C = 1 / 14: well-conditioned enough for 1000 Adam steps
    p = problems.digits(model="logistic", weight_decay=weight_decay)
    x, y = np.asarray(p.data["x"], np.float64), np.asarray(p.data["y"])
    x_test, y_test = np.asarray(p.test_data["x"]), np.asarray(p.test_data["y"])
    # scikit-learn minimises sum_i CE_i + ||W||^2 / (2C) = N (mean CE + wd/2 ||W||^2).
    sk = LogisticRegression(C=1.0 / (weight_decay * len(y)), max_iter=1000, tol=1e-6)
    with threadpool_limits(1):  # BLAS threads on busy shared cores: 40x slower
        sk.fit(x, y)
    sk_acc = sk.score(x_test, y_test)
    cfg = gdlab.TrainConfig(optimizer="adam", learning_rate=0.05, steps=1000, eval_every=500)
    runs = gdlab.train(p, cfg, seeds=2, key=0)
    for seed in range(2):
        params = jax.tree.map(lambda a, seed=seed: a[seed], runs.params)
        acc = float(problems.accuracy(p.predict(params, p.test_data), y_test))
        assert abs(acc - sk_acc) <= 0.005, (acc, sk_acc)
    sk_params = {"Dense_0": {"kernel": jnp.asarray(sk.coef_.T, jnp.float32),
                             "bias": jnp.asarray(sk.intercept_, jnp.float32)}}
    assert runs.final_loss.max() <= float(p.loss(sk_params, p.data)) + 1e-4  # same optimum


def test_docstring_examples_run():
    for module in (adapters, datasets):
        finder = doctest.DocTestFinder()
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        for test in finder.find(module, globs=dict(vars(module))):
            runner.run(test)
        assert runner.failures == 0, module.__name__
