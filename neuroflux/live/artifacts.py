"""Promoted strategies: versioned, checksummed artifacts that the live runner loads.

:func:`promote` turns a research result into an artifact; :func:`load_artifact` gives it
back only if no byte changed since. Three sources are promotable:

* a report run folder of a notebook that backtests one registry strategy (its
  parameters name ``strategy``, ``params`` and ``data``, e.g. ``02_strategy_backtest``);
* a strategy config file, YAML or JSON: ``{strategy: sma_cross, params: {fast: 10},
  data: sp500}``;
* a saved agent folder (:func:`neuroflux.research.agents.save_agent`, has
  ``agent.json``).

Reading and checking those sources is :mod:`neuroflux.live.promotion_sources`; this
module owns what happens after: the store's layout, checksums and versions.

Layout of a store (``settings.strategies_dir()`` by default)::

    <store>/<name>/v<N>/artifact.json     canonical JSON (sorted keys, indent 2)
                        weights/          agents only: a copy of the agent folder
                        checksum.sha256   "<sha256>  <path>" per file, sorted by path

The checksum file is what ``sha256sum -c`` reads; the artifact's checksum is the
sha256 of that file, so it covers every file's bytes and relative path. A promotion
builds the version in a hidden folder and renames it into place, so versions are never
overwritten and a reader never sees half an artifact (rename onto an existing,
non-empty ``v<N>`` fails and the next number is tried).

:meth:`Artifact.decision` is the pure step strategy and parameters the runner drives
bar by bar: the very function a backtest scans, so a replay gives the backtest's
positions.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import neuroflux
from neuroflux import settings
from neuroflux.live.promotion_sources import read_source
from neuroflux.live.risk import RiskLimits
from neuroflux.live.runner_config import RunnerConfig
from neuroflux.strategies.steps import StepStrategy

__all__ = [
    "Artifact",
    "ArtifactSummary",
    "ArtifactTampered",
    "Decision",
    "list_artifacts",
    "load_artifact",
    "promote",
]

ARTIFACT_FILE = "artifact.json"
CHECKSUM_FILE = "checksum.sha256"
WEIGHTS_FOLDER = "weights"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TIMEFRAME = re.compile(r"[1-9][0-9]*[smhdwMy]")
_VERSION = re.compile(r"v([1-9][0-9]*)")


class ArtifactTampered(RuntimeError):
    """An artifact's files differ from its checksum file; it must not be loaded."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Decision:
    """What the runner drives bar by bar: ``strategy.step(state, bar, params)``."""

    name: str
    strategy: StepStrategy
    params: Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class Artifact:
    """One promoted version, as in its ``artifact.json`` (plus where it lies).

    Attributes:
        name: Artifact name (folder under the store).
        version: 1, 2, ...
        created: UTC ISO 8601 time of promotion.
        kind: ``"rule"`` or the agent kind (``"flux"``, ``"neural"``, ...).
        strategy: Registry name for rules; the agent kind for agents.
        parameters: Rule: the strategy's parameters. Agent: ``{settings, seeds}``.
        symbols: Markets it trades (``"BTC/USDT"``).
        timeframe: Bar length (``"1d"``, ``"1h"``).
        risk: Risk limits (``neuroflux.live.risk.RiskLimits.from_dict`` input).
        costs: ``{"fees": ..., "slippage": ...}``, fractions per order.
        provenance: ``source`` and its details, ``data``, ``data_hash``,
            ``metrics``, ``neuroflux_version``.
        folder: ``<store>/<name>/v<version>``.
        checksum: sha256 of ``checksum.sha256``.
    """

    name: str
    version: int
    created: str
    kind: str
    strategy: str
    parameters: Mapping[str, Any]
    symbols: tuple[str, ...]
    timeframe: str
    risk: Mapping[str, float]
    costs: Mapping[str, float]
    provenance: Mapping[str, Any]
    folder: Path
    checksum: str

    def to_json(self) -> dict[str, Any]:
        """The ``artifact.json`` document."""
        document = dataclasses.asdict(self)
        del document["folder"], document["checksum"]
        document["symbols"] = list(self.symbols)
        return document

    def decision(self, seed_index: int = 0) -> Decision:
        """The step strategy and parameters (for agents: of seed ``seed_index``).

        Raises:
            IndexError: No such seed.
        """
        if self.kind == "rule":
            from neuroflux import strategies

            step = strategies.STEP_STRATEGIES[self.strategy]
            params = strategies.make_params(self.strategy, **self.parameters)
            return Decision(
                name=f"{self.name}-v{self.version}", strategy=step, params=params
            )
        from neuroflux.research import agents

        agent = agents.load_agent(self.folder / WEIGHTS_FOLDER)
        step, params = agents.agent_decision(agent, seed_index)
        seed = agent.seeds[seed_index]
        name = f"{self.name}-v{self.version}-seed{seed}"
        return Decision(name=name, strategy=step, params=params)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArtifactSummary:
    """One artifact name in a store: its latest version and the versions there.

    ``intact`` is whether the latest version passes its checksum (``problem`` says
    what differs when not; the other fields are then as its files claim).
    """

    name: str
    latest_version: int
    versions: tuple[int, ...]
    kind: str
    strategy: str
    symbols: tuple[str, ...]
    timeframe: str
    created: str
    metrics: Mapping[str, Any]
    intact: bool
    problem: str | None = None


