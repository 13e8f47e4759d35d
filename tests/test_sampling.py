import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gdlab.core.sampling import epoch_shuffle, make_sampler, with_replacement


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
