"""The benchmark suite: tiny end-to-end run, the targets as data and their evaluation, the
new benchmarks' runners at tiny sizes, argument errors.

Benchmarks are not tests: nothing here checks a speed, only that the suite runs, measures
what each target reads, and marks every target met, not met or not measured.
"""

import json
import math

import jax
import pytest

from benchmarks import baselines, bench, bench_worker, targets, workloads


def test_tiny_bench_writes_report_and_json(tmp_path, capsys):
    """The whole suite's path (worker processes, interleaved rounds, ratios, targets,
    report) on its cheapest workload; W2's profile is checked in-process below."""
    out = tmp_path / "bench"
    bench.main(["--tiny", "--only", "W1", "--repeats", "2", "--skip-scale", "--no-torch",
                "--out", str(out)])
    res = json.loads((out / "bench.json").read_text())
    assert res["peak"]["flops_per_second"] > 0 and res["size"] == "tiny"
    sides = res["workloads"]["W1"]["sides"]
    assert set(sides) == {"gdlab", "bare", "flax_loop"}
    for name, side in sides.items():
        assert "error" not in side, side
        assert side["seconds"]["runs"] == 2 and side["seconds"]["median"] > 0
        assert side["compile_seconds"] > 0
        if name != "gdlab":
            assert side["gdlab_speedup"]["median"] > 0 and side["gdlab_ratio"]["median"] > 0
    assert sides["gdlab"]["info"]["devices"] >= 1 and sides["gdlab"]["fraction_of_peak"] is None
    marks = {t["id"]: t["met"] for t in res["targets"]}
    assert set(marks) == {t["id"] for t in targets.load()}
    assert marks["W1-loop"] is not None and marks["W1-bare"] is not None
    assert marks["W2-peak"] is None and marks["W5-loop"] is None  # not run
    text = (out / "report.md").read_text()
    assert "## Targets" in text and "W1: gdlab within 1.3x of baseline (b)" in text
    assert text in capsys.readouterr().out


def test_limits_profile_of_w2_at_tiny_size():
    """What the gdlab worker answers to `limits` (the step profile of a target not met)."""
    r = bench_worker.extra("limits", {"workload": "W2", "size": "tiny"})
    assert 0 < r["step_flops_per_second"] and 0 < r["matmul_flops_per_second"]
    assert set(r["shares"]) == {"sample", "derivative", "update"}
    assert all(0 < share < 1 for share in r["shares"].values())
    assert r["seeds"] <= r["seeds_per_device"] and r["seeds_total"] == 8
    assert r["step_memory"]["temp_bytes"] > 0
    assert r["step_memory"]["total_bytes"] >= r["step_memory"]["argument_bytes"] > 0
    assert r["counted_flops_per_seed"] == workloads.workload("W2", "tiny").flops_per_seed_step
    row = bench._limits_row("W2", r)
    assert row[1] == f"{r['seeds']} x {r['devices']}" and row[7].endswith("B")


def _side(seconds, speedup=None, fraction=None):
    out = {"seconds": {"median": seconds, "min": seconds, "max": seconds, "runs": 1},
           "seed_steps_per_second": 1.0, "flops_per_second": None,
           "fraction_of_peak": fraction, "compile_seconds": 1.0,
           "peak_memory_bytes": 2.0**30, "info": {}}
    if speedup is not None:
        out["gdlab_speedup"] = {"median": speedup, "min": speedup, "max": speedup, "runs": 1}
        out["gdlab_ratio"] = {"median": 1 / speedup, "min": 1 / speedup, "max": 1 / speedup,
                              "runs": 1}
    return out


def _median(v):
    return {"median": v, "min": v, "max": v, "runs": 1}


HAND_MADE = {
    "W1": {"sides": {"gdlab": _side(1.0), "bare": _side(0.5, 0.5),
                     "flax_loop": _side(2000.0, 2000.0)}},
    "W2": {"sides": {"gdlab": _side(1.0, fraction=0.4), "bare": _side(3.0, 3.0),
                     "flax_loop": _side(25.0, 25.0)}},
    "W4": {"sides": {"every1000": {"extra_vs_never": _median(0.02)}}},
    "repeat-himmelblau": {"sides": {"gdlab_call": _side(1.15),
                                    "bare": _side(1.0, 1 / 1.15)}},
    "sweep-W2": {"sides": {"sweep": _side(2.0), "bare_rates": _side(1.0, 0.5)}},
    "cli": {"sides": {"warm": {"compile_share": _median(0.3)}}},
    "scale-W1": {"sides": {"gdlab": {"completed": 1.0}}},
    "scale-W3": {"sides": {"gdlab": {"error": "worker exited with code -9",
                                     "completed": 0.0}}}}


