"""flash/PowerManagement-v0: API contracts, tasks, determinism and bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import flash_envs  # noqa: F401  (registers the envs)
from flash_envs.envs.power_management import PowerManagementEnv
from flash_envs.power_tasks import PowerTask, PowerTaskFamily
from flash_envs.sim.server_catalogue import server_by_name
from flash_envs.sim.service import AppProfile
from flash_envs.sim.workloads import ConstantWorkload
from flash_envs.tasks import AutoscalingTaskFamily

ENV_ID = "flash/PowerManagement-v0"


def _rollout(env, seed, task=None, steps=20, action=None):
    obs, info = env.reset(seed=seed, options=None if task is None else {"task": task})
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample() if action is None else action)
        trace += [obs, np.array([reward])]
    return np.concatenate(trace)


@pytest.mark.parametrize("kwargs", [{}, {"n_servers": 3}, {"fidelity": "request", "episode_s": 60.0}])
@pytest.mark.filterwarnings("error")   # a checker's warning is a failure, not a pass
def test_check_env_gymnasium_and_sb3(kwargs):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(gym.make(ENV_ID, **kwargs).unwrapped)
    sb3_check_env(gym.make(ENV_ID, **kwargs).unwrapped)


def test_spaces():
    one = gym.make(ENV_ID).unwrapped
    assert isinstance(one.action_space, gym.spaces.Discrete) and one.action_space.n == 5
    assert one.observation_space.shape == (5,)
    many = gym.make(ENV_ID, n_servers=4).unwrapped
    assert isinstance(many.action_space, gym.spaces.MultiDiscrete) and list(many.action_space.nvec) == [5] * 4
    assert many.observation_space.shape == (20,)


def test_episode_length_reward_and_info():
    env = gym.make(ENV_ID, episode_s=100.0).unwrapped
    obs, info = env.reset(seed=3)
    assert info["task"] is env.get_task()
    infos, steps, truncated = [], 0, False
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(4)
        assert not terminated and env.observation_space.contains(obs)
        assert reward == pytest.approx(-info["power_share"] - env.slo_weight * info["slo_violation"])
        infos.append(info)
        steps += 1
    assert steps == 20 and infos[-1]["time_s"] == pytest.approx(100.0)
    assert infos[0] is not infos[1] and "task" in infos[0]
    assert infos[-1]["episode_energy_j"] == pytest.approx(sum(i["energy_j"] for i in infos))


def test_task_api_and_split_uses_unseen_servers():
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=0)
    train, test = env.sample_tasks(5, "train"), env.sample_tasks(5, "test")
    assert {t.server.name for t in env.family.train}.isdisjoint({t.server.name for t in env.family.test})
    env.set_task(test[0])
    assert env.get_task() is test[0]
    _, info = env.reset(options={"task": train[1]})
    assert info["task"] is train[1] and env.get_task() is train[1]


def test_family_round_trips_yaml(tmp_path):
    family = PowerTaskFamily.generate(n_train=4, n_test=2, seed=7)
    family.save_yaml(tmp_path / "family.yaml")
    assert PowerTaskFamily.load_yaml(tmp_path / "family.yaml") == family


@pytest.mark.parametrize("fidelity", ["fast", "request"])
def test_determinism(fidelity):
    env = gym.make(ENV_ID, fidelity=fidelity, n_servers=2, episode_s=100.0).unwrapped
    task = env.family.test[1]
    env.action_space.seed(5)
    a = _rollout(env, 11, task)
    env.action_space.seed(5)
    b = _rollout(env, 11, task)
    env.action_space.seed(5)
    c = _rollout(env, 12, task)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_lower_frequency_saves_power_for_memory_bound_app():
    server = server_by_name("specpower-93")
    app = AppProfile(service_time_ms=20.0, cpu_fraction=0.1, slo_ms=200.0)
    capacity = server.cores * 1000 / (1000 * app.mean_service_s(server.millicores(4)))
    task = PowerTask(server, app, ConstantWorkload(rate=0.3 * capacity), "memory-bound")
    env = PowerManagementEnv(transition_latency_s=0.0, episode_s=50.0)
    power = {}
    for level in (0, 4):
        env.reset(seed=0, options={"task": task})
        power[level] = np.mean([env.step(level)[4]["power_share"] for _ in range(5)])
    assert power[0] < power[4]


def test_bad_input_raises_clear_errors():
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="is not in the action space"):
        env.step(5)
    many = gym.make(ENV_ID, n_servers=2).unwrapped
    many.reset(seed=0)
    with pytest.raises(ValueError, match="is not in the action space"):
        many.step(np.array([1, 9]))
    with pytest.raises(ValueError, match="n_servers"):
        PowerManagementEnv(n_servers=0)
    with pytest.raises(ValueError, match="fidelity"):
        PowerManagementEnv(fidelity="exact")
    with pytest.raises(ValueError, match="interval_s=2.5 must be a positive multiple"):
        PowerManagementEnv(interval_s=2.5, substep_s=1.0)
    for latency in (0.3, -1.0, float("nan")):    # refused when the env is made, not at its first reset
        with pytest.raises(ValueError, match=r"^transition_latency_s(=0.3 must be a whole number| must be a finite "
                                             r"number >= 0)"):
            PowerManagementEnv(transition_latency_s=latency)
    with pytest.raises(ValueError, match="slo_weight"):
        PowerManagementEnv(slo_weight=-1)
    with pytest.raises(TypeError, match="slo_weight must be a number, got '1'"):
        PowerManagementEnv(slo_weight="1")
    with pytest.raises(TypeError, match="PowerTask"):
        env.set_task("not a task")
    server = server_by_name("specpower-61")
    with pytest.raises(ValueError, match="no policy can meet it"):
        PowerTask(server, AppProfile(service_time_ms=50.0, slo_ms=10.0), ConstantWorkload(rate=1.0), "impossible")
    with pytest.raises(ValueError, match="unknown power task field"):
        PowerTask.from_dict({**env.get_task().to_dict(), "budget": 3})
    with pytest.raises(ValueError, match=r"power task needs the field\(s\) \['server'\]"):
        PowerTask.from_dict({k: v for k, v in env.get_task().to_dict().items() if k != "server"})


def test_an_episode_longer_than_a_year_is_refused_when_the_env_is_made():
    """Its workload, realised up front at 1 s resolution, would need 32 GB: a clear error, not a MemoryError later."""
    with pytest.raises(ValueError, match=r"episode_s=1000000000.0 makes an episode of 1e\+09 s \(1.157e\+04 days\), "
                                         r".* would need about 32 GB; an episode may last at most 31536000 s"):
        PowerManagementEnv(episode_s=1e9)
    assert PowerManagementEnv(episode_s=365 * 86400.0).episode_steps == 6307200   # a year is taken


def test_render_mode_none_is_accepted_and_others_refused():
    assert gym.make(ENV_ID, render_mode=None).unwrapped.render_mode is None
    with pytest.raises(ValueError, match=r"render_mode must be one of \[None, 'ansi'\], got 'rgb_array'"), \
            pytest.warns(UserWarning, match="not in the possible render_modes"):   # gym.make's warning, then ours
        gym.make(ENV_ID, render_mode="rgb_array")


@pytest.mark.parametrize("family", [[1, 2], AutoscalingTaskFamily.generate(n_train=1, n_test=1)])
def test_wrong_family_type_is_a_type_error(family):
    with pytest.raises(TypeError, match=f"family must be of type PowerTaskFamily, got {type(family).__name__}"):
        PowerManagementEnv(family=family)


@pytest.mark.parametrize("substep_s", [1.0, 0.1])
def test_per_request_utilisation_counts_service_in_the_sub_steps_it_spans(substep_s):
    """Service time was counted in the sub-step a request started in and cut at 1 there: at twice the capacity, with
    400 ms requests and 0.1 s sub-steps, the busy cores' utilisation read 0.79-0.88 (and power 537 W, not 604 W)."""
    import dataclasses

    env = PowerManagementEnv(fidelity="request", substep_s=substep_s, transition_latency_s=0.0, episode_s=30)
    base = env.family.train[3]
    app = dataclasses.replace(base.app, service_time_ms=400.0, slo_ms=4000.0, service_cv=0.2)
    capacity = base.server.cores / app.mean_service_s(base.server.millicores(base.server.n_levels - 1))
    env.reset(seed=0, options={"task": PowerTask(base.server, app, ConstantWorkload(rate=2 * capacity), "over")})
    utilisation = [env.step(base.server.n_levels - 1)[4]["utilisation"][0] for _ in range(4)]
    assert utilisation[1:] == pytest.approx([1.0] * 3, abs=1e-9)   # every core busy once the queue has formed


