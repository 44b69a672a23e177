"""Checkpoints of forecasters: parameters through orbax, metadata as JSON.

``save_checkpoint(path, model, metadata)`` writes ``path/params`` (orbax's
``StandardCheckpointer`` on the model's parameters as a pure dict) and
``path/metadata.json``; ``load_checkpoint(path, factory)`` builds a model with the
factory and puts the saved parameters in it, so its predictions are identical.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import orbax.checkpoint as ocp
from flax import nnx

from neuroflux.forecasting.training import ModelFactory

__all__ = ["load_checkpoint", "read_checkpoint_metadata", "save_checkpoint"]


def save_checkpoint(
    path: str | pathlib.Path, model: nnx.Module, metadata: dict[str, Any] | None = None
) -> None:
    """Write the model's parameters (orbax) and JSON ``metadata`` under ``path``.

    Args:
        path: A directory that does not exist yet.
        model: The model to save.
        metadata: JSON-serialisable description (e.g. the config and the model's
            hyperparameters, so that a factory can be rebuilt from it).
    """
    path = pathlib.Path(path).absolute()
    if path.exists():
        raise FileExistsError(f"checkpoint directory {path} already exists")
    state = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path / "params", state)
        checkpointer.wait_until_finished()
    (path / "metadata.json").write_text(json.dumps(metadata or {}, indent=2))


def read_checkpoint_metadata(path: str | pathlib.Path) -> dict[str, Any]:
    """The JSON metadata saved with a checkpoint."""
    return json.loads((pathlib.Path(path) / "metadata.json").read_text())


def load_checkpoint(
    path: str | pathlib.Path, model_factory: ModelFactory
) -> tuple[nnx.Module, dict[str, Any]]:
    """Rebuild a model saved by :func:`save_checkpoint`.

    Args:
        path: The checkpoint directory.
        model_factory: Builds a model of the saved architecture (its initial
            parameters are replaced).

    Returns:
        The model with the saved parameters, and the metadata.
    """
    path = pathlib.Path(path).absolute()
    model = model_factory(nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(path / "params", nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(model, state)
    return model, read_checkpoint_metadata(path)
