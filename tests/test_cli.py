import subprocess
import sys

import pytest

from gdlab import cli


def test_problems_lists_every_builtin(capsys):
    assert cli.main(["problems"]) == 0
    out = capsys.readouterr().out
    for name in ("himmelblau", "six_hump_camel", "rastrigin", "teacher_student", "least_squares"):
        assert name in out
    assert "121" in out  # Rastrigin's known minima


def test_train_prints_summary_and_saves(capsys, tmp_path):
    code = cli.main(["train", "--problem", "himmelblau", "--seeds", "64", "--steps", "300",
                     "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    for label in ("final loss median", "diverged", "compile time", "seed-steps / s"):
        assert label in out
    assert (tmp_path / "run" / "runs.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--steps", "0"], "steps must be an integer >= 1, got 0"),
    (["--lr", "-1"], "learning_rate must be a finite number > 0 (or an optax schedule), got -1.0"),
    (["--seeds", "0"], "seeds must be a positive number"),
    (["--eval-every", "0"], "eval_every must be an integer >= 1, got 0"),
])
def test_train_bad_input_exits_2_with_message(capsys, args, message):
    code = cli.main(["train", "--problem", "least_squares", *args])
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--optimizer", "sgdd"], "invalid choice: 'sgdd'"),
    (["--sampling", "nope"], "invalid choice: 'nope'"),
])
def test_names_outside_the_choices_exit_2(capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "--problem", "least_squares", *args])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_unknown_problem_exits_2(capsys):
    assert cli.main(["train", "--problem", "nope"]) == 2
    assert "unknown problem 'nope'; built-ins are:" in capsys.readouterr().err


def test_existing_run_is_not_overwritten(capsys, tmp_path):
    args = ["train", "--problem", "himmelblau", "--seeds", "4", "--steps", "10",
            "--out", str(tmp_path)]
    assert cli.main(args) == 0
    before = (tmp_path / "arrays.npz").read_bytes()
    assert cli.main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "arrays.npz").read_bytes() == before
    assert cli.main([*args, "--overwrite"]) == 0


def test_both_eval_schedules_rejected_by_parser():
    with pytest.raises(SystemExit) as err:
        cli.main(["train", "--problem", "himmelblau", "--eval-every", "3",
                  "--eval-every-seconds", "1"])
    assert err.value.code == 2


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "gdlab.cli", "train", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "--batch-size" in out.stdout and "--problem" in out.stdout


def test_version(capsys):
    import gdlab
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and f"gdlab {gdlab.__version__}" in capsys.readouterr().out


def test_every_train_config_field_is_an_option():
    import dataclasses

    import gdlab
    text = cli.build_parser(["train", "--problem", "himmelblau"]).format_help()
    sub = cli.build_parser(["train", "--problem", "himmelblau"])._subparsers._group_actions[0]
    help_text = sub.choices["train"].format_help()
    for field in dataclasses.fields(gdlab.TrainConfig):
        assert f"--{field.name.replace('_', '-')}" in help_text, field.name
    assert "gdlab" in text


def test_problem_arguments_come_from_the_factory_signature(capsys, tmp_path):
    code = cli.main(["train", "--problem", "teacher_student", "--problem.hidden", "3",
                     "--problem.d_in", "2", "--problem.n", "32", "--seeds", "4", "--steps",
                     "10", "--momentum", "0.5", "--optimizer", "momentum",
                     "--out", str(tmp_path / "r")])
    assert code == 0
    import gdlab
    runs = gdlab.load_runs(tmp_path / "r")
    assert runs.manifest["problem"]["num_params"] == 2 * 3 + 3 + 3 + 1
    assert runs.manifest["config"]["momentum"] == 0.5
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(runs.eval_steps) and '"train/loss/q50"' in lines[-1]


def test_bad_problem_argument_exits_2(capsys):
    assert cli.main(["train", "--problem", "teacher_student", "--problem.hidden", "abc"]) == 2
    assert "--problem.hidden: cannot read 'abc' as int" in capsys.readouterr().err


