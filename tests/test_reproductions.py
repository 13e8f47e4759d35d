"""The ReLU population-loss problem (closed form against Monte Carlo, minima, gradients) and
the reproduction study's verdict rules on hand-made numbers."""

import dataclasses
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import gdlab
from gdlab import problems

# the module (the attribute `problems.relu_population` is its factory function)
relu = importlib.import_module("gdlab.problems.relu_population")


@pytest.fixture(scope="module")
def study():
    from gdlab.experiments import reproductions
    return reproductions


def _monte_carlo(w_ND: np.ndarray, v_MD: np.ndarray, samples: int, seed: int):
    x = np.random.default_rng(seed).standard_normal((samples, w_ND.shape[1]))
    diff = np.maximum(x @ w_ND.T, 0).sum(1) - np.maximum(x @ v_MD.T, 0).sum(1)
    values = 0.5 * diff**2
    return values.mean(), values.std() / np.sqrt(samples)


@pytest.mark.parametrize("k, extra, seed", [(3, 0, 0), (4, 1, 1), (6, 2, 2)])
def test_closed_form_matches_monte_carlo(k, extra, seed):
    p = problems.relu_population(k=k, extra=extra)
    # an init-like point drawn on the host (p.init would compile threefry for each shape)
    w = np.random.default_rng(100 + seed).standard_normal((k + extra, k)) / np.sqrt(k)
    w = w.astype(np.float32).astype(np.float64)
    v = relu.teacher_weights(k, k)
    mean, stderr = _monte_carlo(w, v, 100_000, seed)
    closed = float(jax.jit(p.loss)(jnp.asarray(w, jnp.float32), None))
    assert abs(closed - mean) < 4 * stderr
    assert relu.loss_float64(w, v) == pytest.approx(closed, rel=1e-5)


def test_kernel_matches_monte_carlo_at_chosen_angles():
    # E[relu(u.x) relu(v.x)] at angles 0, pi/3, pi/2, 2pi/3, pi and unequal norms
    x = np.random.default_rng(5).standard_normal((100_000, 2))
    for theta in (0.0, np.pi / 3, np.pi / 2, 2 * np.pi / 3, np.pi):
        u, v = np.array([[2.0, 0.0]]), np.array([[0.5 * np.cos(theta), 0.5 * np.sin(theta)]])
        prod = np.maximum(x @ u.T, 0) * np.maximum(x @ v.T, 0)
        closed = float(jax.jit(relu.kernel_matrix)(jnp.asarray(u, jnp.float32),
                                                   jnp.asarray(v, jnp.float32))[0, 0])
        assert abs(closed - prod.mean()) < 4 * prod.std() / np.sqrt(len(x)) + 1e-6


def test_zero_at_the_teacher_and_its_permutations():
    k = 5
    for extra in (0, 2):
        p = problems.relu_population(k=k, extra=extra)
        loss, grad_fn = jax.jit(p.loss), jax.jit(jax.grad(p.loss))
        (m,) = p.known_minima
        assert m.kind == "global" and m.loss == 0.0
        v = np.asarray(m.params)
        perm = v[np.random.default_rng(0).permutation(k + extra)]
        for w in (v, perm):
            assert abs(float(loss(jnp.asarray(w), None))) < 1e-5  # float32 cancellation
            assert relu.loss_float64(w, relu.teacher_weights(k, k)) < 1e-14
            assert np.abs(relu.grad_float64(w, relu.teacher_weights(k, k))).max() < 1e-12
            grad = grad_fn(jnp.asarray(w), None)
            assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).max()) < 1e-5
    assert np.array_equal(np.asarray(p.symmetry(jnp.asarray(perm))),
                          np.asarray(p.symmetry(jnp.asarray(v))))


def test_loss_is_positive_away_from_the_minimum_and_scales():
    p = problems.relu_population(k=4)
    v = relu.teacher_weights(4, 4)
    assert float(jax.jit(p.loss)(jnp.asarray(2 * v), None)) == pytest.approx(
        relu.loss_float64(2 * v, v), rel=1e-5)
    # W = 2 V: the student is twice the teacher, F = E[f_V^2] / 2
    assert relu.loss_float64(2 * v, v) == pytest.approx(0.5 * (4 / 2 + 12 / (2 * np.pi)))


