"""Paired stationary bootstrap of a Sharpe ratio difference, against NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neuroflux.metrics.bootstrap import (
    sharpe_difference_bootstrap,
    stationary_bootstrap_indices,
)

LENGTH = 500
SQRT_YEAR = np.sqrt(252)


def _stationary_indices_reference(
    key: jax.Array, length: int, samples: int, block_length: float
) -> np.ndarray:
    """The stationary bootstrap written as Politis and Romano's loop, fed the same
    random draws as the JAX function."""
    restart_key, start_key = jax.random.split(key)
    uniform = np.asarray(jax.random.uniform(restart_key, (samples, length)))
    starts = np.asarray(jax.random.randint(start_key, (samples, length), 0, length))
    indices = np.empty((samples, length), dtype=np.int64)
    for s in range(samples):
        indices[s, 0] = starts[s, 0]
        for t in range(1, length):
            if uniform[s, t] < 1.0 / block_length:
                indices[s, t] = starts[s, t]
            else:
                indices[s, t] = (indices[s, t - 1] + 1) % length
    return indices


def _sharpe_reference(returns: np.ndarray) -> np.ndarray:
    return returns.mean(axis=-1) / returns.std(axis=-1, ddof=1) * SQRT_YEAR


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """Two correlated, daily-like return series [LENGTH]."""
    rng = np.random.default_rng(20240610)
    common = rng.normal(0.0, 0.01, LENGTH)
    a = 0.0006 + common + rng.normal(0.0, 0.004, LENGTH)
    b = 0.0002 + common + rng.normal(0.0, 0.004, LENGTH)
    return a, b


@pytest.mark.parametrize("block_length", [1.0, 5.0, 20.0])
def test_indices_match_the_reference_loop(block_length):
    key = jax.random.key(3)
    got = np.asarray(stationary_bootstrap_indices(key, 200, 16, block_length))
    expected = _stationary_indices_reference(key, 200, 16, block_length)
    np.testing.assert_array_equal(got, expected)
    assert got.min() >= 0 and got.max() < 200


def test_mean_block_length():
    indices = np.asarray(stationary_bootstrap_indices(jax.random.key(0), 2000, 50, 10))
    continues = indices[:, 1:] == (indices[:, :-1] + 1) % 2000
    # A restart lands on the next bar by chance with probability 1 / T.
    assert 1 / (1 - continues.mean()) == pytest.approx(10, rel=0.1)


def test_matches_numpy_percentile_interval(pair):
    a, b = pair
    key = jax.random.key(7)
    difference, lower, upper = sharpe_difference_bootstrap(
        a, b, key, samples=300, block_length=10
    )
    indices = _stationary_indices_reference(key, LENGTH, 300, 10)
    resampled = _sharpe_reference(a[indices]) - _sharpe_reference(b[indices])
    np.testing.assert_allclose(
        difference, _sharpe_reference(a) - _sharpe_reference(b), rtol=1e-12
    )
    np.testing.assert_allclose(
        [lower, upper], np.percentile(resampled, [2.5, 97.5]), rtol=1e-12
    )
    assert lower <= difference <= upper


def test_identical_series_give_exactly_zero(pair):
    a, _ = pair
    result = sharpe_difference_bootstrap(a, a, jax.random.key(1), samples=200)
    assert [float(x) for x in result] == [0.0, 0.0, 0.0]


def test_a_strongly_better_series_excludes_zero(pair):
    a, _ = pair
    difference, lower, upper = sharpe_difference_bootstrap(
        a, a - 0.002, jax.random.key(2), samples=500
    )
    assert difference > 0
    assert lower > 0
    assert upper > lower


def test_interval_contains_zero_for_equal_sharpe_pairs():
    rng = np.random.default_rng(99)
    covered = 0
    for seed in range(20):
        a = rng.normal(0.0005, 0.01, LENGTH)
        b = rng.normal(0.0005, 0.01, LENGTH)
        _, lower, upper = sharpe_difference_bootstrap(
            a, b, jax.random.key(seed), samples=400, block_length=5
        )
        covered += bool(lower <= 0 <= upper)
    # Nominal 95 %: P(at most 15 of 20) is below 0.3 % for a correct interval.
    assert covered >= 16


def test_wider_confidence_gives_a_wider_interval(pair):
    a, b = pair
    key = jax.random.key(4)
    _, low_90, high_90 = sharpe_difference_bootstrap(
        a, b, key, samples=400, confidence=0.9
    )
    _, low_99, high_99 = sharpe_difference_bootstrap(
        a, b, key, samples=400, confidence=0.99
    )
    assert low_99 <= low_90 and high_90 <= high_99


def test_nans_are_ignored_like_sharpe_ratio(pair):
    a, b = pair
    a = a.copy()
    a[0] = np.nan
    difference, lower, upper = sharpe_difference_bootstrap(
        a, b, jax.random.key(5), samples=200
    )
    expected = np.nanmean(a) / np.nanstd(a, ddof=1) * SQRT_YEAR - _sharpe_reference(b)
    np.testing.assert_allclose(difference, expected, rtol=1e-12)
    assert np.isfinite(lower) and np.isfinite(upper)


def test_under_jit_and_vmap(pair):
    a, b = pair
    key = jax.random.key(6)
    eager = sharpe_difference_bootstrap(a, b, key, samples=200)
    jitted = jax.jit(lambda x, y, k: sharpe_difference_bootstrap(x, y, k, samples=200))(
        a, b, key
    )
    np.testing.assert_allclose(jitted, eager, rtol=1e-12)
    keys = jax.random.split(key, 3)
    batched = jax.vmap(
        lambda x, y, k: sharpe_difference_bootstrap(x, y, k, samples=200),
        in_axes=(0, 0, 0),
    )(jnp.stack([a, a, b]), jnp.stack([b, a, a]), keys)
    assert batched[0].shape == (3,)
    single = sharpe_difference_bootstrap(a, b, keys[0], samples=200)
    np.testing.assert_allclose([x[0] for x in batched], single, rtol=1e-12)
    assert [float(x[1]) for x in batched] == [0.0, 0.0, 0.0]


def test_mismatched_lengths_are_an_error(pair):
    a, b = pair
    with pytest.raises(ValueError, match="same length"):
        sharpe_difference_bootstrap(a, b[:-1], jax.random.key(0), samples=10)
