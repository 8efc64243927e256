"""A wheel (what ``pip install flash-cloud`` installs) carries what the ``flash`` command reads at run time."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from flash_rl.cases import CASES, CONFIG_DIR

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_every_case_config_and_what_it_inherits(tmp_path):
    source = tmp_path / "source"  # build from a copy so that the build leaves nothing in the checkout
    for name in ("flash_envs", "flash_rl"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())

    needed = set()
    for case in CASES.values():
        for quick in (False, True):
            path = case.config_path(quick)
            while path.parent == CONFIG_DIR:  # the config and the chain of files it inherits
                needed.add(f"flash_rl/configs/{path.name}")
                parent = yaml.safe_load(path.read_text()).get("inherit")
                if not parent:
                    break
                path = CONFIG_DIR / parent
    assert {"flash_rl/configs/autoscaling_quick.yaml", "flash_rl/configs/power.yaml"} <= needed
    assert needed <= shipped, f"missing from the wheel: {sorted(needed - shipped)}"
    assert {"flash_envs/py.typed", "flash_rl/py.typed"} <= shipped   # PEP 561: type checkers read our hints
    licence = [name for name in shipped if name.endswith(".dist-info/LICENSE") or "/licenses/LICENSE" in name]
    assert licence, "the wheel does not carry the Apache-2.0 text that pyproject.toml declares"
    assert "Apache License" in zipfile.ZipFile(wheel).read(licence[0]).decode()


def test_flash_version_is_the_distribution_version():
    from importlib.metadata import version

    out = subprocess.run([sys.executable, "-m", "flash_rl.cli", "--version"], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == f"flash {version('flash-cloud')}"


DISTRIBUTIONS = {"yaml": "pyyaml"}   # import name -> distribution name, where they differ


def test_flash_envs_needs_only_the_core_dependencies(project):
    """``pip install flash-cloud`` (no ``[rl]``) must run the environments: every third-party module that
    ``flash_envs`` imports is a core dependency (``yaml`` was in ``[rl]`` only, so a family's ``load_yaml`` failed)."""
    imported = set()
    for path in (ROOT / "flash_envs").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {DISTRIBUTIONS.get(m, m) for m in imported - set(sys.stdlib_module_names) - {"flash_envs"}}
    core = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in project["dependencies"]}
    assert third_party and third_party <= core, f"imported by flash_envs but not core: {sorted(third_party - core)}"


def _flash_without(module: str, *argv: str) -> subprocess.CompletedProcess:
    """``flash *argv`` in a process where importing ``module`` fails as if it were not installed."""
    code = f"""
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == {module!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, NotInstalled())
from flash_rl.cli import main
sys.exit(main({list(argv)!r}))
"""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_command_missing_an_optional_extra_names_the_extra(tmp_path):
    """Without the [rl] extra the environments' commands work and the training ones say what to install (they
    ended in a ModuleNotFoundError traceback)."""
    for argv in (["meta-train", "--run-dir", str(tmp_path / "run")], ["config-eval", "--data", "simulated"]):
        out = _flash_without("torch", *argv)
        assert (out.returncode, out.stderr) == (2, f"flash {argv[0]}: needs torch, from the [rl] extra: pip install "
                                                   f"'flash-cloud[rl]' (or -e '.[rl]' in a checkout)\n")
    assert _flash_without("torch", "--version").returncode == 0
    out = _flash_without("simpy", "demo")   # a core dependency missing is a broken install: the traceback says so
    assert out.returncode == 1 and "ModuleNotFoundError" in out.stderr