def test_targets_are_marked_met_not_met_or_not_measured():
    got = {t["id"]: t["met"] for t in targets.evaluate(targets.load(), HAND_MADE)}
    assert got["W2-loop"] is True  # 25x >= 20x
    assert got["W2-bare"] is True  # 3x >= 2x
    assert got["W2-torch"] is None  # torch not measured
    assert got["W2-peak"] is False  # 40% < 50%
    assert got["W1-bare"] is False  # gdlab 2x slower than (b)
    assert got["W1-loop"] is True
    assert got["W3-peak"] is None
    assert got["W4-every1000"] is True  # +2% <= 3%
    assert got["repeat-himmelblau"] is True  # 1.15x <= 1.2x
    assert got["repeat-W2"] is None
    assert got["sweep-W2"] is False  # 2x > 1.3x
    assert got["cli-warm"] is False  # 30% compiling, not < 25%
    assert got["scale-W1"] is True and got["scale-W3"] is False and got["scale-W2"] is None


def test_evaluate_reads_the_dotted_metric_and_compares():
    t = {"id": "t", "text": "t", "workload": "A", "side": "s", "metric": "a.b",
         "comparison": "<", "threshold": 2.0, "unit": "x"}
    tree = lambda v: {"A": {"sides": {"s": {"a": {"b": v}}}}}
    assert targets.evaluate([t], tree(1.0))[0]["met"] is True
    assert targets.evaluate([t], tree(2.0))[0]["met"] is False  # strict
    assert targets.evaluate([t], tree(None))[0]["met"] is None
    assert targets.evaluate([t], {"A": {"sides": {"s": {"a": 3.0}}}})[0]["met"] is None
    assert targets.evaluate([t], {})[0]["value"] is None
    shown = targets.evaluate([{**t, "unit": "extra"}], tree(0.021))[0]
    assert targets.format_value(shown) == "+2.1%" and targets.format_threshold(shown) == "< +200.0%"


def test_targets_file_names_only_what_the_suite_measures():
    rows = targets.load()
    assert len({t["id"] for t in rows}) == len(rows) >= 17
    known = set(workloads.NAMES) | {"W4", "cli"} | {f"scale-{n}" for n in ("W1", "W2", "W3")}
    for t in rows:
        assert t["workload"] in known, t
        kind, _, name = t.get("explain", "limits:W2").partition(":")
        assert kind in ("limits", "parts") and (name in bench.LIMITS or name in known), t


@pytest.mark.parametrize("edit, message", [
    ('comparison = "=="', "comparison '=='; valid: >=, <=, >, <"),
    ('unit = "ms"', "unit 'ms'; valid"),
    ("", "lacks ['unit']"),
])
def test_bad_targets_file_is_rejected_naming_the_entry(tmp_path, edit, message):
    text = ('[[target]]\nid = "a"\ntext = "a"\nworkload = "W2"\nside = "gdlab"\n'
            'metric = "m"\ncomparison = ">="\nthreshold = 1\n')
    if edit.startswith("comparison"):
        text = text.replace('comparison = ">="', edit) + 'unit = "x"\n'
    elif edit:
        text += edit + "\n"
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        targets.load(path)


def test_report_shows_the_profile_of_each_target_not_met():
    limits = {"seconds": 1e-4, "shares": {"sample": 0.1, "derivative": 0.8, "update": 0.1},
              "step_flops_per_second": 3e9, "xla_step_flops_per_seed": 9.0,
              "counted_flops_per_seed": 10.0, "matmul_flops_per_second": 1e10, "seeds": 4,
              "devices": 2, "step_memory": {"temp_bytes": 10, "total_bytes": 1000}}
    parts = {k: _median(v) for k, v in (("compiling", 0.0), ("training", 1.5),
                                         ("measuring", 0.1), ("loop_other", 0.0),
                                         ("outside_loop", 0.4))}
    workloads_ = {"W2": {**HAND_MADE["W2"], "limits": limits,
                         "workload": {"seeds": 256, "steps": 1000}},
                  "sweep-W2": {"workload": {"seeds": 256, "steps": 1000},
                               "sides": {"sweep": {**_side(2.0), "parts": parts},
                                         "bare_rates": _side(1.0, 0.5)}}}
    res = {"machine": {"cores": 2, "platform": "test"}, "size": "cpu", "repeats": 1,
           "peak": {"flops_per_second": 2e10}, "workloads": workloads_,
           "targets": targets.evaluate(targets.load(), workloads_)}
    text = bench.format_report(res)
    section = text.split("## What limits each target not met")[1]
    assert "### W2-peak" in section and "80%" in section and "3.00" in section
    assert "### sweep-W2" in section and "0.4" in section  # outside the loop
    assert "### W2-loop" not in section  # met
    assert "**NOT met**" in text and "not measured" in text


def test_paired_ratio_is_the_median_of_per_round_ratios():
    r = bench.paired_ratio([2.0, 9.0, 3.0], [1.0, 3.0, 1.0])
    assert r == {"median": 3.0, "min": 2.0, "max": 3.0, "runs": 3}


