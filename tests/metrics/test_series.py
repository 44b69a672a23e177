"""The shared reductions behind the metrics: fused passes and the integer-key sort."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from neuroflux.metrics._series import nan_std, reduce_together, sort_ascending


def test_sort_ascending_matches_numpy_with_nans_infinities_and_subnormals():
    x = jnp.array([0.5, jnp.nan, -jnp.inf, 3.0, -2.5, jnp.inf, 1e-310, -1e-310, 0.5])
    ordered, count = jax.jit(sort_ascending)(x)
    np.testing.assert_array_equal(ordered, np.sort(np.asarray(x)))
    assert int(count) == 8
    ordered, _ = sort_ascending(x.astype(jnp.float32))
    np.testing.assert_array_equal(ordered, np.sort(np.asarray(x, np.float32)))


def test_reduce_together_gives_each_operation_and_its_identity_when_empty():
    x = jnp.array([2.0, -1.0, 4.0])
    terms = [(x, lax.add), (x, lax.mul), (x, lax.max), (x, lax.min)]
    np.testing.assert_array_equal(reduce_together(*terms), [5.0, -8.0, 4.0, -1.0])
    empty = jnp.zeros(0)
    np.testing.assert_array_equal(
        reduce_together(*[(empty, op) for _, op in terms]),
        [0.0, 1.0, -np.inf, np.inf],
    )


def test_nan_std_matches_numpy_far_from_zero():
    # A large mean and a small spread: the corrected two-pass sum keeps the digits.
    rng = np.random.default_rng(7)
    x = 1e6 + rng.standard_normal(1000) * 1e-3
    x[::7] = np.nan
    np.testing.assert_allclose(nan_std(jnp.asarray(x)), np.nanstd(x, ddof=1), 1e-9)
    assert np.isnan(nan_std(jnp.array([1.0, np.nan])))
