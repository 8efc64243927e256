"""Autoscaling task family: fixed seeded split, diversity, (de)serialisation; every family type's split checks."""

from __future__ import annotations

import re

import pytest
import yaml

from flash_envs.data import DataFormatError
from flash_envs.envs.config_search import ConfigSearchTaskFamily
from flash_envs.power_tasks import PowerTaskFamily
from flash_envs.tasks import AutoscalingTask, AutoscalingTaskFamily


def test_split_is_fixed_by_the_seed():
    assert AutoscalingTaskFamily.generate() == AutoscalingTaskFamily.generate()
    assert AutoscalingTaskFamily.generate(seed=1) != AutoscalingTaskFamily.generate(seed=2)


def test_family_is_diverse():
    family = AutoscalingTaskFamily.generate()
    tasks = family.train + family.test
    assert len({t.workload.kind for t in tasks}) >= 4
    assert max(t.app.cpu_fraction for t in tasks) - min(t.app.cpu_fraction for t in tasks) > 0.5
    assert max(t.app.working_set_mb for t in tasks) > 1024 > min(t.app.working_set_mb for t in tasks)
    assert len({t.app.startup_delay_s for t in tasks}) >= 3


def test_yaml_round_trip(tmp_path):
    family = AutoscalingTaskFamily.generate(n_train=5, n_test=3)
    family.save_yaml(tmp_path / "family.yaml")
    assert AutoscalingTaskFamily.load_yaml(tmp_path / "family.yaml") == family


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(colour="red"), "unknown autoscaling task field"),
    (lambda d: d["app"].update(cores=4), "unknown application field"),
    (lambda d: d["app"].update(service_time_ms=-3), "service_time_ms"),
    (lambda d: d["workload"].update(kind="sinus"), "unknown workload kind"),
    (lambda d: d.pop("workload"), r"autoscaling task needs the field\(s\) \['workload'\]"),
])
def test_bad_task_dicts_raise(mutate, message):
    d = AutoscalingTaskFamily.generate().train[0].to_dict()
    mutate(d)
    with pytest.raises(ValueError, match=message):
        AutoscalingTask.from_dict(d)


def test_bad_family_arguments():
    with pytest.raises(ValueError, match="train"):
        AutoscalingTaskFamily.generate(n_train=0)
    with pytest.raises(ValueError, match="missing"):
        AutoscalingTaskFamily.from_dict({"train": []})


@pytest.mark.parametrize("family_type", [AutoscalingTaskFamily, PowerTaskFamily, ConfigSearchTaskFamily],
                         ids=lambda f: f.__name__)
def test_every_family_type_refuses_an_empty_split(family_type, tmp_path):
    """An empty split made the env fail later (IndexError on train[0], numpy's error on sampling an empty test)."""
    tasks = family_type.generate(n_train=1, n_test=1)
    for train, test, empty in [((), (), r"\['train', 'test'\]"), (tasks.train, (), r"\['test'\]"),
                               ((), tasks.test, r"\['train'\]")]:
        with pytest.raises(ValueError, match=f"{family_type.__name__}: empty split\\(s\\) {empty}; a family needs "
                                             f">= 1 train and >= 1 test task"):
            family_type(train, test)
    (tmp_path / "family.yaml").write_text("train: []\ntest: []\n")
    with pytest.raises(DataFormatError, match=r"family.yaml: .*empty split"):
        family_type.load_yaml(tmp_path / "family.yaml")


def family_file_with(tmp_path, mutate):
    """A two-task family's YAML file, its first train task's dict replaced by ``mutate(dict)``."""
    family = AutoscalingTaskFamily.generate(n_train=1, n_test=1).to_dict()
    family["train"][0] = mutate(family["train"][0])
    path = tmp_path / "family.yaml"
    path.write_text(yaml.safe_dump(family))
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda t: {**t, "app": None}, "application: expected a mapping of fields, got NoneType"),
    (lambda t: {**t, "workload": None}, "workload: expected a mapping of fields, got NoneType"),
    (lambda t: [t], "autoscaling task: expected a mapping of fields, got list"),
    (lambda t: {**t, "workload": {"kind": "diurnal", "phase": "x"}}, "DiurnalWorkload.phase must be a number"),
    (lambda t: {**t, "workload": {"kind": "trace", "path": "t.csv", "value_kind": "bogus"}},
     r"TraceWorkload.value_kind must be one of \('count', 'rate'\), got 'bogus'"),
    (lambda t: {**t, "workload": {"kind": "trace", "path": "t.csv", "time_unit_s": -60}},
     "TraceWorkload.time_unit_s must be a finite number > 0, got -60"),
])
def test_bad_fields_in_a_family_file_are_named_as_it_loads(tmp_path, mutate, message):
    where = f"task family {re.escape(str(tmp_path))}/family.yaml: train\\[0\\]: "   # the file, then the task
    with pytest.raises(DataFormatError, match=where + message):
        AutoscalingTaskFamily.load_yaml(family_file_with(tmp_path, mutate))


def test_a_split_that_is_not_a_list_is_named(tmp_path):
    (tmp_path / "family.yaml").write_text("train:\ntest: []\n")
    with pytest.raises(DataFormatError, match="task family split 'train' must be a list of tasks, got NoneType"):
        AutoscalingTaskFamily.load_yaml(tmp_path / "family.yaml")
