"""The `gdlab` command: list problems, train many seeds, run studies.

Bad arguments print a message naming the bad value and exit with code 2, before
anything is compiled or written.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pkgutil
import sys
import tomllib

import numpy as np

from gdlab import _argfields
from gdlab._checks import InputError
from gdlab.core.checkpoint import EXIT_PREEMPTED, Preempted

EXAMPLES = """\
examples:
  gdlab problems
  gdlab train --problem himmelblau --seeds 4096 --steps 2000
  gdlab train --problem teacher_student --problem.hidden 16 --seeds 256 --steps 1000 \\
      --lr 0.05 --batch-size 64 --out runs/ts --tensorboard runs/ts/tb
  gdlab train --problem my_pkg.my_module:make_problem --config-file train.toml
  gdlab sweep --problem digits --seeds 64 --steps 2000 --batch-size 32 \\
      --learning-rate-grid 0.01,0.03,0.1,0.3 --metric test/accuracy
  gdlab minima runs/ts
  gdlab profile --problem teacher_student --batch-size 64 --seeds 32
  gdlab sweep-batch --problem least_squares --batch-sizes 1,4,16,64,256 --target 0.15 \\
      --lr-grid 0.05,0.1,0.2,0.4,0.8 --seeds 16 --noise-scale
  gdlab run convexity --smoke --set trajectories=10
"""
# The CLI's own defaults where they differ from TrainConfig's (a rate that trains the
# built-in problems in the default 1000 steps).
CLI_DEFAULTS = {"learning_rate": 1e-2}
PROBLEM_COMMANDS = ("train", "profile", "sweep", "sweep-batch")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; `argv` decides which problem's `--problem.NAME` arguments it offers."""
    from gdlab import __version__
    parser = argparse.ArgumentParser(
        prog="gdlab", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="gdlab trains thousands of random seeds of a problem at once and "
                    "reports where they land.")
    parser.add_argument("--version", action="version", version=f"gdlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("problems", help="list the built-in problems and their known minima")
    try:
        factory = _problem_factory(argv)
    except InputError:  # reported when the command runs (exit code 2)
        factory = None
    for add in (_add_train, _add_sweep, _add_profile, _add_sweep_batch):
        add(sub, factory)
    _add_minima(sub)
    _add_run(sub)
    return parser


def _problem_factory(argv: list[str] | None):
    """The factory named by `--problem` in argv (None if absent or unknown: errors later)."""
    from gdlab import problems
    argv = list(sys.argv[1:] if argv is None else argv)
    name = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--problem"), None)
    name = name or next((a.split("=", 1)[1] for a in argv if a.startswith("--problem=")), None)
    if name is None:
        return None
    if ":" in name:
        return _argfields.import_factory(name)
    return problems.BUILTINS.get(name)


def _add_problem(p, factory, required: bool = True) -> None:
    p.add_argument("--problem", required=required,
                   help="built-in name (see `gdlab problems`) or package.module:function "
                        "returning a gdlab.Problem; its arguments are --problem.NAME VALUE")
    if factory is not None:
        _argfields.add_signature_arguments(p, factory, "problem")


def _add_config(p, skip: tuple[str, ...] = (), schedule: bool = True) -> None:
    """Every TrainConfig field as an option, and a config file."""
    from gdlab.config import OPTIMIZERS, SAMPLING_RNGS, SAMPLINGS, TrainConfig
    group = p.add_argument_group("training (gdlab.TrainConfig)",
                                 "every field of TrainConfig; flags override --config-file")
    _argfields.add_dataclass_arguments(
        group, TrainConfig, skip=("eval_every", "eval_every_seconds", *skip),
        choices={"optimizer": OPTIMIZERS, "sampling": SAMPLINGS,
                 "sampling_rng": SAMPLING_RNGS}, aliases={"learning_rate": "--lr"},
        defaults=CLI_DEFAULTS)
    if schedule:
        when = group.add_mutually_exclusive_group()
        when.add_argument("--eval-every", type=int, default=None, dest="eval_every",
                          help="measure the loss every K steps (default steps // 10)")
        when.add_argument("--eval-every-seconds", type=float, default=None,
                          dest="eval_every_seconds",
                          help="measure the loss every T seconds instead")
    group.add_argument("--config-file", default=None, metavar="TOML",
                       help="a TOML file with a [train] table of TrainConfig fields and a "
                            "[problem] table of the problem's arguments")


def _add_train(sub, factory) -> None:
    p = sub.add_parser(
        "train", help="train many seeds of a problem and print a summary",
        description="Train S seeds of a problem at once and print final-loss quantiles, "
                    "the number of diverged seeds and timings.")
    _add_problem(p, factory)
    _add_config(p)
    p.add_argument("--seeds", type=int, default=1024, help="number of seeds S (default 1024)")
    p.add_argument("--key", type=int, default=0, help="integer random key (default 0)")
    p.add_argument("--out", default=None,
                   help="save the run directory here (with metrics.jsonl, live)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --out to replace a run already saved there")
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="write TensorBoard event files (loss quantiles over seeds, metrics, "
                        "diverged count, throughput) to DIR while training")
    p.add_argument("--trajectories", type=int, default=0,
                   help="record the params of the first K seeds at every evaluation")
    p.add_argument("--seed-block", type=int, default=None,
                   help="seeds vmapped together on one device (default: from memory)")
    p.add_argument("--seeds-per-call", type=int, default=None,
                   help="train at most this many seeds at once (default: what fits)")
    p.add_argument("--unroll", type=int, default=1, help="steps per scan iteration")
    p.add_argument("--checkpoint-every", type=float, default=None, metavar="SECONDS",
                   help="with --out: save a checkpoint every SECONDS (0: every chunk); "
                        "SIGTERM always saves one and exits with code 75")
    p.add_argument("--resume", action="store_true",
                   help="with --out: continue from the newest valid checkpoint there")
    dist = p.add_argument_group(
        "multi-process runs", "one process per GPU (e.g. under srun); only process 0 writes")
    dist.add_argument("--distributed", action="store_true",
                      help="join a jax.distributed run first (SLURM is detected when the "
                           "three options below are not given)")
    dist.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                      help="address of process 0's coordinator service")
    dist.add_argument("--num-processes", type=int, default=None, help="number of processes")
    dist.add_argument("--process-id", type=int, default=None, help="this process's id")


