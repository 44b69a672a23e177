"""The line every benchmark prints first: the machine and the versions it measured."""

from __future__ import annotations

import os
import platform

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
