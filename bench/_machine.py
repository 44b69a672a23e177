"""What every benchmark shares: the line it prints first (the machine and the versions
it measured) and the best-of-N timing of a JAX call."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import jax
import numpy as np

import neuroflux


def describe_machine(**peers: str) -> str:
    """CPU model, cores, memory, JAX backend and the versions of the peers compared."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(f"{name} {version}" for name, version in peers.items())
    return (
        f"{os.cpu_count()}-core CPU ({model}), {memory:.0f} GiB RAM, "
        f"jax {jax.__version__} backend={jax.default_backend()}, {versions}, "
        f"numpy {np.__version__}, python {platform.python_version()}, "
        f"neuroflux {neuroflux.__version__}, float64"
    )


def best_time(function: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of ``repeats`` calls, in seconds, each waited for to finish."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    return min(times)