def test_config_file_with_flags_overriding(tmp_path, capsys):
    path = tmp_path / "train.toml"
    path.write_text('[train]\nsteps = 20\nlearning_rate = 0.02\n\n[problem]\nn = 40\n')
    assert cli.main(["train", "--problem", "least_squares", "--config-file", str(path),
                     "--steps", "30", "--seeds", "2", "--out", str(tmp_path / "r")]) == 0
    import gdlab
    m = gdlab.load_runs(tmp_path / "r").manifest
    assert m["config"]["steps"] == 30 and m["config"]["learning_rate"] == 0.02
    assert m["problem"]["num_data"] == 40
    path.write_text("[train]\nstepz = 3\n")
    assert cli.main(["train", "--problem", "least_squares", "--config-file", str(path)]) == 2
    assert "unknown TrainConfig fields ['stepz']" in capsys.readouterr().err


def test_user_problem_as_module_function(tmp_path, capsys, monkeypatch):
    (tmp_path / "my_problems.py").write_text(
        "import jax, jax.numpy as jnp, gdlab\n"
        "def bowl(dim: int = 3, scale: float = 1.0):\n"
        "    return gdlab.Problem(name='bowl', init=lambda k: jax.random.normal(k, (dim,)),\n"
        "                         loss=lambda w, b: scale * jnp.sum(w ** 2))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["train", "--problem", "my_problems:bowl", "--problem.dim", "5",
                     "--seeds", "3", "--steps", "50", "--lr", "0.1"]) == 0
    assert "bowl" in capsys.readouterr().out
    assert cli.main(["train", "--problem", "my_problems:nope"]) == 2
    assert "cannot load problem factory 'my_problems:nope'" in capsys.readouterr().err


def test_tensorboard_events_hold_the_loss_quantiles(tmp_path, capsys):
    from gdlab.core.writers import read_events
    assert cli.main(["train", "--problem", "himmelblau", "--seeds", "8", "--steps", "40",
                     "--tensorboard", str(tmp_path / "tb")]) == 0
    (events,) = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    tags = {tag for _, tag, _ in read_events(events)}
    assert {"train/loss/q50", "train/loss/q10", "train/loss/q90", "seeds/diverged",
            "time/steps_per_second"} <= tags


def test_sweep_command_prints_the_grid_and_the_best_point(capsys):
    with pytest.warns(UserWarning, match="is the largest value of the grid"):
        assert cli.main(["sweep", "--problem", "himmelblau", "--seeds", "4", "--steps", "50",
                         "--learning-rate-grid", "0.001,0.003,0.01"]) == 0
    out = capsys.readouterr().out
    assert "3 grid points x 4 seeds, one compiled call" in out
    assert "best by train/loss" in out


def test_run_overrides_a_study_field():
    from gdlab.experiments import convexity
    config = cli.override(convexity.get_config(smoke=True), ["trajectories=3", "smoke=true"])
    assert config.trajectories == 3 and config.smoke is True
    with pytest.raises(gdlab_input_error(), match="give FIELD=VALUE with FIELD one of"):
        cli.override(config, ["nope=1"])


def gdlab_input_error():
    import gdlab
    return gdlab.InputError


def test_resuming_a_finished_run_returns_it_and_exits_0(tmp_path, capsys):
    args = ["train", "--problem", "himmelblau", "--seeds", "4", "--steps", "10",
            "--out", str(tmp_path / "r")]
    assert cli.main(args) == 0
    before = (tmp_path / "r" / "arrays.npz").read_bytes()
    capsys.readouterr()
    assert cli.main([*args, "--resume"]) == 0
    captured = capsys.readouterr()
    assert "already holds the finished run; nothing to resume" in captured.err
    assert "final loss median" in captured.out
    assert (tmp_path / "r" / "arrays.npz").read_bytes() == before