def promote(
    source: str | Path,
    *,
    name: str | None = None,
    symbols: Sequence[str],
    timeframe: str,
    risk: Mapping[str, float] | None = None,
    fees: float = 0.001,
    slippage: float = 0.0,
    data: str | None = None,
    store: Path | None = None,
) -> Artifact:
    """Write the next version of an artifact from a report run, config or agent.

    Args:
        source: Report run folder, strategy config file or saved agent folder.
        name: Artifact name; default: the strategy (report), the file stem (config)
            or the folder name (agent).
        symbols: Markets to trade, at least one.
        timeframe: Bar length, e.g. ``"1d"``.
        risk: Risk limits by name (numbers), checked by
            :meth:`RiskLimits.from_dict <neuroflux.live.risk.RiskLimits.from_dict>`
            as ``live run`` will, and stored as given.
        fees: Proportional fee per order the runner assumes.
        slippage: Fraction added to buys and taken from sells.
        data: The data the source was evaluated on (``sample:NAME``, a bare sample
            name, ``download:...`` or a file), for sources that do not name it
            (agents) or to override it; hashed into the provenance.
        store: Artifact store; ``settings.strategies_dir()`` when ``None``.

    Returns:
        The new :class:`Artifact` (version 1 for a new name, else latest + 1).

    Raises:
        ValueError: An unpromotable source or bad argument (the message names the
            file and key, or says what a promotable source is).
        FileNotFoundError: ``source`` does not exist.
    """
    if name is not None:
        _check_name(name)
    market = {
        "symbols": _checked_symbols(symbols),
        "timeframe": _checked_timeframe(timeframe),
        "risk": _checked_risk(risk or {}),
        "costs": _checked_numbers("costs", {"fees": fees, "slippage": slippage}),
    }
    for key in ("fees", "slippage"):
        if not 0 <= market["costs"][key] < 1:
            raise ValueError(
                f"{key}: expected a fraction in [0, 1), got {market['costs'][key]!r}"
            )
    origin = read_source(Path(source), data=data, fees=fees, slippage=slippage)
    name = _check_name(origin.name if name is None else name)
    document = {
        "name": name,
        "version": 0,  # set once the version folder is claimed
        "created": datetime.datetime.now(datetime.UTC).isoformat(),
        "kind": origin.kind,
        "strategy": origin.strategy,
        "parameters": origin.parameters,
        **market,
        "provenance": {**origin.provenance, "neuroflux_version": neuroflux.__version__},
    }
    root = Path(store or settings.strategies_dir()) / name
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    building.chmod(0o755)  # mkdtemp's 0700 would hide the artifact from other users
    try:
        if origin.weights is not None:
            shutil.copytree(origin.weights, building / WEIGHTS_FOLDER)
        _claim_version(root, building, document)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return load_artifact(name, document["version"], store=store)


def _claim_version(root: Path, building: Path, document: dict[str, Any]) -> Path:
    """Rename ``building`` to the next free ``v<N>``, writing N into the files."""
    while True:
        version = max(_versions(root), default=0) + 1
        document["version"] = version
        (building / ARTIFACT_FILE).write_text(_canonical(document))
        (building / CHECKSUM_FILE).write_text(_manifest(building))
        folder = root / f"v{version}"
        try:
            os.rename(building, folder)
        except OSError:
            if not folder.exists():
                raise
            continue  # another promotion took this number first
        return folder


def load_artifact(
    name: str, version: int | None = None, *, store: Path | None = None
) -> Artifact:
    """A promoted artifact, after checking every file against its checksum file.

    Args:
        name: Artifact name.
        version: Version number; the latest when ``None``.
        store: Artifact store; ``settings.strategies_dir()`` when ``None``.

    Raises:
        FileNotFoundError: No such artifact or version (the message lists those
            there are).
        ArtifactTampered: A file changed, added or removed (named), or the
            document does not match its folder.
    """
    root = Path(store or settings.strategies_dir()) / _check_name(name)
    versions = _versions(root)
    if not versions:
        known = ", ".join(_names(root.parent)) or "none"
        raise FileNotFoundError(
            f"no artifact {name!r} in {root.parent} (there: {known})"
        )
    version = max(versions) if version is None else version
    if version not in versions:
        raise FileNotFoundError(
            f"no version {version} of artifact {name!r} in {root} (versions: "
            f"{', '.join(map(str, sorted(versions)))})"
        )
    folder = root / f"v{version}"
    checksum = _verify(folder)
    document = json.loads((folder / ARTIFACT_FILE).read_text())
    if (document.get("name"), document.get("version")) != (name, version):
        raise ArtifactTampered(
            f"{folder}: artifact.json says {document.get('name')!r} version "
            f"{document.get('version')!r}, not {name!r} version {version}"
        )
    fields = {field.name for field in dataclasses.fields(Artifact)}
    values = {key: value for key, value in document.items() if key in fields}
    values["symbols"] = tuple(values.get("symbols", ()))
    return Artifact(**values, folder=folder, checksum=checksum)