@pytest.mark.filterwarnings("error")   # a checker's warning is a failure, not a pass
def test_ansi_render_shows_each_servers_interval_as_the_info_reports():
    """The env did not render (render_modes []): a user watching an agent had only the info dict to print."""
    check_env(gym.make(ENV_ID, render_mode="ansi").unwrapped)
    env = gym.make(ENV_ID, render_mode="ansi", n_servers=2)
    _, info = env.reset(seed=0)
    task = info["task"]
    lines = env.render().splitlines()
    assert len(lines) == 2 and lines[0].startswith("t=         0s server 0: f=100% util=0.00 power=")
    *_, info = env.step(np.array([0, 4]))
    for k, line in enumerate(env.render().splitlines()):
        f = task.server.level_fraction(info["level"][k])
        assert line == (f"t={info['time_s']:10.9g}s server {k}: f={f:4.0%} util={info['utilisation'][k]:.2f} "
                        f"power={info['power_w'][k]:6.1f}W p95={info['p95_ms'][k]:8.1f}ms/{task.app.slo_ms:g}ms "
                        f"rate={info['arrival_rate'][k]:7.1f}/s")
    assert "f= 60%" in env.render().splitlines()[0] and "f=100%" in env.render().splitlines()[1]
    info["level"][0] = 4   # the caller's dict is its own
    assert "f= 60%" in env.render().splitlines()[0]
    import copy
    assert copy.deepcopy(env.unwrapped).render() == env.render()   # a copy mid-episode replays to the same
    env.close()
    assert env.unwrapped.render() is None