def _add_sweep(sub, factory) -> None:
    p = sub.add_parser(
        "sweep", help="train a grid of learning rates / momenta / weight decays x seeds",
        description="Train every seed at every point of a hyperparameter grid in one "
                    "compiled call (gdlab.sweep) and print the table and the best point.")
    _add_problem(p, factory)
    _add_config(p)
    p.add_argument("--seeds", type=int, default=16, help="seeds per grid point (default 16)")
    p.add_argument("--key", type=int, default=0, help="integer random key (default 0)")
    for name in ("learning_rate", "momentum", "weight_decay"):
        p.add_argument(f"--{name.replace('_', '-')}-grid", type=_number_list(float),
                       default=None, dest=f"{name}_grid", metavar="V1,V2,...",
                       help=f"comma-separated values of {name} to try")
    p.add_argument("--metric", default="train/loss",
                   help="metric the best point is chosen by (default train/loss; e.g. "
                        "test/accuracy)")


def _add_profile(sub, factory) -> None:
    p = sub.add_parser(
        "profile", help="time the parts of a training step (derivative, update, loss)",
        description="Time, apart, the derivative on a batch of B points, the optimizer "
                    "update, the loss on the evaluation data and the fused step, for S "
                    "vmapped seeds on one device; print medians, shares, the dispatch floor "
                    "and achieved FLOP/s (from XLA's cost analysis). Compile time apart.")
    _add_problem(p, factory)
    _add_config(p, skip=("steps", "chunk_steps"))
    p.add_argument("--seeds", type=int, default=1, help="seeds S vmapped together (default 1)")
    p.add_argument("--eval-points", type=int, default=None,
                   help="measure the loss on the first N_eval data points (default: all)")
    p.add_argument("--repeats", type=int, default=15,
                   help="timed calls per part; median and spread over them (default 15)")


