"""Two processes with 2 CPU devices each give the same run as one process with 4 (bitwise)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import gdlab
from gdlab import cli

WORKER = Path(__file__).with_name("dist_worker.py")
sys.path.insert(0, str(WORKER.parent))
from dist_worker import run_spec  # noqa: E402
from helpers import assert_trees_equal  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process_with_as_many_devices(tmp_path, devices):
    out, port = tmp_path / "run", _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(port), str(i), str(out)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for i in range(2)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=180)[0])
    finally:
        for p in procs:  # bounded even when a process dies: the other is killed here
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)

    problem, config, kwargs = run_spec()
    one = gdlab.train(problem, config, devices=devices, **kwargs)
    two = gdlab.load_runs(out)
    assert two.manifest["processes"] == 2 and len(two.manifest["devices"]) == 4
    assert_trees_equal(one.params, two.params)
    np.testing.assert_array_equal(one.loss_history, two.loss_history)
    for a, b in zip(jax.tree.leaves(one.trajectory), jax.tree.leaves(two.trajectory),
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_distributed_options_without_distributed_are_rejected(capsys):
    code = cli.main(["train", "--problem", "himmelblau", "--num-processes", "2"])
    assert code == 2
    assert "need --distributed" in capsys.readouterr().err


@pytest.mark.parametrize("n", [1, 2])
def test_seed_ids_do_not_depend_on_the_device_count(devices, n):
    problem, config, kwargs = run_spec()
    a = gdlab.train(problem, config, devices=devices[:n], **kwargs)
    b = gdlab.train(problem, config, devices=devices, **kwargs)
    np.testing.assert_allclose(a.final_loss, b.final_loss, rtol=1e-5)


def _device_count(env: dict) -> tuple[int, str]:
    import os
    import subprocess
    import sys
    base = {k: v for k, v in os.environ.items()
            if k not in ("JAX_NUM_CPU_DEVICES", "GDLAB_CPU_DEVICES", "XLA_FLAGS")}
    proc = subprocess.run([sys.executable, "-c", "import gdlab, jax; print(len(jax.devices()))"],
                          env={**base, "JAX_PLATFORMS": "cpu", **env}, capture_output=True,
                          text=True, timeout=120, check=True)
    return int(proc.stdout.strip()), proc.stderr


def test_gdlab_gives_jax_one_cpu_device_per_core_unless_told_otherwise():
    from gdlab.core.devices import usable_cores
    assert _device_count({})[0] == usable_cores()
    assert _device_count({"GDLAB_CPU_DEVICES": "3"})[0] == 3
    assert _device_count({"JAX_NUM_CPU_DEVICES": "5"})[0] == 5  # JAX's own setting wins
    count, err = _device_count({"GDLAB_CPU_DEVICES": "lots"})
    assert count == 1 and "GDLAB_CPU_DEVICES='lots' is not an integer >= 1" in err
