"""Real data, offline: scikit-learn's digits and MNIST-1D, with a choice of model.

Both are built on the machine, with no download: `sklearn.datasets.load_digits` reads
a file shipped inside scikit-learn, and `mnist1d.data.make_dataset` generates MNIST-1D
in code (seeded; gdlab saves and restores NumPy's and Python's global random state
around it). The raw arrays are cached per process, so repeated calls are fast.

Every problem is a 10-class classifier trained with softmax cross-entropy on
`data={"x", "y"}` (x float32, y int32), with held-out `test_data` and the metrics
"accuracy" and "error"; `predict` gives logits. Models: "mlp" (hidden widths and an
activation), "cnn" (convolutions, then a linear layer) and "logistic" (linear: the
convex control). `weight_decay` adds `0.5 * weight_decay * sum(kernel ** 2)` (weights,
not biases) to the loss. `symmetry` is the model's `gdlab.symmetry.Symmetry` (hidden
units or channels permuted; sign flips for tanh, positive rescalings for relu; the
logistic model has none). Weight decay breaks the rescaling symmetry of relu units (it
penalises c^2 |w_in|^2 + |w_out|^2 / c^2), so with `weight_decay > 0` relu layers get
permutations only.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import InputError, check_choice, check_int, check_real
from gdlab.problem import Problem, builtin
from gdlab.problems.adapters import CLASSIFICATION_METRICS, cross_entropy, from_flax
from gdlab.problems.neural import CNN, MLP, activation_fn
from gdlab.symmetry import for_model

MODELS = ("mlp", "cnn", "logistic")
STANDARDIZE = ("feature", "global", "none")
DIGITS_TEST = 397  # of 1797: 1400 train / 397 test
NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Split:
    """Train and test arrays of a dataset (read-only NumPy)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


# --- raw data, cached ------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def digits_split() -> Split:
    """scikit-learn's digits (1797 8x8 images, pixels 0..16), split 1400 / 397.

    The split is fixed and stratified by class (`train_test_split(..., stratify=y,
    random_state=0)`); x is flat `(N, 64)` float32, y int32. Not standardised.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    train, test = train_test_split(np.arange(len(y)), test_size=DIGITS_TEST, stratify=y,
                                   random_state=0)
    return _split(x[train], y[train], x[test], y[test])


@functools.lru_cache(maxsize=1)
def mnist1d_split() -> Split:
    """MNIST-1D (signals of length 40, 10 classes), its own 4000 / 1000 split.

    Generated in code by `mnist1d.data.make_dataset(get_dataset_args())` (5000 examples,
    seed 42; no download, no file written). Not re-standardised here.
    """
    d = _generate_mnist1d()
    return _split(d["x"], d["y"], d["x_test"], d["y_test"])


def _generate_mnist1d(**overrides) -> dict:
    """mnist1d's generator, isolated: it reseeds NumPy's and Python's global RNGs.

    `overrides` change its dataset arguments (tests generate a small one).
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    for name, value in overrides.items():
        setattr(args, name, value)
    # mnist1d draws from the legacy global generator; that is what we protect here.
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        return make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)


def _split(x_train, y_train, x_test, y_test) -> Split:
    arrays = [np.asarray(x_train, np.float32), np.asarray(y_train, np.int32),
              np.asarray(x_test, np.float32), np.asarray(y_test, np.int32)]
    for a in arrays:
        a.setflags(write=False)  # cached: callers must not change them
    return Split(*arrays)


