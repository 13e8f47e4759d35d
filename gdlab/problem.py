"""The Problem: data plus two pure functions, `init(key) -> params` and `loss(params, batch)`.

Shape legend used across gdlab: S seeds, T steps, E evaluations, B batch, N data points,
P parameters, M minima, D input dimension.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import InputError

PyTree = Any
InitFn = Callable[[jax.Array], PyTree]
LossFn = Callable[[PyTree, PyTree], jax.Array]


@dataclasses.dataclass(frozen=True)
class KnownMinimum:
    """A minimum known in advance (from the literature or a closed form).

    Attributes:
      params: the minimiser, with the same structure as the problem's params.
      loss: the loss value there.
      kind: "global" or "local".
    """

    params: PyTree
    loss: float
    kind: str = "local"


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A training problem: data plus pure `init` and `loss` functions.

    Args:
      name: short identifier, used in reports and run directories.
      init: `init(key) -> params`, any pytree of float arrays.
      loss: `loss(params, batch) -> scalar` mean loss over the batch; `batch` is a
        pytree slice of `data` (leading axis B) or `None` when `data` is `None`.
      data: pytree of arrays sharing leading axis N, or `None` for data-free surfaces.
      domain: for 2-D surfaces, `((xmin, xmax), (ymin, ymax))`; `init` samples in it.
      known_minima: every local minimum known in advance (tests and reports).
      symmetry: optional `params -> canonical params` map (equivalent minima).
      predict: optional `predict(params, batch) -> outputs`; two params with the same
        outputs on a probe batch count as the same function (same predictive power).
      description: one line for `gdlab problems` and reports.
      spec: how a built-in was made (`{"factory": ..., "kwargs": ...}`), so a saved run
        can rebuild its problem; None for user problems.
      metrics: `{name: fn(params, batch) -> scalar}` measured beside the loss at every
        evaluation, on the training data and on `test_data` (e.g. accuracy); each is a
        mean over the batch, like the loss.
      test_data: held-out data (same leaves as `data`, its own N), measured at every
        evaluation but never trained on.

    Example:
      >>> p = Problem(name="bowl", init=lambda k: jax.random.normal(k, (2,)),
      ...             loss=lambda w, batch: jnp.sum(w**2))
    """

    name: str
    init: InitFn
    loss: LossFn
    data: PyTree = None
    domain: tuple[tuple[float, float], ...] | None = None
    known_minima: tuple[KnownMinimum, ...] = ()
    symmetry: Callable[[PyTree], PyTree] | None = None
    predict: Callable[[PyTree, PyTree], jax.Array] | None = None
    description: str = ""
    spec: dict | None = None
    metrics: Mapping[str, Callable[[PyTree, PyTree], jax.Array]] = dataclasses.field(
        default_factory=dict)
    test_data: PyTree = None

    def __post_init__(self):
        if not callable(self.init) or not callable(self.loss):
            raise InputError(f"Problem {self.name!r}: init and loss must be callables")
        object.__setattr__(self, "known_minima", tuple(self.known_minima))
        for field in ("data", "test_data"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, lists_to_arrays(value))
                num_data_points(getattr(self, field), where=f"Problem {self.name!r} {field}")
        object.__setattr__(self, "metrics", dict(self.metrics or {}))
        for name, fn in self.metrics.items():
            if not isinstance(name, str) or not name or "/" in name or not callable(fn):
                raise InputError(f"Problem {self.name!r}: metrics must map names (non-empty, "
                                 f"no '/') to callables fn(params, batch) -> scalar; got "
                                 f"{name!r}: {fn!r}")
        if self.test_data is not None and self.data is None:
            raise InputError(f"Problem {self.name!r}: test_data given but no training data")

    @property
    def num_data(self) -> int | None:
        """N, the number of data points, or None for a data-free problem."""
        return None if self.data is None else num_data_points(self.data)

    def params_shape(self) -> PyTree:
        """Abstract params (ShapeDtypeStruct pytree) without running `init` (traced once)."""
        return self._params_shape

    @functools.cached_property
    def _params_shape(self) -> PyTree:
        return jax.eval_shape(self.init, jax.random.key(0))

    def num_params(self) -> int:
        """P, the number of scalar parameters."""
        return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.params_shape()))


def _numeric_list(x: Any) -> bool:
    """A (nested) Python list or tuple of numbers only: one array written as lists."""
    if isinstance(x, list | tuple) and not hasattr(x, "_fields"):  # NamedTuples are nodes
        return len(x) > 0 and all(isinstance(v, numbers.Number | np.number) or _numeric_list(v)
                                  for v in x)
    return False


