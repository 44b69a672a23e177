"""A trading environment as pure functions over explicit state and parameters.

The gymnax contract, written here: ``reset(key, params) -> (obs, state)`` and
``step(key, state, action, params) -> (obs, state, reward, done, info)``, with the
episode restarted inside ``step`` when it ends, so that ``jax.vmap`` runs thousands of
environments and ``lax.scan`` runs their rollouts without leaving XLA.

Time: at bar ``t`` the agent sees the observation made at ``t``'s close and chooses the
target positions [A] held until ``t + 1``'s close. The step then moves to ``t + 1``:

* weights ``w = target / A`` (each asset gets an equal share of the budget);
* ``net = w . r_{t+1} - (fee + slippage) * sum |target - position| / A``, with ``r`` the
  assets' simple close-to-close returns;
* ``reward = log(1 + net) - risk_penalty * net**2``: the log return net of costs, less
  a variance penalty when ``risk_penalty > 0``.

Actions: ``"discrete"`` takes integers [A] in {0, 1, 2} for short, flat, long;
``"continuous"`` takes target positions [A], clipped to the action space [-1, 1].
The observation is the :mod:`~neuroflux.envs.observations` feature window of the last
``window`` bars, the positions and their P&L (:func:`observations.observation`).

Episodes start at a uniformly random bar of the training period ``[start, stop)`` and
last ``episode_length`` steps, or until the period's last bar. Single asset is A = 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax

from neuroflux._arrays import as_count
from neuroflux.envs import observations
from neuroflux.strategies.steps import Bar

__all__ = ["ACTIONS", "EnvConfig", "EnvParams", "EnvState", "Market", "TradingEnv"]

ACTIONS = ("discrete", "continuous")


@struct.dataclass
class Market:
    """Per-bar features [T, A, F] and close-to-close returns [T, A], in float32.

    The returns are computed in float64 and rounded once; rewards and the position
    P&L are float32 (a training signal, not an account: the backtest of an agent's
    positions is float64), which makes a step about a third cheaper.
    """

    features: jax.Array
    returns: jax.Array

    @classmethod
    def from_bars(cls, bars: Bar) -> Market:
        """The market of :class:`Bar` arrays [T] (one asset) or [T, A] (a panel)."""
        if bars.close.ndim == 1:
            bars = jax.tree.map(lambda x: x[:, None], bars)
        features = jax.vmap(observations.bar_features, in_axes=1, out_axes=1)(bars)
        close = bars.close
        returns = jnp.concatenate(
            [
                jnp.full((1, close.shape[1]), jnp.nan, close.dtype),
                close[1:] / close[:-1] - 1,
            ]
        )
        return cls(features.astype(jnp.float32), returns.astype(jnp.float32))

    @property
    def num_bars(self) -> int:
        return self.returns.shape[0]

    @property
    def num_assets(self) -> int:
        return self.returns.shape[1]


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnvConfig:
    """Static shape of the environment (hashable; a ``jit`` static argument).

    Attributes:
        window: Feature rows in an observation (bars ``t - window + 1 .. t``).
        episode_length: Steps in an episode.
        actions: ``"discrete"`` (short/flat/long) or ``"continuous"`` (target
            position in [-1, 1]).
    """

    window: int = 16
    episode_length: int = 256
    actions: str = "discrete"

    def __post_init__(self) -> None:
        as_count(self.window, "window", 1)
        as_count(self.episode_length, "episode_length", 1)
        if self.actions not in ACTIONS:
            raise ValueError(f"actions must be one of {ACTIONS}; got {self.actions!r}")

    @property
    def first_bar(self) -> int:
        """The first bar whose observation is fully defined."""
        return observations.LOOKBACK + self.window - 2


@struct.dataclass
class EnvParams:
    """Market data, costs and the training period: a pytree that may be vmapped.

    Attributes:
        market: :class:`Market`.
        start: First bar an episode may start at (>= ``config.first_bar``).
        stop: End of the period (exclusive): no step reads a return past it.
        fee: Proportional fee per unit of position traded.
        slippage: Proportional slippage per unit of position traded.
        risk_penalty: Weight of the squared net return subtracted from the reward.
    """

    market: Market
    start: jax.Array
    stop: jax.Array
    fee: jax.Array = 0.001
    slippage: jax.Array = 0.0
    risk_penalty: jax.Array = 0.0


@struct.dataclass
class EnvState:
    """Where an episode stands.

    Attributes:
        time: The bar whose close was just observed.
        steps: Steps taken in the episode.
        position: Target positions held [A].
        position_pnl: Log return of each position since it last changed [A].
        log_equity: Sum of the episode's ``log(1 + net)``.
    """

    time: jax.Array
    steps: jax.Array
    position: jax.Array
    position_pnl: jax.Array
    log_equity: jax.Array


@dataclasses.dataclass(frozen=True)
class TradingEnv:
    """The environment for one :class:`EnvConfig`; its methods are pure."""

    config: EnvConfig = EnvConfig()

    def make_params(
        self,
        market: Market,
        *,
        start: int | None = None,
        stop: int | None = None,
        **costs: Any,
    ) -> EnvParams:
        """Parameters over ``market`` bars ``[start, stop)``, checked concretely.

        Args:
            market: The :class:`Market`.
            start: First bar an episode may start at; default ``config.first_bar``.
            stop: End of the period (exclusive); default the last bar + 1.
            **costs: ``fee``, ``slippage``, ``risk_penalty``.

        Raises:
            ValueError: A period that starts in the features' warm-up, is shorter than
                one step, or whose observations are not finite (naming the bar).
        """
        first = self.config.first_bar
        start = first if start is None else as_count(start, "start", 0)
        stop = market.num_bars if stop is None else as_count(stop, "stop", 1)
        if start < first:
            raise ValueError(
                f"start={start} is inside the features' warm-up: the first observable "
                f"bar with window={self.config.window} is {first}"
            )
        if not start + 1 < stop <= market.num_bars:
            raise ValueError(
                f"the period [start={start}, stop={stop}) must hold at least two bars "
                f"of the {market.num_bars} in the market"
            )
        used = market.features[start - self.config.window + 1 : stop]
        bad = ~jnp.all(jnp.isfinite(used), axis=(1, 2))
        if bool(jnp.any(bad)):
            bar = start - self.config.window + 1 + int(jnp.argmax(bad))
            raise ValueError(
                f"the features at bar {bar} are not finite (flat or NaN bars)"
            )
        return EnvParams(
            market=market, start=jnp.asarray(start), stop=jnp.asarray(stop), **costs
        )

    def num_assets(self, params: EnvParams) -> int:
        return params.market.num_assets

    def observation_size(self, params: EnvParams) -> int:
        """Length of an observation vector."""
        market = params.market
        width = market.num_assets * market.features.shape[2]
        return self.config.window * width + 2 * market.num_assets

    def observe(self, state: EnvState, params: EnvParams) -> jax.Array:
        """The observation at ``state.time`` (:func:`observations.observation`)."""
        features = params.market.features
        window = lax.dynamic_slice_in_dim(
            features, state.time - self.config.window + 1, self.config.window
        )
        return observations.observation(window, state.position, state.position_pnl)

    def start_state(self, key: jax.Array, params: EnvParams) -> EnvState:
        """A new episode's state at a uniformly random bar of ``[start, stop - 1)``.

        The bar is ``start + bits % span`` of one 32-bit random word: cheaper than
        ``jax.random.randint`` inside every vmapped step, and biased by less than
        ``span / 2**32`` (about 1e-6 for 5,000 bars).
        """
        span = (params.stop - 1 - params.start).astype(jnp.uint32)
        offset = jax.random.bits(key, (), jnp.uint32) % span
        return self.state_at(params.start + offset.astype(params.start.dtype), params)

    def state_at(self, time: jax.Array, params: EnvParams) -> EnvState:
        """A new episode's state at bar ``time``: flat, no P&L."""
        zeros = jnp.zeros(params.market.num_assets, params.market.returns.dtype)
        return EnvState(
            time=jnp.asarray(time),
            steps=jnp.zeros((), jnp.int32),
            position=zeros,
            position_pnl=zeros,
            log_equity=jnp.zeros((), zeros.dtype),
        )

    def reset(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        """A new episode (:meth:`start_state`) and its first observation."""
        state = self.start_state(key, params)
        return self.observe(state, params), state

    def positions(self, action: jax.Array, dtype: Any = jnp.float32) -> jax.Array:
        """Target positions [A] of an action."""
        if self.config.actions == "discrete":
            return jnp.asarray(action).astype(dtype) - 1
        return jnp.clip(jnp.asarray(action).astype(dtype), -1, 1)

    def transition(
        self, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[EnvState, jax.Array, jax.Array, dict[str, jax.Array]]:
        """One bar without restarting: ``(state, reward, done, info)``.

        ``done`` says the episode has ended (its length, or the period's last bar);
        :meth:`step` restarts it, a gymnasium wrapper reports it.
        """
        market = params.market
        target = self.positions(action, market.returns.dtype)
        time = state.time + 1
        asset_return = market.returns[time]
        num_assets = market.num_assets
        turnover = jnp.sum(jnp.abs(target - state.position)) / num_assets
        net = jnp.sum(target * asset_return) / num_assets
        costs = (params.fee + params.slippage) * turnover
        net = (net - costs).astype(target.dtype)
        reward = (jnp.log1p(net) - params.risk_penalty * net**2).astype(target.dtype)
        pnl = jnp.where(target != state.position, 0.0, state.position_pnl)
        stepped = EnvState(
            time=time,
            steps=state.steps + 1,
            position=target,
            position_pnl=pnl + jnp.log1p(target * asset_return),
            log_equity=state.log_equity + jnp.log1p(net),
        )
        done = (stepped.steps >= self.config.episode_length) | (time >= params.stop - 1)
        info = {"net": net, "log_equity": stepped.log_equity}
        return stepped, reward, done, info

    def step(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, jax.Array]]:
        """One bar; a finished episode restarts (the returned obs is the new one's).

        Returns:
            ``(obs, state, reward, done, info)``; ``info`` holds the step's ``net``
            return and the episode's ``log_equity`` before any restart.
        """
        stepped, reward, done, info = self.transition(state, action, params)
        restarted = self.start_state(key, params)
        state = jax.tree.map(
            lambda new, old: lax.select(done, new, old), restarted, stepped
        )
        return self.observe(state, params), state, reward, done, info
