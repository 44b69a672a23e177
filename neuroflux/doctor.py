"""`neuroflux doctor`: is this machine ready to run NeuroFlux?

Each check gives a status: ``ok``, ``warn`` (optional, works without it) or ``fail``
(something required is wrong; the command exits 1).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from neuroflux import settings

LOCK_FILE = Path(__file__).resolve().parents[1] / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)")


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    status: str
    detail: str


def run_checks(lock_file: Path = LOCK_FILE) -> list[Check]:
    """Runs every check in order; never raises."""
    return [
        _python(),
        _locked_packages(lock_file),
        *_jax(),
        _writable("cache folder", settings.cache_dir()),
        _writable("reports folder", settings.reports_dir()),
        _chromium(),
    ]


def locked_versions(lock_file: Path) -> dict[str, str]:
    """Package name (normalised) -> pinned version, from a pip-style lock file."""
    pins = {}
    for line in lock_file.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[_normalise(match[1])] = match[2]
    return pins


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info[:2] == (3, 11)
    return Check("python", "ok" if ok else "fail", f"{version} (expected 3.11)")


def _locked_packages(lock_file: Path) -> Check:
    if not lock_file.exists():
        return Check("packages", "warn", f"no lock file at {lock_file}")
    pins = locked_versions(lock_file)
    wrong = []
    for name, pinned in sorted(pins.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != pinned:
            wrong.append(f"{name} {installed} (lock: {pinned})")
    if wrong:
        shown = ", ".join(wrong[:8]) + (
            f" and {len(wrong) - 8} more" if len(wrong) > 8 else ""
        )
        return Check(
            "packages", "fail", f"{len(wrong)} differ from {lock_file.name}: {shown}"
        )
    jax_version = metadata.version("jax")
    return Check(
        "packages", "ok", f"{len(pins)} match {lock_file.name} (jax {jax_version})"
    )


def _jax() -> list[Check]:
    import jax

    devices = jax.devices()
    kinds = ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in devices}))
    accelerator = any(d.platform != "cpu" for d in devices)
    x64 = bool(jax.config.read("jax_enable_x64"))
    return [
        Check("jax backend", "ok", jax.default_backend()),
        Check(
            "jax devices",
            "ok",
            f"{len(devices)} ({kinds})"
            + ("" if accelerator else "; no GPU/TPU, CPU only"),
        ),
        Check(
            "float64 (x64)", "ok" if x64 else "fail", "enabled" if x64 else "disabled"
        ),
    ]


def _writable(name: str, folder: Path) -> Check:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as error:
        return Check(name, "fail", f"{folder}: {error.strerror or error}")
    return Check(name, "ok", str(folder))


def _chromium() -> Check:
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
    )
    if path is None:
        return Check(
            "chromium", "warn", "not found (optional: dashboard browser tests)"
        )
    try:
        version = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check("chromium", "warn", f"{path} does not run: {error}")
    return Check("chromium", "ok", f"{version} at {path}")