def _add_minima(sub) -> None:
    minima = sub.add_parser("minima", help="map the minima of a saved run (gdlab train --out)",
                            description="Classify every endpoint of a saved run and count the "
                                        "distinct minima: raw, modulo symmetry, as functions.")
    minima.add_argument("run_dir", help="run directory written by `gdlab train --out`")
    minima.add_argument("--grad-tol", type=float, default=None,
                        help="gradient-norm tolerance for convergence (default: scale-aware)")
    minima.add_argument("--dist-tol", type=float, default=None,
                        help="distance under which endpoints are one minimum (default: "
                             "scale-aware)")


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="run a study from experiments/ (e.g. convexity)")
    run.add_argument("name", help="study name (gdlab.experiments.NAME, experiments/NAME.py)")
    run.add_argument("--smoke", action="store_true", help="tiny version that runs in seconds")
    run.add_argument("--out", help="run directory (default: runs/NAME-<timestamp>)")
    run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a top-level field of the study's config (repeatable)")


def problem_from_args(args):
    """The Problem named by --problem, built with its --problem.NAME arguments."""
    from gdlab import problems
    from gdlab.problem import Problem
    factory = _problem_factory(["--problem", args.problem])
    if factory is None:
        problems.get(args.problem)  # raises the unknown-problem message
    kwargs = {**_config_file(args).get("problem", {}),
              **_argfields.signature_kwargs(args, factory, "problem")}
    problem = factory(**kwargs)
    if not isinstance(problem, Problem):
        raise InputError(f"{args.problem!r} returned {type(problem).__name__}, not a "
                         "gdlab.Problem")
    return problem


def config_from_args(args, defaults: dict | None = None, **fixed):
    """The TrainConfig of the flags, over --config-file's [train] table, over CLI defaults."""
    import gdlab
    values = {**CLI_DEFAULTS, **(defaults or {}), **_config_file(args).get("train", {}),
              **_argfields.given(args, gdlab.TrainConfig), **fixed}
    unknown = set(values) - {f.name for f in dataclasses.fields(gdlab.TrainConfig)}
    if unknown:
        raise InputError(f"unknown TrainConfig fields {sorted(unknown)} in --config-file")
    return gdlab.TrainConfig(**values)


def _config_file(args) -> dict:
    path = getattr(args, "config_file", None)
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InputError(f"cannot read --config-file {path!r}: {err}") from None
    bad = set(data) - {"train", "problem"}
    if bad:
        raise InputError(f"--config-file {path!r} has tables {sorted(bad)}; valid: train, "
                         "problem")
    return data


def cmd_profile(args) -> int:
    import gdlab
    from gdlab.costs.profile import StepProfile
    problem = problem_from_args(args)
    config = config_from_args(args, eval_every=1)
    prof = gdlab.profile_step(problem, config, seeds=args.seeds, eval_points=args.eval_points,
                              repeats=args.repeats)
    compile_s = sum(p.compile_seconds for p in prof.parts.values())
    print(f"{prof.problem}: S={prof.seeds} seeds, B={prof.batch_size or '-'}, "
          f"N_eval={prof.eval_points or '-'}, P={prof.num_params} params, {prof.optimizer}, "
          f"on {prof.device}; compile {compile_s:.2f} s (apart)")
    print(_table(list(StepProfile.HEADER), prof.rows()))
    print("median: per call of all S seeds, timed inside a compiled loop of `reps/call` "
          "repetitions minus that loop's empty call; share: of derivative + update + sample "
          "+ loss (the loss measured every step); single call: one dispatched call, floor "
          "included")
    return 0


def cmd_problems() -> int:
    from gdlab import problems
    rows = [(name, len(p.known_minima) or "-", p.num_params(), p.num_data or "-", p.description)
            for name, p in ((n, f()) for n, f in problems.BUILTINS.items())]
    print(_table(["problem", "known minima", "params", "data N", "description"], rows))
    return 0


