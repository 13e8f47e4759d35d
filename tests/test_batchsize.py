import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gdlab
from gdlab import cli, problems
from gdlab.batch import sizes as batchsize
from gdlab.batch.scaling import fit_scaling, median_ci
from gdlab.batch.sizes import eval_schedule, sweep_batch_size


def ls(n=128, d=4):
    return problems.least_squares(n=n, d=d, noise=0.5)


def cfg(**kw):
    base = dict(optimizer="sgd", learning_rate=0.1, steps=3000, eval_every=1)
    return gdlab.TrainConfig(**{**base, **kw})


GRID = np.array([0.05, 0.2, 0.8])


@pytest.fixture(scope="module")
def sweep():
    """A small least-squares sweep with a sqrt-scaled rate grid, B = 1 .. N (full), timed."""
    return sweep_batch_size(ls(), cfg(), [8, 1, 128], target_loss=0.2, seeds=8,
                            learning_rates=GRID, lr_scaling="sqrt", base_batch_size=128)


def test_sweep_shapes_and_derived_quantities(sweep):
    k, s = 3, 8
    assert sweep.steps.shape == (k, s) and sweep.rate_grid.shape == (k, 3)
    np.testing.assert_array_equal(sweep.batch_sizes, [1, 8, 128])
    np.testing.assert_allclose(sweep.rate_grid, GRID * np.sqrt([[1 / 128], [8 / 128], [1]]))
    assert sweep.reached.all() and not sweep.diverged.any()
    np.testing.assert_array_equal(sweep.examples, sweep.steps * np.array([1, 8, 128])[:, None])
    assert np.all(sweep.seconds_per_step > 0)
    np.testing.assert_allclose(sweep.wall_seconds, sweep.steps * sweep.seconds_per_step[:, None])
    header, rows = sweep.table()
    assert header[0] == "B" and len(rows) == k
    assert rows[-1][0] == "128 (full)" and rows[0][2] == "8/8"
    assert sweep.unreached_seeds() == {}
    assert "fit S = S_min (1 + B_crit / B)" in cli.format_sweep(sweep)
    for k_, e in enumerate(sweep.eval_steps):
        assert sweep.loss_history[k_].shape == (s, len(e)) and e[-1] == sweep.stopped_at[k_]


def test_sweep_frames_hold_the_arrays(sweep):
    frame = sweep.to_dataframe()
    assert len(frame) == sweep.steps.size
    one = frame[(frame.batch_size == 8) & (frame.seed_id == sweep.seed_ids[3])].iloc[0]
    assert one.steps == sweep.steps[1, 3] and one.examples == sweep.examples[1, 3]
    assert one.learning_rate == sweep.learning_rates[1]
    summary = sweep.summary_frame()
    assert summary.batch_size.tolist() == [1, 8, 128]
    np.testing.assert_allclose(summary[["steps_median", "steps_lo", "steps_hi"]].to_numpy(),
                               sweep.median("steps"))
    assert all(np.issubdtype(t, np.number) for t in summary.dtypes)


def test_sweep_reports_memory_that_grows_with_batch_size(sweep):
    assert np.all(sweep.memory_bytes > 0) and np.all(sweep.temp_bytes > 0)
    assert np.all(sweep.memory_bytes > sweep.temp_bytes)
    # sampled batches: B = 8 gathers more than B = 1 (full batch reads the data in place)
    assert sweep.temp_bytes[1] > sweep.temp_bytes[0]
    assert sweep.lanes_per_device * len(jax.devices()) >= 8 * len(GRID)
    header, rows = sweep.table()
    assert header[-1] == "memory / device (temp)" and rows[0][-1].endswith("B)")
    assert set(sweep.arrays()) >= {"memory_bytes", "temp_bytes"}
    assert np.isnan(batchsize.compiled_bytes(object())).all()  # no memory analysis


def test_sweep_picks_the_rate_with_fewest_median_steps(sweep):
    for k in range(len(sweep.batch_sizes)):
        best = np.argmin(sweep.grid_median_steps[k])
        assert sweep.learning_rates[k] == sweep.rate_grid[k, best]
        np.testing.assert_allclose(np.median(sweep.steps[k]), sweep.grid_median_steps[k, best])


def test_steps_fall_with_batch_size_and_fit(sweep):
    assert sweep.increases() == []
    med = sweep.median("steps")[:, 0]
    assert med[0] > 4 * med[-1]  # B=1 needs many more steps than full batch
    fit = sweep.fit()
    assert fit.r2_steps > 0.9 and 0 < fit.s_min < med[-1] * 1.5
    assert fit.b_crit_ci[0] <= fit.b_crit <= fit.b_crit_ci[1]