def lists_to_arrays(data: PyTree) -> PyTree:
    """`data` with every nested list of numbers made one NumPy array (so `[[1., 2.], [3.,
    4.]]` is a (2, 2) leaf, not four scalars); lists of arrays stay pytree nodes."""
    def convert(x):
        if not _numeric_list(x):
            return x
        try:
            return np.asarray(x)
        except ValueError as e:  # ragged
            raise InputError(f"data: a nested list that is not rectangular ({e}); pass "
                             "arrays of one shape per leaf") from None
    return jax.tree.map(convert, data, is_leaf=_numeric_list)


def num_data_points(data: PyTree, where: str = "data") -> int:
    """The shared leading axis N of every leaf; a clear error if leaves disagree."""
    leaves = jax.tree.leaves_with_path(data)
    if not leaves:
        raise InputError(f"{where}: no arrays found; pass data=None for a data-free problem")
    sizes = {}
    for path, leaf in leaves:
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise InputError(f"{where}: leaf {jax.tree_util.keystr(path)} is a scalar; "
                             "every data leaf needs a leading axis N")
        sizes[jax.tree_util.keystr(path)] = shape[0]
    if len(set(sizes.values())) != 1:
        raise InputError(f"{where}: leaves have different leading axes {sizes}; "
                         "every data leaf must share the same leading axis N")
    n = next(iter(sizes.values()))
    if n == 0:
        raise InputError(f"{where}: N = 0 data points; need at least one")
    return int(n)


def check_loss_is_scalar(problem: Problem, batch_size: int | None,
                         eval_data: PyTree = None) -> None:
    """Trace `init` and `loss` abstractly (nothing is compiled) and check the loss is a scalar."""
    params = problem.params_shape()
    for leaf in jax.tree.leaves(params):
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise InputError(f"Problem {problem.name!r}: init returned a {leaf.dtype} leaf; "
                             "params must be floating point")
    batches = [("training batch", _abstract_batch(problem.data, batch_size))]
    if eval_data is not None:
        batches.append(("evaluation data", _abstract_batch(eval_data, None)))
    for what, batch in batches:
        out = jax.eval_shape(problem.loss, params, batch)
        shape = getattr(out, "shape", None)
        if shape != ():
            raise InputError(f"Problem {problem.name!r}: loss on the {what} returned shape "
                             f"{shape}; it must return a scalar (the mean over the batch)")


def check_measurable(problem: Problem, batch_size: int | None,
                     eval_sets: dict[str, PyTree]) -> None:
    """`check_loss_is_scalar` on a training batch, and the loss and every metric a scalar
    on each evaluation set (traced abstractly, nothing compiled)."""
    check_loss_is_scalar(problem, batch_size)
    params = problem.params_shape()
    for where, data in eval_sets.items():
        batch = _abstract_batch(data, None)
        for name, fn in {"loss": problem.loss, **problem.metrics}.items():
            shape = getattr(jax.eval_shape(fn, params, batch), "shape", None)
            if shape != ():
                raise InputError(f"Problem {problem.name!r}: {name} on the {where} data returned "
                                 f"shape {shape}; it must return a scalar (a mean over the batch)")


def check_finite(data: PyTree, where: str = "data") -> None:
    """An InputError naming the leaf when any float value of `data` is NaN or infinite."""
    for path, leaf in jax.tree.leaves_with_path(data):
        x = np.asarray(leaf)
        if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)):
            bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
            raise InputError(f"{where}{jax.tree_util.keystr(path)} holds {bad} NaN or infinite "
                             f"value(s) of {x.size}; clean or drop them before training")


def _abstract_batch(data: PyTree, batch_size: int | None) -> PyTree:
    if data is None:
        return None
    def leaf(x):
        shape = np.shape(x) if batch_size is None else (batch_size, *np.shape(x)[1:])
        return jax.ShapeDtypeStruct(shape, jnp.asarray(x).dtype)
    return jax.tree.map(leaf, data)


def stack_known_minima(minima: Sequence[KnownMinimum]) -> PyTree:
    """Known minima's params stacked on a leading axis M."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *[m.params for m in minima])


def builtin(factory: Callable[..., Problem]) -> Callable[..., Problem]:
    """Decorate a problem factory so its Problems record how they were made (`spec`)."""
    @functools.wraps(factory)
    def make(*args, **kwargs) -> Problem:
        bound = inspect.signature(factory).bind(*args, **kwargs)
        bound.apply_defaults()
        spec = {"factory": factory.__name__,
                "kwargs": {k: list(v) if isinstance(v, tuple) else v
                           for k, v in bound.arguments.items()}}
        return dataclasses.replace(factory(*args, **kwargs), spec=spec)
    return make
