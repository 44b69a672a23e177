"""The trading environment as a plain NumPy class: one environment, one step per call.

The baseline that a hand-written Python environment would be: the same reward formula
and observation layout as :class:`neuroflux.envs.TradingEnv`, read from the same
precomputed :class:`~neuroflux.envs.Market` arrays (converted to NumPy once), with the
episode restarted inside ``step`` as the pure env does. At bar ``t`` and target ``x``
[A] (weights ``x / A``):

    net = x . r[t + 1] / A - (fee + slippage) * sum |x - position| / A
    reward = log(1 + net) - risk_penalty * net**2

The observation is ``[features[t - window + 1 .. t].ravel(), position, position_pnl]``
in float32. Restarts draw from NumPy's generator, so the paths differ from JAX's.
"""

from __future__ import annotations

import numpy as np


class NumpyTradingEnv:
    """One trading environment stepped in NumPy (gym-style, auto-reset).

    Args:
        features: [T, A, F] float32 features (``Market.features``).
        returns: [T, A] simple close-to-close returns (``Market.returns``).
        window: Feature rows in an observation.
        episode_length: Steps in an episode.
        start: First bar an episode may start at.
        stop: End of the period (exclusive).
        fee, slippage, risk_penalty: Costs, as in ``EnvParams``.
        actions: ``"discrete"`` ({0, 1, 2} per asset) or ``"continuous"``.
        seed: Seed of the restart bars.
    """

    def __init__(
        self,
        features: np.ndarray,
        returns: np.ndarray,
        *,
        window: int,
        episode_length: int,
        start: int,
        stop: int,
        fee: float = 0.001,
        slippage: float = 0.0,
        risk_penalty: float = 0.0,
        actions: str = "discrete",
        seed: int = 0,
    ) -> None:
        self.features = np.asarray(features, np.float32)
        self.returns = np.asarray(returns, np.float64)
        self.num_assets = self.returns.shape[1]
        self.window = window
        self.episode_length = episode_length
        self.start, self.stop = start, stop
        self.cost = fee + slippage
        self.risk_penalty = risk_penalty
        self.discrete = actions == "discrete"
        self.rng = np.random.default_rng(seed)
        self.reset()

    def observe(self) -> np.ndarray:
        window = self.features[self.time - self.window + 1 : self.time + 1]
        return np.concatenate(
            [window.ravel(), self.position, self.position_pnl]
        ).astype(np.float32)

    def reset(self) -> np.ndarray:
        self.time = int(self.rng.integers(self.start, self.stop - 1))
        self.steps = 0
        self.position = np.zeros(self.num_assets)
        self.position_pnl = np.zeros(self.num_assets)
        self.log_equity = 0.0
        return self.observe()

    def step(self, action) -> tuple[np.ndarray, float, bool, dict[str, float]]:
        """``(obs, reward, done, info)``; a finished episode restarts."""
        action = np.asarray(action, np.float64).reshape(self.num_assets)
        target = action - 1.0 if self.discrete else np.clip(action, -1.0, 1.0)
        self.time += 1
        asset_return = self.returns[self.time]
        turnover = np.abs(target - self.position).sum() / self.num_assets
        net = float(target @ asset_return) / self.num_assets - self.cost * turnover
        growth = np.log1p(net)
        reward = growth - self.risk_penalty * net**2
        changed = target != self.position
        self.position_pnl = np.where(changed, 0.0, self.position_pnl) + np.log1p(
            target * asset_return
        )
        self.position = target
        self.steps += 1
        self.log_equity += growth
        info = {"net": net, "log_equity": self.log_equity}
        done = self.steps >= self.episode_length or self.time >= self.stop - 1
        obs = self.reset() if done else self.observe()
        return obs, float(reward), done, info
