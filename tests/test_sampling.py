import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import gdlab
from gdlab.core import engine
from gdlab.core.sampling import (
    _perm,
    epoch_position,
    epoch_shuffle,
    make_sampler,
    with_replacement,
)


def draws(sampler, steps, key=0):
    data_key = jax.random.key(key)
    state = sampler.init(data_key)

    def body(state, t):
        idx, state = sampler.draw(state, data_key, t)
        return state, idx
    return np.asarray(jax.jit(lambda s: jax.lax.scan(body, s, jnp.arange(steps))[1])(state))


def test_with_replacement_is_uniform_chi_square():
    n, b, steps = 50, 16, 2000
    idx = draws(with_replacement(n, b), steps)
    assert idx.shape == (steps, b) and idx.min() >= 0 and idx.max() < n
    counts = np.bincount(idx.ravel(), minlength=n)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_with_replacement_batch_means_are_unbiased():
    n, b, steps = 200, 10, 3000
    values = np.random.default_rng(0).standard_normal(n)
    idx = draws(with_replacement(n, b), steps, key=5)
    batch_means = values[idx].mean(axis=1)
    se = batch_means.std(ddof=1) / np.sqrt(steps)
    assert abs(batch_means.mean() - values.mean()) < 4 * se


@pytest.mark.parametrize("n, b", [(12, 4), (10, 3), (7, 7), (9, 1)])
def test_epoch_visits_every_index_once_per_epoch(n, b):
    epochs = 6
    steps = -(-epochs * n // b)
    stream = draws(epoch_shuffle(n, b), steps).ravel()
    for e in range(epochs):
        assert sorted(stream[e * n:(e + 1) * n].tolist()) == list(range(n))
    assert not np.array_equal(stream[:n], stream[n:2 * n]) or n == 1


def test_different_seeds_draw_different_batches():
    a = draws(make_sampler("epoch", 20, 5), 8, key=0)
    b = draws(make_sampler("epoch", 20, 5), 8, key=1)
    assert not np.array_equal(a, b)


def test_bad_sampler_inputs():
    with pytest.raises(ValueError, match="unknown sampling 'x'"):
        make_sampler("x", 10, 2)
    with pytest.raises(ValueError, match="batch_size 11 > N = 10"):
        epoch_shuffle(10, 11)


@pytest.mark.parametrize("rng", ["hash", "threefry"])
def test_each_index_generator_is_uniform_and_in_range(rng):
    n, b, steps = 37, 8, 3000
    idx = draws(with_replacement(n, b, rng), steps, key=3)
    assert idx.min() >= 0 and idx.max() < n
    assert stats.chisquare(np.bincount(idx.ravel(), minlength=n)).pvalue > 1e-3


def test_hash_draws_are_independent_across_steps_positions_and_seeds():
    n, b, steps = 16, 4, 4000
    idx = draws(with_replacement(n, b), steps, key=7)
    # Pairs (step t, step t+1) at one position, and (position 0, position 1) in one step,
    # are uniform over the n x n grid: no correlation between consecutive draws.
    for first, second in ((idx[:-1, 0], idx[1:, 0]), (idx[:, 0], idx[:, 1])):
        counts = np.bincount(first * n + second, minlength=n * n)
        assert stats.chisquare(counts).pvalue > 1e-3
    other = draws(with_replacement(n, b), steps, key=8)
    assert abs(np.corrcoef(idx.ravel(), other.ravel())[0, 1]) < 0.05
    assert np.mean(idx == other) == pytest.approx(1 / n, abs=0.01)


def test_hash_handles_sizes_that_are_not_powers_of_two_and_large_steps():
    sampler = with_replacement(1000, 5)
    key = jax.random.key(0)
    state = sampler.init(key)
    for t in (0, 1, 2**20, 2**31 - 1):
        idx, _ = sampler.draw(state, key, jnp.int32(t))
        assert idx.dtype == jnp.int32 and np.all((np.asarray(idx) >= 0) & (idx < 1000))


def test_unknown_index_generator_is_rejected():
    with pytest.raises(ValueError, match="unknown sampling rng 'mt'; valid: hash, threefry"):
        with_replacement(10, 2, "mt")


# ------------------------------------------------- steps near and past 2**31 / B: no wrap

INT32_MAX = 2**31 - 1
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.register_profile("ci", deadline=None, derandomize=True, database=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(PROFILE)
SCALE = int(os.environ.get("GDLAB_HYPOTHESIS_SCALE", "1"))  # examples x SCALE


@st.composite
def sizes_and_steps(draw):
    """(B, N, steps t): N up to int32, B <= N, t anywhere in the int32 step range, biased
    to the edges (near 2**31 / B, where t * B first wraps, and near 2**31)."""
    n = draw(st.one_of(st.integers(1, 5000), st.integers(1, INT32_MAX),
                       st.sampled_from([2**30 + 3, INT32_MAX, 1_000_003, 65536])))
    b = draw(st.one_of(st.integers(1, min(n, 4096)), st.integers(1, n), st.just(n)))
    edge = INT32_MAX // b
    near = st.integers(max(0, edge - 3), min(INT32_MAX, edge + 3))
    t = st.one_of(near, st.integers(0, INT32_MAX), st.integers(INT32_MAX - 3, INT32_MAX))
    return b, n, draw(st.lists(t, min_size=1, max_size=8))


@settings(max_examples=60 * SCALE)
@given(sizes_and_steps())
def test_epoch_position_is_exact_for_every_int32_step(case):
    # Eager and vectorised over t: one set of compiled primitives serves every (B, N).
    b, n, ts = case
    epoch, offset = epoch_position(jnp.asarray(ts, jnp.int32), b, n)
    assert np.asarray(epoch).tolist() == [t * b // n for t in ts]  # Python ints: exact
    assert np.asarray(offset).tolist() == [t * b % n for t in ts]


def _reference_batches(data_key, n, b, ts):
    """Indices of batches `ts` from the definition, in int64: stream position p = t B + k
    holds permutation p // N at p % N."""
    pos = np.asarray(ts, np.int64)[:, None] * b + np.arange(b)
    epochs = np.unique(pos // n)
    perms = np.stack([np.asarray(_perm(data_key, int(e), n)) for e in epochs])
    return perms[np.searchsorted(epochs, pos // n), pos % n], pos


def _walk(sampler, data_key, t0, steps):
    """Batches of steps t0 .. t0 + steps - 1 drawn in order from `init_at(t0)`, and the
    state after each step (jitted with t a traced int32, as the engine runs it)."""
    def body(state, t):
        idx, state = sampler.draw(state, data_key, t)
        return state, (idx, state)
    state = sampler.init_at(data_key, jnp.int32(t0))
    ts = jnp.int32(t0) + jnp.arange(steps, dtype=jnp.int32)
    return jax.jit(lambda s: jax.lax.scan(body, s, ts)[1])(state)


@pytest.mark.parametrize("n, b", [(50_000, 1024), (70_001, 32768)])
def test_epoch_sampler_matches_int64_reference_past_two_to_31_over_b(n, b):
    # Start at the first epoch boundary at or past 2**31 // B, where t * B no longer fits
    # int32, and walk two whole epochs: every batch is the one the int64 definition gives,
    # every index comes exactly once per epoch, and the carried state is init_at(t + 1).
    # (70_001 is prime and 70_000 x 32768 > 2**31: the 32-bit long-multiplication path.)
    data_key = jax.random.key(11)
    sampler = epoch_shuffle(n, b)
    first = -(-INT32_MAX // b)  # first t with t * B > INT32_MAX
    epoch = -(-first * b // n)
    t0 = epoch * n // b  # the step whose batch holds the start of that epoch
    steps = -(-2 * n // b) + 1
    assert t0 * b > INT32_MAX - b and t0 + steps < INT32_MAX
    idx, states = _walk(sampler, data_key, t0, steps)
    ref, pos = _reference_batches(data_key, n, b, range(t0, t0 + steps))
    np.testing.assert_array_equal(np.asarray(idx), ref)
    stream, pos = np.asarray(idx).ravel(), pos.ravel()
    for e in (epoch, epoch + 1):
        assert sorted(stream[pos // n == e].tolist()) == list(range(n))
    for i in (0, steps - 1):
        after = sampler.init_at(data_key, jnp.int32(t0 + i + 1))
        for got, want in zip(jax.tree.leaves(states), jax.tree.leaves(after), strict=True):
            np.testing.assert_array_equal(np.asarray(got)[i], np.asarray(want))


def test_epoch_sampler_last_steps_of_the_int32_range():
    # B = N: one epoch per step, so the epoch reaches 2**31 - 2 and the key of the next
    # permutation epoch + 2 = 2**31 (folded in as uint32, no wrap to a negative epoch).
    n = b = 6
    data_key = jax.random.key(2)
    t0 = INT32_MAX - 4
    idx, _ = _walk(epoch_shuffle(n, b), data_key, t0, 4)
    ref, _ = _reference_batches(data_key, n, b, range(t0, t0 + 4))
    np.testing.assert_array_equal(np.asarray(idx), ref)
    assert all(sorted(row) == list(range(n)) for row in np.asarray(idx).tolist())


@pytest.mark.parametrize("rng", ["hash", "threefry"])
def test_with_replacement_draws_past_two_to_31_over_b_are_the_direct_draws(rng):
    # The step is folded in as an exact uint32 word: batches at t near 2**31 / B and at the
    # end of the int32 range are in range, distinct step to step, and scanning gives the
    # same batches as drawing each step alone.
    n, b = 1000, 1024
    sampler = with_replacement(n, b, rng)
    data_key = jax.random.key(4)
    for t0 in (INT32_MAX // b - 2, INT32_MAX - 5):
        idx, _ = _walk(sampler, data_key, t0, 5)
        idx = np.asarray(idx)
        assert idx.min() >= 0 and idx.max() < n
        assert len({row.tobytes() for row in idx}) == 5
        state = sampler.init(data_key)
        for i in range(5):
            alone, _ = sampler.draw(state, data_key, jnp.int32(t0 + i))
            np.testing.assert_array_equal(np.asarray(alone), idx[i])


def _counting_problem(n):
    """loss(w, batch) = -mean_b w[i_b]: one SGD step at rate B adds to w[i] the number
    of times index i was drawn (exact in float32), so params count the visits."""
    data = {"i": np.arange(n, dtype=np.int32)}
    return gdlab.Problem(name="count", init=lambda key: jnp.zeros(n, jnp.float32),
                         loss=lambda w, batch: -jnp.mean(w[batch["i"]]), data=data)


@pytest.mark.parametrize("sampling", ["epoch", "with_replacement"])
def test_engine_chunk_near_the_end_of_the_int32_range(sampling):
    # The engine's compiled chunk run from a step past 2**31 / B (and to the last step a
    # run may have): its visit counts are the reference draws', the epoch sampler visits
    # every index once per epoch, and the step counter ends at t0 + length unwrapped.
    n, b = 96, 32
    problem = _counting_problem(n)
    config = gdlab.TrainConfig(optimizer="sgd", learning_rate=float(b), steps=6,
                               batch_size=b, sampling=sampling, eval_every=6)
    sampler = engine.build_sampler(problem, config)
    update = engine.make_update(problem, config.make_optimizer(), sampler)
    chunk = jax.jit(engine._with_counter(engine.make_fast_chunk(update, 6), 6))
    init = jax.vmap(engine.make_init(problem, config.make_optimizer(), sampler), (0, None))
    key = jax.random.key(0)
    past = -(-INT32_MAX // b)  # the first step with t * B > INT32_MAX
    for t0 in (-(-past // 3) * 3, INT32_MAX - 6):  # epochs of 3 steps
        states = init(jnp.arange(2, dtype=jnp.int32), key)
        states = states._replace(sampler_state=jax.vmap(sampler.init_at, (0, None))(
            states.data_key, jnp.int32(t0)))
        out, ok, all_ok, t_end = chunk(states, jnp.int32(t0), problem.data)
        assert int(t_end) == t0 + 6 and bool(np.all(ok)) and bool(all_ok)
        for s in range(2):
            data_key = states.data_key[s]
            if sampling == "epoch":
                idx, _ = _reference_batches(data_key, n, b, range(t0, t0 + 6))
            else:
                idx, _ = _walk(sampler, data_key, t0, 6)
            want = np.bincount(np.asarray(idx).ravel(), minlength=n)
            np.testing.assert_array_equal(np.asarray(out.params[s]), want)
            if sampling == "epoch" and t0 % 3 == 0:  # two whole epochs from a boundary
                np.testing.assert_array_equal(want, 2)


def test_steps_beyond_the_int32_counter_are_refused():
    with pytest.raises(gdlab.InputError, match=r"steps must be at most 2147483647 "
                                               r"\(2\*\*31 - 1.*int32\), got 2147483648"):
        gdlab.TrainConfig(steps=2**31)
    assert gdlab.TrainConfig(steps=INT32_MAX).steps == INT32_MAX
    lengths = engine.chunk_lengths(gdlab.TrainConfig(steps=INT32_MAX, eval_every=2**30))
    assert lengths == [2**30, 2**30 - 1]


@pytest.mark.parametrize("make", [epoch_shuffle, with_replacement,
                                  lambda n, b: with_replacement(n, b, "threefry")])
def test_more_data_than_int32_indices_address_is_refused(make):
    with pytest.raises(gdlab.InputError, match=r"N = 2147483648 data points is more than "
                                               r"mini-batch indices \(int32\) can address"):
        make(2**31, 4)
