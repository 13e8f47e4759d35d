"""The `gdlab` command: list problems, train many seeds, run studies.

Bad arguments print a message naming the bad value and exit with code 2, before
anything is compiled or written.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from gdlab.checkpoint import EXIT_PREEMPTED, Preempted

EXAMPLES = """\
examples:
  gdlab problems
  gdlab train --problem himmelblau --seeds 4096 --steps 2000
  gdlab train --problem teacher_student --seeds 256 --steps 1000 --lr 0.05 \\
      --batch-size 64 --out runs/ts
  gdlab minima runs/ts
  gdlab run convexity --smoke
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gdlab", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="gdlab trains thousands of random seeds of a problem at once and "
                    "reports where they land.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("problems", help="list the built-in problems and their known minima")
    _add_train(sub)
    minima = sub.add_parser("minima", help="map the minima of a saved run (gdlab train --out)",
                            description="Classify every endpoint of a saved run and count the "
                                        "distinct minima: raw, modulo symmetry, as functions.")
    minima.add_argument("run_dir", help="run directory written by `gdlab train --out`")
    minima.add_argument("--grad-tol", type=float, default=None,
                        help="gradient-norm tolerance for convergence (default: scale-aware)")
    minima.add_argument("--dist-tol", type=float, default=None,
                        help="distance under which endpoints are one minimum (default: "
                             "scale-aware)")
    run = sub.add_parser("run", help="run a study from experiments/ (e.g. convexity)")
    run.add_argument("name", help="study name: a file experiments/NAME.py")
    run.add_argument("--smoke", action="store_true", help="tiny version that runs in seconds")
    run.add_argument("--out", help="run directory (default: runs/NAME-<timestamp>)")
    return parser


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train many seeds of a built-in problem and print a summary",
        description="Train S seeds of a built-in problem at once and print final-loss "
                    "quantiles, the number of diverged seeds and timings.")
    p.add_argument("--problem", required=True, help="built-in name (see `gdlab problems`)")
    p.add_argument("--seeds", type=int, default=1024, help="number of seeds S (default 1024)")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    p.add_argument("--lr", type=float, default=1e-2, help="learning rate (default 0.01)")
    p.add_argument("--optimizer", default="sgd",
                   help="sgd, momentum, nesterov, adam, adamw or rmsprop (default sgd)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="mini-batch size B (default: full batch)")
    p.add_argument("--sampling", default="with_replacement",
                   help="with_replacement or epoch (default with_replacement)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--eval-every", type=int, default=None,
                       help="evaluate the full-data loss every K steps (default steps/10)")
    group.add_argument("--eval-every-seconds", type=float, default=None,
                       help="evaluate the full-data loss every T seconds instead")
    p.add_argument("--key", type=int, default=0, help="integer random key (default 0)")
    p.add_argument("--out", default=None, help="save the run directory here")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --out to replace a run already saved there")
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


def cmd_problems() -> int:
    from gdlab import problems
    rows = [(name, len(p.known_minima) or "-", p.num_params(), p.num_data or "-", p.description)
            for name, p in ((n, f()) for n, f in problems.BUILTINS.items())]
    print(_table(["problem", "known minima", "params", "data N", "description"], rows))
    return 0


def cmd_minima(args) -> int:
    import gdlab
    from gdlab import problems
    runs = gdlab.load_runs(args.run_dir)
    problem = problems.from_spec(runs.manifest.get("problem", {}).get("spec"))
    atlas = gdlab.find_minima(problem, runs, grad_tol=args.grad_tol, dist_tol=args.dist_tol)
    s = atlas.summary()
    print(f"{problem.name}: {runs.num_seeds} seeds -> {s['minima']} minima, "
          f"{s['modulo_symmetry']} modulo symmetry, functions: {s['functions'] or '-'}, "
          f"Chao1 estimate {s['chao1']:.1f}")
    print("status: " + ", ".join(f"{k} {v}" for k, v in atlas.status_counts().items()))
    rows = [(i, f"{m.loss:.6g}", m.count, f"{m.fraction:.3f}",
             f"[{m.ci[0]:.3f}, {m.ci[1]:.3f}]", m.kind, f"{m.hessian_min:.3g}",
             f"{m.hessian_max:.3g}") for i, m in enumerate(atlas.minima[:40])]
    print(_table(["#", "loss", "seeds", "fraction", "95% CI", "kind", "hess min", "hess max"],
                 rows))
    if atlas.num_minima > 40:
        print(f"... {atlas.num_minima - 40} more minima")
    return 0


def cmd_train(args) -> int:
    import gdlab
    from gdlab import problems
    if args.distributed:
        from gdlab.devices import initialize_distributed
        initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    elif (args.coordinator, args.num_processes, args.process_id) != (None, None, None):
        raise ValueError("--coordinator, --num-processes and --process-id need --distributed")
    problem = problems.get(args.problem)
    eval_every = args.eval_every
    if eval_every is None and args.eval_every_seconds is None:
        eval_every = max(1, args.steps // 10)
    config = gdlab.TrainConfig(optimizer=args.optimizer, learning_rate=args.lr,
                               steps=args.steps, batch_size=args.batch_size,
                               sampling=args.sampling, eval_every=eval_every,
                               eval_every_seconds=args.eval_every_seconds)
    runs = gdlab.train(problem, config, seeds=args.seeds, key=args.key, out=args.out,
                       overwrite=args.overwrite, checkpoint_every=args.checkpoint_every,
                       resume=args.resume)
    from gdlab.devices import is_main_process
    if is_main_process():
        print(format_summary(problem.name, runs))
        if args.out:
            print(f"run saved to {args.out}")
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


EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"


def load_study(name: str):
    """Import experiments/NAME.py (from a source checkout) as a module."""
    path = EXPERIMENTS_DIR / f"{name}.py"
    if not path.exists():
        available = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py"))
        raise ValueError(f"unknown study {name!r}; available: {', '.join(available) or 'none'} "
                         f"(looked in {EXPERIMENTS_DIR})")
    module_name = f"gdlab_study_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def cmd_run(args) -> int:
    module = load_study(args.name)
    module.run(module.get_config(smoke=args.smoke), out=args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "problems":
            return cmd_problems()
        if args.command == "train":
            return cmd_train(args)
        if args.command == "minima":
            return cmd_minima(args)
        return cmd_run(args)
    except ValueError as err:
        print(f"gdlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Preempted as stop:
        print(f"gdlab {args.command}: {stop}", file=sys.stderr)
        return EXIT_PREEMPTED


if __name__ == "__main__":
    sys.exit(main())