def _half_loaded_task(slo_ms: float) -> PowerTask:
    """A CPU-bound 20 ms app on specpower-0 (64 cores) at 55 % of its capacity at f_max, with SLO ``slo_ms``."""
    server = server_by_name("specpower-0")
    app = AppProfile(service_time_ms=20.0, cpu_fraction=1.0, slo_ms=slo_ms)
    capacity = server.cores / app.mean_service_s(server.millicores(server.n_levels - 1))
    return PowerTask(server, app, ConstantWorkload(rate=0.55 * capacity), f"slo-{slo_ms:g}")


def test_a_p95_just_above_the_slo_is_a_violation():
    """``slo_violation`` counts a server whose p95 exceeds the SLO, by however little: an SLO 5 % below the p95 is
    violated (the SLO does not change the simulation: the same seed gives the same p95 under either SLO)."""
    env = PowerManagementEnv(task=_half_loaded_task(1000.0), transition_latency_s=0.0, episode_s=50.0)
    env.reset(seed=0)
    p95 = env.step(4)[4]["p95_ms"][0]
    env.reset(seed=0, options={"task": _half_loaded_task(p95 / 1.05)})
    obs, reward, *_, info = env.step(4)
    assert info["p95_ms"] == [p95] and info["slo_violation"] == 1.0
    assert obs[3] == pytest.approx(1.05, rel=1e-6)
    assert reward == pytest.approx(-info["power_share"] - 1.0)


