"""2-D test functions with every local minimum in their domain listed.

Coordinates were found by Newton refinement in float64 from a dense grid of starts
(every critical point with a positive definite Hessian inside the domain is listed);
`tests/test_problems.py` checks that the gradient vanishes at each one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from gdlab.problem import KnownMinimum, Problem, builtin

Domain = tuple[tuple[float, float], tuple[float, float]]


def _uniform_init(domain: Domain) -> Callable[[jax.Array], jax.Array]:
    lo = jnp.array([domain[0][0], domain[1][0]], jnp.float32)
    hi = jnp.array([domain[0][1], domain[1][1]], jnp.float32)
    return lambda key: jax.random.uniform(key, (2,), jnp.float32, lo, hi)


def _minima(points: list[tuple[tuple[float, float], float]]) -> tuple[KnownMinimum, ...]:
    best = min(v for _, v in points)
    return tuple(
        KnownMinimum(params=jnp.array(xy, jnp.float32), loss=float(v),
                     kind="global" if math.isclose(v, best, abs_tol=1e-9) else "local")
        for xy, v in points)


def _surface(name: str, f: Callable[[jax.Array], jax.Array], domain: Domain,
             minima, description: str) -> Problem:
    return Problem(name=name, init=_uniform_init(domain), loss=lambda p, batch: f(p),
                   domain=domain, known_minima=_minima(minima), description=description)


@builtin
def himmelblau() -> Problem:
    """Himmelblau's function: four global minima (f = 0) in [-5, 5]^2."""
    def f(p):
        x, y = p[0], p[1]
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2
    minima = [((3.0, 2.0), 0.0),
              ((3.5844283403304917, -1.8481265269644036), 0.0),
              ((-3.779310253377747, -3.2831859912861696), 0.0),
              ((-2.805118086952745, 3.131312518250573), 0.0)]
    return _surface("himmelblau", f, ((-5.0, 5.0), (-5.0, 5.0)), minima,
                    "Himmelblau: 4 equal minima")


@builtin
def six_hump_camel() -> Problem:
    """Six-hump camel: six local minima, two of them global (f = -1.0316)."""
    def f(p):
        x, y = p[0], p[1]
        return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2
    minima = [((-0.08984201310031806, 0.7126564030207396), -1.0316284534898774),
              ((0.08984201310031806, -0.7126564030207396), -1.0316284534898774),
              ((1.7036067149699812, -0.7960835686726251), -0.21546382438371792),
              ((-1.7036067149699812, 0.7960835686726251), -0.21546382438371792),
              ((-1.6071047529201976, -0.5686514548841314), 2.1042503103112598),
              ((1.6071047529201976, 0.5686514548841314), 2.1042503103112598)]
    return _surface("six_hump_camel", f, ((-3.0, 3.0), (-2.0, 2.0)), minima,
                    "six-hump camel: 6 minima, 2 global")


@builtin
def three_hump_camel() -> Problem:
    """Three-hump camel: global minimum at the origin and two local minima."""
    def f(p):
        x, y = p[0], p[1]
        return 2 * x**2 - 1.05 * x**4 + x**6 / 6 + x * y + y**2
    minima = [((0.0, 0.0), 0.0),
              ((-1.7475523458302888, 0.8737761729151444), 0.298638442236859),
              ((1.7475523458302888, -0.8737761729151444), 0.298638442236859)]
    return _surface("three_hump_camel", f, ((-5.0, 5.0), (-5.0, 5.0)), minima,
                    "three-hump camel: 3 minima, 1 global")


@builtin
def branin() -> Problem:
    """Branin-Hoo: three global minima (f = 0.397887) in [-5, 10] x [0, 15]."""
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    def f(p):
        x, y = p[0], p[1]
        return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * jnp.cos(x) + 10
    v = 0.39788735772973816
    minima = [((-math.pi, 12.275), v), ((math.pi, 2.275), v), ((3 * math.pi, 2.475), v)]
    return _surface("branin", f, ((-5.0, 10.0), (0.0, 15.0)), minima,
                    "Branin: 3 equal minima")


# The 1-D Styblinski-Tang and Rastrigin terms' local minimisers (float64 Newton).
_ST_1D = (-2.903534027771177, 2.746802770990837)
_RASTRIGIN_1D = (-4.974691390895051, -3.979783860300754, -2.9848557010394816,
                 -1.9899122337085497, -0.9949586376523348, 0.0, 0.9949586376523348,
                 1.9899122337085497, 2.9848557010394816, 3.979783860300754,
                 4.974691390895051)


def _separable_minima(f1: Callable[[float], float], roots, offset: float = 0.0):
    return sorted((((x, y), offset + f1(x) + f1(y)) for x, y in itertools.product(roots, roots)),
                  key=lambda m: (m[1], m[0]))


@builtin
def styblinski_tang() -> Problem:
    """Styblinski-Tang in 2-D: four local minima, global f = -78.33233 at (-2.9035, -2.9035)."""
    f = lambda p: 0.5 * jnp.sum(p**4 - 16 * p**2 + 5 * p)
    f1 = lambda x: 0.5 * (x**4 - 16 * x**2 + 5 * x)
    return _surface("styblinski_tang", f, ((-5.0, 5.0), (-5.0, 5.0)),
                    _separable_minima(f1, _ST_1D), "Styblinski-Tang (2-D): 4 minima, 1 global")


@builtin
def rastrigin() -> Problem:
    """Rastrigin in 2-D: 121 local minima in [-5.12, 5.12]^2, global f = 0 at the origin."""
    f = lambda p: 20 + jnp.sum(p**2 - 10 * jnp.cos(2 * jnp.pi * p))
    f1 = lambda x: x**2 - 10 * math.cos(2 * math.pi * x)
    return _surface("rastrigin", f, ((-5.12, 5.12), (-5.12, 5.12)),
                    _separable_minima(f1, _RASTRIGIN_1D, offset=20.0),
                    "Rastrigin (2-D): 121 minima, 1 global")


@builtin
def rosenbrock() -> Problem:
    """Rosenbrock's banana: non-convex, one minimum at (1, 1) with f = 0."""
    def f(p):
        x, y = p[0], p[1]
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2
    return _surface("rosenbrock", f, ((-2.0, 2.0), (-1.0, 3.0)), [((1.0, 1.0), 0.0)],
                    "Rosenbrock: non-convex valley, 1 minimum")
