"""Linux cpufreq governors as policies, and the governor report."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import flash_envs  # noqa: F401  (registers the envs)
from flash_envs.baselines.governors import GOVERNORS, make_governor
from flash_envs.baselines.power_report import governor_rows, summary_markdown

LEVELS = (0.59925, 0.6993, 0.7989, 0.8989, 1.0)


def _obs(util, level, servers=1):
    """An observation with the given utilisation and P-state index on every server."""
    return np.tile(np.array([util, 0.3, level / 4, 0.5, 0.4], dtype=np.float32), servers)


@pytest.mark.parametrize("util", [0.0, 0.3, 0.79, 0.81, 1.0])
@pytest.mark.parametrize("level", [0, 2, 4])
def test_performance_powersave_ondemand(util, level):
    assert make_governor("performance", LEVELS).predict(_obs(util, level))[0] == 4
    assert make_governor("powersave", LEVELS).predict(_obs(util, level))[0] == 0
    ondemand = make_governor("ondemand", LEVELS).predict(_obs(util, level))[0]
    if util > 0.8:
        assert ondemand == 4  # jumps straight to f_max above up_threshold
    else:
        target = LEVELS[0] + util * (1 - LEVELS[0])
        assert LEVELS[ondemand] >= target - 1e-9 and (ondemand == 0 or LEVELS[ondemand - 1] < target)


def test_conservative_steps_one_level():
    gov = make_governor("conservative", LEVELS)
    assert gov.predict(_obs(0.9, 2))[0] == 3 and gov.predict(_obs(0.1, 2))[0] == 1
    assert gov.predict(_obs(0.5, 2))[0] == 2
    assert gov.predict(_obs(0.9, 4))[0] == 4 and gov.predict(_obs(0.1, 0))[0] == 0


def test_schedutil_targets_125_percent_of_invariant_util():
    gov = make_governor("schedutil", LEVELS)
    # at f_max with util 0.6: 1.25 * 1.0 * 0.6 = 0.75 -> lowest P-state >= 0.75 is 0.7989 (index 2)
    assert gov.predict(_obs(0.6, 4))[0] == 2
    # at 0.6 f_max with util 1.0: 1.25 * 0.59925 = 0.749 -> index 2; at util 0.2 -> the lowest
    assert gov.predict(_obs(1.0, 0))[0] == 2 and gov.predict(_obs(0.2, 0))[0] == 0
    assert gov.predict(_obs(1.0, 4))[0] == 4


def test_multi_server_and_batched_predict():
    gov = make_governor("ondemand", LEVELS, n_servers=3)
    obs = np.concatenate([_obs(0.9, 1), _obs(0.0, 1), _obs(0.4, 1)])
    action, state = gov.predict(obs)
    assert action.shape == (3,) and list(action) == [4, 0, 2] and state is None
    batch, _ = gov.predict(np.stack([obs, obs]))
    assert batch.shape == (2, 3)
    with pytest.raises(ValueError, match="expected observations of length 15"):
        gov.predict(_obs(0.5, 1))
    with pytest.raises(ValueError, match="unknown governor"):
        make_governor("userspace", LEVELS)


@pytest.mark.parametrize("name", sorted(GOVERNORS))
def test_governors_drive_the_env(name):
    """Each governor's P-states are the ones the servers run (no switching latency here), and conservative moves
    one P-state at a time."""
    env = gym.make("flash/PowerManagement-v0", n_servers=2, episode_s=60.0, transition_latency_s=0.0)
    gov = GOVERNORS[name].for_env(env)
    assert gov.n_servers == 2 and list(gov.freq_levels) == list(env.unwrapped.freq_levels)
    with pytest.raises(TypeError, match=r"not an env: use .*\.for_env\(env\)"):
        GOVERNORS[name](env)
    gov.reset()
    obs, _ = env.reset(seed=1)
    levels = []
    for _ in range(12):
        action, _ = gov.predict(obs)
        assert env.action_space.contains(action)
        obs, _, _, truncated, info = env.step(action)
        assert info["level"] == list(action)
        levels.append(info["level"])
    if name in ("performance", "powersave"):
        assert set(np.ravel(levels)) == {4 if name == "performance" else 0}
    if name == "conservative":
        assert np.abs(np.diff(levels, axis=0)).max() <= 1


def test_governor_report_rows():
    rows = governor_rows(("test",), seeds=1, episode_s=50.0)
    assert len(rows) == 8 * len(GOVERNORS)
    assert all(r["energy_kj"] > 0 and 0 <= r["slo_violation"] <= 1 for r in rows)
    assert "| test | ondemand |" in summary_markdown(rows)


def test_governor_rows_total_each_episodes_energy_and_transitions():
    """energy_kj is the episode's energy in kJ and transitions the episode's count, as a hand-run episode with the
    env's own info gives them (no other test read these columns: a row in joules passed)."""
    from flash_envs.envs.power_management import PowerManagementEnv

    row = next(r for r in governor_rows(("test",), seeds=1, episode_s=50.0) if r["governor"] == "ondemand")
    env = PowerManagementEnv(episode_s=50.0)
    task = next(t for t in env.family.test if t.name == row["task"])
    governor = make_governor("ondemand", task.server.freq_levels, env.n_servers)
    obs, _ = env.reset(seed=0, options={"task": task})
    total, transitions, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(governor.predict(obs, deterministic=True)[0])
        total, transitions, done = total + float(reward), transitions + info["transitions"], terminated or truncated
    assert info["episode_energy_j"] > 0 and transitions > 0
    assert row["energy_kj"] == pytest.approx(info["episode_energy_j"] / 1000, rel=1e-9)
    assert row["transitions"] == pytest.approx(transitions, rel=1e-9)
    assert row["return"] == pytest.approx(total, rel=1e-9)