def cmd_minima(args) -> int:
    import gdlab
    from gdlab import problems
    manifest = gdlab.load_runs(args.run_dir).manifest  # to learn which problem it is
    problem = problems.from_spec(manifest.get("problem", {}).get("spec"))
    runs = gdlab.load_runs(args.run_dir, problem=problem)  # params in the problem's tree
    atlas = gdlab.find_minima(problem, runs, grad_tol=args.grad_tol, dist_tol=args.dist_tol)
    s = atlas.summary()
    print(f"{problem.name}: {runs.num_seeds} seeds -> {s['minima']} minima, "
          f"{s['modulo_symmetry']} modulo symmetry, functions: {s['functions'] or '-'}, "
          f"Chao1 estimate {s['chao1']:.1f}")
    print("status: " + ", ".join(f"{k} {v}" for k, v in atlas.status_counts().items()))
    if not atlas.minima:
        print(_no_minimum_hint(atlas))
        return 0
    rows = [(i, f"{m.loss:.6g}", m.count, f"{m.fraction:.3f}",
             f"[{m.ci[0]:.3f}, {m.ci[1]:.3f}]", m.kind, f"{m.hessian_min:.3g}",
             f"{m.hessian_max:.3g}") for i, m in enumerate(atlas.minima[:40])]
    print(_table(["#", "loss", "seeds", "fraction", "95% CI", "kind", "hess min", "hess max"],
                 rows))
    if atlas.num_minima > 40:
        print(f"... {atlas.num_minima - 40} more minima")
    return 0


def _no_minimum_hint(atlas) -> str:
    """Why no seed ended in a minimum, and what to change."""
    live = np.isfinite(atlas.grad_norm)
    tol = atlas.tolerances["grad_tol"]
    if not live.any():
        return "no seed ended in a minimum: every seed diverged (lower the learning rate)"
    median = float(np.median(atlas.grad_norm[live]))
    if atlas.status_counts()["saddle"]:
        return ("no seed ended in a minimum: converged seeds are saddles (negative curvature "
                "beyond --hess-tol); train longer or refine them")
    return (f"no seed ended in a minimum: the endpoints' gradient norms (median {median:.3g}) "
            f"are above the convergence tolerance {tol:.3g}; train longer (--steps), or pass "
            f"--grad-tol {median * 2:.2g} to call them converged")


def cmd_train(args) -> int:
    import gdlab
    from gdlab.core.devices import initialize_distributed, is_main_process
    if args.distributed:
        initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    elif (args.coordinator, args.num_processes, args.process_id) != (None, None, None):
        raise InputError("--coordinator, --num-processes and --process-id need --distributed")
    problem, config = problem_from_args(args), config_from_args(args)
    with _live_metrics(args) as live:
        runs = gdlab.train(problem, config, seeds=args.seeds, key=args.key, out=args.out,
                           overwrite=args.overwrite, checkpoint_every=args.checkpoint_every,
                           resume=args.resume, trajectories=args.trajectories,
                           seed_block=args.seed_block, seeds_per_call=args.seeds_per_call,
                           unroll=args.unroll, on_eval=live)
    if is_main_process():
        print(format_summary(problem.name, runs))
        if args.out:
            print(f"run saved to {args.out}")
        if args.tensorboard:
            print(f"TensorBoard events in {args.tensorboard} (tensorboard --logdir "
                  f"{args.tensorboard})")
    return 0


def _live_metrics(args):
    from gdlab.core.writers import LiveMetrics, TensorBoardWriter
    writers = [TensorBoardWriter(args.tensorboard)] if args.tensorboard else []
    return LiveMetrics(writers)


