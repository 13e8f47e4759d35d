"""Your own model and data as a Problem: flax linen, flax nnx and equinox adapters.

Each adapter takes a model, inputs `x`, targets `y` and a per-example loss, and returns a
`gdlab.Problem` whose `init(key)` gives fresh params per seed, whose `loss` is the mean
per-example loss over a batch `{"x", "y"}`, and whose `predict(params, batch)` gives the
model's outputs. `metrics=` adds measurements on the outputs (e.g. `accuracy`) and
`test=(x_test, y_test)` sets held-out data (`Problem.test_data`).

`problem.symmetry` is derived from the model (`symmetry="auto"`, the default): when the
params are a chain of Dense/Conv layers, the hidden units' permutations (and, found by
checking the model, sign flips for odd activations and positive rescalings for
homogeneous ones) become a `gdlab.symmetry.Symmetry`; `activation=` states the hidden
activation instead of finding it. A model that is not such a chain (residual
connections, normalisation, attention) gets `symmetry=None` and a `SymmetryNote`
warning saying why (`gdlab.symmetry.for_problem(problem)` raises with the same reason).

Data may be JAX or NumPy arrays, nested lists, or dicts of those (for multi-input
models); it is converted once and checked: non-numeric leaves and NaN/inf values are
rejected with an `InputError` naming the array.
"""

from __future__ import annotations

import dataclasses
import types
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdlab import symmetry as _symmetry
from gdlab._checks import InputError
from gdlab.problem import Problem, num_data_points

if TYPE_CHECKING:
    import equinox as eqx
    from flax import nnx

PyTree = Any
ArrayLike = jax.typing.ArrayLike
PerExampleLoss = Callable[[jax.Array, jax.Array], jax.Array]
OutputMetric = Callable[[jax.Array, jax.Array], jax.Array]


# --- classification helpers ------------------------------------------------------------


def cross_entropy(logits: jax.Array, label: jax.Array) -> jax.Array:
    """Softmax cross-entropy of logits against an integer label (optax).

    Args:
      logits: `(K,)` unnormalised class scores of one example (or `(B, K)`).
      label: integer class in `0..K-1` (or `(B,)`).

    Returns:
      The cross-entropy, a scalar (or `(B,)`).

    Example:
      >>> float(cross_entropy(jnp.array([0.0, 0.0]), jnp.array(1)))  # log 2
      0.6931...
    """
    return optax.softmax_cross_entropy_with_integer_labels(logits, label)


def accuracy(logits_BK: jax.Array, labels_B: jax.Array) -> jax.Array:
    """Fraction of examples whose highest logit is the integer label.

    Args:
      logits_BK: class scores, one row per example.
      labels_B: integer labels.

    Returns:
      The mean over the batch, a float32 scalar in [0, 1].

    Example:
      >>> float(accuracy(jnp.array([[2.0, 1.0], [0.0, 3.0]]), jnp.array([0, 0])))
      0.5
    """
    return jnp.mean((jnp.argmax(logits_BK, axis=-1) == labels_B).astype(jnp.float32))


def error(logits_BK: jax.Array, labels_B: jax.Array) -> jax.Array:
    """Fraction of misclassified examples, `1 - accuracy`.

    Args:
      logits_BK: class scores, one row per example.
      labels_B: integer labels.

    Returns:
      The mean over the batch, a float32 scalar in [0, 1].

    Example:
      >>> float(error(jnp.array([[2.0, 1.0], [0.0, 3.0]]), jnp.array([0, 0])))
      0.5
    """
    return jnp.mean((jnp.argmax(logits_BK, axis=-1) != labels_B).astype(jnp.float32))


# Pass as an adapter's `metrics=` for a classifier trained with `cross_entropy`.
CLASSIFICATION_METRICS: Mapping[str, OutputMetric] = types.MappingProxyType(
    {"accuracy": accuracy, "error": error})


def metrics_from_outputs(predict: Callable[[PyTree, PyTree], jax.Array],
                         metrics: Mapping[str, OutputMetric]) -> dict[str, Callable]:
    """Turn metrics on outputs, `fn(outputs_B, targets_B)`, into `Problem.metrics`.

    Args:
      predict: `predict(params, batch) -> outputs_B` of the problem.
      metrics: `{name: fn(outputs_B, batch["y"]) -> scalar}`, e.g. `CLASSIFICATION_METRICS`.

    Returns:
      `{name: fn(params, batch) -> scalar}`, ready for `gdlab.Problem(metrics=...)`.

    Example:
      >>> predict = lambda w, batch: batch["x"] @ w
      >>> m = metrics_from_outputs(predict, CLASSIFICATION_METRICS)
      >>> float(m["accuracy"](jnp.eye(2), {"x": jnp.eye(2), "y": jnp.array([0, 0])}))
      0.5
    """
    def on_params(fn):
        return lambda params, batch: fn(predict(params, batch), batch["y"])
    return {name: on_params(fn) for name, fn in metrics.items()}


