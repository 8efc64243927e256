"""docs/reference.md promises every command's options and every config key: an option or key added without a line
there fails here."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
from pathlib import Path

import pytest

from flash_rl.cli import COMMANDS
from flash_rl.config import ExperimentConfig

REFERENCE = (Path(__file__).resolve().parent.parent / "docs" / "reference.md").read_text()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_of_a_command_is_in_the_reference(command):
    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    options = [o for action in parser._actions for o in action.option_strings if o not in ("-h", "--help")]
    assert f"`flash {command}" in REFERENCE or f"| `{command}` |" in REFERENCE, f"{command} is not in reference.md"
    missing = [o for o in options if not re.search(rf"`{re.escape(o)}[ `=]", REFERENCE)]
    assert not missing, f"flash {command}: {missing} not in docs/reference.md"


def test_every_config_key_is_in_the_reference():
    keys = []
    for section in dataclasses.fields(ExperimentConfig):
        default = section.default_factory() if section.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            keys += [f"{section.name}.{key.name}" for key in dataclasses.fields(default)]
        else:
            keys.append(section.name)
    assert len(keys) > 30
    missing = [key for key in keys if f"`{key}`" not in REFERENCE]
    assert not missing, f"config keys not in docs/reference.md: {missing}"
