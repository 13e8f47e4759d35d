"""Diverging seeds under every named optimizer: frozen at their last finite params,
flagged with the step, and invisible to the other seeds (bitwise). Non-finite data is
refused before anything compiles; a non-finite start is flagged at step 0."""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gdlab
from gdlab import problems
from gdlab.config import OPTIMIZERS
from gdlab.core import engine
from gdlab.core.sampling import gather

N, STEPS, EVERY, SEEDS, BLOCK = 16, 40, 10, 16, 4
CLIFF = 10.0  # at w[0] >= CLIFF the gradient is infinite


def cliff_problem() -> gdlab.Problem:
    """w[0] drifts up with slope mean(x) ~ 1 and falls off a cliff at w[0] = 10 (the loss
    and its gradient overflow to inf); w[1] fits a quadratic. Seeds that start low enough
    stay healthy for the whole run, the others blow up mid-run at a step set by their init.
    """
    x = np.linspace(0.5, 1.5, N, dtype=np.float32)

    def init(key):
        return jnp.stack([jax.random.uniform(key, (), minval=-40.0, maxval=9.0),
                          jax.random.normal(jax.random.fold_in(key, 1), ())])

    def loss(w, batch):
        x_B = batch["x"]
        # Double where: the unselected branch sees 0, so its (zero) cotangent stays 0.
        safe = jnp.where(w[0] < CLIFF, 0.0, w[0])
        drift = jnp.where(w[0] < CLIFF, -w[0] * x_B, jnp.exp(100.0 * safe) * x_B)
        return jnp.mean(drift + x_B * (w[1] - 1.0) ** 2)

    return gdlab.Problem(name="cliff", init=init, loss=loss, data={"x": x})


# Rates that drift w[0] by about 25 over the run: about half the seeds fall off.
RATES = {"sgd": 0.6, "adam": 0.6, "adamw": 0.6, "rmsprop": 0.5, "momentum": 0.08,
         "nesterov": 0.08}


def config_for(optimizer: str) -> gdlab.TrainConfig:
    # Full batch: the cheapest program to compile (the sweep below covers mini-batches).
    return gdlab.TrainConfig(optimizer=optimizer, learning_rate=RATES[optimizer], steps=STEPS,
                             eval_every=EVERY)


def reference(problem, config, seed_id: int, key: int = 0):
    """A plain Python loop of one seed (optax, the sampler, jax.grad; no guard, no vmap):
    (params before the first non-finite update, that step or -1)."""
    init_key, data_key = engine.seed_keys(jax.random.key(key), seed_id)
    opt, sampler = config.make_optimizer(), engine.build_sampler(problem, config)
    params = problem.init(init_key)
    state, s_state = opt.init(params), () if sampler is None else sampler.init(data_key)
    one = _reference_step(problem.loss, config, opt, sampler)
    for t in range(config.steps):
        new_params, new_state, s_state = one(params, state, s_state, data_key, t,
                                             problem.data)
        if not all(np.all(np.isfinite(x)) for x in jax.tree.leaves((new_params, new_state))):
            return params, t
        params, state = new_params, new_state
    return params, -1


_STEPS: dict = {}


def _reference_step(loss, config, opt, sampler):
    key = (loss, config)  # one compile per problem and config
    if key not in _STEPS:
        @jax.jit
        def one(params, state, s_state, data_key, t, data):
            batch = data
            if sampler is not None:
                idx, s_state = sampler.draw(s_state, data_key, t)
                batch = gather(data, idx)
            grads = jax.grad(loss)(params, batch)
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state, s_state
        _STEPS[key] = one
    return _STEPS[key]


@pytest.fixture(scope="module")
def cliff():
    return cliff_problem()


