"""Step costs: structure and invariants of the profiler, fits and time model (never speed)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdlab
from gdlab import cli, costs, problems
from gdlab.core import engine
from gdlab.costs import profile as costs_profile
from gdlab.costs import timing
from gdlab.costs.model import PowerLawFit, RunLayout, TimeModel, fit_power_law, run_layout
from gdlab.costs.profile import StepProfile


def tiny_problem(n=64):
    return problems.teacher_student(d_in=2, hidden=4, n=n, key=3)


def cfg(batch_size=8, optimizer="adam", **kw):
    return gdlab.TrainConfig(optimizer=optimizer, learning_rate=0.01, batch_size=batch_size,
                             eval_every=10, **kw)


FAST = {"repeats": 3, "min_seconds": 2e-5, "max_inner": 64}


@pytest.fixture(scope="module")
def profile():
    return gdlab.profile_step(tiny_problem(), cfg(), seeds=3, eval_points=32, **FAST)


def test_profile_as_a_frame_and_a_short_repr(profile):
    frame = profile.to_dataframe()
    assert frame.part.tolist() == list(costs.PARTS)
    step = frame.set_index("part").loc["derivative"]
    assert step.seconds == profile.seconds("derivative")
    np.testing.assert_allclose(frame.share.dropna().sum(), 1.0)
    text = repr(profile)
    assert text.count("\n") == len(profile.parts) + 1  # header, one line per part, floor
    assert "derivative" in text and str(profile.parts["step"].timing.samples[0]) not in text


def test_profile_returns_every_part_positive(profile):
    assert list(profile.parts) == list(costs.PARTS)
    assert (profile.seeds, profile.batch_size, profile.eval_points) == (3, 8, 32)
    assert profile.num_params == 4 * 2 + 4 + 4 + 1
    for part in profile.parts.values():
        t = part.timing
        assert t.median > 0 and t.spread > 0 and t.q25 <= t.median <= t.q75
        assert len(t.samples) == FAST["repeats"] and min(t.samples) > 0
        assert 1 <= t.inner_repeats <= FAST["max_inner"]
        assert part.call_seconds > 0 and part.compile_seconds > 0
        assert part.flops > 0 and part.bytes_accessed > 0
    assert profile.floor.median > 0 and profile.floor.spread > 0
    assert profile.eval_seconds > 0  # one loss call right after a step, as train does it
    shares, every10 = profile.shares(), profile.shares(eval_every=10)
    assert set(shares) == {"derivative", "update", "sample", "loss"}
    seconds = {n: profile.seconds(n) for n in shares}
    for n, share in shares.items():  # each part's time over one step's and one loss's
        assert share == pytest.approx(seconds[n] / sum(seconds.values()))
    # The loss measured every 10 steps: its odds against the step parts fall tenfold,
    # and the step parts keep their proportions.
    odds = lambda s: s["loss"] / (1 - s["loss"])
    assert odds(every10) == pytest.approx(odds(shares) / 10)
    assert every10["derivative"] / every10["update"] == pytest.approx(
        shares["derivative"] / shares["update"])
    assert profile.describe()["parts"]["loss"]["timing"]["spread"] > 0


def test_profiler_compiles_once_and_measures_afresh(monkeypatch):
    profiler = gdlab.StepProfiler(tiny_problem(), cfg(), seeds=2, parts=["derivative", "loss"])
    monkeypatch.setattr(costs_profile, "compile_part", lambda *a: pytest.fail("compiled again"))
    first, second = profiler.measure(**FAST), profiler.measure(**FAST)
    assert list(first.parts) == list(second.parts) == ["derivative", "loss"]
    assert first.parts["loss"].timing.samples != second.parts["loss"].timing.samples
    assert first.num_params == second.num_params == tiny_problem().num_params()
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, got 0"):
        profiler.measure(repeats=0)


def test_profile_subset_of_parts():
    prof = gdlab.profile_step(problems.himmelblau(), cfg(batch_size=None), parts=["update"],
                              **FAST)
    assert list(prof.parts) == ["update"] and prof.batch_size is None
    assert prof.eval_points is None
    assert "sample" not in costs.part_functions(problems.himmelblau(), cfg(batch_size=None))


@pytest.fixture(scope="module")
def compiled():
    """Every part of the tiny problem, compiled once (loop and single call)."""
    problem, config = tiny_problem(), cfg()
    inputs = costs_profile._inputs(problem, config, 3, 0, problem.data)
    parts = costs.part_functions(problem, config)
    compiled = {n: costs_profile.compile_part(p, inputs) for n, p in parts.items()}
    return problem, config, inputs, compiled


def run_loop(c, num):
    return c.looped(c.carry, jnp.int32(num), c.x, jnp.float32(0))


@pytest.mark.parametrize("name", ["derivative", "loss", "sample"])
def test_loop_of_r_repetitions_returns_the_single_call_value(compiled, name):
    c = compiled[3][name]
    carry, out = run_loop(c, 5)
    single = c.single(c.carry, c.x, jnp.int32(4))  # the last repetition's (step 4's)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 out, single)
    before = c.carry.params if name == "sample" else c.carry
    after = carry.params if name == "sample" else carry
    jax.tree.map(np.testing.assert_array_equal, after, before)  # scale 0: no drift
    _, out0 = run_loop(c, 0)  # zero reps: the call's floor, no work
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(out0))


@pytest.mark.parametrize("name", ["update", "step"])
def test_chained_loop_equals_python_loop_of_single_calls(compiled, name):
    c = compiled[3][name]
    carry, _ = run_loop(c, 3)
    state = c.carry
    for i in range(3):
        state = c.single(state, c.x, jnp.int32(i))
    if name == "step":  # compare what the step changes (keys are not NumPy-comparable)
        carry, state = (carry.params, carry.opt_state), (state.params, state.opt_state)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 carry, state)


def test_fused_step_equals_derivative_then_update(compiled):
    problem, config, inputs, parts = compiled
    state = inputs["state"]
    sampler = engine.build_sampler(problem, config)
    # the mini-batch each seed's fused step draws at t = 0
    idx_SB = jax.vmap(lambda s, k: sampler.draw(s, k, 0)[0])(state.sampler_state,
                                                             state.data_key)
    batch = jax.tree.map(lambda a: jnp.take(a, idx_SB, axis=0), problem.data)
    grads = parts["derivative"].single(state.params, batch, jnp.int32(0))
    params, opt_state = parts["update"].single((state.params, state.opt_state), grads,
                                               jnp.int32(0))
    fused = parts["step"].single(state, problem.data, jnp.int32(0))
    sampled, _ = parts["sample"].single(state, problem.data, jnp.int32(0))
    jax.tree.map(np.testing.assert_array_equal, sampled, batch)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    jax.tree.map(close, fused.params, params)
    jax.tree.map(close, fused.opt_state, opt_state)
    assert not np.allclose(fused.params["Dense_0"]["kernel"], state.params["Dense_0"]["kernel"])


def test_xla_flops_grow_linearly_with_batch_and_eval_points():
    problem = tiny_problem(n=1024)
    flops = {}
    for b in (128, 256):
        config = cfg(batch_size=b, optimizer="sgd")
        parts = costs.part_functions(problem, config)
        eval_data = {k: v[:b] for k, v in problem.data.items()}
        inputs = costs_profile._inputs(problem, config, 2, 0, eval_data)
        for name in ("derivative", "update", "loss"):
            part = parts[name]
            compiled = jax.jit(part.single).lower(inputs[part.carry], inputs[part.needs],
                                                  jnp.int32(0)).compile()
            flops[name, b] = costs.xla_cost(compiled)[0]
    for name in ("derivative", "loss"):
        assert flops[name, 256] / flops[name, 128] == pytest.approx(2.0, rel=0.03)
    assert flops["update", 256] == flops["update", 128]


def test_power_law_fit_recovers_known_exponents():
    rng = np.random.default_rng(0)
    n_M = np.repeat(2.0 ** np.arange(6, 14), 5)
    p_M = np.tile(2.0 ** np.arange(5, 10), 8)
    y_M = 3e-9 * n_M**1.0 * p_M**0.7 * np.exp(0.05 * rng.standard_normal(n_M.size))
    fit = fit_power_law(y_M, n_M, p_M, names=("N", "P"))
    assert fit.names == ("N", "P") and fit.num_points == 40
    np.testing.assert_allclose(fit.exponents, [1.0, 0.7], atol=0.03)
    assert np.all(fit.ci[:, 0] < [1.0, 0.7]) and np.all(fit.ci[:, 1] > [1.0, 0.7])
    assert np.all(fit.ci[:, 1] - fit.ci[:, 0] < 0.1) and fit.r2 > 0.99
    exact = fit_power_law(5.0 * n_M**-0.5, n_M, p_M)
    np.testing.assert_allclose(exact.exponents, [-0.5, 0.0], atol=1e-9)
    assert exact.prefactor == pytest.approx(5.0)
    np.testing.assert_allclose(exact.predict(n_M, p_M), 5.0 * n_M**-0.5, rtol=1e-9)


@pytest.mark.parametrize("args, message", [
    (([1.0, -2.0, 3.0, 4.0], [1, 2, 3, 4]), "y must be finite and > 0"),
    (([1.0, 2.0, 3.0], [1, 2, 3], [1, 2, 4]), "need more than 3 points"),
    (([1.0, 2.0, 3.0, 4.0], [1, 2, 3, 4], [5, 5, 5, 5]), "variables \\['x2'\\]"),
    (([1.0, 2.0], [1, 2, 3]), "x1 has 3 values but y has 2"),
])
def test_power_law_fit_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(*map(np.asarray, args))


def fake_profile(**seconds) -> StepProfile:
    def part(name, s, call=None, floor=0.0, below=False):
        t = timing.Timing(s, s, s, (s,), 1, floor, below)
        return costs.PartCost(name, t, call or s, 1e6, 1e3, 0.1)
    parts = {"derivative": part("derivative", seconds.get("derivative", 3e-3)),
             "update": part("update", seconds.get("update", 1e-3), below=True),
             "loss": part("loss", 5e-3, call=6e-3),
             "step": part("step", 3.5e-3, floor=2e-4)}
    floor = timing.Timing(5e-6, 4e-6, 6e-6, (5e-6,), 1, 0.0)
    return StepProfile("p", 1, 8, 64, 10, "sgd", "cpu:0", floor, parts)


def test_time_model_sums_its_parts():
    model = TimeModel(step_seconds=2e-3, eval_seconds=5e-2, call_seconds=1e-4,
                      fixed_seconds=0.5)
    assert model.predict(steps=1000, evaluations=11, calls=10) == pytest.approx(
        1000 * 2e-3 + 11 * 5e-2 + 10 * 1e-4 + 0.5)
    assert model.breakdown(1000, 11, 10) == pytest.approx(
        {"training": 2.0, "measuring": 0.55, "overhead": 0.501})
    # 95 steps every 10: chunks 10 x 9 + 5, evaluations at 0 and after each chunk
    config = gdlab.TrainConfig(steps=95, eval_every=10)
    assert model.predict_config(config) == pytest.approx(model.predict(95, 11, 10))
    prof = fake_profile()
    parts = TimeModel.from_profile(prof)
    assert (parts.step_seconds, parts.eval_seconds, parts.call_seconds) == pytest.approx(
        (4e-3, 6e-3, 2e-4))
    assert TimeModel.from_profile(prof, step="fused").step_seconds == 3.5e-3
    after_step = dataclasses.replace(prof, eval_seconds=9e-3)
    assert TimeModel.from_profile(after_step).eval_seconds == 9e-3
    assert costs.relative_error(1.1, 1.0) == pytest.approx(0.1)
    calibrated = TimeModel.from_profile(prof, call_seconds=1e-3)
    assert calibrated.call_seconds == 1e-3 and calibrated.step_seconds == parts.step_seconds
    # 100 one-step chunks took 0.5 s for steps of 4 ms: 1 ms per chunk beyond the work
    assert costs.host_overhead(0.5, 100, 100, 4e-3) == pytest.approx(1e-3)
    assert costs.host_overhead(0.3, 100, 100, 4e-3) == 0.0
    # the same 100 chunks took 0.5 s never measuring and 0.7 s measuring after each:
    # 2 ms per measurement
    assert costs.eval_overhead(0.7, 0.5, 100) == pytest.approx(2e-3)
    assert costs.eval_overhead(0.4, 0.5, 100) == 0.0
    with pytest.raises(ValueError, match="measurements must be an integer >= 1, got 0"):
        costs.eval_overhead(0.7, 0.5, 0)
    per_eval = dataclasses.replace(model, eval_overhead_seconds=2e-3)
    assert per_eval.breakdown(1000, 11, 10)["overhead"] == pytest.approx(0.501 + 11 * 2e-3)
    assert TimeModel.from_profile(prof, eval_overhead_seconds=3e-3).eval_overhead_seconds == 3e-3
    with pytest.raises(ValueError, match="step must be 'parts' or 'fused', got 'x'"):
        TimeModel.from_profile(prof, step="x")
    with pytest.raises(ValueError, match="needs an eval_every=K schedule"):
        model.predict_config(gdlab.TrainConfig(eval_every_seconds=1.0))
    with pytest.raises(ValueError, match="steps must be an integer >= 0, got -1"):
        model.predict(-1, 1, 1)


def test_time_model_counts_the_devices_and_seeds_per_device():
    prof = fake_profile()  # 1 seed profiled: step parts 4 ms, loss call 6 ms
    base = TimeModel.from_profile(prof)
    assert (base.devices, base.seeds_per_device, base.groups) == (1, 1, 1)
    # 2 devices side by side, 8 seeds each: each device runs 8 x the profiled seed
    two = TimeModel.from_profile(prof, devices=2, seeds_per_device=8)
    assert two.step_seconds == pytest.approx(8 * base.step_seconds)
    assert two.eval_seconds == pytest.approx(8 * base.eval_seconds)
    assert two.call_seconds == base.call_seconds and two.devices == 2
    layout = RunLayout(seeds=16, devices=2, seeds_per_device=8, seed_block=4, groups=3)
    run = TimeModel.for_run(prof, layout, call_seconds=1e-3)
    assert run.step_seconds == two.step_seconds and run.groups == 3
    assert run.predict(10, 2, 1) == pytest.approx(
        3 * (10 * two.step_seconds + 2 * two.eval_seconds + 1e-3))
    with pytest.raises(ValueError, match="devices must be an integer >= 1, got 0"):
        TimeModel.from_profile(prof, devices=0)
    with pytest.raises(ValueError, match="seeds_per_device must be an integer >= 1, got 0"):
        TimeModel.from_profile(prof, seeds_per_device=0)


def test_concurrency_is_measured_on_every_device_and_slows_the_model(devices):
    prof = gdlab.profile_step(tiny_problem(), cfg(), seeds=2, parts=["step", "derivative"],
                              devices=2, **FAST)
    assert prof.devices == 2 and prof.concurrency > 0
    assert prof.describe()["concurrency"] == prof.concurrency
    assert "step on 2 devices at once" in {r[0] for r in prof.rows()}
    slow = dataclasses.replace(fake_profile(), devices=2, concurrency=0.5)
    side_by_side = TimeModel.from_profile(fake_profile(), devices=2, seeds_per_device=4)
    taking_turns = TimeModel.from_profile(slow, devices=2, seeds_per_device=4)
    assert taking_turns.step_seconds == pytest.approx(2 * side_by_side.step_seconds)
    assert taking_turns.eval_seconds == pytest.approx(2 * side_by_side.eval_seconds)
    # measured on 2 devices: not applied to a run on 4
    assert TimeModel.from_profile(slow, devices=4).step_seconds == pytest.approx(
        TimeModel.from_profile(fake_profile(), devices=4).step_seconds)
    one = gdlab.profile_step(tiny_problem(), cfg(), parts=["update"], devices=1, **FAST)
    assert one.concurrency is None and one.devices == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"devices": 0}, "devices must be an integer in 1..4"),
    ({"devices": []}, "devices is empty"),
    ({"devices": 2, "parts": ["derivative"]}, "devices needs the 'step' part"),
])
def test_profile_devices_bad_input(devices, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gdlab.profile_step(tiny_problem(), cfg(), **kwargs)


def test_run_layout_is_the_layout_train_uses(devices):
    problem, config = tiny_problem(), cfg(steps=3)
    layout = run_layout(problem, config, seeds=10)
    runs = gdlab.train(problem, config, seeds=10, progress=False)
    assert layout.devices == len(runs.manifest["devices"]) == len(devices)
    assert layout.seed_block == runs.manifest["seed_block"]
    assert layout.seeds_per_device * layout.devices >= 10 and layout.groups == 1
    assert layout.seeds_per_device % layout.seed_block == 0
    one = run_layout(problem, config, seeds=10, devices=devices[:1], seed_block=2)
    assert (one.devices, one.seeds_per_device, one.seed_block) == (1, 10, 2)
    with pytest.raises(ValueError, match="seeds must be an integer >= 1, got 0"):
        run_layout(problem, config, seeds=0)


def test_profile_memory_is_positive_and_grows_with_batch_size():
    problem = tiny_problem(n=512)
    mem = {}
    for b in (16, 256):
        prof = gdlab.profile_step(problem, cfg(batch_size=b, optimizer="sgd"), seeds=2,
                                  parts=["step"], **FAST)
        mem[b] = prof.memory()
        row = {r[0]: r for r in prof.rows()}["step"]
        assert row[StepProfile.HEADER.index("memory (temp / total)")].endswith("B")
        assert prof.describe()["parts"]["step"]["memory"]["total_bytes"] == mem[b].total_bytes
    for m in mem.values():
        assert m.argument_bytes > 0 and m.output_bytes > 0 and m.temp_bytes > 0
        assert m.code_bytes >= 0 and m.total_bytes > m.temp_bytes
    assert mem[256].temp_bytes > mem[16].temp_bytes  # the batch's activations and gathers
    # and with the seeds vmapped together (a chunk's seed block): 8 seeds hold more than 2
    eight = gdlab.profile_step(problem, cfg(batch_size=16, optimizer="sgd"), seeds=8,
                               parts=["step"], **FAST).memory()
    assert eight.argument_bytes > mem[16].argument_bytes
    assert eight.temp_bytes > mem[16].temp_bytes
    assert costs.xla_memory(object()) is None  # no memory analysis: None, not an error


def test_below_floor_is_an_upper_bound_never_zero():
    empty = np.array([1.0e-5, 1.2e-5, 1.1e-5, 1.3e-5])
    t = timing.resolve(empty[::-1].copy(), empty, inner=4)  # no work beyond the floor
    assert t.below_floor and t.median > 0 and min(t.samples) > 0
    assert t.median == pytest.approx((np.quantile(empty, 0.75) - np.quantile(empty, 0.25)) / 4)
    faster = timing.resolve(empty - 5e-6, empty, inner=4)  # "negative" work
    assert faster.below_floor and faster.median > 0
    real = timing.resolve(empty + 4e-3, empty, inner=4)
    assert not real.below_floor
    assert real.median == pytest.approx(1e-3, rel=1e-3)
    text = costs.format_seconds(t)
    assert text.startswith("< ") and text.endswith("(below floor)")
    rows = {r[0]: r for r in dataclasses.replace(fake_profile(), eval_seconds=2e-3).rows()}
    assert rows["loss after a step"][-1] == "2 ms"
    assert "below floor" in rows["update"][1] and rows["update"][7] == "-"  # no FLOP/s
    assert rows["derivative"][7] == "333 MFLOP/s" and rows["derivative"][8] == "-"  # no memory


def test_dispatch_floor_is_positive():
    floor = timing.dispatch_floor(repeats=20)
    assert floor.median > 0 and floor.spread > 0 and len(floor.samples) == 20


@pytest.mark.parametrize("kwargs, message", [
    ({"seeds": 0}, "seeds must be an integer >= 1, got 0"),
    ({"repeats": 0}, "repeats must be an integer >= 1, got 0"),
    ({"eval_points": 0}, "eval_points must be an integer >= 1, got 0"),
    ({"eval_points": 65}, "eval_points=65 is larger than the 64 evaluation data points"),
    ({"min_seconds": -1.0}, "min_seconds must be a finite number > 0, got -1.0"),
    ({"parts": ["grad"]}, "parts must be a non-empty sequence"),
    ({"config": cfg(batch_size=65)}, "batch_size=65 is larger than the N=64 data points"),
    ({"eval_data": {"x": np.zeros((3, 2)), "y": np.zeros((4, 1))}}, "different leading axes"),
])
def test_profile_bad_input_errors_before_compiling(monkeypatch, kwargs, message):
    def no_compile(*args, **kw):
        raise AssertionError("compiled before checking the input")
    monkeypatch.setattr(costs_profile, "_inputs", no_compile)
    monkeypatch.setattr(costs_profile, "compile_part", no_compile)
    monkeypatch.setattr(timing, "dispatch_floor", no_compile)
    kwargs = {"config": cfg(), **kwargs}
    with pytest.raises(ValueError, match=message):
        gdlab.profile_step(tiny_problem(), kwargs.pop("config"), **kwargs)


def test_fit_is_a_frozen_dataclass():
    fit = fit_power_law(np.array([1.0, 2.0, 4.1]), np.array([1.0, 2.0, 4.0]))
    assert isinstance(fit, PowerLawFit)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.r2 = 0.0


def test_cli_profile_prints_table(capsys):
    code = cli.main(["profile", "--problem", "least_squares", "--batch-size", "16",
                     "--repeats", "3", "--seeds", "2", "--eval-points", "128"])
    out = capsys.readouterr().out
    assert code == 0
    for label in ("derivative", "update", "loss", "step", "floor (empty call)", "FLOP/s",
                  "share", "compile"):
        assert label in out


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--batch-size", "100000"], "batch_size=100000 is larger than the N=256"),
    (["--repeats", "0"], "repeats must be an integer >= 1, got 0"),
    (["--eval-points", "257"], "eval_points=257 is larger than the 256"),
    (["--seeds", "-1"], "seeds must be an integer >= 1, got -1"),
])
def test_cli_profile_bad_input_exits_2(capsys, args, message):
    assert cli.main(["profile", "--problem", "least_squares", *args]) == 2
    assert message in capsys.readouterr().err