# --- data ------------------------------------------------------------------------------


def _as_data(x: Any, y: Any, where: str) -> dict[str, PyTree]:
    """`{"x": x, "y": y}` as JAX arrays, checked (numeric, finite, a shared N)."""
    data = {"x": _as_tree(x, f"{where}: x"), "y": _as_tree(y, f"{where}: y")}
    num_data_points(data, where=f"{where} data")
    return data


def _as_tree(value: Any, where: str) -> PyTree:
    """A dict of arrays leaf by leaf; anything else (lists included) as one array."""
    if isinstance(value, Mapping):
        if not value:
            raise InputError(f"{where} is an empty dict; give at least one array")
        return {k: _as_tree(v, f"{where}[{k!r}]") for k, v in value.items()}
    return _as_array(value, where)


def _as_array(value: Any, where: str) -> jax.Array:
    """One numeric, finite array, or an InputError naming it."""
    try:
        arr = value if isinstance(value, jax.Array) else np.asarray(value)
    except (TypeError, ValueError) as e:
        raise InputError(f"{where} cannot be converted to an array ({e}); give a numeric "
                         "array or a rectangular nested list of numbers") from e
    kind = np.dtype(arr.dtype).kind
    if kind not in "biuf":
        raise InputError(f"{where} has dtype {arr.dtype}; data must be numbers "
                         "(float, int or bool), e.g. np.asarray(x, dtype=np.float32)")
    if kind == "f":
        bad = int(jnp.sum(~jnp.isfinite(arr))) if isinstance(arr, jax.Array) \
            else int(np.sum(~np.isfinite(arr)))
        if bad:
            raise InputError(f"{where} has {bad} non-finite values (NaN or inf) among "
                             f"{arr.size}; drop or impute them before training")
    return jnp.asarray(arr)


def _as_test_data(test: Any, data: PyTree, where: str) -> PyTree:
    """`test=(x_test, y_test)` as data shaped like the training data (None stays None)."""
    if test is None:
        return None
    if not isinstance(test, tuple | list) or len(test) != 2:
        raise InputError(f"{where}: test must be a pair (x_test, y_test) or None, "
                         f"got {type(test).__name__}")
    test_data = _as_data(test[0], test[1], f"{where} test")
    for what in ("x", "y"):
        _check_same_example_shape(data[what], test_data[what], f"{where}: {what}_test")
    return test_data


def _check_same_example_shape(train: PyTree, test: PyTree, where: str) -> None:
    shapes = lambda t: jax.tree.map(lambda a: a.shape[1:], t)
    if jax.tree.structure(train) != jax.tree.structure(test) or shapes(train) != shapes(test):
        raise InputError(f"{where} has examples shaped {shapes(test)}, but the training "
                         f"data's are {shapes(train)}; they must match")


# --- the shared Problem builder ----------------------------------------------------------


def _supervised_problem(init: Callable[[jax.Array], PyTree],
                        apply: Callable[[PyTree, PyTree], jax.Array],
                        data: PyTree, per_example_loss: PerExampleLoss, *,
                        metrics: Mapping[str, OutputMetric] | None = None,
                        test_data: PyTree = None, name: str, description: str = "",
                        hint: str = "") -> Problem:
    """A Problem from `init`, `apply(params, x_B) -> outputs_B` and a per-example loss.

    The loss is `mean_i per_example_loss(outputs_i, y_i)` over a batch `{"x", "y"}`; it
    is traced once on one example (nothing compiles) so a model that fails on the data
    raises an InputError (ending with `hint`) here rather than inside `gdlab.train`.
    """
    metrics = _check_metrics(metrics, name)

    def predict(params, batch):
        return apply(params, batch["x"])

    def loss(params, batch):
        return jnp.mean(jax.vmap(per_example_loss)(predict(params, batch), batch["y"]))

    problem = Problem(name=name, init=init, loss=loss, data=data, predict=predict,
                      description=description, test_data=test_data,
                      metrics=metrics_from_outputs(predict, metrics))
    _probe(problem, hint)
    return problem