def first_crossing(steps_E, loss_E, target):
    """Reference: the interpolated first crossing, in numpy."""
    below = np.nonzero(loss_E <= target)[0]
    if not below.size:
        return np.nan
    k = below[0]
    if k == 0:
        return 0.0
    l0, l1 = loss_E[k - 1], loss_E[k]
    frac = np.log(l0 / target) / np.log(l0 / l1)
    return steps_E[k - 1] + frac * (steps_E[k] - steps_E[k - 1])


@pytest.mark.parametrize("batch_size, sampling", [(8, "with_replacement"), (8, "epoch"),
                                                  (64, "with_replacement")])
def test_lanes_follow_gdlab_train_exactly(batch_size, sampling):
    """Seed i in the sweep is seed i of gdlab.train (same loss at every evaluation)."""
    problem = ls(n=64, d=3)
    config = cfg(learning_rate=0.1, sampling=sampling)
    out = sweep_batch_size(problem, config, [batch_size], target_loss=0.2, seeds=[0, 3],
                           key=7, timing=False)
    steps = int(out.stopped_at[0])
    runs = gdlab.train(problem, dataclasses.replace(config, steps=steps,
                                                    batch_size=None if batch_size == 64
                                                    else batch_size),
                       seeds=[0, 3], key=7)
    at = out.eval_steps[0]
    np.testing.assert_allclose(out.loss_history[0], runs.loss_history[:, at], rtol=2e-5)
    ref = [first_crossing(at, runs.loss_history[s, at], 0.2) for s in range(2)]
    np.testing.assert_allclose(out.steps[0], ref, rtol=1e-4)