def standardize(x_train: np.ndarray, x_test: np.ndarray,
                mode: str = "feature") -> tuple[np.ndarray, np.ndarray]:
    """Both sets shifted and scaled with the training set's statistics only.

    Args:
      x_train: `(N, D)` training inputs.
      x_test: `(N_test, D)` test inputs.
      mode: "feature" (per column; constant columns are only centred), "global" (one
        mean and standard deviation over every training value) or "none".

    Returns:
      `(x_train, x_test)` as new float32 arrays.

    Example:
      >>> a, b = standardize(np.array([[0.0], [2.0]]), np.array([[4.0]]))
      >>> a.ravel().tolist(), b.ravel().tolist()
      ([-1.0, 1.0], [3.0])
    """
    check_choice("standardize", mode, STANDARDIZE)
    if mode == "none":
        return x_train.astype(np.float32), x_test.astype(np.float32)
    axis = 0 if mode == "feature" else None
    mean = x_train.mean(axis=axis, dtype=np.float64)
    std = x_train.std(axis=axis, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return tuple(((x - mean) / std).astype(np.float32) for x in (x_train, x_test))


# --- problems --------------------------------------------------------------------------


@builtin
def digits(model: str = "mlp", hidden: Sequence[int] | None = None,
           activation: str = "relu", weight_decay: float = 0.0,
           standardize: str = "global") -> Problem:
    """Classify scikit-learn's 8x8 digits (offline): 1400 train / 397 test images.

    Args:
      model: "mlp", "cnn" (3x3 convolutions on `(8, 8, 1)` images, then linear) or
        "logistic" (linear softmax regression: convex with `weight_decay > 0`).
      hidden: MLP hidden widths (default `(32,)`) or CNN channels per convolution
        (default `(8,)`); must be empty or None for "logistic".
      activation: "relu", "tanh" or "gelu" (hidden layers).
      weight_decay: L2 coefficient on the weights (not the biases), >= 0.
      standardize: "global" (one mean and scale over every training pixel), "feature"
        (per pixel: rare pixels then reach 37 standard deviations in training, 90 in
        test) or "none"; always with training statistics only.

    Returns:
      A Problem: x `(1400, 64)` float32 (`(1400, 8, 8, 1)` for "cnn"), y `(1400,)` int32,
      `test_data` likewise with 397, metrics "accuracy" and "error", logits as `predict`.

    Example:
      >>> p = digits(model="logistic", weight_decay=1e-3)
      >>> p.data["x"].shape, p.test_data["x"].shape, p.num_params()
      ((1400, 64), (397, 64), 650)
    """
    s = digits_split()
    return _classifier("digits", s, model, hidden, activation, weight_decay, standardize,
                       image_shape=(8, 8, 1), kernel_size=(3, 3),
                       about="scikit-learn digits 8x8")


@builtin
def mnist1d(model: str = "mlp", hidden: Sequence[int] | None = None,
            activation: str = "relu", weight_decay: float = 0.0,
            standardize: str = "global") -> Problem:
    """Classify MNIST-1D signals (generated offline): 4000 train / 1000 test.

    Args:
      model: "mlp", "cnn" (1-D convolutions, kernel 5, on `(40, 1)` signals, then
        linear) or "logistic" (linear softmax regression).
      hidden: MLP hidden widths (default `(32,)`) or CNN channels per convolution
        (default `(8,)`); must be empty or None for "logistic".
      activation: "relu", "tanh" or "gelu" (hidden layers).
      weight_decay: L2 coefficient on the weights (not the biases), >= 0.
      standardize: "global" (one mean and scale, as mnist1d itself does, but from the
        training set only), "feature" or "none".

    Returns:
      A Problem: x `(4000, 40)` float32 (`(4000, 40, 1)` for "cnn"), y `(4000,)` int32,
      `test_data` likewise with 1000, metrics "accuracy" and "error", logits as `predict`.

    Example:
      >>> p = mnist1d(model="cnn")
      >>> p.data["x"].shape, p.test_data["y"].shape
      ((4000, 40, 1), (1000,))
    """
    s = mnist1d_split()
    return _classifier("mnist1d", s, model, hidden, activation, weight_decay, standardize,
                       image_shape=(40, 1), kernel_size=(5,), about="MNIST-1D length 40")


def _classifier(name: str, split: Split, model: str, hidden, activation: str,
                weight_decay: float, standardize_mode: str, image_shape: tuple[int, ...],
                kernel_size: tuple[int, ...], about: str) -> Problem:
    """The shared body of the dataset problems: model, data, loss, metrics."""
    hidden = _check_model(model, hidden, activation, weight_decay)
    x_train, x_test = standardize(split.x_train, split.x_test, standardize_mode)
    shape = image_shape if model == "cnn" else (int(np.prod(image_shape)),)
    module = _module(model, hidden, activation, kernel_size)
    p = from_flax(module, x_train.reshape(-1, *shape), split.y_train, cross_entropy,
                  name=name, metrics=CLASSIFICATION_METRICS,
                  test=(x_test.reshape(-1, *shape), split.y_test),
                  description=_describe(about, model, hidden, activation, shape,
                                        weight_decay, split), symmetry=None)
    if weight_decay:
        p = dataclasses.replace(p, loss=_with_weight_decay(p.loss, float(weight_decay)))
    if hidden:  # hidden units: permutations, and the activation's own symmetry
        sym = for_model(p.params_shape(), activation)
        p = dataclasses.replace(p, symmetry=sym.without_rescaling() if weight_decay else sym)
    return p


def _check_model(model: str, hidden, activation: str, weight_decay: float) -> tuple[int, ...]:
    """Validated hidden sizes, with the model's default when None."""
    check_choice("model", model, MODELS)
    activation_fn(activation)
    check_real("weight_decay", weight_decay, low=0.0)
    if hidden is None:
        return {"mlp": (32,), "cnn": (8,), "logistic": ()}[model]
    if isinstance(hidden, str | int) or not isinstance(hidden, Sequence):
        raise InputError(f"hidden must be a sequence of positive integers, got {hidden!r}")
    if model == "logistic" and len(hidden):
        raise InputError(f"hidden must be empty or None for model='logistic' (a linear "
                         f"model), got {hidden!r}; use model='mlp' for hidden layers")
    return tuple(check_int(f"hidden[{i}]", h, minimum=1) for i, h in enumerate(hidden))


def _module(model: str, hidden: tuple[int, ...], activation: str,
            kernel_size: tuple[int, ...]):
    if model == "cnn":
        return CNN(channels=hidden, kernel_size=kernel_size, out=NUM_CLASSES,
                   activation=activation)
    return MLP(hidden=hidden, out=NUM_CLASSES, activation=activation)


def _with_weight_decay(loss, weight_decay: float):
    def regularised(params, batch):
        kernels = [leaf for path, leaf in jax.tree.leaves_with_path(params)
                   if getattr(path[-1], "key", None) == "kernel"]
        return loss(params, batch) + 0.5 * weight_decay * sum(jnp.sum(k**2) for k in kernels)
    return regularised


def _describe(about: str, model: str, hidden, activation: str, shape, weight_decay: float,
              split: Split) -> str:
    widths = "-".join(map(str, (int(np.prod(shape)), *hidden, NUM_CLASSES)))
    net = {"mlp": f"MLP {widths} {activation}",
           "cnn": f"CNN conv{list(hidden)} {activation} -> linear 10",
           "logistic": "logistic regression (convex)"}[model]
    wd = f", weight decay {weight_decay:g}" if weight_decay else ""
    return (f"{about}, 10 classes, {net}{wd}, N={len(split.y_train)} train / "
            f"{len(split.y_test)} test")
