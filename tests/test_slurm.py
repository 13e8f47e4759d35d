"""The SLURM helpers: sbatch templates parse, and the sweep merge step tabulates runs."""

import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest

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


STAND_INS = {
    # srun: records its arguments, exits with $SRUN_RC, or on SIGTERM "saves" and exits 75.
    "srun": """#!/bin/bash
echo "srun $*" >> "$CALLS"
trap 'echo "srun got TERM" >> "$CALLS"; kill "$s" 2>/dev/null; sleep 0.3; exit 75' TERM
if [ -n "${SRUN_SLEEP:-}" ]; then sleep "$SRUN_SLEEP" >/dev/null 2>&1 & s=$!; wait "$s"; fi
exit "${SRUN_RC:-0}"
""",
    "scontrol": """#!/bin/bash
echo "scontrol $*" >> "$CALLS"
""",
}


def _run_template(tmp_path, name, env_extra, term_after=None):
    import os
    import signal
    import time
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool, text in STAND_INS.items():
        (bin_dir / tool).write_text(text)
        (bin_dir / tool).chmod(0o755)
    calls = tmp_path / "calls.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls),
           "SLURM_SUBMIT_DIR": str(tmp_path), "SLURM_JOB_NAME": "t", "SLURM_JOB_ID": "42",
           "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_JOB_ID": "41", **env_extra}
    proc = subprocess.Popen(["bash", str(SLURM / name)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if term_after is not None:
        time.sleep(term_after)
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, calls.read_text().splitlines(), out


@pytest.mark.parametrize("name", ["train.sbatch", "sweep_array.sbatch"])
def test_sigterm_to_the_batch_shell_reaches_srun_and_the_job_requeues(tmp_path, name):
    rc, calls, out = _run_template(tmp_path, name, {"SRUN_SLEEP": "20"}, term_after=1.0)
    assert rc == 75, out
    assert calls[0].startswith("srun ") and "--resume" in calls[0]
    assert "srun got TERM" in calls
    assert calls[-1] == ("scontrol requeue 42" if name == "train.sbatch"
                         else "scontrol requeue 41_1")


@pytest.mark.parametrize("srun_rc", [0, 2])
def test_a_finished_or_failed_task_is_not_requeued(tmp_path, srun_rc):
    rc, calls, _ = _run_template(tmp_path, "train.sbatch", {"SRUN_RC": str(srun_rc)})
    assert rc == srun_rc
    assert not any(c.startswith("scontrol") for c in calls)
