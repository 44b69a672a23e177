"""The pure core never imports an edge: every module is classified in pyproject.toml."""

import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import neuroflux

ROOT = Path(__file__).resolve().parents[1]


def contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (pure_core,) = config["tool"]["importlinter"]["contracts"]
    return pure_core


def test_every_neuroflux_module_is_either_pure_or_edge():
    pure_core = contract()
    classified = set(pure_core["source_modules"]) | set(pure_core["forbidden_modules"])
    modules = {
        f"neuroflux.{info.name}" for info in pkgutil.iter_modules(neuroflux.__path__)
    }
    assert modules - classified == set(), "add new modules to the import contract"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    linter = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [linter, "--no-cache"], cwd=cwd, capture_output=True, text=True
    )


def test_import_contract_holds():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_import_contract_catches_a_pure_module_importing_an_edge(tmp_path):
    shutil.copytree(ROOT / "neuroflux", tmp_path / "neuroflux")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    features = tmp_path / "neuroflux" / "features" / "__init__.py"
    features.write_text("from neuroflux.data import samples\n" + features.read_text())
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "neuroflux.features -> neuroflux.data" in result.stdout