def _check_metrics(metrics: Any, name: str) -> Mapping[str, OutputMetric]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping) or not all(callable(f) for f in metrics.values()):
        raise InputError(f"{name!r}: metrics must map names to fn(outputs_B, targets_B) -> "
                         f"scalar (e.g. problems.CLASSIFICATION_METRICS), got {metrics!r}")
    return metrics


def _probe(problem: Problem, hint: str) -> None:
    """Trace init, loss and every metric on one example; an InputError if any fails."""
    batch = jax.tree.map(lambda a: a[:1], problem.data)
    fns = {"loss": problem.loss, **{f"metric {k!r}": f for k, f in problem.metrics.items()}}
    try:
        params = problem.params_shape()
    except Exception as e:
        raise InputError(f"{problem.name!r}: building the params failed: {e}") from e
    for what, fn in fns.items():
        try:
            out = jax.eval_shape(fn, params, batch)
        except Exception as e:
            raise InputError(f"{problem.name!r}: the {what} fails on one training example "
                             f"(x shaped {jax.tree.map(jnp.shape, batch['x'])}): {e}"
                             f"{f'; {hint}' if hint else ''}") from e
        if getattr(out, "shape", None) != ():
            raise InputError(f"{problem.name!r}: the {what} returned shape "
                             f"{getattr(out, 'shape', out)} on a batch; it must be a scalar "
                             "(a metric is the mean over the batch)")


def _with_symmetry(problem: Problem, symmetry: Any, activation: Any, where: str) -> Problem:
    """`problem` with its `symmetry` set as an adapter's `symmetry=` / `activation=` say.

    "auto": derived and checked on the model (`gdlab.symmetry.for_problem`); a model
    that is not a Dense/Conv chain keeps None, with a `SymmetryNote` warning unless it
    has no hidden layer at all; with `activation` given, a failure is an InputError.
    """
    if symmetry is None:
        if activation is not None:
            raise InputError(f"{where}: activation={activation!r} is for symmetry='auto'; "
                             "with symmetry=None it would be ignored")
        return problem
    if isinstance(symmetry, str):
        if symmetry != "auto":
            raise InputError(f"{where}: symmetry must be 'auto', None or a "
                             f"gdlab.symmetry.Symmetry, got {symmetry!r}")
        return _derived_symmetry(problem, activation, where)
    if not callable(symmetry):
        raise InputError(f"{where}: symmetry must be 'auto', None or a "
                         f"gdlab.symmetry.Symmetry, got {type(symmetry).__name__}")
    return dataclasses.replace(problem, symmetry=symmetry)


def _derived_symmetry(problem: Problem, activation: Any, where: str) -> Problem:
    try:
        layers = _symmetry.layers_of(problem.params_shape())
        if len(layers) < 2 and activation is None:
            return problem  # a linear model: no hidden units, nothing to note
        sym = _symmetry.for_problem(problem, activation)
    except InputError as e:
        if activation is not None:
            raise InputError(f"{where}: cannot derive the symmetry: {e}") from e
        warnings.warn(f"{where}: problem.symmetry is None: {e}", _symmetry.SymmetryNote,
                      stacklevel=3)
        return problem
    return dataclasses.replace(problem, symmetry=sym)


# --- flax linen ------------------------------------------------------------------------