def list_artifacts(store: Path | None = None) -> list[ArtifactSummary]:
    """Every artifact name in the store with its latest version (sorted by name)."""
    store = Path(store or settings.strategies_dir())
    summaries = []
    for name in _names(store):
        versions = tuple(sorted(_versions(store / name)))
        folder = store / name / f"v{versions[-1]}"
        problem = None
        try:
            _verify(folder)
        except ArtifactTampered as error:
            problem = str(error)
        try:
            document = json.loads((folder / ARTIFACT_FILE).read_text())
        except (OSError, ValueError) as error:
            document, problem = {}, problem or f"{folder}: {error}"
        summaries.append(
            ArtifactSummary(
                name=name,
                latest_version=versions[-1],
                versions=versions,
                kind=str(document.get("kind", "?")),
                strategy=str(document.get("strategy", "?")),
                symbols=tuple(document.get("symbols", ())),
                timeframe=str(document.get("timeframe", "?")),
                created=str(document.get("created", "?")),
                metrics=document.get("provenance", {}).get("metrics", {}),
                intact=problem is None,
                problem=problem,
            )
        )
    return summaries


def _names(store: Path) -> list[str]:
    if not store.is_dir():
        return []
    return sorted(path.name for path in store.iterdir() if _versions(path))


def _versions(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    matches = (_VERSION.fullmatch(path.name) for path in root.iterdir())
    return [int(match.group(1)) for match in matches if match]


def _canonical(document: Any) -> str:
    return json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n"


def _file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` but the checksum file, by POSIX path."""
    digests = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            digests[relative] = "not a plain file"
        elif path.is_file() and relative != CHECKSUM_FILE:
            digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _manifest(folder: Path) -> str:
    """``sha256sum`` lines for every file, sorted by relative path."""
    return "".join(
        f"{digest}  {path}\n" for path, digest in sorted(_file_digests(folder).items())
    )


def _verify(folder: Path) -> str:
    """The artifact's checksum, if every file matches the checksum file."""
    checksum_file = folder / CHECKSUM_FILE
    if not checksum_file.is_file():
        raise ArtifactTampered(f"{folder}: {CHECKSUM_FILE} is missing")
    stored_text = checksum_file.read_text(errors="replace")
    stored = {}
    for line in stored_text.splitlines():
        digest, separator, path = line.partition("  ")
        if not separator or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ArtifactTampered(
                f"{folder}: {CHECKSUM_FILE} line {line!r} is malformed"
            )
        stored[path] = digest
    actual = _file_digests(folder)
    problems = [f"{path} removed" for path in sorted(set(stored) - set(actual))]
    problems += [f"{path} added" for path in sorted(set(actual) - set(stored))]
    problems += [
        f"{path} changed"
        for path in sorted(set(stored) & set(actual))
        if stored[path] != actual[path]
    ]
    if not problems and stored_text != _manifest(folder):
        problems.append(f"{CHECKSUM_FILE} changed")
    if problems:
        raise ArtifactTampered(
            f"artifact {folder} does not match its checksum: {'; '.join(problems)}"
        )
    return hashlib.sha256(stored_text.encode()).hexdigest()


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"name {name!r}: expected letters, digits, '_', '.' or '-' (1 to 64, "
            "starting with a letter or digit)"
        )
    return name


def _checked_symbols(symbols: Sequence[str]) -> list[str]:
    if isinstance(symbols, str) or not symbols:
        raise ValueError(f"symbols: expected a list of one or more; got {symbols!r}")
    for symbol in symbols:
        if (
            not isinstance(symbol, str)
            or not symbol.strip()
            or symbol != symbol.strip()
        ):
            raise ValueError(f"symbols: expected names like 'BTC/USDT'; got {symbol!r}")
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"symbols: {list(symbols)} repeats a symbol")
    # The runner's own rule (BASE/QUOTE, one quote asset), called rather than copied
    # so that a promoted version can run; the other fields keep their defaults.
    RunnerConfig(session="promote", symbols=tuple(symbols))
    return list(symbols)


def _checked_risk(risk: Mapping[str, Any]) -> dict[str, float]:
    """``risk`` as given, once ``live run`` would accept it (known fields, in range)."""
    checked = _checked_numbers("risk", risk)
    try:
        RiskLimits.from_dict(dict(checked))
    except (TypeError, ValueError) as error:
        raise ValueError(f"risk: {error}") from None
    return checked


def _checked_timeframe(timeframe: str) -> str:
    if not isinstance(timeframe, str) or not _TIMEFRAME.fullmatch(timeframe):
        raise ValueError(
            f"timeframe {timeframe!r}: expected a count and a unit of s, m, h, d, w, "
            "M or y, e.g. '1d', '15m'"
        )
    return timeframe


def _checked_numbers(field: str, values: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise ValueError(f"{field}: expected a mapping of names to numbers")
    checked = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{field}: key {key!r} is not a name")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise ValueError(f"{field}.{key}: expected a finite number, got {value!r}")
        checked[key] = value
    return checked
