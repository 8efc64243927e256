"""Autoscaling task family: fixed seeded split, diversity, (de)serialisation; every family type's split checks."""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import pytest
import yaml

import flash_envs  # noqa: F401  (registers the envs)

from flash_envs.data import DataFormatError
from flash_envs.envs.config_search import ConfigSearchTaskFamily
from flash_envs.power_tasks import PowerTaskFamily
from flash_envs.tasks import AutoscalingTask, AutoscalingTaskFamily

ENV_ID = "flash/Autoscaling-v0"


def test_split_is_fixed_by_the_seed():
    assert AutoscalingTaskFamily.generate() == AutoscalingTaskFamily.generate()
    assert AutoscalingTaskFamily.generate(seed=1) != AutoscalingTaskFamily.generate(seed=2)


@pytest.mark.parametrize("env_kwargs, episode_s", [("{}", 1800.0),
                                                   ("{episode_steps: 10, control_interval_s: 60.0}", 600.0)])
def test_the_autoscaling_case_generates_the_family_the_configured_env_would(env_kwargs, episode_s):
    """For the configured episode length, as the env's default family (the default config's is the committed one)."""
    from flash_rl.cases import CONFIG_DIR, get_case
    from flash_rl.config import load_config

    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", [f"env.kwargs={env_kwargs}"], runnable=False)
    family = get_case("autoscaling").build_family(cfg)
    assert family == AutoscalingTaskFamily.generate(cfg.tasks.n_train, cfg.tasks.n_test, cfg.tasks.seed,
                                                    episode_s=episode_s)
    assert family == gym.make(cfg.env.id, **cfg.env.kwargs).unwrapped.family   # the config's 24, 8, 2024
    assert (family == AutoscalingTaskFamily.generate()) == (episode_s == 1800.0)


def test_a_family_for_another_episode_length_scales_the_times_of_the_same_draws():
    short, default = AutoscalingTaskFamily.generate(episode_s=300.0), AutoscalingTaskFamily.generate()
    for a, b in zip(short.train + short.test, default.train + default.test, strict=True):
        assert a.app == b.app and a.workload.kind == b.workload.kind
        if a.workload.kind == "step":
            assert abs(a.workload.start_s * 6 - b.workload.start_s) <= 3   # rounded to whole seconds