def test_gradient_check_away_from_the_singularity():
    p = problems.relu_population(k=4, extra=1)
    w = jnp.asarray(np.random.default_rng(7).standard_normal((5, 4)) / 2, jnp.float32)
    f = jax.jit(lambda w: p.loss(w, None))
    check_grads(f, (w,), order=1, modes=("fwd", "rev"), eps=1e-3, atol=2e-2, rtol=2e-2)
    v = relu.teacher_weights(4, 4)
    assert np.allclose(np.asarray(jax.jit(jax.grad(f))(w)), relu.grad_float64(np.asarray(w), v),
                       atol=1e-5)


def test_hessian_is_finite_at_the_minimum_and_positive_definite_for_n_equal_k():
    p = problems.relu_population(k=3)
    h = jax.jit(jax.hessian(p.loss))(p.known_minima[0].params, None).reshape(9, 9)
    eig = np.linalg.eigvalsh(np.asarray(h))
    assert np.all(np.isfinite(eig)) and eig.min() > 1e-2


def test_general_teacher_form_equals_the_orthonormal_shortcut():
    w = jax.random.normal(jax.random.key(1), (6, 5)) / 2
    v = jnp.eye(4, 5)
    assert float(jax.jit(relu.population_loss)(w, v)) == pytest.approx(
        float(jax.jit(relu.orthonormal_loss, static_argnums=1)(w, 4)), rel=1e-5, abs=1e-6)


def test_a_zero_unit_has_finite_loss_and_gradient():
    p = problems.relu_population(k=3, extra=1)
    w = p.known_minima[0].params.at[0].set(0.0)
    value, grad = jax.jit(jax.value_and_grad(p.loss))(w, None)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert np.all(np.isfinite(jax.jit(jax.hessian(p.loss))(w, None)))
    v = relu.teacher_weights(3, 3)
    assert relu.loss_float64(np.asarray(w), v) == pytest.approx(float(value), abs=1e-5)
    assert np.allclose(relu.grad_float64(np.asarray(w), v), np.asarray(grad), atol=1e-5)
    assert np.all(np.asarray(grad)[[0, 3]] == 0)  # zero units: not differentiable, grad 0


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 0}, "k"), ({"k": 3, "extra": -1}, "extra"), ({"k": 3, "teacher": "random"},
                                                        "teacher"),
    ({"k": 3, "d": 2}, "d"), ({"k": 3, "init_scale": 0.0}, "init_scale")])
def test_bad_inputs_are_rejected(kwargs, match):
    with pytest.raises(gdlab.InputError, match=match):
        problems.relu_population(**kwargs)


def test_registered_as_a_builtin():
    assert problems.BUILTINS["relu_population"] is problems.relu_population
    p = problems.get("relu_population")
    assert p.data is None and p.spec["factory"] == "relu_population"
    assert problems.from_spec(p.spec).params_shape().shape == (6, 6)


# ----------------------------------------------------------------------- verdict rules


def test_interval_verdict(study):
    assert study.interval_verdict(0.6, 0.8, 0.5) == "agrees"
    assert study.interval_verdict(0.1, 0.3, 0.5) == "disagrees"
    assert study.interval_verdict(0.4, 0.6, 0.5) == "inconclusive"
    assert study.interval_verdict(0.001, 0.01, 0.02, above=False) == "agrees"
    assert study.interval_verdict(0.03, 0.05, 0.02, above=False) == "disagrees"
    assert study.interval_verdict(np.nan, 0.05, 0.02) == "inconclusive"


def test_rule_1a_none_for_small_k(study):
    assert study.verdict_none(0, 0, 3000, 0.005) == "agrees"
    assert study.verdict_none(60, 0, 3000, 0.005) == "disagrees"
    assert study.verdict_none(0, 30, 3000, 0.005) == "inconclusive"  # could all be spurious


def test_rule_1b_fraction_rises_with_k(study):
    cfg = study.SpuriousConfig()
    ks, n = [6, 8, 10, 12, 14, 16], [1000] * 6
    rising = [3, 100, 340, 560, 750, 860]
    assert study.verdict_rises(ks, rising, n, [0] * 6, cfg)[0] == "agrees"
    assert study.verdict_rises(ks, rising[::-1], n, [0] * 6, cfg)[0] == "disagrees"
    assert study.verdict_rises(ks, [3, 5, 2, 6, 4, 5], n, [0] * 6, cfg)[0] == "inconclusive"
    assert study.verdict_rises(ks, rising, n, [0, 0, 0, 0, 0, 200], cfg)[0] == "inconclusive"


