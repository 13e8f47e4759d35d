"""The benchmark suite: tiny end-to-end run, target bookkeeping, argument errors.

Benchmarks are not tests: nothing here checks a speed, only that the suite runs and
reports every target.
"""

import json

import pytest

from benchmarks import bench, workloads


def test_tiny_bench_writes_report_and_json(tmp_path, capsys):
    out = tmp_path / "bench"
    bench.main(["--tiny", "--only", "W2", "--repeats", "2", "--skip-scale", "--out", str(out)])
    res = json.loads((out / "bench.json").read_text())
    assert res["peak"]["flops_per_second"] > 0
    for name in ("W2",):
        sides = res["workloads"][name]["sides"]
        assert {"gdlab", "bare", "flax_loop"} <= set(sides)
        for side in sides.values():
            assert "error" not in side, side
            assert side["seconds"]["runs"] == 2 and side["seconds"]["median"] > 0
            assert side["seconds"]["min"] <= side["seconds"]["median"] <= side["seconds"]["max"]
            assert side["gdlab_speedup"]["median"] > 0
    assert res["workloads"]["W2"]["sides"]["gdlab"]["fraction_of_peak"] > 0
    limits = res["limits"]["W2"]
    assert 0 < limits["step_flops_per_second"] and 0 < limits["matmul_flops_per_second"]
    assert sum(limits["shares"].values()) == pytest.approx(1.0)
    text = (out / "report.md").read_text()
    assert "## Targets" in text and "W2: gdlab >= 2x baseline (b)" in text
    assert text in capsys.readouterr().out


def _side(seconds, speedup=None, fraction=None):
    out = {"seconds": {"median": seconds, "min": seconds, "max": seconds, "runs": 1},
           "seed_steps_per_second": 1.0, "flops_per_second": None,
           "fraction_of_peak": fraction, "compile_seconds": {"median": 1.0},
           "peak_memory_bytes": 2.0**30, "info": {}}
    if speedup is not None:
        out["gdlab_speedup"] = {"median": speedup, "min": speedup, "max": speedup, "runs": 1}
    return out


def test_targets_are_marked_met_or_not_from_the_measurements():
    res = {"workloads": {
        "W1": {"sides": {"gdlab": _side(1.0, 1.0), "bare": _side(0.5, 0.5),
                         "flax_loop": _side(2000.0, 2000.0)}},
        "W2": {"sides": {"gdlab": _side(1.0, 1.0, fraction=0.4), "bare": _side(3.0, 3.0),
                         "flax_loop": _side(25.0, 25.0)}}},
        "W4": {"schedules": {"W4-every1000": {"overhead_vs_never": {"median": 1.02}}}},
        "scale": {"W1 x 65536 seeds": _side(1.0)}}
    got = {t["target"]: t["met"] for t in bench.targets(res)}
    assert got["W2: gdlab >= 20x baseline (a)"] is True
    assert got["W2: gdlab >= 2x baseline (b)"] is True
    assert got["W2: gdlab >= 5x baseline (c)"] is None  # torch not measured
    assert got["W2: >= 50% of matmul peak"] is False
    assert got["W1: gdlab within 1.3x of baseline (b)"] is False  # 2x slower than (b)
    assert got["W1: gdlab >= 1000x baseline (a)"] is True
    assert got["W3: >= 50% of matmul peak"] is None
    assert got["W4: loss every 1000 steps costs <= 3% over never"] is True
    assert got["scale: W1 x 65536 seeds runs without running out of memory"] is True


def test_paired_ratio_is_the_median_of_per_round_ratios():
    r = bench.paired_ratio([2.0, 9.0, 3.0], [1.0, 3.0, 1.0])
    assert r == {"median": 3.0, "min": 2.0, "max": 3.0, "runs": 3}


@pytest.mark.parametrize("args, message", [
    (["--only", "W9"], "--only got 'W9'; valid"),
    (["--only", ","], "--only got ','; valid"),
    (["--repeats", "0"], "--repeats must be an integer >= 1, got 0"),
])
def test_bad_arguments_exit_2_before_running(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        bench.main([*args, "--out", str(tmp_path / "b")])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_workloads_match_the_issue_and_reject_unknown_names():
    w2 = workloads.workload("W2")
    assert (w2.seeds, w2.steps, w2.batch_size, w2.hidden, w2.n) == (256, 1000, 64, 64, 4096)
    assert w2.params == 8 * 64 + 64 + 64 + 1
    assert w2.flops_per_seed_step == 6 * 64 * w2.params
    assert workloads.workload("W3").hidden == 512 and workloads.workload("W3").seeds == 1024
    assert workloads.workload("W1").seeds == 4096 and workloads.workload("W1").steps == 2000
    assert workloads.workload("W4-never").eval_every is None
    assert workloads.workload("W4-every100").config().eval_every == 100
    with pytest.raises(ValueError, match="unknown workload 'W5'; valid: W1"):
        workloads.workload("W5")