def test_power_share_is_the_servers_summed_power_over_their_summed_peak():
    """With two servers, ``power_share`` is their mean power over the interval over their summed peak power, so it
    equals the interval's energy (all servers) / (interval * n_servers * peak), and the sum of ``power_w`` over
    ``n_servers * peak``; each server's observation index 4 is its own power / peak, and the share their mean."""
    env = PowerManagementEnv(n_servers=2, task=_half_loaded_task(1000.0), transition_latency_s=0.0, episode_s=50.0)
    env.reset(seed=0)
    peak = env.get_task().server.peak_w
    for _ in range(3):
        obs, _, _, _, info = env.step(np.array([0, 4]))
        assert info["power_w"][0] != pytest.approx(info["power_w"][1])
        assert info["power_share"] == pytest.approx(info["energy_j"] / (env.interval_s * 2 * peak))
        assert info["power_share"] == pytest.approx(sum(info["power_w"]) / (2 * peak))
        assert info["power_share"] == pytest.approx(float(obs[4] + obs[9]) / 2, rel=1e-6)


def test_slo_violation_is_the_share_of_servers_over_the_slo():
    """``slo_violation`` is the share of servers whose p95 exceeds the SLO: with one of two servers at the lowest
    P-state (p95 above an 80 ms SLO) and the other at f_max (below it), it is 0.5, and the reward takes half the
    ``slo_weight``."""
    env = PowerManagementEnv(n_servers=2, task=_half_loaded_task(80.0), transition_latency_s=0.0, episode_s=50.0,
                             slo_weight=2.0)
    env.reset(seed=0)
    for _ in range(3):
        _, reward, _, _, info = env.step(np.array([0, 4]))
        slow, fast = info["p95_ms"]
        assert slow > 80.0 > fast
        assert info["slo_violation"] == 0.5
        assert reward == pytest.approx(-info["power_share"] - 2.0 * 0.5)


def test_each_servers_p_state_is_observed_as_a_share_of_the_top_one():
    """Value 2 of each server is the P-state in effect at the end of the interval / (L - 1): with no transition
    latency, two servers asked for P-states 1 and L - 1 show 1 / (L - 1) and 1, at indices 2 and 5 + 2."""
    env = PowerManagementEnv(n_servers=2, transition_latency_s=0.0, episode_s=50.0)
    env.reset(seed=0)
    top = env.n_levels - 1
    obs, _, _, _, info = env.step(np.array([1, top]))
    assert info["level"] == [1, top]
    assert obs[2] == pytest.approx(1 / top) and obs[5 + 2] == pytest.approx(1.0)


def test_the_reset_observation_shows_every_server_idle_at_f_max():
    """The first observation is the starting state: per server utilisation 0, the offered rate / the capacity at
    f_max (0.55 for a task loaded at 55 %), the top P-state (1), no p95 (0), and the idle power at f_max over the peak
    power, the model's power(1, 0) / power(1, 1)."""
    task = _half_loaded_task(1000.0)
    env = PowerManagementEnv(n_servers=2, task=task, episode_s=50.0)
    obs, _ = env.reset(seed=0)
    idle_share = task.server.power(1.0, 0.0) / task.server.power(1.0, 1.0)
    assert idle_share < 0.9   # the premise: idle is well below peak
    np.testing.assert_allclose(obs, [0.0, 0.55, 1.0, 0.0, idle_share] * 2, rtol=1e-5, atol=1e-7)


def test_observed_utilisation_is_the_cores_busy_fraction_not_the_cpu_part():
    """Value 0 is the busy fraction of the cores: a core is busy for a request's whole service time, stalls
    included. An app with cpu_fraction 0.3 offered 55 % of the capacity at f_max keeps its cores ~55 % busy, where
    its CPU part alone would be ~0.3 x 55 % = 17 %."""
    server = server_by_name("specpower-0")
    app = AppProfile(service_time_ms=20.0, cpu_fraction=0.3, slo_ms=1000.0)
    capacity = server.cores / app.mean_service_s(server.millicores(server.n_levels - 1))
    task = PowerTask(server, app, ConstantWorkload(rate=0.55 * capacity), "io-heavy")
    env = PowerManagementEnv(task=task, transition_latency_s=0.0, episode_s=50.0)
    env.reset(seed=0)
    obs, _, _, _, info = env.step(server.n_levels - 1)
    assert obs[0] == pytest.approx(0.55, abs=0.05)
    assert obs[0] == pytest.approx(info["utilisation"][0], rel=1e-6)