def test_rule_1d_overparameterization(study):
    assert study.verdict_overparam((700, 1000), [(20, 5, 1000), (3, 0, 1000)], 0.25) == "agrees"
    assert study.verdict_overparam((700, 1000), [(600, 0, 1000)], 0.25) == "disagrees"
    assert study.verdict_overparam((700, 1000), [(20, 400, 1000)], 0.25) == "inconclusive"


def test_rule_2_noise_scale(study):
    cfg = study.NoiseConfig()
    assert study.verdict_noise_grows(np.array([-0.95, -0.9]), np.array([40.0, 30.0]),
                                     cfg) == "agrees"
    assert study.verdict_noise_grows(np.array([0.5, 0.7]), np.array([0.5, 0.9]),
                                     cfg) == "disagrees"
    assert study.verdict_noise_grows(np.array([-0.9, -0.9]), np.array([2.0, 50.0]),
                                     cfg) == "inconclusive"
    bs = np.array([[100.0, 80, 120], [400, 300, 500]])
    good = np.array([[300.0, 200, 450], [900, 600, 1400]])
    far = np.array([[9000.0, 5000, 20000], [900, 600, 1400]])
    wide = np.array([[1200.0, 100, 9000], [900, 600, 1400]])
    r2 = np.array([0.95, 0.97])
    assert study.verdict_same_order(good, bs, r2, 10, 0.8) == "agrees"
    assert study.verdict_same_order(far, bs, r2, 10, 0.8) == "disagrees"
    assert study.verdict_same_order(wide, bs, r2, 10, 0.8) == "inconclusive"
    assert study.verdict_same_order(good, bs, np.array([0.5, 0.97]), 10, 0.8) == "inconclusive"


def test_rule_3_regimes_and_linear_scaling(study):
    cfg = study.RegimesConfig()
    assert study.verdict_regimes(0.97, (40, 120), (4, 4000), -0.95, -0.05, 0, cfg) == "agrees"
    assert study.verdict_regimes(0.97, (40, 120), (4, 4000), -0.95, -0.05, 1, cfg) \
        == "disagrees"
    assert study.verdict_regimes(0.97, (40, 9000), (4, 4000), -0.95, -0.05, 0, cfg) \
        == "inconclusive"
    b = np.array([4.0, 8, 16, 32])
    no_edge = np.zeros(4, bool)
    assert study.verdict_linear_scaling(b, 0.01 * b, no_edge, cfg)[0] == "agrees"
    assert study.verdict_linear_scaling(b, 0.01 * b**0.1, no_edge, cfg)[0] == "disagrees"
    assert study.verdict_linear_scaling(b, 0.01 * b**0.35, no_edge, cfg)[0] == "inconclusive"
    edge = np.array([False, False, False, True])
    assert study.verdict_linear_scaling(b, 0.01 * b, edge, cfg)[0] == "inconclusive"
    assert study.verdict_linear_scaling(b[:2], 0.01 * b[:2], no_edge[:2], cfg)[0] \
        == "inconclusive"
    assert study.log_slope(b, 3 * b**0.5) == pytest.approx(0.5)


def test_rule_5_barriers_against_width(study):
    naive = np.array([[1.0, 1.2, 1.1], [0.9, 1.0, 0.95]])
    falls = np.array([[0.3, 0.4, 0.35], [0.02, 0.03, 0.01]])
    same = np.array([[0.9, 1.0, 1.3], [1.0, 1.1, 1.2]])
    half = np.array([[0.3, 0.4, 0.35], [0.3, 0.6, 0.2]])
    assert study.verdict_barriers(naive, falls, 0.5) == "agrees"
    assert study.verdict_barriers(naive, same, 0.5) == "disagrees"
    assert study.verdict_barriers(naive, half, 0.5) == "inconclusive"