def tree_equal(a, b) -> bool:
    return all(np.array_equal(x, y, equal_nan=True)
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_diverging_seeds_are_frozen_flagged_and_leave_the_others_bitwise_alone(cliff,
                                                                               optimizer):
    config = config_for(optimizer)
    runs = gdlab.train(cliff, config, seeds=SEEDS, seed_block=BLOCK, progress=False)
    bad = runs.diverged_at >= 0
    # The case is what it should be: both kinds, blow-ups inside chunks, after step 0.
    assert 3 <= bad.sum() <= SEEDS - 3, runs.diverged_at
    assert runs.diverged_at[bad].min() > 0 and np.any(runs.diverged_at[bad] % EVERY != 0)
    assert len(set((runs.diverged_at[bad] // EVERY).tolist())) >= 2  # in several chunks
    # The last finite params of a diverged seed lie past the cliff (the step onto it was
    # finite; the one from it is not): finite params, an infinite loss.
    assert np.all(np.isfinite(runs.params)) and np.all(runs.params[bad, 0] >= CLIFF)
    assert np.all(runs.final_loss[bad] == np.inf)
    # (A healthy seed may step onto the cliff at the very last step: its loss is inf too.)
    on_cliff = runs.params[:, 0] >= CLIFF
    assert np.all(np.isfinite(runs.final_loss[~bad & ~on_cliff]))

    # Frozen at the last finite params, flagged at the step of the first non-finite update
    # (a plain Python loop of each seed alone says which).
    for s in np.flatnonzero(bad)[:2]:
        params, at = reference(cliff, config, int(runs.seed_ids[s]))
        assert runs.diverged_at[s] == at
        np.testing.assert_allclose(runs.params[s], params, rtol=1e-6, atol=1e-6)
    # A frozen seed's loss stops changing once it is frozen.
    for s in np.flatnonzero(bad):
        after = runs.eval_steps > runs.diverged_at[s]
        assert np.all(runs.loss_history[s, after] == runs.final_loss[s])

    # Without them: the same lanes (seed ids, program, seed block), the diverging ones
    # replaced by copies of the healthiest seed; every healthy lane is bitwise the same.
    calm = int(runs.seed_ids[np.argmin(np.where(bad, np.inf, runs.init_params[:, 0]))])
    ids = np.where(bad, calm, runs.seed_ids)
    alone = gdlab.train(cliff, config, seeds=SEEDS, seed_block=BLOCK, init_seeds=ids,
                        data_seeds=ids, progress=False)
    assert alone.timings["cache_hit"]  # the same compiled program
    assert not alone.diverged.any()
    ok = ~bad
    assert tree_equal(alone.params[ok], runs.params[ok])
    for name in runs.metrics:
        np.testing.assert_array_equal(alone.metrics[name][ok], runs.metrics[name][ok])


def test_a_seed_diverging_under_a_huge_lane_rate_of_a_sweep():
    # Per-lane rates: the huge lane of a least-squares sweep blows up (geometrically, in a
    # later chunk), the small lane is bitwise the run trained at that rate alone.
    problem = problems.least_squares(n=16, d=2)
    config = gdlab.TrainConfig(optimizer="sgd", learning_rate=0.1, steps=60, batch_size=8,
                               eval_every=20)
    sw = gdlab.sweep(problem, config, seeds=4, learning_rate=[0.1, 40.0], seed_block=2,
                     progress=False)
    small, huge = sw.runs
    assert not small.diverged.any() and huge.diverged.all()
    assert np.all(huge.diverged_at > 0)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(huge.params))
    alone = gdlab.sweep(problem, config, seeds=4, learning_rate=[0.1, 0.2], seed_block=2,
                        progress=False)
    assert alone.timings["cache_hit"] and not alone.runs[1].diverged.any()
    assert tree_equal(alone.runs[0].params, small.params)
    np.testing.assert_array_equal(alone.runs[0].loss_history, small.loss_history)


def test_overflowing_optimizer_state_with_finite_params_is_a_divergence():
    # rmsprop / adam: a huge but finite gradient overflows the second moment to inf, the
    # update g / sqrt(inf) is 0 and the params stay finite but stuck. The fast chunk sees
    # the non-finite state; the guarded rerun must flag the seed too (it used to check the
    # params only, leaving the seed live and rerunning every later chunk guarded).
    def loss(w, batch):
        return jnp.sum(jnp.where(w < 1.0, -w, 1e25 * w))

    problem = gdlab.Problem(name="steep", loss=loss,
                            init=lambda key: jax.random.uniform(key, (2,), minval=-3.0,
                                                                maxval=0.5))
    for optimizer in ("rmsprop", "adam"):
        config = gdlab.TrainConfig(optimizer=optimizer, learning_rate=0.3, steps=30,
                                   eval_every=10)
        reruns = []
        real = engine.Engine.guarded

        def spy(self, length, real=real, reruns=reruns):
            reruns.append(length)
            return real(self, length)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(engine.Engine, "guarded", spy)
            runs = gdlab.train(problem, config, seeds=8, seed_block=2, progress=False)
        assert runs.diverged.all() and np.all(runs.diverged_at > 0)
        assert np.all(np.isfinite(runs.params))
        # Rerun guarded once per chunk in which a seed diverged, not every chunk after it.
        assert len(reruns) == len(set((runs.diverged_at // 10).tolist())) < 3, reruns


# ------------------------------------------------------------- non-finite data and starts


class Compiled(Exception):
    """Raised in place of compiling: reaching it means every check passed."""


@pytest.fixture
def no_compile(monkeypatch):
    def refuse(*args, **kwargs):
        raise Compiled
    monkeypatch.setattr(engine, "get_engine", refuse)


@pytest.mark.parametrize("where, bad", [("data", np.nan), ("data", np.inf),
                                        ("test_data", np.nan), ("eval_data", -np.inf)])
def test_non_finite_data_is_refused_before_compiling(no_compile, where, bad):
    problem = problems.least_squares(n=16, d=2)
    dirty = {k: np.array(v) for k, v in problem.data.items()}
    dirty["x"][3, 1] = bad
    config = gdlab.TrainConfig(steps=4, eval_every=2)
    kwargs = {}
    if where == "eval_data":
        kwargs["eval_data"] = dirty
    else:
        problem = dataclasses.replace(problem, **{where: dirty})
    with pytest.raises(gdlab.InputError, match=r"\['x'\] holds 1 NaN or infinite value"):
        gdlab.train(problem, config, seeds=2, progress=False, **kwargs)
    with pytest.raises(Compiled):  # the clean problem passes every check
        gdlab.train(problems.least_squares(n=16, d=2), config, seeds=2, progress=False)


def test_nan_written_into_the_data_after_a_run_is_still_refused(no_compile):
    # The finiteness check is cached per data object; NumPy arrays can change in place.
    x = np.linspace(-1.0, 1.0, 16, dtype=np.float32)
    problem = gdlab.Problem(name="mutable", init=lambda key: jnp.zeros(()),
                            loss=lambda w, batch: jnp.mean((w - batch["x"]) ** 2),
                            data={"x": x})
    config = gdlab.TrainConfig(steps=4, eval_every=2)
    with pytest.raises(Compiled):
        gdlab.train(problem, config, progress=False)
    x[5] = np.nan
    with pytest.raises(gdlab.InputError, match=r"data\['x'\] holds 1 NaN"):
        gdlab.train(problem, config, progress=False)


def test_a_non_finite_start_is_flagged_at_step_zero_with_a_warning():
    # Seeds starting past w = 5 have an infinite loss and a zero gradient: the params stay
    # finite and no update fails, so only the measurement at step 0 can tell.
    problem = gdlab.Problem(
        name="plateau", init=lambda key: jax.random.uniform(key, (), minval=0.0, maxval=10.0),
        loss=lambda w, batch: jnp.where(w > 5.0, jnp.inf, (w - 1.0) ** 2))
    config = gdlab.TrainConfig(optimizer="sgd", learning_rate=0.1, steps=20, eval_every=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = gdlab.train(problem, config, seeds=16, progress=False)
    start = runs.init_params > 5.0
    assert 2 <= start.sum() <= 14
    np.testing.assert_array_equal(runs.diverged_at, np.where(start, 0, -1))
    np.testing.assert_array_equal(runs.diverged, start)
    messages = [str(w.message) for w in caught if "initialisation" in str(w.message)]
    assert len(messages) == 1 and f"{start.sum()} of 16 seeds" in messages[0]
    assert str(runs.seed_ids[start][:10].tolist()) in messages[0]
    np.testing.assert_allclose(runs.params[~start], 1.0, atol=0.1)  # the others train on
