"""YAML files read as PyYAML reads them, but for two silences a fuzzing review found: a mapping that repeats a key
kept the last value (a config naming ``case:`` twice ran the second case), and an empty config file ran
every default."""

from __future__ import annotations

import pytest
import yaml

from flash_envs.data import DataFormatError
from flash_envs.tasks import AutoscalingTaskFamily
from flash_envs.yaml_numbers import parse_yaml
from flash_rl.config import ConfigError, load_config


@pytest.mark.parametrize("fast", [False, True])
def test_yaml_that_repeats_a_key_is_refused_naming_it(fast):
    """PyYAML keeps the last value silently: a config naming ``case:`` twice ran the second case."""
    with pytest.raises(yaml.YAMLError, match=r"found the key 'case' again \(first on line 1\)"):
        parse_yaml("case: power\nenv: {}\ncase: autoscaling\n", fast=fast)
    with pytest.raises(yaml.YAMLError, match=r"found the key 'a' again"):
        parse_yaml("- {a: 1, a: 2}\n", fast=fast)
    merged = parse_yaml("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n", fast=fast)   # a merge key is overridden
    assert merged["d"] == {"x": 3, "y": 2}
    nested = "defs:\n  b2: &b2 {<<: {x: 1}, x: 2}\nd: {<<: *b2, y: 3}\n"   # read as PyYAML reads it (6.0.3 and
    assert parse_yaml(nested, fast=fast) == yaml.load(nested, Loader=yaml.SafeLoader)   # 6.0.4 give d.x 2 and 1)
    with pytest.raises(yaml.YAMLError, match=r"found the key 'y' again"):   # a merge does not hide a repeat
        parse_yaml("d: {<<: {x: 1}, y: 1, y: 2}\n", fast=fast)


def test_a_config_or_family_file_that_repeats_a_key_is_refused_naming_the_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("case: autoscaling\nadaptation: {budget: 3}\nadaptation: {budget: 5}\n")
    with pytest.raises(ConfigError, match=rf"{config}: not valid YAML: .*found the key 'adaptation' again"):
        load_config(config)
    family = tmp_path / "f.yaml"
    AutoscalingTaskFamily.generate(n_train=1, n_test=1, seed=0).save_yaml(family)
    family.write_text(family.read_text() + "test: []\n")
    with pytest.raises(DataFormatError, match=rf"task family {family}: .*found the key 'test' again"):
        AutoscalingTaskFamily.load_yaml(family)


def test_an_empty_config_file_warns_that_every_setting_is_its_default(tmp_path):
    """A truncated or wrong file started a full default run (300 000 steps) without a word."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.warns(UserWarning, match=rf"config file {empty} sets no setting .*only the defaults and --set apply"):
        cfg = load_config(empty)
    assert cfg.case == "autoscaling"