def cmd_sweep(args) -> int:
    import gdlab
    problem, config = problem_from_args(args), config_from_args(args)
    grids = {k: getattr(args, f"{k}_grid") for k in ("learning_rate", "momentum",
                                                     "weight_decay")}
    sw = gdlab.sweep(problem, config, seeds=args.seeds, key=args.key, progress=True,
                     **{k: v for k, v in grids.items() if v is not None})
    metrics = ["train/loss"] + ([args.metric] if args.metric != "train/loss" else [])
    header, rows = sw.table(metrics)
    print(f"{problem.name}: {len(sw.grid)} grid points x {args.seeds} seeds, one compiled "
          f"call ({sw.timings['seconds']:.1f} s, compile {sw.timings['compile_seconds']:.1f} s)")
    print(_table(header, [[f"{c:.4g}" if isinstance(c, float) else c for c in r] for r in rows]))
    print(f"best by {args.metric} (median over seeds): {sw.best(args.metric)}")
    return 0


def format_summary(name: str, runs) -> str:
    """The summary table `gdlab train` prints."""
    s = runs.summary()
    rows = [("seeds", s["seeds"]), ("diverged", s["diverged"]),
            ("final loss min", f"{s['loss_min']:.6g}"), ("final loss 25%", f"{s['loss_q25']:.6g}"),
            ("final loss median", f"{s['loss_median']:.6g}"),
            ("final loss 75%", f"{s['loss_q75']:.6g}"), ("final loss max", f"{s['loss_max']:.6g}"),
            ("compile time", f"{s['compile_seconds']:.2f} s"),
            ("train time", f"{s['train_seconds']:.3f} s"),
            ("loss evaluation time", f"{s['eval_seconds']:.3f} s"),
            ("seed-steps / s", f"{s['seed_steps_per_second']:.3g}")]
    return f"{name}\n" + _table(["", "value"], rows)


def _table(header, rows) -> str:
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]])


def _number_list(kind):
    def parse(text: str) -> list:
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__} values, got {text!r}") from None
    return parse


def _add_sweep_batch(sub, factory) -> None:
    p = sub.add_parser(
        "sweep-batch", help="steps / examples / wall time to a target loss per batch size",
        description="Train every seed at every batch size (one compile per batch size, the "
                    "learning-rate grid vmapped) until the full-data loss reaches --target; "
                    "print the table, the fit S = S_min (1 + B_crit / B), and seeds that never "
                    "reached the target. --steps is the step budget per batch size "
                    "(default 10000 here).")
    _add_problem(p, factory)
    _add_config(p, skip=("batch_size", "chunk_steps"), schedule=False)
    p.add_argument("--target", type=float, required=True, help="full-data loss to reach (> 0)")
    p.add_argument("--batch-sizes", type=_number_list(int), default=None,
                   help="comma-separated batch sizes in 1..N (default: powers of 2 and N)")
    p.add_argument("--seeds", type=int, default=16, help="number of seeds S (default 16)")
    p.add_argument("--lr-grid", type=_number_list(float), default=None,
                   help="comma-separated rates to tune per batch size (replaces --lr)")
    p.add_argument("--lr-scaling", default="none", choices=("none", "sqrt", "linear"),
                   help="scale the rates with B / base batch size (default none)")
    p.add_argument("--base-batch-size", type=int, default=None,
                   help="batch size the rates are given for (default: the smallest)")
    p.add_argument("--key", type=int, default=0, help="integer random key (default 0)")
    p.add_argument("--noise-scale", action="store_true",
                   help="also measure B_simple at the target along full-batch training")
    p.add_argument("--no-timing", action="store_true", help="skip measuring step times")


def cmd_sweep_batch(args) -> int:
    import gdlab
    problem = problem_from_args(args)
    n = problem.num_data
    sizes = args.batch_sizes
    if sizes is None and n is not None:
        sizes = sorted({2**k for k in range(n.bit_length()) if 2**k <= n} | {n})
    config = config_from_args(args, defaults={"steps": 10000}, eval_every=1)
    sweep = gdlab.sweep_batch_size(problem, config, sizes if sizes is not None else [],
                                   args.target, seeds=args.seeds, key=args.key,
                                   learning_rates=args.lr_grid, lr_scaling=args.lr_scaling,
                                   base_batch_size=args.base_batch_size,
                                   timing=not args.no_timing, progress=True)
    print(format_sweep(sweep))
    if args.noise_scale:
        print(_sweep_noise_line(problem, config, sweep))
    return 0


