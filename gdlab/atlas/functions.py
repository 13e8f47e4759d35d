"""Networks compared as functions: outputs and predicted labels on held-out data.

Two seeds compute the same function when they predict the same label for every
held-out example (classifiers) or give the same outputs within a tolerance
(regression). `disagreement(problem, runs, data)` is the (S, S) fraction of examples
on which two seeds' predicted labels differ: the "prediction disagreement" of the
deep-ensembles literature, which tracks the test error (Jiang et al. 2022).

Compile discipline: one module-level jitted kernel per (predict function, shapes) gives
every seed's outputs; params and data are traced arguments.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from gdlab._checks import InputError, check_positive
from gdlab.atlas.cluster import cluster_points
from gdlab.core.runs import Runs
from gdlab.problem import Problem
from gdlab.stats import first_seen

PyTree = Any
CLASSIFIER_METRICS = ("accuracy", "error")  # a problem with one of these is a classifier


def held_out(problem: Problem, data: Any = None) -> Any:
    """`data`, else the problem's `test_data`, else its training data."""
    if data is not None:
        return data
    return problem.data if problem.test_data is None else problem.test_data


def params_of(runs_or_params: Runs | PyTree) -> PyTree:
    """The params (leading seed axis S) of Runs, or the argument itself."""
    return runs_or_params.params if isinstance(runs_or_params, Runs) else runs_or_params


def outputs(problem: Problem, runs: Runs | PyTree, data: Any = None,
            chunk: int = 32) -> np.ndarray:
    """(S, N, ...) every seed's `problem.predict` outputs on `data` (default held-out).

    Example:
      >>> logits_SNK = gdlab.atlas.functions.outputs(p, runs)
    """
    if problem.predict is None:
        raise InputError(f"problem {problem.name!r} has no predict function: functions "
                         "cannot be compared (the adapters and neural built-ins set one)")
    data = held_out(problem, data)
    if data is None:
        raise InputError(f"problem {problem.name!r} has no data to compare functions on")
    params = params_of(runs)
    return np.asarray(_outputs(problem.predict, params, data, chunk=chunk))


@functools.partial(jax.jit, static_argnames=("predict", "chunk"))
def _outputs(predict, params_S: PyTree, data: Any, chunk: int) -> jax.Array:
    """Kernel of `outputs`: one compile per (predict, shapes, chunk)."""
    return jax.lax.map(lambda p: predict(p, data), params_S, batch_size=chunk)


def is_classifier(problem: Problem, outputs_SN: np.ndarray) -> bool:
    """A classifier: class scores on a last axis of >= 2, and an accuracy or error metric."""
    return outputs_SN.ndim == 3 and outputs_SN.shape[-1] >= 2 and \
        any(m in problem.metrics for m in CLASSIFIER_METRICS)


def predicted_labels(problem: Problem, runs: Runs | PyTree, data: Any = None) -> np.ndarray:
    """(S, N) int labels (argmax of the outputs) of every seed on `data` (default held-out).

    Example:
      >>> labels_SN = gdlab.atlas.functions.predicted_labels(p, runs)
    """
    out = outputs(problem, runs, data)
    if not is_classifier(problem, out):
        raise InputError(f"problem {problem.name!r} is not a classifier (outputs shaped "
                         f"{out.shape[1:]} per seed, metrics {list(problem.metrics)}): "
                         "predicted labels need class scores and an accuracy/error metric")
    return np.argmax(out, axis=-1).astype(np.int32)


def disagreement(problem: Problem, runs: Runs | PyTree, data: Any = None) -> np.ndarray:
    """(S, S) fraction of examples on which two seeds predict different labels.

    Args:
      problem: a classifier (class scores from `predict`, an accuracy or error metric).
      runs: `gdlab.Runs`, or params with a leading seed axis S.
      data: the examples compared on (default: the problem's `test_data`, else its data).

    Returns:
      (S, S) symmetric, 0 on the diagonal, values in [0, 1].

    Example:
      >>> d = gdlab.disagreement(p, runs, p.test_data)
      >>> d[np.triu_indices(len(d), 1)].mean()      # mean pairwise disagreement
    """
    return label_disagreement(predicted_labels(problem, runs, data))


def label_disagreement(labels_SN: np.ndarray) -> np.ndarray:
    """(S, S) fraction of differing labels between rows of an (S, N) label matrix."""
    labels_SN = np.asarray(labels_SN)
    s, n = labels_SN.shape
    agree = np.zeros((s, s))
    for k in np.unique(labels_SN):  # agreement = sum over classes of co-occurrences
        hit = (labels_SN == k).astype(np.float32)
        agree += hit @ hit.T
    out = 1.0 - agree / max(n, 1)
    np.fill_diagonal(out, 0.0)
    return np.clip(out, 0.0, 1.0)


def function_classes(problem: Problem, runs: Runs | PyTree, data: Any = None,
                     tol: float | None = None) -> tuple[np.ndarray, float | None]:
    """(S,) class per seed: the same function on `data` (default held-out), and the tol.

    Classifiers: identical predicted label vectors (`tol` is ignored: None is returned).
    Regression: outputs within `tol` RMS (default 1e-3 x max(1, RMS of the outputs)),
    joined transitively.

    Example:
      >>> classes, _ = gdlab.atlas.functions.function_classes(p, runs)
      >>> classes.max() + 1      # distinct functions
    """
    out = outputs(problem, runs, data)
    if is_classifier(problem, out):
        labels = np.argmax(out, axis=-1).reshape(len(out), -1)
        return first_seen(np.unique(labels, axis=0, return_inverse=True)[1].ravel()), None
    flat = out.reshape(len(out), -1).astype(np.float64)
    if tol is None:
        tol = 1e-3 * max(1.0, float(np.sqrt(np.mean(flat**2))))
    tol = check_positive("func_tol", tol)
    return cluster_points(flat, tol * np.sqrt(flat.shape[1])), tol
