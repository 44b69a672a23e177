"""Training throughput of the transformer forecaster against the same model in PyTorch.

Run with ``python bench/bench_forecaster.py`` after ``bash scripts/setup.sh bench``
(torch is a benchmark-only dependency), about 3 minutes on a 2-core CPU.

Both sides train the same architecture on the same data with the same settings:
per-bar tokens (a linear embedding plus a sinusoidal positional encoding), 2 pre-norm
encoder blocks (multi-head attention, a GELU MLP), a final layer norm, the last token
into a mean and a log-scale head; Gaussian negative log-likelihood; AdamW with a
warmup-cosine schedule and global-norm clipping; shuffled minibatches; a validation
pass after every epoch. float32, batch 256, lookback 64, 13 features, d_model 32, 4
heads, feed-forward 64; 8,192 training and 1,024 validation windows.

neuroflux runs :func:`neuroflux.forecasting.train` (one jitted epoch: a ``lax.scan``
of the train step). The first epoch includes the compilation, reported apart; the
throughput is training samples per second over the following epochs. PyTorch runs its
usual eager loop (``torch.set_num_threads`` = the CPU count), with one warm-up epoch.
Ratio = neuroflux / PyTorch samples per second.
"""

from __future__ import annotations

import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from _machine import describe_machine
from torch import nn

from neuroflux.forecasting import TrainConfig, train
from neuroflux.models import TransformerForecaster

TRAIN, VALIDATION = 8192, 1024
LOOKBACK, FEATURES = 64, 13
D_MODEL, HEADS, LAYERS, FF = 32, 4, 2, 64
EPOCHS = 6  # the first compiles (neuroflux) or warms up (PyTorch)
CONFIG = TrainConfig(
    learning_rate=1e-3,
    weight_decay=1e-4,
    warmup_steps=32,
    epochs=EPOCHS,
    batch_size=256,
    clip_norm=1.0,
    patience=None,
    loss="gaussian_nll",
    seed=0,
)


def make_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((TRAIN + VALIDATION, LOOKBACK, FEATURES)).astype(np.float32)
    y = (0.5 * X[:, -1, 0] + 0.1 * rng.standard_normal(len(X))).astype(np.float32)
    return X[:TRAIN], y[:TRAIN], X[TRAIN:], y[TRAIN:]


def time_neuroflux(X, y, X_val, y_val) -> tuple[float, float]:
    """(seconds of the first epoch, samples per second of the later ones)."""
    stamps = [time.perf_counter()]
    train(
        lambda rngs: TransformerForecaster(
            FEATURES,
            lookback=LOOKBACK,
            d_model=D_MODEL,
            heads=HEADS,
            layers=LAYERS,
            ff=FF,
            rngs=rngs,
        ),
        jnp.asarray(X),
        jnp.asarray(y),
        jnp.asarray(X_val),
        jnp.asarray(y_val),
        CONFIG,
        on_epoch=lambda *_: stamps.append(time.perf_counter()),
    )
    epochs = np.diff(stamps)
    return float(epochs[0]), _samples_per_epoch() / float(np.median(epochs[1:]))


def _samples_per_epoch() -> int:
    return TRAIN // CONFIG.batch_size * CONFIG.batch_size


class TorchForecaster(nn.Module):
    """The same architecture in PyTorch."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Linear(FEATURES, D_MODEL)
        position = torch.arange(LOOKBACK, dtype=torch.float32)[:, None]
        frequency = torch.exp(
            -math.log(10000.0) * torch.arange(0, D_MODEL, 2) / D_MODEL
        )
        angle = position * frequency
        encoding = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)
        self.register_buffer("encoding", encoding.reshape(LOOKBACK, D_MODEL))
        block = nn.TransformerEncoderLayer(
            D_MODEL,
            HEADS,
            FF,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(block, LAYERS, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(D_MODEL)
        self.mean_head = nn.Linear(D_MODEL, 1)
        self.scale_head = nn.Linear(D_MODEL, 1)

    def forward(self, x):
        tokens = self.final_norm(self.blocks(self.embedding(x) + self.encoding))
        last = tokens[:, -1]
        return self.mean_head(last)[:, 0], self.scale_head(last)[:, 0]


def gaussian_nll(mean, log_scale, y):
    standardized = (y - mean) * torch.exp(-log_scale)
    return torch.mean(log_scale + 0.5 * standardized**2 + 0.5 * math.log(2 * math.pi))


def time_torch(X, y, X_val, y_val) -> float:
    """Samples per second of PyTorch training, after one warm-up epoch."""
    torch.manual_seed(0)
    model = TorchForecaster()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=CONFIG.learning_rate, weight_decay=CONFIG.weight_decay
    )
    steps = TRAIN // CONFIG.batch_size
    warmup, decay = CONFIG.warmup_steps, steps * EPOCHS - CONFIG.warmup_steps

    def multiplier(step: int) -> float:  # optax.warmup_cosine_decay_schedule's shape
        if step < warmup:
            return step / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, decay) / decay))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
    X, y, X_val, y_val = map(torch.from_numpy, (X, y, X_val, y_val))
    generator = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(EPOCHS):
        start = time.perf_counter()
        order = torch.randperm(TRAIN, generator=generator)
        model.train()
        for step in range(steps):
            batch = order[step * CONFIG.batch_size : (step + 1) * CONFIG.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = gaussian_nll(*model(X[batch]), y[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CONFIG.clip_norm)
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            gaussian_nll(*model(X_val), y_val).item()
        epochs.append(time.perf_counter() - start)
    return _samples_per_epoch() / float(np.median(epochs[1:]))


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    print(describe_machine(torch=torch.__version__))
    print(
        f"transformer d_model={D_MODEL} heads={HEADS} layers={LAYERS} ff={FF}; "
        f"batch {CONFIG.batch_size}, lookback {LOOKBACK}, {FEATURES} features, "
        f"{TRAIN} train / {VALIDATION} validation windows, float32, "
        f"jax backend {jax.default_backend()}"
    )
    data = make_data()
    first_epoch, ours = time_neuroflux(*data)
    theirs = time_torch(*data)
    print(f"neuroflux first epoch (compile + train): {first_epoch:.2f} s")
    print(f"neuroflux training: {ours:10,.0f} samples/s")
    print(f"PyTorch training:   {theirs:10,.0f} samples/s")
    print(f"ratio neuroflux / PyTorch: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
