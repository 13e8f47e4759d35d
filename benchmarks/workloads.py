"""The benchmark's standard workloads (issue "speed"), shared by gdlab and its baselines.

W1: Himmelblau, full-batch gradient descent. W2: teacher-student MLP 8-64-1, N = 4096,
batch 64 drawn with replacement, SGD. W3: W2's MLP with 512 hidden units. W4: W2 with the
full-data loss measured every K steps. `tiny=True` shrinks every size for tests.
"""

from __future__ import annotations

import dataclasses

from gdlab import problems
from gdlab.config import TrainConfig
from gdlab.problem import Problem

NAMES = ("W1", "W2", "W3", "W4-every10", "W4-every100", "W4-every1000", "W4-never")


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark workload: problem sizes, seeds, steps and evaluation schedule.

    `count_evaluations`: the timed seconds include the loss measurements at steps K, 2K,
    ..., T (W4; the step-0 measurement is left out); otherwise only training is timed.
    `eval_every` None: no measurement is timed (W4's "never").
    """

    name: str
    problem: str  # "himmelblau" or "teacher_student"
    seeds: int
    steps: int
    learning_rate: float
    hidden: int = 0
    n: int = 0
    batch_size: int | None = None
    eval_every: int | None = None
    count_evaluations: bool = False
    timed_seeds: int = 2  # seeds the one-seed-at-a-time baseline times (then extrapolated)

    @property
    def params(self) -> int:
        """Trainable parameters P of one seed (2 for Himmelblau)."""
        return 2 if self.problem == "himmelblau" else 8 * self.hidden + 2 * self.hidden + 1

    @property
    def flops_per_seed_step(self) -> float | None:
        """Forward + backward flops of one seed's step, 6 x batch x P (None: no data)."""
        return None if self.batch_size is None else 6.0 * self.batch_size * self.params

    def config(self) -> TrainConfig:
        return TrainConfig(learning_rate=self.learning_rate, steps=self.steps,
                           batch_size=self.batch_size, eval_every=self.eval_every or self.steps)


def workload(name: str, tiny: bool = False, seeds: int | None = None) -> Workload:
    """The workload called `name` (one of NAMES), optionally tiny or with other seeds."""
    if name not in NAMES:
        raise ValueError(f"unknown workload {name!r}; valid: {', '.join(NAMES)}")
    mlp = dict(problem="teacher_student", learning_rate=0.05, n=256 if tiny else 4096,
               batch_size=16 if tiny else 64)
    if name == "W1":
        w = Workload(name, "himmelblau", seeds=64 if tiny else 4096, steps=50 if tiny else 2000,
                     learning_rate=0.01)
    elif name == "W2":
        w = Workload(name, seeds=8 if tiny else 256, steps=20 if tiny else 1000,
                     hidden=16 if tiny else 64, **mlp)
    elif name == "W3":
        w = Workload(name, seeds=8 if tiny else 1024, steps=5 if tiny else 200,
                     hidden=32 if tiny else 512, **mlp)
    else:
        never = name == "W4-never"
        every = None if never else int(name.removeprefix("W4-every"))
        w = Workload(name, seeds=8 if tiny else 256, steps=40 if tiny else 1000,
                     hidden=16 if tiny else 64, count_evaluations=not never,
                     eval_every=every if every is None or not tiny else max(1, every // 50),
                     **mlp)
    return w if seeds is None else dataclasses.replace(w, seeds=seeds)


def problem_of(w: Workload) -> Problem:
    """The gdlab Problem a workload trains."""
    if w.problem == "himmelblau":
        return problems.himmelblau()
    return problems.teacher_student(hidden=w.hidden, n=w.n)
