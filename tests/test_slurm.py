"""The SLURM helpers: sbatch templates parse, and the sweep merge step tabulates runs."""

import importlib.util
import subprocess
from pathlib import Path

import numpy as np

import gdlab
from gdlab import problems
from gdlab.core import checkpoint

SLURM = Path(__file__).resolve().parent.parent / "scripts" / "slurm"


def _merge_module():
    spec = importlib.util.spec_from_file_location("merge_runs", SLURM / "merge_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sbatch_templates_are_valid_bash_and_resume_on_preemption():
    for name in ("train.sbatch", "sweep_array.sbatch"):
        path = SLURM / name
        subprocess.run(["bash", "-n", str(path)], check=True)
        text = path.read_text()
        assert "--resume" in text and "scontrol requeue" in text and '"$rc" -eq 75' in text
    assert str(checkpoint.EXIT_PREEMPTED) == "75"


def test_merge_tabulates_every_finished_run_and_lists_unfinished(tmp_path, capsys):
    problem = problems.teacher_student(d_in=2, hidden=3, n=64)
    for b in (16, 8):
        cfg = gdlab.TrainConfig(learning_rate=0.1, steps=20, batch_size=b, eval_every=10)
        gdlab.train(problem, cfg, seeds=4, out=tmp_path / f"bs-{b}")
    checkpoint.save(tmp_path / "bs-32", 10, {"x": np.zeros(2, np.float32)},
                    {"evals": np.zeros((1, 4))}, "f")
    assert _merge_module().main([str(tmp_path)]) == 0
    text = (tmp_path / "merged.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("| bs-")]
    assert [line.split("|")[1].strip() for line in lines] == ["bs-8", "bs-16"]
    assert "Unfinished (checkpoints only): bs-32" in text
    assert "merged table written" in capsys.readouterr().out


def test_merge_of_an_empty_directory_is_a_clear_error(tmp_path, capsys):
    assert _merge_module().main([str(tmp_path)]) == 2
    assert "no saved run under" in capsys.readouterr().err
