"""Synthetic panels with a planted signal, to check that an evaluation finds it.

A panel of ``T`` periods and ``A`` assets; feature 0 is the signal, the others noise::

    z[t, a], e[t, a], noise[t, a, :] ~ N(0, 1), independent
    returns[t, a] = volatility * (ic * z[t, a] + sqrt(1 - ic**2) * e[t, a])

so within every period ``corr(z, returns) = ic`` exactly in the population: the
expected per-period information coefficient is ``ic`` (up to an O(1/A) small-sample
bias of the Pearson correlation, below 1e-3 for A >= 100), and the population rank IC
of this bivariate normal is ``(6 / pi) arcsin(ic / 2)``. The mean IC over ``T``
periods has a standard deviation of about ``(1 - ic**2) / sqrt(A T)``.

``returns[t]`` is the forward return of period ``t``: realized after ``features[t]``
is known, so it is the target aligned with the features, as ``make_targets`` does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from neuroflux._arrays import as_count

__all__ = ["PlantedPanel", "planted_signal_panel"]


@struct.dataclass
class PlantedPanel:
    """A panel with a planted signal: ``features[..., 0]`` predicts ``returns``.

    Attributes:
        features: [T, A, F]; feature 0 is the signal ``z``, the others pure noise.
        returns: [T, A] forward returns of each period.
    """

    features: jnp.ndarray
    returns: jnp.ndarray


def planted_signal_panel(
    key: jax.Array,
    n_times: int,
    n_assets: int,
    ic: float,
    *,
    n_noise_features: int = 2,
    volatility: float = 0.02,
) -> PlantedPanel:
    """Draw a panel whose feature 0 has cross-sectional correlation ``ic`` with returns.

    The model is in the module notes. Float64 when 64-bit mode is on (the default
    once :mod:`neuroflux` is imported).

    Args:
        key: PRNG key.
        n_times: Periods ``T >= 1``.
        n_assets: Assets ``A >= 2``.
        ic: Population per-period correlation of the signal with returns, in [-1, 1].
        n_noise_features: Features without information, appended after the signal.
        volatility: Standard deviation of each return, > 0.

    Returns:
        :class:`PlantedPanel` with features [T, A, 1 + n_noise_features] and returns
        [T, A].
    """
    n_times = as_count(n_times, "n_times", 1)
    n_assets = as_count(n_assets, "n_assets", 2)
    n_noise_features = as_count(n_noise_features, "n_noise_features", 0)
    if not -1 <= ic <= 1:
        raise ValueError(f"ic must be in [-1, 1]; got {ic!r}")
    if not volatility > 0:
        raise ValueError(f"volatility must be > 0; got {volatility!r}")
    n_features = 1 + n_noise_features
    draws = jax.random.normal(key, (n_times, n_assets, n_features + 1))
    signal, noise = draws[..., 0], draws[..., n_features]
    returns = volatility * (ic * signal + jnp.sqrt(1 - ic**2) * noise)
    return PlantedPanel(features=draws[..., :n_features], returns=returns)