@pytest.mark.parametrize("family_type, env_id, other", [
    (AutoscalingTaskFamily, "flash/Autoscaling-v0", {"episode_steps": 10}),
    (PowerTaskFamily, "flash/PowerManagement-v0", {"episode_s": 300.0}),
])
def test_a_family_records_its_episode_length_and_an_env_of_another_warns(family_type, env_id, other, tmp_path):
    """A family's workloads are timed for an episode length, which nothing recorded: an env (or a family file) of
    another length ran with steps and diurnal periods misplaced, silently."""
    family = family_type.generate(n_train=2, n_test=1, episode_s=600.0)
    assert family.episode_s == 600.0 and family != family_type(family.train, family.test)
    family.save_yaml(tmp_path / "family.yaml")
    assert "episode_s: 600.0" in (tmp_path / "family.yaml").read_text()
    assert family_type.load_yaml(tmp_path / "family.yaml") == family
    length = {"episode_steps": 20} if family_type is AutoscalingTaskFamily else {"episode_s": 600.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym.make(env_id, family=family, **length)   # the length it was generated for
        gym.make(env_id, family=family_type(family.train, family.test), **other)   # none recorded
    with pytest.warns(UserWarning, match="the task family was generated for 600 s episodes, but this env's last "
                                         "300 s") as caught:   # 10 steps of 30 s; 300 s
        gym.make(env_id, family=family, **other)
    assert [w.filename for w in caught] == [__file__]   # the user's line, not one in gymnasium's make


def test_a_case_warns_of_a_family_file_generated_for_another_episode_length(tmp_path):
    """The case's envs get the file's tasks one by one (set_task), never the family: the env's own check did not
    reach a family file, so the case's probe env is given it."""
    from flash_rl.cases import get_case
    from flash_rl.config import load_config

    case = get_case("autoscaling")
    for episode_s in (1800.0, 600.0):   # the quick config's 60 steps of 30 s, then another length
        AutoscalingTaskFamily.generate(n_train=2, n_test=1, episode_s=episode_s).save_yaml(tmp_path / "family.yaml")
        cfg = load_config(case.config_path(True), [f"tasks.family_file={tmp_path / 'family.yaml'}"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            case.build_family(cfg)
        messages = [str(w.message) for w in caught]
        if episode_s == 1800.0:
            assert messages == []
        else:
            assert len(messages) == 1 and messages[0].startswith(
                "AutoscalingEnv: the task family was generated for 600 s episodes, but this env's last 1800 s")


def test_a_family_file_without_an_episode_length_loads_and_a_bad_one_is_named(tmp_path):
    d = AutoscalingTaskFamily.generate(n_train=2, n_test=1).to_dict()
    path = tmp_path / "family.yaml"
    path.write_text(yaml.safe_dump({"train": d["train"], "test": d["test"]}))   # written before it was recorded
    assert AutoscalingTaskFamily.load_yaml(path).episode_s is None
    path.write_text(yaml.safe_dump({**d, "episode_s": -5}))
    with pytest.raises(DataFormatError, match=f"task family {path}: episode_s must be a finite number > 0, got -5"):
        AutoscalingTaskFamily.load_yaml(path)


def test_every_way_of_training_on_a_family_of_another_length_warns_once_checked(tmp_path):
    """meta_train takes a family's tasks one at a time, so the env never saw the family; an env whose other settings
    are refused (SB3's make_vec_env first tries render_mode="rgb_array") warned before refusing; a family file's
    misspelt key was ignored; a subclass with a field of its own could not be defined once episode_s had a default."""
    from dataclasses import dataclass

    from flash_envs.envs.autoscaling import AutoscalingEnv
    from flash_rl.flash import Flash
    from flash_rl.maml import MAML

    family = AutoscalingTaskFamily.generate(n_train=2, n_test=1)   # for the default 1800 s
    short = {"episode_steps": 4}   # 120 s
    with pytest.warns(UserWarning, match="generated for 1800 s episodes, but this env's last 120 s") as caught:
        Flash("PPO", ENV_ID, short, net_arch=[4], n_envs=1, agent_kwargs={"n_steps": 8, "batch_size": 8}).meta_train(
            family, 8)
    with pytest.warns(UserWarning, match="generated for 1800 s episodes, but this env's last 120 s") as maml_caught:
        MAML(ENV_ID, short, hidden=[4], meta_batch=1).meta_train(family, 1)
    assert {w.filename for w in [*caught, *maml_caught]} == {__file__}   # the user's line (each meta_train call)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="render_mode"):
            AutoscalingEnv(family=family, render_mode="rgb_array", **short)
    path = tmp_path / "family.yaml"
    path.write_text(yaml.safe_dump({**family.to_dict(), "episode_secs": 600}))
    with pytest.raises(DataFormatError, match=r"unknown task family field\(s\) \['episode_secs'\]"):
        AutoscalingTaskFamily.load_yaml(path)

    @dataclass(frozen=True)
    class Seeded(AutoscalingTaskFamily):
        seed: int

    assert Seeded(family.train, family.test, 7, episode_s=60.0).episode_s == 60.0


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


@pytest.mark.parametrize("family_type", [AutoscalingTaskFamily, PowerTaskFamily, ConfigSearchTaskFamily])
@pytest.mark.parametrize("kwargs, error, message", [
    ({"n_train": 2.5}, ValueError, r"n_train must be a whole number >= 1, got 2.5"),
    ({"n_test": True}, TypeError, r"n_test must be a whole number, got True"),
    ({"n_test": 0}, ValueError, r"n_test must be a whole number >= 1, got 0"),
    ({"seed": -1}, ValueError, r"seed must be a whole number >= 0, got -1"),
])
def test_generate_names_a_bad_argument(family_type, kwargs, error, message):
    """``n_train=2.5`` was a TypeError from ``range``, ``n_test=True`` a family of one test task."""
    with pytest.raises(error, match=message):
        family_type.generate(**{"n_train": 3, "n_test": 2, **kwargs})


@pytest.mark.parametrize("family_type", [AutoscalingTaskFamily, PowerTaskFamily])
def test_generate_refuses_an_episode_that_is_not_positive(family_type):
    """``episode_s=-5`` was an error about a step workload's ``start_s``."""
    with pytest.raises(ValueError, match=r"episode_s must be a finite number > 0, got -5"):
        family_type.generate(n_train=2, n_test=1, episode_s=-5)


def test_task_diversity_report_compares_the_best_member_per_task_with_the_task_blind_one():
    """The task-diversity report: the task-blind member is the best on average over tasks (b: mean 0.7 against a's
    0.5); per task the best member (a on t1, b on t2) and its gain over the blind one (0.1 and 0), their mean (0.05)
    and maximum (0.1), and how many tasks gain more than 0.05 (1)."""
    import numpy as np

    from flash_envs.baselines.diversity import report

    text = report(["t1", "t2"], {"cls": (["a", "b"], np.array([[1.0, 0.9], [0.0, 0.5]]))}, "flash task-diversity")
    assert ("- **cls**: task-blind choice b; per-task best choices span 2 different members; knowing the task gains "
            "0.050 per step on average, up to 0.100; 1 of 2 tasks gain more than 0.05.") in text
    assert "| t1 | a | 1.000 | 0.900 | +0.100 |" in text and "| t2 | b | 0.500 | 0.500 | +0.000 |" in text
    assert text.endswith("Regenerate: `flash task-diversity`\n")


def test_task_diversity_sweep_runs_hpa_at_3_gib_and_each_static_member_at_its_configuration(monkeypatch):
    """The sweep runs every HPA target in an env starting at a 3 GiB memory limit (so that OOM kills do not mask
    the comparison) and each static configuration in an env starting at that configuration, on every train and test
    task of the default family; the episodes themselves are stubbed out here."""
    import numpy as np

    from flash_envs.baselines import diversity

    seen = []

    def fake_evaluate(env, policy, tasks, episodes, seed):
        seen.append((type(policy).__name__, env.unwrapped.initial_config, getattr(policy, "target", None)))
        return [{"mean_reward": 0.0} for _ in tasks]

    monkeypatch.setattr(diversity, "evaluate_on_tasks", fake_evaluate)
    names, results = diversity.sweep(episodes=1, seed=0)
    family = gym.make("flash/Autoscaling-v0").unwrapped.family
    assert len(names) == len(family.train) + len(family.test)
    hpa = [(config, target) for kind, config, target in seen if kind == "HPA"]
    assert hpa == [((2, 1024, 3072), t) for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]
    static = [config for kind, config, _ in seen if kind == "StaticPolicy"]
    assert len(static) == 45 and (2, 512, 1024) in static and (16, 2048, 3072) in static
    assert results["HPA target"][1].shape == (len(names), 8)
    assert np.all(results["static configuration"][1] == 0.0)
