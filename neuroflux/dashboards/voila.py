"""``neuroflux voila``: serve a notebook of ``notebooks/dashboards/`` with Voila.

Voila runs the notebook in a kernel and shows its outputs and widgets, never its code.
A kernel is preheated (the notebook runs before the first visitor arrives), so the page
opens on finished charts. Bound to a loopback address the page is open to this machine;
any other address needs a token in ``$NEUROFLUX_VOILA_TOKEN``, which visitors then pass
as ``?token=...``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from neuroflux.dashboards.server import DashboardAuthError, is_loopback

__all__ = [
    "DASHBOARDS_DIR",
    "TOKEN_VARIABLE",
    "resolve_dashboard_notebook",
    "serve_voila",
    "voila_command",
    "voila_environment",
]

TOKEN_VARIABLE = "NEUROFLUX_VOILA_TOKEN"
DASHBOARDS_DIR = Path("notebooks") / "dashboards"
_REPO = Path(__file__).resolve().parents[2]
# A Jupyter data dir holding the ``neuroflux`` Voila template (lab, minus CDN links).
JUPYTER_DATA = Path(__file__).resolve().parent / "jupyter"
# Panel's JupyterLab extension fails to load in Voila (no document manager there).
_DISABLED_EXTENSIONS = ["@pyviz/jupyterlab_pyviz"]


def _dashboard_dirs() -> list[Path]:
    """Where dashboard notebooks are looked up: under the cwd, then the repo."""
    return list(dict.fromkeys([Path.cwd() / DASHBOARDS_DIR, _REPO / DASHBOARDS_DIR]))


def resolve_dashboard_notebook(name_or_path: str | Path) -> Path:
    """The notebook file of a dashboard name (``strategy_tear_sheet``) or a path.

    An existing path is taken as is; otherwise the name, with or without
    ``.ipynb``, is looked up in ``notebooks/dashboards/`` of the working directory and
    then of the repository.

    Raises:
        FileNotFoundError: Neither; the message lists the dashboards available.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path.resolve()
    file_name = path.with_suffix(".ipynb").name
    folders = _dashboard_dirs()
    for folder in folders:
        if (folder / file_name).is_file():
            return (folder / file_name).resolve()
    available = sorted({p.stem for f in folders for p in f.glob("*.ipynb")})
    raise FileNotFoundError(
        f"no dashboard notebook {str(name_or_path)!r}; available: "
        f"{', '.join(available) or 'none'} (in {DASHBOARDS_DIR}/), or pass a path"
    )


def voila_command(
    notebook: str | Path,
    *,
    port: int,
    address: str = "127.0.0.1",
    token: str | None = None,
) -> list[str]:
    """The argv that serves ``notebook`` with Voila.

    Sources are stripped, tracebacks hidden, a kernel preheated, and no browser
    opened; the page uses the ``neuroflux`` template, so run it with
    :func:`voila_environment`. Without ``token`` the server asks for none (for
    loopback binds).
    """
    command = [
        sys.executable,
        "-m",
        "voila",
        str(resolve_dashboard_notebook(notebook)),
        "--no-browser",
        f"--port={port}",
        f"--Voila.ip={address}",
        "--strip_sources=True",
        "--show_tracebacks=False",
        "--preheat_kernel=True",
        "--theme=light",
        "--template=neuroflux",
        f"--VoilaConfiguration.extension_denylist={_DISABLED_EXTENSIONS}",
    ]
    return command if token is None else [*command, f"--Voila.token={token}"]


def voila_environment() -> dict[str, str]:
    """This process's environment with the ``neuroflux`` template on JUPYTER_PATH.

    :func:`voila_command`'s ``--template=neuroflux`` needs it.
    """
    paths = [str(JUPYTER_DATA), os.environ.get("JUPYTER_PATH", "")]
    return {**os.environ, "JUPYTER_PATH": os.pathsep.join(filter(None, paths))}


def serve_voila(
    notebook: str | Path,
    *,
    port: int = 8866,
    address: str = "127.0.0.1",
    on_start: Callable[[str], None] | None = None,
) -> NoReturn:
    """Serve ``notebook`` with Voila until interrupted: this process becomes Voila.

    Replacing the process (rather than running a child) lets a signal that stops the
    caller stop Voila and its kernels too.

    ``on_start`` is called with the page's URL once the checks pass, before Voila
    starts.

    Raises:
        DashboardAuthError: ``address`` is not loopback and ``$NEUROFLUX_VOILA_TOKEN``
            is not set.
        FileNotFoundError: From :func:`resolve_dashboard_notebook`.
    """
    token = os.environ.get(TOKEN_VARIABLE) or None
    if token is None and not is_loopback(address):
        raise DashboardAuthError(
            f"refusing to serve on {address}: off loopback a Voila dashboard needs a "
            f"token; set {TOKEN_VARIABLE} (visitors add ?token=...), or bind 127.0.0.1"
        )
    command = voila_command(notebook, port=port, address=address, token=token)
    if on_start is not None:
        host = f"[{address}]" if ":" in address else address
        on_start(f"http://{host}:{port}/")
    sys.stdout.flush()
    os.execve(sys.executable, command, voila_environment())
