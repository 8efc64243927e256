"""Shared fixtures: the public data folder (tests that need it skip when it is absent), the project's metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from flash_envs.data import data_dir


@pytest.fixture
def shared_data():
    """Path of the public datasets; skips the test with the reason when the folder is absent."""
    path = data_dir()
    if not path.is_dir():
        pytest.skip(f"public datasets not found at {path.resolve()} (set FLASH_DATA_DIR to run this test)")
    return path


@pytest.fixture(scope="session")
def project():
    """The ``[project]`` table of the repository's ``pyproject.toml``."""
    try:
        import tomllib
    except ModuleNotFoundError:   # Python 3.10 (the [dev] extra installs tomli there)
        import tomli as tomllib
    return tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]


@pytest.fixture
def no_training(monkeypatch):
    """Makes any few-shot training or evaluation fail the test: checks of the input must come first."""
    from flash_rl.fewshot import evaluate

    def refuse(*args, **kwargs):
        raise AssertionError("trained before refusing the input")
    monkeypatch.setattr(evaluate, "run", refuse)