def test_a_tie_for_the_best_return_counts_for_every_tied_governor():
    returns = {"performance": -9.0, "powersave": -5.0, "ondemand": -7.0, "conservative": -8.0, "schedutil": -5.0}
    rows = [{"split": "test", "task": t, "governor": g, "power_share": 0.5, "slo_violation": 0.0,
             "return": r + (3.0 if t == "b" and g == "ondemand" else 0.0)}
            for t in ("a", "b") for g, r in returns.items()]
    table = {line.split(" | ")[1]: line.split(" | ")[-1] for line in summary_markdown(rows).splitlines()[2:]}
    assert table == {"performance": "0/2 |", "powersave": "1/2 (1 tied) |", "ondemand": "1/2 |",
                     "conservative": "0/2 |", "schedutil": "1/2 (1 tied) |"}


def test_ondemand_thresholds_are_fractions():
    with pytest.raises(ValueError, match=r"up_threshold must be a finite number >= 0 and <= 1, got 80"):
        GOVERNORS["ondemand"](LEVELS, up_threshold=80)   # the kernel's sysfs value: 80 (%) would never jump to f_max
    with pytest.raises(ValueError, match="up_threshold"):
        GOVERNORS["ondemand"].for_env(gym.make("flash/PowerManagement-v0"), up_threshold=-0.1)


def test_a_governor_made_for_an_env_follows_its_server_type():
    env = gym.make("flash/PowerManagement-v0")
    schedutil = GOVERNORS["schedutil"].for_env(env)   # made on the default task's server type
    task = env.unwrapped.family.test[0]
    other = dataclasses.replace(task, server=dataclasses.replace(task.server, freq_levels=(0.2, 0.4, 0.6, 0.8, 1.0)))
    env.reset(seed=0, options={"task": other})
    # util 0.5 at f_max: target 0.625 of f_max, P-state 3 (0.8) here; on the catalogue's P-states it would be 1 (0.6993)
    assert schedutil.predict(_obs(0.5, 4))[0] == 3
    assert make_governor("schedutil", LEVELS).predict(_obs(0.5, 4))[0] == 1



@pytest.mark.parametrize("name", sorted(GOVERNORS))
def test_a_non_finite_observation_is_named(name):
    """A NaN utilisation was an IndexError (or a silent P-state) deep in the governor's rule."""
    with pytest.raises(ValueError, match="observations must be finite numbers"):
        make_governor(name, LEVELS).predict(_obs(float("nan"), 2))


@pytest.mark.parametrize("levels", [(1600, 1867, 2133, 2400, 2667), (0.5, 0.6, 0.7), (0.0, 0.5, 1.0)])
def test_p_states_are_fractions_of_f_max_ending_at_one(levels):
    """MHz were taken: ondemand then stayed at the lowest P-state until its up threshold."""
    with pytest.raises(ValueError, match=r"freq_levels must be >= 2 increasing fractions of f_max, the last 1"):
        make_governor("ondemand", levels)


def test_a_family_whose_tasks_have_other_p_state_counts_is_refused_when_the_env_is_made():
    """It was accepted, and the first reset on a test task failed."""
    from flash_envs.envs.power_management import PowerManagementEnv
    from flash_envs.power_tasks import PowerTaskFamily
    from flash_envs.sim.server_catalogue import test_servers, train_servers

    three = dataclasses.replace(test_servers()[0], freq_levels=(0.6, 0.8, 1.0))
    family = PowerTaskFamily.generate(n_train=2, n_test=2, train_types=[train_servers()[0]], test_types=[three])
    with pytest.raises(ValueError, match=r"the family's tasks have \[3, 5\] P-states .*needs the same number"):
        PowerManagementEnv(family=family)


def test_ondemand_jumps_to_f_max_only_above_up_threshold():
    """ondemand jumps to f_max when util > up_threshold (strictly, as the kernel's ``load > up_threshold``); at util
    == up_threshold = 0.8 it takes the proportional target r_0 + 0.8 * (1 - r_0) = 0.5 + 0.4 = 0.9, P-state 1 of
    (0.5, 0.9, 0.95, 1.0)."""
    gov = make_governor("ondemand", (0.5, 0.9, 0.95, 1.0))
    at_threshold = np.array([0.8, 0.3, 1.0, 0.5, 0.4])   # float64: exactly 0.8
    assert gov.predict(at_threshold)[0] == 1
    assert gov.predict(np.array([0.81, 0.3, 1.0, 0.5, 0.4]))[0] == 3


def test_conservative_holds_at_its_thresholds():
    """conservative steps up only when util > up_threshold and down only when util < down_threshold (the kernel's
    strict comparisons): at exactly 0.8 or 0.2 it holds its P-state."""
    gov = make_governor("conservative", LEVELS)
    for util in (0.8, 0.2):
        assert gov.predict(np.array([util, 0.3, 0.5, 0.5, 0.4]))[0] == 2   # float64: exactly the threshold
    assert gov.predict(np.array([0.19, 0.3, 0.5, 0.5, 0.4]))[0] == 1


def test_the_p_state_is_read_to_the_nearest_index_from_a_float32_observation():
    """The env writes the P-state as level / (L - 1) in float32; a governor reads back the nearest index. With 11
    P-states level 7 is float32(0.7) = 0.69999999, which times 10 is just under 7: still level 7 (conservative at a
    utilisation between its thresholds holds it)."""
    levels = np.linspace(0.5, 1.0, 11)
    gov = make_governor("conservative", levels)
    obs = np.array([0.5, 0.3, 7 / 10, 0.5, 0.4], dtype=np.float32)
    assert float(obs[2]) * 10 < 7   # the premise: float32 rounds 0.7 down
    assert gov.predict(obs)[0] == 7
