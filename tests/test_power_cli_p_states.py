"""A power task family whose servers have other than 5 P-states, through a config and the CLI: the config's env
(``gym.make(env.id, **env.kwargs)``, kwargs saved with the agents) had the default family's 5 P-states and no setting
to change it, so every task of such a family failed. ``env.kwargs.family_file`` gives the env the family's."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import flash_envs  # noqa: F401  (registers the envs)
from flash_envs.data import DataFormatError
from flash_envs.data.specpower import DVFSTable
from flash_envs.envs.power_management import PowerManagementEnv
from flash_envs.power_tasks import PowerTaskFamily
from flash_envs.sim import server_catalogue   # (its test_servers, imported here, would be collected)
from flash_envs.tasks import default_family
from flash_rl.cases import CONFIG_DIR, get_case
from flash_rl.config import ConfigError, load_config
from test_flash_reproduce import TINY

ENV_ID = "flash/PowerManagement-v0"
#: A host's DVFS table with six P-states, as ``read_dvfs_csv`` would read one.
SIX = DVFSTable("six-state host", (0.5, 0.6, 0.7, 0.8, 0.9, 1.0), (120.0, 124.0, 129.0, 134.0, 140.0, 147.0),
                (180.0, 192.0, 205.0, 219.0, 234.0, 250.0))
EPISODE_S = 40.0
#: The power config at toy size, episodes of EPISODE_S.
POWER_TINY = [o for o in TINY if not o.startswith("env.kwargs")] + [f"env.kwargs={{episode_s: {EPISODE_S}}}"]


def six_state_family(path: Path) -> Path:
    """Write a small family on catalogue servers given the P-states (and fitted shape) of :data:`SIX` to ``path``."""
    scaling = SIX.fit()

    train, test = ([dataclasses.replace(s, scaling=scaling, freq_levels=SIX.freq_fraction) for s in servers]
                   for servers in (server_catalogue.train_servers()[:2], server_catalogue.test_servers()[:1]))
    family = PowerTaskFamily.generate(2, 1, 0, episode_s=EPISODE_S, train_types=train, test_types=test)
    family.save_yaml(path)
    return path


@pytest.fixture
def family_file(tmp_path, monkeypatch) -> str:
    """A six-P-state family file, named relative to the working directory (``tmp_path``), as a user would name it."""
    monkeypatch.chdir(tmp_path)
    six_state_family(tmp_path / "six.yaml")
    return "six.yaml"


def test_the_env_takes_a_family_file(family_file):
    env = gym.make(ENV_ID, family_file=family_file, episode_s=EPISODE_S).unwrapped
    assert env.action_space == gym.spaces.Discrete(6) and env.n_levels == 6
    assert env.family == PowerTaskFamily.load_yaml(family_file)
    assert env.get_task() == env.family.train[0]
    many = gym.make(ENV_ID, family_file=family_file, episode_s=EPISODE_S, n_servers=2).unwrapped
    assert many.action_space == gym.spaces.MultiDiscrete([6, 6])
    many.reset(seed=0)
    assert many.step([5, 0])[4]["level"] == [5, 0]


@pytest.mark.filterwarnings("error")   # a checker's warning is a failure, not a pass
def test_check_env_passes_with_a_family_file(family_file):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(gym.make(ENV_ID, family_file=family_file, episode_s=EPISODE_S).unwrapped)
    sb3_check_env(gym.make(ENV_ID, family_file=family_file, episode_s=EPISODE_S).unwrapped)


def test_an_edited_family_file_is_read_again(family_file):
    """The env reads a file once while it is unchanged; rewritten (here with the catalogue's 5 P-states), anew."""
    assert gym.make(ENV_ID, family_file=family_file, episode_s=EPISODE_S).unwrapped.n_levels == 6
    PowerTaskFamily.generate(2, 1, 0, episode_s=EPISODE_S).save_yaml(family_file)
    os.utime(family_file, ns=(0, 0))   # another modification time, whatever the clock's resolution
    assert gym.make(ENV_ID, family_file=family_file, episode_s=EPISODE_S).unwrapped.n_levels == 5


def test_bad_family_files_are_refused_when_the_env_is_made(family_file, tmp_path):
    with pytest.raises(TypeError, match=r"family_file must be the path \(a str\) of a task family's YAML file, or "
                                        r"None, got .*six.yaml'\) \(PosixPath\)"):
        PowerManagementEnv(family_file=tmp_path / family_file)
    with pytest.raises(TypeError, match=r"family_file must be the path .* got 3 \(int\)"):
        PowerManagementEnv(family_file=3)
    with pytest.raises(ValueError, match="family_file is empty"):
        PowerManagementEnv(family_file="")
    with pytest.raises(FileNotFoundError, match=r"family_file 'missing.yaml': no such file \(relative to the working "
                                                r"directory: .*missing.yaml\)"):
        PowerManagementEnv(family_file="missing.yaml")
    with pytest.raises(FileNotFoundError, match="a folder, not a file"):
        PowerManagementEnv(family_file=str(tmp_path))
    (tmp_path / "not_a_family.yaml").write_text("train: 3\n")
    with pytest.raises(DataFormatError, match="not_a_family.yaml"):
        PowerManagementEnv(family_file="not_a_family.yaml")
    with pytest.raises(ValueError, match="give the env a family or a family_file, not both"):
        PowerManagementEnv(family=PowerTaskFamily.load_yaml(family_file), family_file=family_file)
    with pytest.raises(ConfigError, match=r"config key env.kwargs: .* family_file 'missing.yaml': no such file"):
        load_config(CONFIG_DIR / "power.yaml", ["env.kwargs.family_file=missing.yaml"])


def test_the_default_env_is_unchanged():
    env = gym.make(ENV_ID).unwrapped
    assert env.family is default_family(PowerTaskFamily, episode_s=900.0)
    assert env.action_space == gym.spaces.Discrete(5)


def test_the_case_refuses_the_family_naming_the_setting_that_fixes_it(family_file):
    cfg = load_config(CONFIG_DIR / "power.yaml", POWER_TINY + [f"tasks.family_file={family_file}"])
    with pytest.raises(DataFormatError, match=r"task family six.yaml: train\[0\] .*: task .* has 6 P-states; this "
                                              r"env's action space has 5 \(the default family\); .*set config key "
                                              r"env.kwargs.family_file to six.yaml too "
                                              r"\(--set env.kwargs.family_file=six.yaml\)"):
        get_case("power").build_family(cfg)


def test_a_family_of_mixed_p_states_is_not_sent_to_env_kwargs(family_file):
    """No env acts with two P-state counts: the error asks for one, not for a setting that would not help."""
    six = PowerTaskFamily.load_yaml(family_file)
    PowerTaskFamily(six.train, PowerTaskFamily.generate(1, 1, 0, episode_s=EPISODE_S).test,
                    episode_s=EPISODE_S).save_yaml("mixed.yaml")
    cfg = load_config(CONFIG_DIR / "power.yaml", POWER_TINY + ["tasks.family_file=mixed.yaml"])
    with pytest.raises(DataFormatError, match=r"has 6 P-states; this env's action space has 5, and the family's "
                                              r"tasks have \[5, 6\] P-states: give every task as many") as err:
        get_case("power").build_family(cfg)
    assert "env.kwargs" not in str(err.value)


def test_the_case_builds_the_family_and_env_from_the_config(family_file):
    cfg = load_config(CONFIG_DIR / "power.yaml", POWER_TINY + [f"tasks.family_file={family_file}",
                                                               f"env.kwargs.family_file={family_file}"])
    assert cfg.env.kwargs == {"episode_s": EPISODE_S, "family_file": family_file}
    family = get_case("power").build_family(cfg)
    assert family == PowerTaskFamily.load_yaml(family_file)
    env = gym.make(cfg.env.id, **cfg.env.kwargs)
    assert env.action_space == gym.spaces.Discrete(6)
    env.unwrapped.set_task(family.test[0])


def test_meta_train_and_evaluate_through_the_cli(family_file, capsys):
    """The CLI meta-trains on the family, saves the env kwargs with the agent and rebuilds its env from them."""
    from flash_rl.cli import main
    from flash_rl.flash import Flash

    settings = POWER_TINY + [f"tasks.family_file={family_file}", f"env.kwargs.family_file={family_file}"]
    assert main(["meta-train", "--case", "power", "--method", "flash", "--run-dir", "run", "--set", *settings]) == 0
    agent = Flash.load("run/models/flash/final")
    assert agent.env_kwargs == {"episode_s": EPISODE_S, "family_file": family_file}
    assert agent.make_env().action_space == gym.spaces.Discrete(6)
    assert main(["evaluate", "--case", "power", "--model", "run/models/flash/final", "--set", *settings]) == 0
    assert "test-00-specpower-" in capsys.readouterr().out
    assert main(["meta-train", "--case", "power", "--method", "flash", "--run-dir", "run2", "--set",
                 *POWER_TINY, f"tasks.family_file={family_file}"]) == 2
    assert "--set env.kwargs.family_file=six.yaml" in capsys.readouterr().err


def test_an_env_family_file_without_the_tasks_is_refused_naming_the_setting(family_file, capsys):
    """The env acted with the file's 6 P-states and the tasks were the generated family's 5: every command went on
    to a traceback from the first task the env was given."""
    from flash_rl.cli import main

    settings = [*POWER_TINY, f"env.kwargs.family_file={family_file}"]
    cfg = load_config(CONFIG_DIR / "power.yaml", settings)
    with pytest.raises(ValueError, match=r"env.kwargs.family_file six.yaml gives the env 6 P-states, but the tasks "
                                         r"are the generated family's \(tasks.family_file is unset\), whose servers "
                                         r"have 5: set config key tasks.family_file to six.yaml too "
                                         r"\(--set tasks.family_file=six.yaml\)"):
        get_case("power").build_family(cfg)
    assert main(["meta-train", "--case", "power", "--method", "flash", "--run-dir", "run", "--set", *settings]) == 2
    assert "--set tasks.family_file=six.yaml" in capsys.readouterr().err
    assert not Path("run/config.yaml").exists()


def test_an_agent_whose_family_file_changed_since_is_not_called_damaged(family_file):
    """A family file rewritten with other P-states gives a saved agent's env other spaces: the agent is sound, but
    was only called 'not a saved agent that flash wrote, or damaged' (MAML: 'not a MAML checkpoint')."""
    from flash_rl.cli import main
    from flash_rl.flash import Flash
    from flash_rl.maml import MAML

    settings = POWER_TINY + [f"tasks.family_file={family_file}", f"env.kwargs.family_file={family_file}"]
    for method in ("flash", "maml"):
        assert main(["meta-train", "--case", "power", "--method", method, "--run-dir", "run", "--set", *settings]) == 0
    PowerTaskFamily.generate(2, 1, 0, episode_s=EPISODE_S).save_yaml(family_file)   # the catalogue's 5 P-states
    os.utime(family_file, ns=(0, 0))
    changed = r"; or, if it is sound, the env it is loaded into is not the one it was saved with: .*a power env's "
    with pytest.raises(ValueError, match=r"agent.zip .*Observation spaces do not match.*" + changed):
        Flash.load("run/models/flash/final")
    with pytest.raises(ValueError, match=r"maml.pt .*sized for another observation or action space than this env's, "
                                         + changed[2:]):
        MAML.load("run/models/maml/ckpt")


def test_an_agent_refusing_a_family_object_names_family_file(family_file):
    from flash_rl.flash import Flash

    with pytest.raises(ValueError, match=r"env_kwargs: family=<PowerTaskFamily object> cannot be saved with the agent"
                                         r".*the power env also takes the file's path, family_file="):
        Flash("PPO", ENV_ID, {"family": PowerTaskFamily.load_yaml(family_file)})
    assert Flash("PPO", ENV_ID, {"family_file": family_file, "episode_s": EPISODE_S}).make_env().action_space == \
        gym.spaces.Discrete(6)