def test_unreachable_target_reports_the_seeds_and_stops_at_the_budget():
    out = sweep_batch_size(ls(), cfg(learning_rate=1e-4, steps=40), [4], target_loss=0.2,
                           seeds=3, timing=False)
    assert out.unreached_seeds() == {4: [0, 1, 2]}
    np.testing.assert_array_equal(out.stopped_at, [40])
    assert np.isinf(out.median("steps")[:, 0]).all()
    assert "never" in out.table()[1][0][3]
    assert "B=4: 3 seed(s) never reached the target: [0, 1, 2]" in cli.format_sweep(out)
    with pytest.raises(ValueError, match="at least 3 batch sizes with finite"):
        out.fit()


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_sizes=[]), "batch_sizes is empty; give at least one batch size in 1..128"),
    (dict(batch_sizes=[0, 4]), "batch size 0 is not valid .* integers in 1..128"),
    (dict(batch_sizes=[4, 129]), "batch size 129 is not valid .* integers in 1..128"),
    (dict(batch_sizes=[2.5]), "batch size 2.5 is not valid"),
    (dict(batch_sizes=[4, 4]), r"repeated values \[4\]"),
    (dict(batch_sizes=7), "batch_sizes must be a non-empty sequence"),
    (dict(target_loss=0.0),
     r"target_loss must be a finite number > 0 \(a full-data loss\), got 0.0"),
    (dict(target_loss=-1.0),
     r"target_loss must be a finite number > 0 \(a full-data loss\), got -1.0"),
    (dict(target_loss=float("nan")), "target_loss must be a finite number > 0"),
    (dict(target_loss=0.01), "below the global minimum loss"),
    (dict(learning_rates=[]), "learning_rates is empty"),
    (dict(learning_rates=[0.1, -0.2]), "every learning rate of the grid must be a finite "
                                       "number > 0, got -0.2"),
    (dict(lr_scaling="cubic"), "unknown lr_scaling 'cubic'; valid: none, sqrt, linear"),
    (dict(base_batch_size=0), r"base_batch_size must be an integer in 1..128, got 0"),
    (dict(resolution=0.0), r"resolution must be a finite number in \(0, 1\], got 0.0"),
    (dict(seeds=0), "seeds must be a positive number of seeds"),
    (dict(config=cfg(optimizer=optax.sgd(0.1), learning_rate=None),
          learning_rates=[0.1, 0.2]), "need a named optimizer with a float learning_rate"),
])
def test_bad_input_is_rejected_before_compiling(kwargs, message, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("compiled before checking the inputs")
    monkeypatch.setattr(batchsize, "_run_batch_size", boom)
    args = dict(problem=ls(), config=cfg(), batch_sizes=[1, 4], target_loss=0.2)
    with pytest.raises(ValueError, match=message):
        sweep_batch_size(**{**args, **kwargs})


def test_problem_without_data_is_rejected():
    with pytest.raises(ValueError, match="'himmelblau' has no data"):
        sweep_batch_size(problems.himmelblau(), cfg(), [1], target_loss=0.1)


def test_rate_scaling_rules():
    rates = np.array([0.1, 0.2])
    np.testing.assert_allclose(batchsize.scaled_rates(rates, 64, 16, "none"), rates)
    np.testing.assert_allclose(batchsize.scaled_rates(rates, 64, 16, "linear"), 4 * rates)
    np.testing.assert_allclose(batchsize.scaled_rates(rates, 64, 16, "sqrt"), 2 * rates)


def test_fit_recovers_the_model_from_synthetic_steps():
    b = 2.0 ** np.arange(13)
    s_min, b_noise = 40.0, 300.0
    exact = fit_scaling(b, s_min * (1 + b_noise / b))
    np.testing.assert_allclose([exact.s_min, exact.b_crit, exact.e_min],
                               [s_min, b_noise, s_min * b_noise], rtol=1e-6)
    assert exact.r2_steps > 0.999999
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(200):
        noisy = fit_scaling(b, s_min * (1 + b_noise / b) * np.exp(0.05 * rng.standard_normal(13)))
        assert abs(noisy.b_crit / b_noise - 1) < 0.25 and abs(noisy.s_min / s_min - 1) < 0.1
        covered.append([noisy.s_min_ci[0] < s_min < noisy.s_min_ci[1],
                        noisy.b_crit_ci[0] < b_noise < noisy.b_crit_ci[1],
                        noisy.e_min_ci[0] < s_min * b_noise < noisy.e_min_ci[1]])
    assert np.all(np.mean(covered, axis=0) > 0.88)  # 95% intervals
    assert noisy.r2_steps > 0.99
    lo, hi = noisy.regimes
    assert lo == pytest.approx(noisy.b_crit / 4) and hi == pytest.approx(4 * noisy.b_crit)
    np.testing.assert_allclose(noisy.examples_at(b), b * noisy.steps_at(b))


def test_fit_bad_input():
    with pytest.raises(ValueError, match="at least 3 batch sizes"):
        fit_scaling([1, 2, 4], [10.0, np.inf, 3.0])
    with pytest.raises(ValueError, match="same length"):
        fit_scaling([1, 2, 4], [10.0, 5.0])


def test_median_interval_covers_and_handles_never():
    values = np.arange(1.0, 33.0)
    med, lo, hi = median_ci(values)
    assert med == 16.5 and lo < med < hi and (lo, hi) == (10.0, 23.0)
    med, lo, hi = median_ci(np.r_[np.ones(3), np.full(5, np.inf)])
    assert np.isinf(med)
    assert median_ci([5.0]) == (5.0, 5.0, 5.0)


def test_eval_schedule_spacing():
    e = eval_schedule(10000, 0.02)
    assert e[0] == 0 and e[-1] == 10000 and np.all(np.diff(e) >= 1)
    assert np.all(np.diff(e)[:-1] == np.maximum(1, (e[:-2] * 0.02).astype(int)))
    np.testing.assert_array_equal(eval_schedule(5, 0.5), [0, 1, 2, 3, 4, 5])


def test_crossing_is_exact_for_exponential_decay():
    t = batchsize.crossing(10, 20, jnp.exp(-1.0), jnp.exp(-2.0), jnp.exp(-1.3))
    assert float(t) == pytest.approx(13.0, rel=1e-5)


def test_cli_sweep_batch_prints_table(capsys):
    code = cli.main(["sweep-batch", "--problem", "least_squares", "--batch-sizes", "256",
                     "--target", "0.2", "--lr-grid", "0.1,0.4", "--seeds", "3", "--steps",
                     "2000", "--no-timing"])
    out = capsys.readouterr().out
    assert code == 0
    assert "256 (full)" in out and "3/3" in out and "no fit: fit_scaling needs" in out


@pytest.mark.parametrize("args, message", [
    (["--batch-sizes", "0,4"], "batch size 0 is not valid"),
    (["--batch-sizes", ""], "batch_sizes is empty"),
    (["--target", "-1"], "target_loss must be a finite number > 0 (a full-data loss), got -1.0"),
    (["--lr-scaling", "cube"], "invalid choice: 'cube'"),
])
def test_cli_sweep_batch_bad_input_exits_2(capsys, args, message):
    base = ["sweep-batch", "--problem", "least_squares", "--target", "0.2",
            "--batch-sizes", "1,4"]
    try:  # bad values exit 2 from argparse (choices) or return 2 from gdlab's checks
        code = cli.main(base + args)
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_optax_transformation_config_runs_with_its_own_rate():
    config = cfg(optimizer=optax.sgd(0.1), learning_rate=None)
    out = sweep_batch_size(ls(n=64, d=2), config, [64], target_loss=0.3, seeds=2, timing=False)
    assert out.reached.all() and np.isnan(out.learning_rates).all()