def from_flax(module: nn.Module, x: ArrayLike, y: ArrayLike, per_example_loss: PerExampleLoss,
              name: str = "flax", description: str = "", *,
              metrics: Mapping[str, OutputMetric] | None = None,
              test: tuple[ArrayLike, ArrayLike] | None = None,
              symmetry: Any = "auto", activation: Any = None) -> Problem:
    """Turn a flax linen module, a dataset and a per-example loss into a Problem.

    Params are the module's `"params"` collection (`module.init(key, x[:1])`, fresh per
    seed); modules with other collections (batch statistics, caches) are rejected.

    Args:
      module: a `flax.linen.Module` mapping a batch of inputs to a batch of outputs.
      x: inputs, leading axis N (array, nested list, or dict of arrays).
      y: targets, leading axis N.
      per_example_loss: `loss(prediction_i, target_i) -> scalar` for one example;
        the Problem's loss is its mean over the batch (e.g. `cross_entropy`).
      name: problem name used in reports.
      description: one line for reports.
      metrics: `{name: fn(outputs_B, targets_B) -> scalar}`, e.g. `CLASSIFICATION_METRICS`.
      test: held-out `(x_test, y_test)`, set as `Problem.test_data`.
      symmetry: "auto" (derive it from the model, see the module docstring), None, or a
        `gdlab.symmetry.Symmetry` (or any `params -> canonical params` function).
      activation: the hidden activation ("relu", "tanh", a function, or one per hidden
        layer) for `symmetry="auto"`, checked on the model; None finds it.

    Returns:
      A `gdlab.Problem` with `predict(params, batch)` giving the module's outputs.

    Example:
      >>> from gdlab.problems import MLP
      >>> x, y = jnp.ones((8, 3)), jnp.zeros((8, 1))
      >>> p = from_flax(MLP(hidden=(16,)), x, y, lambda p, t: 0.5 * jnp.sum((p - t) ** 2))
      >>> p.num_params()
      81
    """
    where = f"from_flax({name!r})"
    data = _as_data(x, y, where)
    example_x = jax.tree.map(lambda a: a[:1], data["x"])
    try:
        variables = jax.eval_shape(module.init, jax.random.key(0), example_x)
    except Exception as e:
        raise InputError(f"{where}: module.init fails on one example of x: {e}") from e
    extra = sorted(set(variables) - {"params"})
    if extra:
        raise InputError(f"{where}: module has collections {extra} besides 'params'; only "
                         "stateless modules (params only) are supported: use from_nnx with "
                         "model.eval() for a model with batch statistics")

    def init(key):
        return module.init(key, example_x)["params"]

    def apply(params, x_B):
        return module.apply({"params": params}, x_B)

    problem = _supervised_problem(init, apply, data, per_example_loss, metrics=metrics,
                                  test_data=_as_test_data(test, data, where), name=name,
                                  description=description)
    return _with_symmetry(problem, symmetry, activation, where)


# --- flax nnx --------------------------------------------------------------------------


def from_nnx(model: nnx.Module | Callable[[nnx.Rngs], nnx.Module], x: ArrayLike,
             y: ArrayLike, per_example_loss: PerExampleLoss, *,
             metrics: Mapping[str, OutputMetric] | None = None,
             test: tuple[ArrayLike, ArrayLike] | None = None, name: str = "nnx",
             description: str = "", symmetry: Any = "auto",
             activation: Any = None) -> Problem:
    """Turn a flax nnx model (or a builder of one), a dataset and a loss into a Problem.

    Only `nnx.Param` variables are trained: params are the `nnx.State` of Params from
    `nnx.split(model, nnx.Param, ...)`. Other state (batch statistics, RNG state, counts)
    is kept fixed at the model's values; a model that would change it when called
    (BatchNorm in training mode, Dropout) is rejected: call `model.eval()` first.

    Args:
      model: a builder `rngs -> Module`, called with `nnx.Rngs(key)` inside `init` so
        every seed gets fresh params; or a Module instance, whose own Param values
        every seed then starts from (seeds differ only by mini-batch order): an
        instance cannot be re-initialised faithfully, pass a builder for fresh params.
      x: inputs, leading axis N (array, nested list, or dict of arrays).
      y: targets, leading axis N.
      per_example_loss: `loss(prediction_i, target_i) -> scalar` for one example.
      metrics: `{name: fn(outputs_B, targets_B) -> scalar}`, e.g. `CLASSIFICATION_METRICS`.
      test: held-out `(x_test, y_test)`, set as `Problem.test_data`.
      symmetry: "auto" (derive it from the model, see the module docstring), None, or a
        `gdlab.symmetry.Symmetry` (or any `params -> canonical params` function).
      activation: the hidden activation ("relu", "tanh", a function, or one per hidden
        layer) for `symmetry="auto"`, checked on the model; None finds it.
      name: problem name used in reports.
      description: one line for reports.

    Returns:
      A `gdlab.Problem`; `nnx.merge(graphdef, params, other_state)` rebuilds the model.

    Example:
      >>> from flax import nnx
      >>> x, y = jnp.ones((8, 3)), jnp.zeros((8, 2))
      >>> p = from_nnx(lambda rngs: nnx.Linear(3, 2, rngs=rngs), x, y,
      ...              lambda p, t: jnp.sum((p - t) ** 2))
      >>> p.num_params()
      8
    """
    from flax import nnx

    where = f"from_nnx({name!r})"
    data = _as_data(x, y, where)
    build = _nnx_builder(model, where)
    graphdef, params, rest = _nnx_parts(model, build)
    _check_nnx_state_is_fixed(graphdef, params, rest, data["x"], where)

    def init(key):
        if build is None:
            return params
        return nnx.split(build(nnx.Rngs(key)), nnx.Param, ...)[1]

    def apply(params, x_B):
        return nnx.merge(graphdef, params, rest, copy=True)(x_B)

    problem = _supervised_problem(init, apply, data, per_example_loss, metrics=metrics,
                                  test_data=_as_test_data(test, data, where), name=name,
                                  description=description)
    return _with_symmetry(problem, symmetry, activation, where)


