"""Built-in problems (convex controls, 2-D surfaces, neural nets, real data) and adapters."""

from collections.abc import Callable

from gdlab._checks import InputError
from gdlab.problem import Problem
from gdlab.problems.adapters import (
    CLASSIFICATION_METRICS,
    accuracy,
    cross_entropy,
    error,
    from_equinox,
    from_flax,
    from_nnx,
    metrics_from_outputs,
)
from gdlab.problems.convex import least_squares, logistic_regression, quadratic
from gdlab.problems.datasets import digits, mnist1d
from gdlab.problems.neural import CNN, MLP, teacher_student, two_spirals
from gdlab.problems.relu_population import relu_population
from gdlab.problems.surfaces import (
    branin,
    himmelblau,
    rastrigin,
    rosenbrock,
    six_hump_camel,
    styblinski_tang,
    three_hump_camel,
)

# Every built-in by name, each a zero-argument factory with sensible defaults.
BUILTINS: dict[str, Callable[[], Problem]] = {
    "least_squares": least_squares,
    "logistic": logistic_regression,
    "quadratic": quadratic,
    "himmelblau": himmelblau,
    "six_hump_camel": six_hump_camel,
    "three_hump_camel": three_hump_camel,
    "branin": branin,
    "styblinski_tang": styblinski_tang,
    "rastrigin": rastrigin,
    "rosenbrock": rosenbrock,
    "teacher_student": teacher_student,
    "two_spirals": two_spirals,
    "digits": digits,
    "mnist1d": mnist1d,
    "relu_population": relu_population,
}


def get(name: str) -> Problem:
    """The built-in problem called `name`, with its default settings."""
    if name not in BUILTINS:
        raise InputError(f"unknown problem {name!r}; built-ins are: {', '.join(BUILTINS)}")
    return BUILTINS[name]()


def from_spec(spec: dict) -> Problem:
    """Rebuild a built-in problem from its `Problem.spec` (as saved in a run's manifest)."""
    factories = {f.__name__: f for f in BUILTINS.values()}
    if not isinstance(spec, dict) or spec.get("factory") not in factories:
        raise InputError(f"cannot rebuild a problem from spec {spec!r}; runs of user-defined "
                         "problems must be analysed from Python with their Problem")
    return factories[spec["factory"]](**spec.get("kwargs", {}))


__all__ = [
    "BUILTINS", "CLASSIFICATION_METRICS", "CNN", "MLP", "accuracy", "branin", "cross_entropy",
    "digits", "error", "from_equinox", "from_flax", "from_nnx", "from_spec", "get",
    "himmelblau", "least_squares", "logistic_regression", "metrics_from_outputs", "mnist1d",
    "quadratic", "rastrigin", "relu_population", "rosenbrock", "six_hump_camel",
    "styblinski_tang", "teacher_student", "three_hump_camel", "two_spirals",
]