def test_cli_benchmark_parses_what_the_cli_prints(monkeypatch):
    printed = ("teacher_student\n  value\n---\nseeds  256\ncompile time  1.50 s\n"
               "train time  2.000 s\nloss evaluation time  0.100 s\n")
    assert bench.parse_cli_times(printed) == {"compile_seconds": 1.5, "train_seconds": 2.0,
                                              "measuring_seconds": 0.1}
    with pytest.raises(bench.WorkerError, match="did not print its compile time"):
        bench.parse_cli_times("nothing")
    walls = iter([4.0, 3.0, 1.0])
    monkeypatch.setattr(bench, "_process", lambda argv, env: (next(walls), printed))
    s = bench.Settings(repeats=1, size="tiny", with_torch=False, log=lambda m: None)
    sides = bench.measure_cli(s)["cli"]["sides"]
    assert sides["warm"]["compile_share"]["median"] == pytest.approx(1.5 / 3.0)
    assert sides["import"]["seconds"]["median"] == 1.0
    assert bench.cli_command("cpu")[:3] == ["train", "--problem", "teacher_student"]


def test_new_runners_at_tiny_sizes():
    """The whole-call, sweep and per-rate runners in this process, one run each (on
    Himmelblau: the runners do not depend on the problem, and it compiles fastest)."""
    import dataclasses
    w = dataclasses.replace(workloads.workload("repeat-himmelblau", "tiny"),
                            learning_rates=(1e-3, 2e-3))
    for runner in (bench_worker.gdlab_call_runner, bench_worker.sweep_runner,
                   bench_worker.train_each_runner):
        run, info = runner(w)
        out = run()
        assert out["seconds"] > 0 and info["compile_seconds"] > 0, runner
        assert out["parts"]["training"] > 0 and out["parts"]["compiling"] == 0.0, runner
        assert out["seconds"] >= out["parts"]["training"], runner
    run, _ = bench_worker.build({"runner": "gdlab_call", "workload": "repeat-himmelblau",
                                 "size": "tiny"})
    assert run()["cache_hit"] is True


def test_bare_loop_per_rate_times_every_rate(monkeypatch):
    w = workloads.workload("sweep-W2", "tiny")
    data = workloads.problem_of(w).data
    timed = []
    real = baselines._seconds
    monkeypatch.setattr(baselines, "_seconds", lambda fn: timed.append(fn) or real(fn))
    # The baseline reuses its keys and broadcasts biases, as users' loops do.
    with jax.debug_key_reuse(False), jax.numpy_rank_promotion("allow"):
        seconds = baselines.bare_jax_mlp_rates(data["x"], data["y"], w.hidden, w.seeds,
                                               w.steps, w.batch_size, w.learning_rates)()
    assert seconds > 0 and len(timed) == len(w.learning_rates) == 2


@pytest.mark.parametrize("args, message", [
    (["--only", "W9"], "--only got 'W9'; valid"),
    (["--only", ","], "--only got ','; valid"),
    (["--repeats", "0"], "--repeats must be an integer >= 1, got 0"),
    (["--size", "huge"], "invalid choice: 'huge'"),
    (["--tiny", "--size", "gpu"], "--tiny and --size gpu disagree"),
])
def test_bad_arguments_exit_2_before_running(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        bench.main([*args, "--out", str(tmp_path / "b")])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_workloads_match_the_issues_and_reject_unknown_names():
    w2 = workloads.workload("W2")
    assert (w2.seeds, w2.steps, w2.batch_size, w2.hidden, w2.n) == (256, 1000, 64, 64, 4096)
    assert w2.params == 8 * 64 + 64 + 64 + 1
    assert w2.flops_per_seed_step == 6 * 64 * w2.params
    assert workloads.workload("W3").hidden == 512 and workloads.workload("W3").seeds == 1024
    assert workloads.workload("W1").seeds == 4096 and workloads.workload("W1").steps == 2000
    assert workloads.workload("W4-never").eval_every is None
    assert workloads.workload("W4-every100").config().eval_every == 100
    w5 = workloads.workload("W5")
    assert (w5.seeds, w5.batch_size) == (64, 32)
    conv, dense = 8 * 8 * 8 * 3 * 3 * 1, 8 * 8 * 8 * 10  # multiply-adds per example
    assert w5.flops_per_seed_step == 6 * 32 * (conv + dense)
    assert w5.params == workloads.problem_of(workloads.workload("W5", "tiny")).num_params()
    rep = workloads.workload("repeat-himmelblau")
    assert (rep.seeds, rep.steps, rep.learning_rate, rep.batch_size) == (16_384, 4000, 1e-3, None)
    sweep = workloads.workload("sweep-W2")
    assert len(sweep.learning_rates) == 8 and sweep.seeds == 256
    assert workloads.workload("W2", "gpu").seeds > w2.seeds
    with pytest.raises(ValueError, match="unknown workload 'W9'; valid: W1"):
        workloads.workload("W9")
    with pytest.raises(ValueError, match="unknown size 'big'"):
        workloads.workload("W2", "big")
    assert math.isnan(bench.Settings(1, "cpu", False, print).peak)