def _nnx_builder(model: Any, where: str) -> Callable | None:
    """The builder, checked to return a Module; None for a Module instance."""
    from flax import nnx

    if isinstance(model, nnx.Module):
        return None
    if not callable(model):
        raise InputError(f"{where}: model must be an nnx.Module or a builder "
                         f"rngs -> nnx.Module, got {type(model).__name__}")

    def build(rngs):
        net = model(rngs)
        if not isinstance(net, nnx.Module):
            raise InputError(f"{where}: the builder returned {type(net).__name__}, not an "
                             "nnx.Module")
        return net
    return build


def _eqx_parts(model: Any, build: Callable | None) -> tuple[Any, Any]:
    """(params, static) of an instance, or of a builder's model traced abstractly.

    The builder's model is built (compiled) only when its static part holds arrays
    (integer buffers), whose values are needed.
    """
    import equinox as eqx

    if build is None:
        return eqx.partition(model, eqx.is_inexact_array)
    is_param = lambda v: isinstance(v, jax.ShapeDtypeStruct) and jnp.issubdtype(v.dtype,
                                                                                 jnp.inexact)
    params, static = eqx.partition(eqx.filter_eval_shape(build, jax.random.key(0)), is_param)
    if any(isinstance(v, jax.ShapeDtypeStruct) for v in jax.tree.leaves(static)):
        params, static = eqx.partition(eqx.filter_jit(build)(jax.random.key(0)),
                                       eqx.is_inexact_array)
    return params, static


def _nnx_parts(model: Any, build: Callable | None) -> tuple[Any, Any, Any]:
    """(graphdef, params, other state) of an instance, or of a builder's model.

    A builder's model is traced abstractly (no initialiser runs); only when it has state
    besides Params is it built, compiled, for that state's values.
    """
    from flax import nnx

    if build is None:
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        # Fresh Variables: changing the instance later must not change the Problem's init.
        return graphdef, *jax.tree.map(lambda a: a, (params, rest))
    graphdef, params, rest = nnx.split(nnx.eval_shape(lambda: build(nnx.Rngs(0))),
                                       nnx.Param, ...)
    if jax.tree.leaves(rest):
        rest = jax.jit(lambda: nnx.split(build(nnx.Rngs(0)), nnx.Param, ...)[2])()
    return graphdef, params, rest


def _check_nnx_state_is_fixed(graphdef, params, rest, x: PyTree, where: str) -> None:
    """Trace one call (nothing runs) and reject a model whose call writes any variable."""
    from flax import nnx

    changed = []

    def call(params, rest, x_B):
        model = nnx.merge(graphdef, params, rest, copy=True)
        _, before = _variable_values(nnx.split(model, ...)[1])
        model(x_B)
        names, after = _variable_values(nnx.split(model, ...)[1])
        changed.extend(n for n, a, b in zip(names, before, after, strict=True) if a is not b)

    try:
        jax.eval_shape(call, params, rest, jax.tree.map(lambda a: a[:1], x))
    except Exception as e:
        raise InputError(f"{where}: calling the model on one example of x failed: {e}") from e
    if changed:
        raise InputError(f"{where}: calling the model changes its variables {changed} "
                         "(BatchNorm in training mode or Dropout?); gdlab trains nnx.Param "
                         "and keeps other state fixed: call model.eval() on the instance, or "
                         "in your builder before returning the model")


def _variable_values(state) -> tuple[list[str], list[Any]]:
    """Each variable's path ('layer.kind: name') and its raw value, in a fixed order."""
    from flax import nnx

    flat = jax.tree.leaves_with_path(state, is_leaf=lambda v: isinstance(v, nnx.Variable))
    names = [f"{_path_name(path)} ({type(var).__name__})" for path, var in flat]
    return names, [var.get_value() for _, var in flat]


def _path_name(path) -> str:
    return ".".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


# --- equinox ---------------------------------------------------------------------------


