"""Equivalent minima of real networks: how many different solutions do SGD seeds find?

Trains many seeds of ReLU MLPs of widths 8, 32, 128 (tanh as a contrast) and a small CNN
on scikit-learn's digits and on MNIST-1D, then asks whether the seeds found "the same
minimum" at four nested levels (`gdlab.atlas.equivalence`): distinct points in
parameter space; modulo the networks' symmetry (hidden-unit permutations, positive
rescalings of relu units, sign flips of tanh units); linearly connected modes (error
barrier on the straight path after weight matching below 2%, Frankle et al.'s
threshold); and functions (identical predicted labels on the test set). Beside the
counts: the test-accuracy distribution, the mean disagreement between seeds against the
mean test error, loss and error barriers between pairs of seeds naive and after weight
matching against the width (Entezari et al. 2022; Ainsworth et al. 2023), the loss along
naive and aligned paths, run-to-run variance split into its sources (init only, batch
order only, both), and instability to the data order (Frankle et al. 2020): two copies
of one network, sharing the init and the first k mini-batches, then trained on
different batch orders; their barrier against the split step k.

Run:
  python experiments/real_minima.py [--smoke] [--out DIR]     (or: gdlab run real_minima)
The full study (256 seeds per configuration, 10 configurations, 4 variance-source runs
and 2 instability sweeps) took 15.3 minutes (920 s wall, 10 min CPU) on the 2-core CPU
while other jobs shared it (load ~7); the smoke mode takes about 15 s on an idle machine.
Writes DIR/report.md, figures (DIR/main.png and DIR/*.png) and tidy CSVs whose rows
the report's tables are built from: DIR/summary.csv (one row per configuration),
DIR/seeds.csv (one per seed), DIR/pairs.csv (one per seed pair), DIR/paths.csv (one per
pair, path and point), DIR/sources.csv (one per configuration and randomness source),
DIR/instability.csv (one per split step and parent); prints DIR.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import gdlab
from gdlab import plots, problems
from gdlab.core.engine import seed_keys
from gdlab.core.seeds import as_key
from gdlab.landscape import barriers
from gdlab.plots import minima as minima_plots
from gdlab.plots import subplots
from gdlab.studies import markdown_table, study_dir, study_main, write_text


@dataclasses.dataclass(frozen=True)
class Entry:
    """One configuration: a dataset and a model."""

    dataset: str  # "digits" or "mnist1d"
    model: str = "mlp"  # "mlp" (one hidden layer of `width` units) or "cnn" (`width` channels)
    width: int = 32
    activation: str = "relu"
    steps: int | None = None  # training steps (default: the dataset's)

    @property
    def label(self) -> str:
        kind = "cnn" if self.model == "cnn" else self.activation
        return f"{self.dataset}-{kind}-{self.width}"


@dataclasses.dataclass(frozen=True)
class Instability:
    """Split runs: the first `parents` seeds of `entry`'s run, at step k (their recorded
    trajectory), each continued as two copies on new batch orders."""

    entry: Entry  # one of the study's entries: its run is evaluated every `every_k` steps
    splits: tuple[int, ...]  # split steps k (multiples of every_k)
    every_k: int  # evaluation (and trajectory) interval of that entry's run
    parents: int
    continue_steps: int  # steps each copy trains after the split


@dataclasses.dataclass(frozen=True)
class Config:
    entries: tuple[Entry, ...]
    train: tuple[tuple[str, gdlab.TrainConfig], ...]  # per dataset
    seeds: int
    pairs: int  # seed pairs (2i, 2i + 1) whose barriers are measured naive and aligned
    neighbours: int  # mode test: nearest seeds per seed
    mode_points: int  # points per path in the mode test
    mode_examples: int  # training examples the mode test's error barrier is measured on
    path_points: int  # points per path for the pair barriers and profiles
    instability: tuple[Instability, ...]
    sources: tuple[Entry, ...] = ()  # entries whose variance is split by source
    speed: Entry | None = None  # entry whose analysis is timed again once compiled
    dpi: int = 110
    smoke: bool = False

    def train_config(self, dataset: str) -> gdlab.TrainConfig:
        return dict(self.train)[dataset]


def get_config(smoke: bool = False) -> Config:
    """The study's settings; `smoke=True` shrinks seeds, steps and widths to seconds."""
    sgd = lambda steps: gdlab.TrainConfig(optimizer="momentum", learning_rate=0.05,
                                          batch_size=64, steps=steps,
                                          eval_every=max(1, steps // 4))
    if smoke:  # one dataset, one compiled training (the variance runs and the copies reuse it)
        entry = Entry("digits", width=8)
        return Config(entries=(entry,), train=(("digits", sgd(60)),),
                      seeds=8, pairs=4, neighbours=2, mode_points=5, mode_examples=256,
                      path_points=7, sources=(entry,), speed=entry, dpi=50, smoke=True,
                      instability=(Instability(entry, splits=(0, 20), every_k=20,
                                               parents=2, continue_steps=40),))
    # 256 seeds of every width up to 512 and the CNNs at full length take over half an
    # hour on a 2-core CPU (width 512: ~0.27 s per step of 256 seeds; a vmapped CNN
    # ~0.4-0.8 s): the full run stops at width 128 and trains the CNNs for fewer steps.
    widths = (8, 32, 128)
    entries = tuple(Entry(d, width=w) for d in ("digits", "mnist1d") for w in widths)
    entries += (Entry("digits", width=32, activation="tanh"),
                Entry("digits", "cnn", width=8, steps=120),
                Entry("mnist1d", width=32, activation="tanh"),
                Entry("mnist1d", "cnn", width=8, steps=250))
    return Config(entries=entries, train=(("digits", sgd(1000)), ("mnist1d", sgd(1500))),
                  seeds=256, pairs=64, neighbours=3, mode_points=13, mode_examples=512,
                  path_points=25, sources=(Entry("digits", width=32),
                                           Entry("mnist1d", width=32)),
                  speed=Entry("digits", width=32),  # 2,410 parameters: the target
                  instability=tuple(
                      Instability(Entry(d, width=32), splits=(0, 10, 20, 50, 100, 300),
                                  every_k=10, parents=16, continue_steps=steps)
                      for d, steps in (("digits", 800), ("mnist1d", 1000))))


# --- one configuration -----------------------------------------------------------------


@functools.cache
def make_problem(entry: Entry) -> gdlab.Problem:
    """The entry's problem, one object per entry: its functions key the compiled kernels."""
    factory = {"digits": problems.digits, "mnist1d": problems.mnist1d}[entry.dataset]
    return factory(model=entry.model, hidden=(entry.width,), activation=entry.activation)


def entry_train_config(entry: Entry, config: Config) -> tuple[gdlab.TrainConfig, int]:
    """The entry's training config and how many seeds' trajectories to record."""
    cfg, keep = config.train_config(entry.dataset), 0
    if entry.steps is not None:
        cfg = dataclasses.replace(cfg, steps=entry.steps, eval_every=max(1, entry.steps // 4))
    for inst in config.instability:  # parents of split runs: every k steps recorded
        if entry == inst.entry:
            cfg, keep = dataclasses.replace(cfg, eval_every=inst.every_k), inst.parents
    return cfg, keep


def run_entry(entry: Entry, config: Config) -> dict:
    """Train, count the levels, measure pair barriers."""
    p = make_problem(entry)
    cfg, keep = entry_train_config(entry, config)
    start = time.perf_counter()
    runs = gdlab.train(p, cfg, seeds=config.seeds, key=0, trajectories=keep, progress=False)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    subset = jax.tree.map(lambda a: np.asarray(a)[:config.mode_examples], p.data)
    eq = gdlab.atlas.equivalence(p, runs, barrier_data=subset, neighbours=config.neighbours,
                                 num=config.mode_points)
    equiv_s = time.perf_counter() - start
    start = time.perf_counter()
    pairs = _pair_barriers(p, runs, config)
    pairs_s = time.perf_counter() - start
    warm_s = float("nan")
    if entry == config.speed:  # again, compiled: the cost of the analysis itself
        start = time.perf_counter()
        gdlab.atlas.equivalence(p, runs, barrier_data=subset, neighbours=config.neighbours,
                                num=config.mode_points)
        _pair_barriers(p, runs, config)
        warm_s = time.perf_counter() - start
    return {"entry": entry, "params": p.num_params(), "equivalence": eq, "pairs": pairs,
            "runs": runs, "seconds": {"train": train_s, "equivalence": equiv_s,
                                      "pair barriers": pairs_s, "warm analysis": warm_s,
                                      "compile": runs.timings.get("compile_seconds",
                                                                  float("nan"))}}


def _pair_barriers(p: gdlab.Problem, runs: gdlab.Runs, config: Config) -> dict:
    """Barriers of seed pairs (2i, 2i + 1): loss on the training data, error on the test
    data, naive and after weight matching; and the paths' profiles."""
    n = min(config.pairs, runs.num_seeds // 2)
    a = jax.tree.map(lambda x: np.asarray(x)[0:2 * n:2], runs.params)
    b = jax.tree.map(lambda x: np.asarray(x)[1:2 * n:2], runs.params)
    b_aligned = gdlab.symmetry.align(p, a, b)
    out = {"i": np.arange(0, 2 * n, 2), "j": np.arange(1, 2 * n, 2)}
    for name, ends in (("naive", b), ("aligned", b_aligned)):
        alphas, loss = barriers.path_values(p, a, ends, num=config.path_points)
        _, err = barriers.path_values(p, a, ends, data=p.test_data, metric="error",
                                      num=config.path_points)
        out.update({f"{name}_loss": barriers.path_barrier(loss),
                    f"{name}_error": barriers.path_barrier(err),
                    f"{name}_loss_path": loss, f"{name}_error_path": err})
    out["alphas"] = alphas
    return out


# --- sources of randomness --------------------------------------------------------------

SOURCES = ("init only", "order only", "both")


def run_sources(entry: Entry, config: Config, both: gdlab.Runs) -> list[dict]:
    """The entry's seeds with only the init varied (one batch order), only the batch
    order varied (one init), and both (the entry's own run): one row per source."""
    p = make_problem(entry)
    cfg, _ = entry_train_config(entry, config)  # the same program: no compile
    rows = []
    for source in SOURCES:
        runs = both if source == "both" else gdlab.train(
            p, cfg, seeds=config.seeds, key=0, progress=False,
            **({"data_seeds": 0} if source == "init only" else {"init_seeds": 0}))
        acc = runs.final("test/accuracy")
        labels = gdlab.atlas.predicted_labels(p, runs)
        dis = gdlab.atlas.functions.label_disagreement(labels)
        rows.append({"config": entry.label, "source": source, "seeds": len(acc),
                     "test_acc_mean": acc.mean(), "test_acc_sd": acc.std(ddof=1),
                     "test_acc_var": acc.var(ddof=1),
                     "train_loss_sd": np.std(runs.final_loss, ddof=1),
                     "mean_disagreement": dis[np.triu_indices(len(dis), 1)].mean(),
                     "label_vectors": len(np.unique(labels, axis=0))})
    return rows


# --- instability to the data order ------------------------------------------------------


def started_at(problem: gdlab.Problem, params_R, key: int) -> gdlab.Problem:
    """`problem` whose init gives seed i (i < R) of `train(..., key=key)` the params
    `params_R[i]`: `train(started_at(p, params_R, key), cfg, key=key, init_seeds=ids,
    data_seeds=...)` continues chosen params, each seed with its own batch order.

    The engine calls init with seed i's init key (`seed_keys(key, i)[0]`); init finds
    that key in a table of the R keys (exact equality of the key bits) and returns the
    matching row. One problem (one compile) serves every row; `check_started` verifies
    afterwards that every seed started from the row it was meant to.
    """
    n = int(np.shape(jax.tree.leaves(params_R)[0])[0])
    table_RK = jnp.stack([jax.random.key_data(seed_keys(as_key(key), jnp.asarray(i))[0])
                          for i in range(n)])
    params_R = jax.tree.map(jnp.asarray, params_R)

    def init(k):
        hit_R = jnp.all(jax.random.key_data(k)[None, :] == table_RK, axis=-1)
        return jax.tree.map(lambda x: x[jnp.argmax(hit_R)], params_R)
    return dataclasses.replace(problem, init=init, spec=None, name=f"{problem.name}-continued")


def check_started(runs: gdlab.Runs, params_R, rows) -> None:
    """Raise unless seed s of `runs` started exactly from `params_R[rows[s]]`."""
    for got, want in zip(jax.tree.leaves(runs.init_params), jax.tree.leaves(params_R),
                         strict=True):
        if not np.array_equal(np.asarray(got), np.asarray(want)[np.asarray(rows)]):
            raise RuntimeError("continued seeds did not start from their chosen params "
                               "(the init key table did not match the engine's keys)")


def run_instability(inst: Instability, config: Config, parents: gdlab.Runs) -> dict:
    """The parents (the entry's first seeds) at step k, then two copies each on new batch
    orders for `continue_steps` steps; barriers between the copies."""
    p = make_problem(inst.entry)
    base = config.train_config(inst.entry.dataset)
    at = [int(np.flatnonzero(parents.eval_steps == k)[0]) for k in inst.splits]
    table = jax.tree.map(lambda t: np.concatenate([np.asarray(t)[:, e] for e in at]),
                         parents.trajectory)  # rows: split-major, parent-minor
    rows = len(inst.splits) * inst.parents
    # The parents' chunk length: with as many copies as parent seeds (the smoke mode) the
    # chunk programs are the parents' and load from JAX's persistent compilation cache.
    child_cfg = dataclasses.replace(base, steps=inst.continue_steps, eval_every=inst.every_k)
    starts = np.repeat(np.arange(rows), 2)  # copies 2r and 2r + 1 continue row r
    children = gdlab.train(started_at(p, table, key=2), child_cfg, seeds=2 * rows, key=2,
                           init_seeds=starts, data_seeds=1000 + np.arange(2 * rows),
                           progress=False)
    check_started(children, table, starts)
    a = jax.tree.map(lambda x: np.asarray(x)[0::2], children.params)
    b = jax.tree.map(lambda x: np.asarray(x)[1::2], children.params)
    shape = (len(inst.splits), inst.parents)
    out = {"splits": np.asarray(inst.splits), "label": inst.entry.label,
           "parents": inst.parents, "continue_steps": inst.continue_steps}
    for name, align in (("naive", False), ("aligned", True)):
        err = gdlab.landscape.barrier(p, a, b, data=p.test_data, metric="error", align=align,
                                      num=config.path_points)
        loss = gdlab.landscape.barrier(p, a, b, align=align, num=config.path_points)
        out[f"{name}_error"], out[f"{name}_loss"] = err.reshape(shape), loss.reshape(shape)
    out["child_accuracy"] = children.final("test/accuracy").reshape(*shape, 2)
    return out


# --- the study ---------------------------------------------------------------------------


def run(config: Config, out=None) -> Path:
    """Run the study and write its directory; returns the path."""
    out = study_dir("real_minima", out)
    start = time.perf_counter()
    results, sources = [], []
    for entry in config.entries:
        results.append(run_entry(entry, config))
        eq = results[-1]["equivalence"]
        acc = results[-1]["runs"].final("test/accuracy")
        print(f"  {entry.label}: test accuracy {acc.mean():.3f}, counts {eq.counts()}, "
              f"{eq.distinct['functions']} distinct label vectors "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        if entry in config.sources:
            sources += run_sources(entry, config, results[-1]["runs"])
    insts = [run_instability(i, config, next(r["runs"] for r in results
                                             if r["entry"] == i.entry))
             for i in config.instability]
    tables = _write_csvs(out, results, sources, insts)
    for r, row in zip(results, tables["summary"], strict=True):
        r["summary"] = row
        r["runs_accuracy"] = r.pop("runs").final("test/accuracy")  # and free the params
    _figures(config, results, insts, out)
    write_text(out / "report.md", _report(config, out, tables, time.perf_counter() - start))
    print(f"real_minima study written to {out}")
    return out


# --- tidy CSVs ---------------------------------------------------------------------------


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


def _cell(v):
    if isinstance(v, float | np.floating):
        return f"{float(v):.6g}"
    return v.item() if isinstance(v, np.generic) else v


def read_csv(path: Path) -> list[dict]:
    """Rows of a CSV the study wrote (numbers parsed back)."""
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _write_csvs(out: Path, results: list[dict], sources: list[dict],
                insts: list[dict]) -> dict[str, list[dict]]:
    """Write every CSV, then read back the ones the report's tables are built from."""
    tables = {"summary": [_summary_row(r) for r in results],
              "seeds": [row for r in results for row in _seed_rows(r)],
              "pairs": [row for r in results for row in _pair_rows(r)],
              "paths": [row for r in results for row in _path_rows(r)],
              "sources": sources,
              "instability": [row for inst in insts for row in _instability_rows(inst)]}
    for name, rows in tables.items():
        write_text(out / f"{name}.csv", _csv(rows))
    return {name: read_csv(out / f"{name}.csv")
            for name in ("summary", "sources", "instability")}


def _level_cells(level) -> dict:
    lo, hi = level.chao1_ci
    return {level.name: level.count, f"{level.name}_chao1": level.chao1,
            f"{level.name}_chao1_lo": lo, f"{level.name}_chao1_hi": hi}


def _summary_row(r: dict) -> dict:
    eq, pr, runs, e = r["equivalence"], r["pairs"], r["runs"], r["entry"]
    acc = runs.final("test/accuracy")
    row = {"config": e.label, "dataset": e.dataset, "model": e.model,
           "activation": e.activation, "width": e.width, "params": r["params"],
           "seeds": runs.num_seeds, "steps": int(runs.eval_steps[-1]),
           "test_acc_mean": acc.mean(), "test_acc_sd": acc.std(), "test_acc_min": acc.min(),
           "test_acc_max": acc.max(), "train_error_mean": runs.final("train/error").mean(),
           "no_finite_minimiser": int(eq.no_minimiser.sum())}
    for level in eq.levels:
        row.update(_level_cells(level))
    row.update({"distinct_symmetry": eq.distinct["symmetry"],
                "distinct_modes": eq.distinct["modes"],
                "label_vectors": eq.distinct["functions"],
                "mean_disagreement": eq.mean_disagreement, "mean_test_error": 1 - acc.mean(),
                "pairs": len(pr["i"])})
    for name in ("naive_error", "aligned_error", "naive_loss", "aligned_loss"):
        row[f"{name}_barrier_mean"] = np.mean(pr[name])
        row[f"{name}_barrier_sd"] = np.std(pr[name])
    row.update({f"{k.replace(' ', '_')}_s": v for k, v in r["seconds"].items()})
    row.update({f"equivalence_{k.replace(' ', '_')}_s": v
                for k, v in eq.timings.items()})
    return row


def _seed_rows(r: dict) -> list[dict]:
    runs, eq = r["runs"], r["equivalence"]
    cols = {"seed": runs.seed_ids, "test_accuracy": runs.final("test/accuracy"),
            "train_error": runs.final("train/error"), "train_loss": runs.final_loss,
            "no_finite_minimiser": eq.no_minimiser.astype(int),
            **{f"{level.name}_class": level.labels for level in eq.levels}}
    return [{"config": r["entry"].label, **dict(zip(cols, vals, strict=True))}
            for vals in zip(*cols.values(), strict=True)]


def _pair_rows(r: dict) -> list[dict]:
    pr = r["pairs"]
    names = ["i", "j", "naive_loss", "aligned_loss", "naive_error", "aligned_error"]
    return [{"config": r["entry"].label, **dict(zip(names, vals, strict=True))}
            for vals in zip(*(pr[k] for k in names), strict=True)]


def _path_rows(r: dict) -> list[dict]:
    pr, rows = r["pairs"], []
    for path in ("naive", "aligned"):
        for metric, where in (("loss", "train"), ("error", "test")):
            values = pr[f"{path}_{metric}_path"]
            for p, (i, j) in enumerate(zip(pr["i"], pr["j"], strict=True)):
                rows += [{"config": r["entry"].label, "i": i, "j": j, "path": path,
                          "metric": f"{where} {metric}", "t": t, "value": v}
                         for t, v in zip(pr["alphas"], values[p], strict=True)]
    return rows


def _instability_rows(inst: dict) -> list[dict]:
    rows = []
    for i, k in enumerate(inst["splits"]):
        for j in range(inst["naive_error"].shape[1]):
            rows.append({"config": inst["label"], "split_step": int(k), "parent": j,
                         "continue_steps": inst["continue_steps"],
                         **{f"{n}_{m}": inst[f"{n}_{m}"][i, j]
                            for n in ("naive", "aligned") for m in ("error", "loss")},
                         "copy_a_test_acc": inst["child_accuracy"][i, j, 0],
                         "copy_b_test_acc": inst["child_accuracy"][i, j, 1]})
    return rows


# --- figures -----------------------------------------------------------------------------


def _relu_mlps(results: list[dict], dataset: str) -> list[dict]:
    return sorted((r for r in results if r["entry"].dataset == dataset
                   and r["entry"].model == "mlp" and r["entry"].activation == "relu"),
                  key=lambda r: r["entry"].width)


def _figures(config: Config, results: list[dict], insts: list[dict], out: Path) -> None:
    save = lambda fig, name: plots.save(fig, out / name, dpi=config.dpi)
    save(_main_figure(config, results), "main.png")
    for dataset in dict(config.train):
        mine = [r for r in results if r["entry"].dataset == dataset]
        if not mine:
            continue
        save(minima_plots.accuracy_histograms(
            {r["entry"].label: r["runs_accuracy"] for r in mine},
            title=f"{dataset}: test accuracy over {config.seeds} seeds"),
            f"accuracy_{dataset}.png")
        relu = _relu_mlps(results, dataset)
        if relu and not config.smoke:
            for metric, where in (("error", "test"), ("loss", "train")):
                save(minima_plots.barrier_vs_width(
                    [r["entry"].width for r in relu],
                    np.stack([r["pairs"][f"naive_{metric}"] for r in relu]),
                    np.stack([r["pairs"][f"aligned_{metric}"] for r in relu]), metric=metric,
                    title=f"{dataset} ReLU MLPs: {metric} barrier ({where} data)"),
                    f"barrier_width_{dataset}_{metric}.png")
    if not config.smoke:
        save(minima_plots.disagreement_vs_error(
            [r["summary"]["mean_test_error"] for r in results],
            [r["equivalence"].mean_disagreement for r in results],
            [r["entry"].label for r in results],
            title="disagreement between seeds vs test error"), "disagreement_error.png")
        for r in results:
            pr = r["pairs"]
            save(minima_plots.path_profiles(
                pr["alphas"], pr["naive_loss_path"], pr["aligned_loss_path"],
                ylabel="training loss",
                title=f"{r['entry'].label}: loss on straight paths between seeds"),
                f"paths_{r['entry'].label}.png")
    for inst in insts:
        save(minima_plots.instability(
            inst["splits"], inst["naive_error"], inst["aligned_error"], metric="test error",
            title=f"{inst['label']}: copies split at step k"),
            f"instability_{inst['label']}.png")


def _main_figure(config: Config, results: list[dict]):
    """Barrier vs width per dataset (training loss, naive and aligned), disagreement vs
    error, and the loss along naive and aligned paths of one mid-width MLP."""
    datasets = list(dict(config.train))
    fig, axes = subplots(1, len(datasets) + 2, figsize=(5.0 * (len(datasets) + 2), 4.2))
    for ax, dataset in zip(axes, datasets, strict=False):
        relu = _relu_mlps(results, dataset)
        minima_plots.barrier_vs_width(
            [r["entry"].width for r in relu],
            np.stack([r["pairs"]["naive_loss"] for r in relu]),
            np.stack([r["pairs"]["aligned_loss"] for r in relu]), metric="loss",
            title=f"{dataset} ReLU MLPs: training-loss barrier", ax=ax)
    minima_plots.disagreement_vs_error(
        [r["summary"]["mean_test_error"] for r in results],
        [r["equivalence"].mean_disagreement for r in results],
        [r["entry"].label for r in results], title="disagreement vs test error",
        ax=axes[len(datasets)])
    relu = _relu_mlps(results, datasets[0])
    shown = next((r for r in relu if r["entry"].width == 32), relu[0])
    pr = shown["pairs"]
    minima_plots.path_profiles(pr["alphas"], pr["naive_loss_path"], pr["aligned_loss_path"],
                               ylabel="training loss", ax=axes[-1],
                               title=f"{shown['entry'].label}: loss along paths")
    return fig


# --- the report --------------------------------------------------------------------------


def _ms(mean, sd) -> str:
    return f"{mean:.3f} ± {sd:.3f}"


def _count(row: dict, level: str) -> str:
    count, chao1 = row[level], row[f"{level}_chao1"]
    if chao1 <= count:
        return f"{count}"
    return (f"{count} (Chao1 {chao1:.0f}, {row[f'{level}_chao1_lo']:.0f}-"
            f"{row[f'{level}_chao1_hi']:.0f})")


def _table(rows: list[dict]) -> str:
    header = ["config", "params", "test accuracy", "train error", "no finite minimiser",
              "points", "mod symmetry", "modes (aligned)", "functions", "label vectors",
              "disagreement / error", "error barrier naive / aligned",
              "loss barrier naive / aligned"]
    body = [[r["config"], r["params"],
             f"{r['test_acc_mean']:.3f} ± {r['test_acc_sd']:.3f} "
             f"({r['test_acc_min']:.3f}-{r['test_acc_max']:.3f})",
             f"{r['train_error_mean']:.3f}", r["no_finite_minimiser"],
             *(_count(r, level) for level in ("points", "symmetry", "modes", "functions")),
             r["label_vectors"], f"{r['mean_disagreement']:.3f} / {r['mean_test_error']:.3f}",
             f"{_ms(r['naive_error_barrier_mean'], r['naive_error_barrier_sd'])} / "
             f"{_ms(r['aligned_error_barrier_mean'], r['aligned_error_barrier_sd'])}",
             f"{_ms(r['naive_loss_barrier_mean'], r['naive_loss_barrier_sd'])} / "
             f"{_ms(r['aligned_loss_barrier_mean'], r['aligned_loss_barrier_sd'])}"]
            for r in rows]
    return markdown_table(header, body)


def _sources_table(rows: list[dict]) -> str:
    both = {r["config"]: r["test_acc_var"] for r in rows if r["source"] == "both"}
    body = [[r["config"], r["source"], r["seeds"], f"{r['test_acc_mean']:.4f}",
             f"{r['test_acc_sd']:.4f}", f"{r['test_acc_var'] / both[r['config']]:.2f}",
             f"{r['mean_disagreement']:.4f}", r["label_vectors"], f"{r['train_loss_sd']:.2e}"]
            for r in rows]
    return markdown_table(["config", "varied", "seeds", "test accuracy mean", "sd",
                           "variance / both's", "mean disagreement", "label vectors",
                           "train loss sd"], body)


def _instability_table(rows: list[dict]) -> str:
    body = []
    for label in dict.fromkeys(r["config"] for r in rows):
        for k in dict.fromkeys(r["split_step"] for r in rows if r["config"] == label):
            mine = [r for r in rows if r["config"] == label and r["split_step"] == k]
            cell = lambda name, mine=mine: _ms(np.mean([r[name] for r in mine]),
                                               np.std([r[name] for r in mine]))
            acc = np.mean([(r["copy_a_test_acc"] + r["copy_b_test_acc"]) / 2 for r in mine])
            body.append([label, k, len(mine), cell("naive_error"), cell("aligned_error"),
                         cell("naive_loss"), cell("aligned_loss"), f"{acc:.3f}"])
    return markdown_table(["config", "split step k", "parents", "test-error barrier naive",
                           "... aligned", "loss barrier naive", "... aligned",
                           "copies' test accuracy"], body)


def _timings_table(rows: list[dict]) -> str:
    body = [[r["config"], r["seeds"], r["params"], f"{r['compile_s']:.1f}",
             f"{r['train_s']:.1f}", f"{r['equivalence_s']:.2f}",
             f"{r['equivalence_points_and_symmetry_s']:.2f}",
             f"{r['equivalence_modes_s']:.2f}", f"{r['equivalence_functions_s']:.2f}",
             f"{r['pair_barriers_s']:.2f}",
             "" if np.isnan(r["warm_analysis_s"]) else f"{r['warm_analysis_s']:.2f}"]
            for r in rows]
    return markdown_table(["config", "seeds", "params", "compile s", "train s",
                           "equivalence s", "... points+symmetry", "... modes",
                           "... functions", f"pair barriers s ({rows[0]['pairs']} pairs)",
                           "both again, compiled s"],
                          body)


def _method(config: Config) -> str:
    return (
        f"{config.seeds} seeds per configuration (own init and batch order each), trained "
        "with SGD + momentum (cross-entropy, no weight decay). Levels "
        "(`gdlab.atlas.equivalence`), each coarser than the one before: **points** "
        "(endpoints joined within 1e-3 x their median norm), **mod symmetry** (canonical "
        "forms: units sorted after rescaling relu units to unit incoming norm or "
        "sign-normalising tanh units), **modes** (seeds joined when the training-error "
        "barrier on the straight path after weight matching is at most 2%, tested against "
        f"each seed's {config.neighbours} nearest seeds once all are aligned to one, on "
        f"{config.mode_examples} training examples, {config.mode_points} points per path; "
        "single linkage), **functions** (identical predicted labels on the test set, joined "
        "with the modes so that the counts nest). 'label vectors' is the number of distinct "
        "test-set label vectors before that join (each relation's own count). Counts show "
        "Chao1 and its 95% interval (Chao's log-normal) when unseen classes are expected. "
        f"Barrier columns: mean ± sd over {config.pairs} seed pairs (2i, 2i+1), error on the "
        "test set, loss on the training set, max on the path minus the mean of the ends "
        f"({config.path_points} points); 'aligned' after weight matching (Git Re-Basin "
        "with relu rescaling). 'no finite minimiser': seeds with zero training error whose "
        "loss falls for ever as the output layer is scaled up (cross-entropy on separable "
        "data without weight decay; `gdlab.atlas.refine` warns about it): no endpoint there "
        "is a minimum, so points and symmetry classes count where training stopped, modes "
        "and functions what it found.")


SCOPE = ("Scope: ReLU widths 8, 32 and 128; width 512 is left out and the CNNs train for "
         "fewer steps (digits 120, MNIST-1D 250), because 256 seeds of width 512 (~0.27 s "
         "per step) and full-length vmapped CNNs (~0.4-0.8 s per step) would take the study "
         "past half an hour on a 2-core CPU. The MNIST-1D nets are far from fitting their "
         "training set at this length (train error 0.2-0.5): their modes are those of "
         "unfinished training.")


def _report(config: Config, out: Path, tables: dict, seconds: float) -> str:
    cfgs = [[d, c.optimizer, c.learning_rate, c.batch_size, c.steps] for d, c in config.train]
    cfgs += [[e.label, "", "", "", e.steps] for e in config.entries if e.steps is not None]
    parts = ["# Equivalent minima of real networks" + (" (smoke)" if config.smoke else ""),
             _method(config), *([] if config.smoke else [SCOPE]),
             "![main figure](main.png)",
             "Main figure: training-loss barrier between seed pairs against the width "
             "(naive and after weight matching; mean and 25-75% band), mean disagreement "
             "against mean test error (one point per configuration), and the training loss "
             "along naive and aligned straight paths. Table rows: `summary.csv`.",
             _table(tables["summary"])]
    if tables["sources"]:
        parts += ["## Sources of run-to-run variance",
                  f"{config.seeds} seeds of each configuration with only the initialisation "
                  "varied (one batch order for all: `train(..., data_seeds=0)`), only the "
                  "batch order varied (one init: `init_seeds=0`), and both (the run above). "
                  "Rows: `sources.csv`.", _sources_table(tables["sources"])]
    if tables["instability"]:
        parts += ["## Instability to the data order",
                  "Parents (the configuration's first seeds) trained k steps; two copies of "
                  "each continue with different batch orders (same hyperparameters; the "
                  "copies restart the momentum buffer at the split); barriers between the "
                  "two copies at the end (test error, training loss). Rows: "
                  "`instability.csv`.", _instability_table(tables["instability"])]
    parts += ["## Settings", markdown_table(["dataset", "optimizer", "lr", "batch", "steps"],
                                            cfgs),
              "## Time",
              f"Total {seconds:.0f} s ({seconds / 60:.1f} min). Equivalence = all four "
              "levels for every seed (canonical forms, weight matching to a reference and "
              "between neighbours, mode barriers, predictions); its first call includes "
              "compiling its kernels, the last column repeats equivalence and the pair "
              "barriers compiled (the analysis' own cost) for the 2,410-parameter MLP of the "
              "issue's speed target (digits-relu-32). Wall-clock seconds on a machine "
              "shared with other jobs.",
              _timings_table(tables["summary"]),
              "Figures: `main.png`, `accuracy_<dataset>.png` (test accuracy histograms), "
              "`barrier_width_<dataset>_<error|loss>.png` (barrier vs width, naive and "
              "aligned), `disagreement_error.png`, `paths_<config>.png` (training loss along "
              "naive and aligned paths), `instability_<config>.png` (barrier vs split step). "
              "Data: " + ", ".join(f"`{p.name}`" for p in sorted(out.glob("*.csv"))) + "."]
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    study_main("real_minima", __doc__, get_config, run)
