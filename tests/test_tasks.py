"""Autoscaling task family: fixed seeded split, diversity, (de)serialisation."""

from __future__ import annotations

import pytest

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