def from_equinox(model: eqx.Module | Callable[[jax.Array], eqx.Module], x: ArrayLike,
                 y: ArrayLike, per_example_loss: PerExampleLoss, *, batched: bool = False,
                 metrics: Mapping[str, OutputMetric] | None = None,
                 test: tuple[ArrayLike, ArrayLike] | None = None, name: str = "equinox",
                 description: str = "", symmetry: Any = "auto",
                 activation: Any = None) -> Problem:
    """Turn an equinox model (or a builder of one), a dataset and a loss into a Problem.

    Params are the floating-point arrays, `eqx.partition(model, eqx.is_inexact_array)`'s
    first part (the model's own pytree with None holes); the rest (activations, sizes,
    integer arrays) is static and combined back in the loss.

    Args:
      model: a builder `key -> Module`, called with the seed's key inside `init` so every
        seed gets fresh params; or a Module instance, whose own values every seed then
        starts from (pass a builder for fresh params per seed).
      x: inputs, leading axis N (array, nested list, or dict of arrays).
      y: targets, leading axis N.
      per_example_loss: `loss(prediction_i, target_i) -> scalar` for one example.
      batched: False (equinox's convention): the model maps one example and is vmapped
        over the batch; True: it maps a batch itself.
      metrics: `{name: fn(outputs_B, targets_B) -> scalar}`, e.g. `CLASSIFICATION_METRICS`.
      test: held-out `(x_test, y_test)`, set as `Problem.test_data`.
      symmetry: "auto" (derive it from the model, see the module docstring), None, or a
        `gdlab.symmetry.Symmetry` (or any `params -> canonical params` function).
      activation: the hidden activation ("relu", "tanh", a function, or one per hidden
        layer) for `symmetry="auto"`, checked on the model; None finds it.
      name: problem name used in reports.
      description: one line for reports.

    Returns:
      A `gdlab.Problem`; `eqx.combine(params, static)` rebuilds the model.

    Example:
      >>> import equinox as eqx
      >>> x, y = jnp.ones((8, 3)), jnp.zeros((8, 2))
      >>> p = from_equinox(lambda key: eqx.nn.MLP(3, 2, 4, 1, key=key), x, y,
      ...                  lambda p, t: jnp.sum((p - t) ** 2))
      >>> p.num_params()
      26
    """
    import equinox as eqx

    where = f"from_equinox({name!r})"
    data = _as_data(x, y, where)
    build = _eqx_builder(model, where)
    params, static = _eqx_parts(model, build)

    def init(key):
        if build is None:
            return params
        return eqx.partition(build(key), eqx.is_inexact_array)[0]

    def apply(params, x_B):
        net = eqx.combine(params, static)
        return net(x_B) if batched else jax.vmap(net)(x_B)

    problem = _supervised_problem(init, apply, data, per_example_loss, metrics=metrics,
                                  test_data=_as_test_data(test, data, where), name=name,
                                  description=description, hint=_EQX_HINT)
    return _with_symmetry(problem, symmetry, activation, where)


_EQX_HINT = ("a model with Dropout or BatchNorm must be in inference mode: pass "
             "eqx.nn.inference_mode(model) (or build it so); a model that takes a whole "
             "batch needs batched=True")


def _eqx_builder(model: Any, where: str) -> Callable | None:
    """The builder, or None for a Module instance; an InputError for anything else."""
    import equinox as eqx

    if isinstance(model, eqx.Module):
        return None
    if not callable(model):
        raise InputError(f"{where}: model must be an equinox Module or a builder "
                         f"key -> Module, got {type(model).__name__}")

    def build(key):
        net = model(key)
        if not isinstance(net, eqx.Module):
            raise InputError(f"{where}: the builder returned {type(net).__name__}, not an "
                             "equinox Module")
        return net
    return build


def _eqx_parts(model: Any, build: Callable | None) -> tuple[Any, Any]:
    """(params, static) of an instance, or of a builder's model traced abstractly.

    The builder's model is built (compiled) only when its static part holds arrays
    (integer buffers), whose values are needed.
    """
    import equinox as eqx

    if build is None:
        return eqx.partition(model, eqx.is_inexact_array)
    is_param = lambda v: isinstance(v, jax.ShapeDtypeStruct) and jnp.issubdtype(v.dtype,
                                                                                 jnp.inexact)
    params, static = eqx.partition(eqx.filter_eval_shape(build, jax.random.key(0)), is_param)
    if any(isinstance(v, jax.ShapeDtypeStruct) for v in jax.tree.leaves(static)):
        params, static = eqx.partition(eqx.filter_jit(build)(jax.random.key(0)),
                                       eqx.is_inexact_array)
    return params, static