def test_bootstrap_and_classification(study):
    a, b = np.array([2.0, 2.2, 1.9, 2.1]), np.array([1.0, 1.1, 0.9, 1.05])
    ratio, lo, hi = study.bootstrap(a, b, study._ratio_of_medians, 500)
    assert lo <= ratio <= hi and lo > 1.5
    cfg = study.SpuriousConfig()
    cls = study.classify_relu(np.array([1e-12, 0.03, 0.03, 1e-5, 0.03]),
                              np.array([1e-7, 1e-6, 1e-2, 1e-6, 1e-6]),
                              np.array([False, False, False, False, True]), cfg)
    assert list(cls) == ["global", "spurious", "not converged", "not converged", "diverged"]


def test_missing_api_and_config(study):
    assert study.missing_api(["train", "landscape.no_such_thing"]) == \
        ["gdlab.landscape.no_such_thing"]
    cfg = study.get_config(smoke=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.smoke = False
    rules = study.get_config().rules()
    assert set(rules) == {"1a", "1b", "1c", "1d", "2a", "2b", "3a", "3b", "4a", "4b", "4c", "5",
                          "6"}
    assert "0.8" in rules["1b"] and "0.01" in rules["1b"]


def test_a_claim_without_its_api_is_not_run(study, tmp_path, monkeypatch):
    monkeypatch.setitem(study.NEEDS, "stability", ("landscape.no_such_barrier",))
    result = study.run_claim("stability", study.get_config(smoke=True), tmp_path)
    assert result.rows[0].verdict == "not run"
    assert "gdlab.landscape.no_such_barrier" in result.rows[0].rule


def test_figures_from_hand_made_arrays(tmp_path):
    from matplotlib.figure import Figure

    from gdlab.plots import reproductions as rplots
    k = np.array([6, 8, 10])
    figs = [
        rplots.spurious_fractions(k, {"n = k": (k, [0.01, 0.2, 0.4], [0, 0.1, 0.3],
                                                [0.02, 0.3, 0.5])}),
        rplots.final_loss_split({"k=6": np.array([1e-14, 2e-13, 0.03]),
                                 "k=8": np.array([0.0, 0.05])}, 1e-6, 1e-4),
        rplots.noise_vs_loss({"digits": (np.array([[2.0, 2.1], [0.5, 0.6], [0.1, 0.1]]),
                                         np.array([[50.0, 40], [300, np.inf], [2000, 1500]]))}),
        rplots.bcrit_vs_bsimple(np.array([0.3, 0.1]), np.array([[50.0, 30, 90], [200, 100, 400]]),
                                np.array([[80.0, 60, 100], [300, 250, 350]])),
        rplots.best_rate_vs_batch(np.array([4.0, 16, 64]), np.array([0.01, 0.04, 0.08]),
                                  np.full(3, 0.001), np.full(3, 0.08), 20.0),
        rplots.two_groups({"top Hessian eigenvalue": {"small": np.array([1.0, 2.0]),
                                                      "large": np.array([3.0, 4.0])},
                           "test accuracy": {"small": np.array([0.9]),
                                             "large": np.array([0.8])}}),
        rplots.barriers_vs_width(np.array([16, 64]), {"naive": np.ones((2, 3)),
                                                      "aligned": np.zeros((2, 3))}),
        rplots.paths(np.linspace(0, 1, 5), {"same": np.zeros((2, 5))}, "error", 0.02),
        rplots.verdict_bars(["1a", "2a", "3a", "4a"],
                            ["agrees", "disagrees", "inconclusive", "not run"]),
    ]
    for i, fig in enumerate(figs):
        assert isinstance(fig, Figure)
        fig.savefig(tmp_path / f"{i}.png")
    assert len(list(tmp_path.glob("*.png"))) == len(figs)


def test_grid_edge_means_the_grid_does_not_bracket(study):
    from types import SimpleNamespace
    grid = np.tile([0.1, 0.2, 0.4, 0.8], (3, 1))
    sweep = SimpleNamespace(learning_rates=np.array([0.1, 0.4, 0.8]), rate_grid=grid)
    assert list(study.at_grid_edge(sweep)) == [True, False, True]
    one = SimpleNamespace(learning_rates=np.array([0.1, 0.1]), rate_grid=np.full((2, 1), 0.1))
    assert list(study.at_grid_edge(one)) == [True, True]


def _setting(k, extra, seeds, spurious, not_converged=0):
    """A hand-made result of `run_relu_setting`."""
    glob = seeds - spurious - not_converged
    return {"k": k, "n": k + extra, "extra": extra, "seeds": seeds, "steps": 100, "lr": 0.1,
            "counts": {"global": glob, "spurious": spurious, "not converged": not_converged,
                       "diverged": 0},
            "loss": np.concatenate([np.full(glob, 1e-12), np.full(spurious, 0.03),
                                    np.full(not_converged, 1e-5)]),
            "grad": np.zeros(seeds),
            "cls": np.array(["global"] * glob + ["spurious"] * spurious
                            + ["not converged"] * not_converged, dtype=object),
            "hessian": np.array([[0.01, 1.0]]) if spurious else np.zeros((0, 2)),
            "seconds": 1.0}


def test_spurious_rows_notes_and_figures_from_hand_made_settings(study, tmp_path):
    # the rows the smoke run does not reach (k < small_k, n > k) from hand-made counts
    cfg = study.SpuriousConfig(ks=(4, 6, 8, 10), overparam_ks=(8, 10), extras=(1, 2))
    settings = [_setting(4, 0, 1000, 0), _setting(6, 0, 1000, 3), _setting(8, 0, 1000, 120),
                _setting(10, 0, 1000, 340)]
    over = [_setting(8, 1, 256, 2, 1), _setting(8, 2, 256, 0), _setting(10, 1, 256, 5),
            _setting(10, 2, 256, 0)]
    rows = study._spurious_rows(cfg, settings, over)
    assert [(r.claim[:2], r.verdict) for r in rows] == [
        ("1a", "agrees"), ("1b", "agrees"), ("1c", "disagrees"), ("1d", "agrees")]
    assert "n = k + 2: 0/512" in rows[-1].ours
    notes = study._spurious_notes(cfg, settings, over, study._relu_frame(settings + over))
    assert any("Hessian check" in n for n in notes)
    figs = study._spurious_figures(cfg, settings, over, tmp_path)
    assert all((tmp_path / f).exists() for f in figs)


def test_noise_and_regimes_claims_run_on_their_smoke_configs(study, tmp_path):
    # claims 2 and 3 are left out of the smoke run (their programs take long to compile);
    # run them here, 2b's B_crit sweep aside (see the stand-in test below)
    cfg = study.get_config(smoke=True)
    assert "noise" not in cfg.claims and "regimes" not in cfg.claims
    for key in ("noise", "regimes"):
        result = study.run_claim(key, cfg, tmp_path)
        assert result.rows and all(r.verdict in study.VERDICTS for r in result.rows)
        assert all((tmp_path / f).exists() for f in result.figures + result.tables)
        assert result.notes or key == "noise"  # its only note is 2b's (no sweep here)


def test_critical_batch_against_noise_scale_on_a_stand_in_sweep(study, tmp_path, monkeypatch):
    from types import SimpleNamespace
    b = np.array([4.0, 16, 64, 256, 1400])

    def fake_sweep(problem, config, batch_sizes, target, **kwargs):
        steps = 100 * target ** -0.5 * (1 + 40 / b)  # S = S_min (1 + B_crit / B), B_crit 40
        grid = np.tile(np.array(kwargs["learning_rates"]), (len(b), 1))
        return SimpleNamespace(
            batch_sizes=b.astype(int), rate_grid=grid,
            learning_rates=np.where(b < 64, grid[:, 1], grid[:, -1]),
            median=lambda what: np.stack([steps, 0.9 * steps, 1.1 * steps], axis=1),
            fit=lambda: gdlab.fit_scaling(b, steps))

    monkeypatch.setattr(gdlab, "sweep_batch_size", fake_sweep)
    trace = SimpleNamespace(at_loss=lambda target: np.array([200.0, 300.0, 400.0]) / target)
    cfg = study.NoiseConfig(targets=(0.3, 0.1), rates=(0.1, 0.2, 0.4))
    row, notes, tables, figs = study._critical_batch(cfg, trace, tmp_path)
    assert row.claim.startswith("2b") and "B_crit 40" in row.ours
    assert row.verdict == "disagrees"  # B_crit 40 against B_simple 1000 and 3000
    assert "target 0.3: B = [64, 256, 1400]" in notes[0]  # at the grid's top: not bracketed
    assert all((tmp_path / f).exists() for f in tables + figs)
