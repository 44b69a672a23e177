"""Where NeuroFlux keeps downloaded data and writes reports (environment overrides)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Download cache: ``$NEUROFLUX_CACHE_DIR``, else ``~/.cache/neuroflux``."""
    configured = os.environ.get("NEUROFLUX_CACHE_DIR")
    return Path(configured or Path.home() / ".cache" / "neuroflux").expanduser()


def reports_dir() -> Path:
    """Report output: ``$NEUROFLUX_REPORTS_DIR``, else ``reports/`` here."""
    return Path(os.environ.get("NEUROFLUX_REPORTS_DIR", "reports")).expanduser()


def strategies_dir() -> Path:
    """Promoted strategies: ``$NEUROFLUX_STRATEGIES_DIR``, else ``strategies/`` here."""
    return Path(os.environ.get("NEUROFLUX_STRATEGIES_DIR", "strategies")).expanduser()


def live_dir() -> Path:
    """Live sessions' journals: ``$NEUROFLUX_LIVE_DIR``, else ``live/`` here."""
    return Path(os.environ.get("NEUROFLUX_LIVE_DIR", "live")).expanduser()
