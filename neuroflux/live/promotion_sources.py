"""What can be promoted: report runs, strategy config files and saved agent folders.

:func:`read_source` recognises the source, checks it and returns an :class:`Origin`:
the strategy and its full parameters, the folder of weights to copy (agents), and the
provenance :func:`neuroflux.live.artifacts.promote` stores: where it came from, the
data it was evaluated on (its ``data`` spec and a sha256 of the loaded frame) and key
metrics.

* A report run folder (``run.json`` with status ok, ``parameters.json``,
  ``metrics.json``, ``notebook.ipynb``): the notebook's ``parameters`` cell gives the
  defaults (read as literals, never executed), ``parameters.json`` what the run
  overrode; the run's own ``metrics.json`` is the provenance's metrics.
* A strategy config file (YAML or JSON, keys ``strategy``, ``params``, ``data``): the
  metrics are a close-fill backtest on its data with the artifact's costs.
* A saved agent folder (``agent.json``): the metrics are each seed's Sharpe ratio on
  the bars after its training period.

Every error names the file and key, or says what a promotable source is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["Origin", "read_source"]

_PROMOTABLE = (
    "a promotable source is a report run folder of a notebook that backtests one "
    "registry strategy (run.json with status ok, parameters.json, metrics.json and "
    "notebook.ipynb whose parameters give strategy, params and data), a strategy "
    "config file (.yaml, .yml or .json with keys strategy, params, data) or a saved "
    "agent folder (agent.json and params/)"
)
_CONFIG_KEYS = ("strategy", "params", "data")
_REPORT_FILES = ("run.json", "parameters.json", "metrics.json", "notebook.ipynb")
_KEY_METRICS = (
    "sharpe_ratio",
    "annual_return_pct",
    "max_drawdown_pct",
    "trades",
    "win_rate_pct",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Origin:
    """Where an artifact comes from: what it trades and its provenance.

    ``weights`` is the folder copied into the artifact (agents only).
    """

    name: str
    kind: str
    strategy: str
    parameters: dict[str, Any]
    provenance: dict[str, Any]
    weights: Path | None = None


def read_source(
    source: Path, *, data: str | None, fees: float, slippage: float
) -> Origin:
    """What ``source`` says about itself, with its data hashed and its metrics.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: ``source`` is not promotable (the message names the file and key,
            or says what a promotable source is).
    """
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder; {_PROMOTABLE}")
    if source.is_dir() and (source / "agent.json").is_file():
        return _agent_origin(source, data, fees, slippage)
    if source.is_dir() and (source / "run.json").is_file():
        return _report_origin(source, data)
    if source.is_file() and source.suffix.lower() in (".yaml", ".yml", ".json"):
        return _config_origin(source, data, fees, slippage)
    raise ValueError(f"{source} is not promotable: {_PROMOTABLE}")


def _config_origin(
    path: Path, data: str | None, fees: float, slippage: float
) -> Origin:
    import yaml

    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML or JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping with keys {_CONFIG_KEYS}")
    for key in document:
        if key not in _CONFIG_KEYS:
            raise ValueError(f"{path}: unknown key {key!r}; expected {_CONFIG_KEYS}")
    if "strategy" not in document:
        raise ValueError(f"{path}: key 'strategy' is missing (a registry name)")
    strategy, parameters = _rule(document["strategy"], document.get("params"), path)
    spec, frame = _data_of(data or document.get("data"), path.parent, path)
    metrics = {}
    if frame is not None:
        metrics = _rule_metrics(frame, strategy, parameters, fees, slippage)
    provenance = {"source": "config", "config": str(path.resolve())}
    provenance |= {"data": spec, "data_hash": _data_hash(frame), "metrics": metrics}
    return Origin(
        name=path.stem,
        kind="rule",
        strategy=strategy,
        parameters=parameters,
        provenance=provenance,
    )


def _report_origin(folder: Path, data: str | None) -> Origin:
    for file in _REPORT_FILES:
        if not (folder / file).is_file():
            raise ValueError(f"{folder}: {file} is missing; {_PROMOTABLE}")
    run = _read_json(folder / "run.json", expect=dict)
    if run.get("status") != "ok":
        raise ValueError(
            f"{folder}: the run failed ({run.get('error')}); only a run with status "
            "ok is promotable"
        )
    parameters, unreadable = _notebook_defaults(folder / "notebook.ipynb")
    parameters |= _read_json(folder / "parameters.json", expect=dict)
    needed = [key for key in ("strategy", "params") if key not in parameters]
    if needed:
        unread = [key for key in needed if key in unreadable]
        why = f"parameters {unread} are not literals" if unread else f"no {needed}"
        raise ValueError(
            f"{folder}: notebook {run.get('notebook')!r} does not describe one "
            f"strategy ({why} in its parameters); {_PROMOTABLE}"
        )
    where = folder / "parameters.json"
    strategy, params = _rule(parameters["strategy"], parameters["params"], where)
    spec, frame = _data_of(data or parameters.get("data"), None, where)
    evaluated = ("cash", "commission", "slippage", "fill", "periods_per_year")
    provenance = {
        "source": "report",
        "report": str(folder.resolve()),
        "notebook": run.get("notebook"),
        "run_id": run.get("run_id"),
        "report_neuroflux_version": run.get("neuroflux_version"),
        "evaluated_with": {
            key: parameters[key] for key in evaluated if key in parameters
        },
        "data": spec,
        "data_hash": _data_hash(frame),
        "metrics": _read_json(folder / "metrics.json", expect=dict),
    }
    return Origin(
        name=strategy,
        kind="rule",
        strategy=strategy,
        parameters=params,
        provenance=provenance,
    )


def _read_json(path: Path, expect: type | None = None) -> Any:
    """The JSON document in ``path``, of type ``expect`` when given.

    Raises:
        ValueError: The file is not JSON (truncated, say) or not an ``expect``; the
            message names the file and what was expected.
    """
    try:
        document = json.loads(path.read_text())
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path}: expected a JSON document; {error}") from None
    if expect is not None and not isinstance(document, expect):
        what = "a JSON object (a mapping)" if expect is dict else expect.__name__
        raise ValueError(
            f"{path}: expected {what}, got {type(document).__name__} {document!r:.80}"
        )
    return document


def _notebook_defaults(path: Path) -> tuple[dict[str, Any], set[str]]:
    """Literal values of the ``parameters`` cell, and the names that are not literal."""
    import ast

    notebook = _read_json(path, expect=dict)
    values: dict[str, Any] = {}
    unreadable: set[str] = set()
    for cell in notebook.get("cells", []):
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        source = cell["source"]
        for node in ast.parse(
            "".join(source) if isinstance(source, list) else source
        ).body:
            if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                targets = (
                    [node.target] if isinstance(node, ast.AnnAssign) else node.targets
                )
                for target in targets:
                    if not isinstance(target, ast.Name):
                        continue
                    try:
                        values[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        unreadable.add(target.id)
    return values, unreadable


def _agent_origin(
    folder: Path, data: str | None, fees: float, slippage: float
) -> Origin:
    from neuroflux.research import agents

    agent = agents.load_agent(folder)
    description = _read_json(folder / "agent.json", expect=dict)
    spec, frame = _data_of(data, None, folder)
    metrics = {}
    if frame is not None:
        after = frame.index[frame.index > agent.train_end]
        if len(after):  # only out-of-sample bars say anything about the agent
            runs = agents.backtest_agent(
                agent, frame, start=after[0], commission=fees, slippage=slippage
            )
            for seed, run in zip(agent.seeds, runs, strict=True):
                stats = run.stats()
                metrics[f"sharpe_ratio_seed_{seed}"] = _number(stats["sharpe_ratio"])
            metrics["out_of_sample_start"] = after[0].isoformat()
    provenance = {
        "source": "agent",
        "agent": str(folder.resolve()),
        "seeds": list(agent.seeds),
        "train_start": agent.train_start.isoformat(),
        "train_end": agent.train_end.isoformat(),
        "agent_neuroflux_version": description.get("neuroflux_version"),
        "data": spec,
        "data_hash": _data_hash(frame),
        "metrics": metrics,
    }
    return Origin(
        name=folder.name,
        kind=agent.kind,
        strategy=agent.kind,
        parameters={"settings": agent.settings, "seeds": list(agent.seeds)},
        provenance=provenance,
        weights=folder,
    )


def _rule(strategy: Any, params: Any, where: Path) -> tuple[str, dict[str, Any]]:
    """The registry name and its full parameters (JSON-able), checked for a step."""
    from neuroflux import strategies

    try:
        registered = strategies.get_strategy(strategy)
    except ValueError as error:
        raise ValueError(f"{where}: key 'strategy': {error}") from None
    if strategy not in strategies.STEP_STRATEGIES:
        raise ValueError(
            f"{where}: key 'strategy': {strategy!r} has no step version for the live "
            f"runner; promotable: {', '.join(strategies.STEP_STRATEGIES)}"
        )
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ValueError(f"{where}: key 'params': expected a mapping, got {params!r}")
    for key, value in params.items():
        if key not in registered.parameter_docs:
            try:
                strategies.make_params(strategy, **{str(key): value})
            except ValueError as error:
                raise ValueError(f"{where}: key 'params.{key}': {error}") from None
        _check_type(getattr(registered.default_params, key), value, where, key)
    try:
        made = strategies.make_params(strategy, **params)
        strategies.STEP_STRATEGIES[strategy].init(made)  # checks windows
    except ValueError as error:
        raise ValueError(f"{where}: key 'params': {error}") from None
    full = {key: getattr(made, key) for key in registered.parameter_docs}
    return strategy, {key: getattr(v, "value", v) for key, v in full.items()}


def _check_type(default: Any, value: Any, where: Path, key: str) -> None:
    from neuroflux.strategies import Direction

    if isinstance(default, Direction):
        expected, ok = (
            "'long_only' or 'long_short'",
            value in ("long_only", "long_short"),
        )
    elif isinstance(default, bool):
        expected, ok = "true or false", isinstance(value, bool)
    elif isinstance(default, int):
        expected, ok = (
            "an integer",
            isinstance(value, int) and not isinstance(value, bool),
        )
    else:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        expected, ok = "a finite number", number and math.isfinite(value)
    if not ok:
        raise ValueError(
            f"{where}: key 'params.{key}': expected {expected}, got {value!r}"
        )


def _data_of(spec: Any, base: Path | None, where: Path):
    """``(spec, frame)`` of a data spec (``(None, None)`` without one)."""
    if spec is None:
        return None, None
    from neuroflux.data import list_samples
    from neuroflux.research import load_data

    if not isinstance(spec, str) or not spec:
        raise ValueError(f"{where}: key 'data': expected a data spec, got {spec!r}")
    if ":" not in spec and spec in list_samples().index:
        spec = f"sample:{spec}"
    elif base is not None and ":" not in spec and (base / spec).exists():
        spec = str((base / spec).resolve())  # a file named relative to the config
    try:
        return spec, load_data(spec)
    except (KeyError, ValueError, FileNotFoundError) as error:
        raise ValueError(f"{where}: key 'data': {spec!r}: {error}") from None


def _data_hash(frame: Any) -> str | None:
    """sha256 of the index (int64 UTC ns) and each column's name and float64 values."""
    if frame is None:
        return None
    import numpy as np

    digest = hashlib.sha256(frame.index.as_unit("ns").asi8.astype("<i8").tobytes())
    for column in frame.columns:
        digest.update(str(column).encode() + b"\0")
        digest.update(frame[column].to_numpy(np.float64).astype("<f8").tobytes())
    return digest.hexdigest()


def _rule_metrics(frame, strategy, parameters, fees, slippage) -> dict[str, Any]:
    """Key statistics of the rule on the data with the artifact's costs, close fills."""
    from neuroflux.research import run_backtest

    stats = run_backtest(
        frame, strategy, parameters, commission=fees, slippage=slippage, fill="close"
    ).stats()
    return {key: _number(stats[key]) for key in _KEY_METRICS}


def _number(value: Any) -> float | None:
    """A JSON number; ``None`` where the statistic is undefined (NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None