def format_sweep(sweep) -> str:
    """The table, fit and never-reached seeds `gdlab sweep-batch` prints."""
    header, rows = sweep.table()
    lines = [f"{sweep.problem}: target loss {sweep.target_loss:g}, sampling {sweep.sampling}",
             _table(header, rows)]
    try:
        f = sweep.fit()
        lines.append(f"fit S = S_min (1 + B_crit / B): S_min {f.s_min:.4g} "
                     f"[{f.s_min_ci[0]:.4g}, {f.s_min_ci[1]:.4g}], E_min {f.e_min:.4g} "
                     f"[{f.e_min_ci[0]:.4g}, {f.e_min_ci[1]:.4g}], B_crit {f.b_crit:.4g} "
                     f"[{f.b_crit_ci[0]:.4g}, {f.b_crit_ci[1]:.4g}], R^2 {f.r2_steps:.3f}")
    except ValueError as err:
        lines.append(f"no fit: {err}")
    for b, seeds in sweep.unreached_seeds().items():
        lines.append(f"B={b}: {len(seeds)} seed(s) never reached the target: {seeds}")
    return "\n".join(lines)


def _sweep_noise_line(problem, config, sweep) -> str:
    import dataclasses

    import numpy as np

    from gdlab.batch.noise import track_noise_scale
    med = sweep.median("steps")[-1, 0]
    if not np.isfinite(med):
        return "noise scale: the largest batch size never reached the target"
    track = dataclasses.replace(config, learning_rate=float(sweep.learning_rates[-1]),
                                batch_size=None)
    steps = np.unique(np.r_[0, np.geomspace(1, max(2.0, 3 * med), 40).astype(int)])
    b = track_noise_scale(problem, track, steps.tolist()).at_loss(sweep.target_loss)
    return (f"noise scale B_simple at the target (full-batch GD, lr {track.learning_rate:.3g}, "
            f"{len(b)} seeds): median {np.nanmedian(b):.4g}, range "
            f"[{np.nanmin(b):.4g}, {np.nanmax(b):.4g}]")


def available_studies() -> list[str]:
    """Names of the studies shipped as gdlab.experiments (experiments/ in a checkout)."""
    import gdlab.experiments
    return sorted(m.name for m in pkgutil.iter_modules(gdlab.experiments.__path__)
                  if not m.name.startswith("_"))


def load_study(name: str):
    """The study module `gdlab.experiments.NAME` (the file experiments/NAME.py)."""
    available = available_studies()
    if name not in available:
        raise InputError(f"unknown study {name!r}; available: {', '.join(available) or 'none'}")
    return importlib.import_module(f"gdlab.experiments.{name}")


def cmd_run(args) -> int:
    module = load_study(args.name)
    config = module.get_config(smoke=args.smoke)
    module.run(override(config, args.set), out=args.out)
    return 0


def override(config, assignments: list[str]):
    """The study config with FIELD=VALUE assignments applied (values parsed like the field)."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        if not sep or name not in fields:
            raise InputError(f"--set {item!r}: give FIELD=VALUE with FIELD one of "
                             f"{', '.join(fields)}")
        changes[name] = _argfields.parse_like(text, getattr(config, name), f"--set {name}")
    return dataclasses.replace(config, **changes)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        if args.command == "problems":
            return cmd_problems()
        if args.command == "train":
            return cmd_train(args)
        if args.command == "minima":
            return cmd_minima(args)
        if args.command == "profile":
            return cmd_profile(args)
        if args.command == "sweep":
            return cmd_sweep(args)
        if args.command == "sweep-batch":
            return cmd_sweep_batch(args)
        return cmd_run(args)
    except InputError as err:  # a bad input: its message says what is valid; bugs keep tracebacks
        print(f"gdlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Preempted as stop:
        print(f"gdlab {args.command}: {stop}", file=sys.stderr)
        return EXIT_PREEMPTED


if __name__ == "__main__":
    sys.exit(main())
