"""The benchmark's standard workloads (issue "speed"), shared by gdlab and its baselines.

W1: Himmelblau, full-batch gradient descent. W2: teacher-student MLP 8-64-1, N = 4096,
batch 64 drawn with replacement, SGD. W3: W2's MLP with 512 hidden units. W4: W2 with the
full-data loss measured every K steps. W5: a small CNN on scikit-learn's digits (Conv 8
filters 3x3 SAME -> ReLU -> flatten -> Dense 10 on 8x8x1 images, B = 32, SGD,
cross-entropy). repeat-*: a warm second `gdlab.train` call, whole, on Himmelblau (16,384
seeds x 4,000 steps) and on W2. sweep-W2: W2 at 8 learning rates.

Sizes: "cpu" (the issue's), "gpu" (more seeds, so an accelerator has work) and "tiny"
(every size shrunk, for tests).
"""

from __future__ import annotations

import dataclasses

from gdlab import problems
from gdlab.config import TrainConfig
from gdlab.problem import Problem

NAMES = ("W1", "W2", "W3", "W4-every10", "W4-every100", "W4-every1000", "W4-never", "W5",
         "repeat-himmelblau", "repeat-W2", "sweep-W2")
SIZES = ("tiny", "cpu", "gpu")
SWEEP_RATES = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1)
# Seeds on a GPU, per workload (the CPU sizes are the issue's).
GPU_SEEDS = {"W1": 65_536, "W2": 4_096, "W3": 4_096, "W4": 4_096, "W5": 1_024,
             "repeat-himmelblau": 16_384, "repeat-W2": 4_096, "sweep-W2": 4_096}
DIGITS_SHAPE = (8, 8, 1)  # height, width, channels of a digits image
CNN_CHANNELS, CNN_KERNEL, CNN_CLASSES = 8, 3, 10


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark workload: problem sizes, seeds, steps and evaluation schedule.

    `count_evaluations`: the timed seconds include the loss measurements at steps K, 2K,
    ..., T (W4; the step-0 measurement is left out); otherwise only training is timed.
    `eval_every` None: no measurement is timed (W4's "never"). `learning_rates`: the
    rates a sweep workload trains (each with `seeds` seeds).
    """

    name: str
    problem: str  # "himmelblau", "teacher_student" or "digits_cnn"
    seeds: int
    steps: int
    learning_rate: float
    hidden: int = 0
    n: int = 0
    batch_size: int | None = None
    eval_every: int | None = None
    count_evaluations: bool = False
    timed_seeds: int = 2  # seeds the one-seed-at-a-time baseline times (then extrapolated)
    learning_rates: tuple[float, ...] = ()

    @property
    def params(self) -> int:
        """Trainable parameters P of one seed (2 for Himmelblau)."""
        if self.problem == "himmelblau":
            return 2
        if self.problem == "digits_cnn":
            h, w, c = DIGITS_SHAPE
            conv = CNN_KERNEL**2 * c * CNN_CHANNELS + CNN_CHANNELS
            return conv + h * w * CNN_CHANNELS * CNN_CLASSES + CNN_CLASSES
        return 8 * self.hidden + 2 * self.hidden + 1

    @property
    def macs_per_example(self) -> int:
        """Multiply-adds of one example's forward pass: P for an MLP (weights and biases,
        as the issue counts), convolution + dense multiply-adds for the CNN."""
        if self.problem != "digits_cnn":
            return self.params
        h, w, c = DIGITS_SHAPE
        conv = h * w * CNN_CHANNELS * CNN_KERNEL**2 * c
        return conv + h * w * CNN_CHANNELS * CNN_CLASSES

    @property
    def flops_per_seed_step(self) -> float | None:
        """Forward + backward flops of one seed's step, 6 x batch x multiply-adds per
        example (None: no data)."""
        return None if self.batch_size is None else 6.0 * self.batch_size * self.macs_per_example

    def config(self) -> TrainConfig:
        return TrainConfig(learning_rate=self.learning_rate, steps=self.steps,
                           batch_size=self.batch_size, eval_every=self.eval_every or self.steps)


def workload(name: str, size: str = "cpu", seeds: int | None = None) -> Workload:
    """The workload called `name` (one of NAMES) at `size` (one of SIZES), optionally with
    another seed count."""
    if name not in NAMES:
        raise ValueError(f"unknown workload {name!r}; valid: {', '.join(NAMES)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; valid: {', '.join(SIZES)}")
    w = _cpu_or_tiny(name, size == "tiny")
    if size == "gpu":
        gpu = GPU_SEEDS.get(name.split("-every")[0].removesuffix("-never"), w.seeds)
        w = dataclasses.replace(w, seeds=gpu)
    return w if seeds is None else dataclasses.replace(w, seeds=seeds)


def _cpu_or_tiny(name: str, tiny: bool) -> Workload:
    mlp = dict(problem="teacher_student", learning_rate=0.05, n=256 if tiny else 4096,
               batch_size=16 if tiny else 64)
    w2 = dict(seeds=8 if tiny else 256, steps=20 if tiny else 1000, hidden=16 if tiny else 64,
              **mlp)
    if name == "W1":
        return Workload(name, "himmelblau", seeds=64 if tiny else 4096,
                        steps=50 if tiny else 2000, learning_rate=0.01)
    if name in ("W2", "repeat-W2"):
        return Workload(name, **w2)
    if name == "sweep-W2":
        return Workload(name, **w2, learning_rates=SWEEP_RATES[:2] if tiny else SWEEP_RATES)
    if name == "W3":
        return Workload(name, seeds=8 if tiny else 1024, steps=5 if tiny else 200,
                        hidden=32 if tiny else 512, **mlp)
    if name == "W5":
        return Workload(name, "digits_cnn", seeds=4 if tiny else 64, steps=5 if tiny else 100,
                        learning_rate=0.05, batch_size=8 if tiny else 32, n=1400)
    if name == "repeat-himmelblau":
        return Workload(name, "himmelblau", seeds=64 if tiny else 16_384,
                        steps=50 if tiny else 4000, learning_rate=1e-3)
    never = name == "W4-never"
    every = None if never else int(name.removeprefix("W4-every"))
    return Workload(name, seeds=8 if tiny else 256, steps=40 if tiny else 1000,
                    hidden=16 if tiny else 64, count_evaluations=not never,
                    eval_every=every if every is None or not tiny else max(1, every // 50),
                    **mlp)


def problem_of(w: Workload) -> Problem:
    """The gdlab Problem a workload trains (W5: the digits CNN without its test set and
    metrics, so only the loss is measured, as the baselines do)."""
    if w.problem == "himmelblau":
        return problems.himmelblau()
    if w.problem == "digits_cnn":
        p = problems.digits(model="cnn", hidden=(CNN_CHANNELS,))
        return dataclasses.replace(p, metrics={}, test_data=None)
    return problems.teacher_student(hidden=w.hidden, n=w.n)
