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
    (["--optimizer", "sgdd"], "unknown optimizer 'sgdd'"),
    (["--sampling", "nope"], "unknown sampling 'nope'"),
    (["--seeds", "0"], "seeds must be a positive number"),
    (["--eval-every", "0"], "eval_every must be an integer >= 1, got 0"),
])
def test_train_bad_input_exits_2_with_message(capsys, args, message):
    code = cli.main(["train", "--problem", "least_squares", *args])
    assert code == 2
    assert message in capsys.readouterr().err


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
