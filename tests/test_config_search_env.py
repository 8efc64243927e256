"""flash/ConfigSearch-v0, the simulated serverless functions and the config-measurement loaders."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import flash_envs  # noqa: F401  (registers the envs)
from flash_envs.data.config_measurements import load_chunkfunc, load_ibm_multicloud, simulated_measurements
from flash_envs.envs.config_search import ConfigSearchEnv, ConfigSearchTask, ConfigSearchTaskFamily
from flash_envs.power_tasks import PowerTaskFamily
from flash_envs.sim.serverless import MEMORY_SIZES_MIB, ServerlessFunction, invocation_cost, vcpus

ENV_ID = "flash/ConfigSearch-v0"
IBM = ("ibm_multicloud", "multi-cloud-configuration.csv")
CHUNKFUNC = ("chunkfunc_faas_profiles", "chunkfunc_profiles.csv")


def small_family() -> ConfigSearchTaskFamily:
    return ConfigSearchTaskFamily.generate(n_train=6, n_test=3, seed=7)


@pytest.mark.filterwarnings("error")   # a checker's warning is a failure, not a pass
def test_checkers_pass():
    check_env(gym.make(ENV_ID, family=small_family()).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(ENV_ID, family=small_family()).unwrapped)


@pytest.mark.filterwarnings("error")
def test_ansi_render_shows_the_last_measurement_or_the_choice():
    """The env did not render (render_modes []); a commit now shows the true runtime and cost and the best choice's."""
    check_env(gym.make(ENV_ID, family=small_family(), render_mode="ansi").unwrapped)
    env = gym.make(ENV_ID, family=small_family(), render_mode="ansi")
    _, info = env.reset(seed=0)
    task = info["task"]
    assert env.render() == f"{task.name}: nothing measured yet (0/15); the {task.deadline_s:g}s deadline"
    obs, *_ = env.step(3)
    runtime = float(np.exp(obs[3 * 3 + 1])) * task.deadline_s   # the measured runtime, as the observation shows it
    assert env.render().startswith(f"measurement 1/15: {task.configs[3]} runtime={runtime:.4g}s cost=$")
    meets = "meets" if runtime <= task.deadline_s else "misses"
    assert env.render().endswith(f"({meets} the {task.deadline_s:g}s deadline)")
    *_, info = env.step(15 + 5)
    meets = "meets" if info["meets_deadline"] else "misses"
    assert env.render() == (f"committed to {task.configs[5]} after 1 measurement(s): true runtime="
                            f"{task.runtime_s[5]:.4g}s cost=${task.cost_usd[5]:.4g} ({meets} the {task.deadline_s:g}s "
                            f"deadline); best {task.configs[info['best']]} cost=${task.cost_usd[info['best']]:.4g}")
    env.close()
    assert env.unwrapped.render() is None
    with pytest.raises(RuntimeError, match=r"no episode running \(no reset\(\) since the env was made or closed\)"):
        env.unwrapped.step(0)


def test_a_family_or_task_of_other_configurations_is_refused_and_the_episode_length_is_the_budget():
    """Only the number of configurations was checked: a family mixing ('128MiB', '256MiB') with ('x-large', 'tiny')
    was taken, so action i measured another configuration on each task."""
    a = ConfigSearchTask("a", ("128MiB", "256MiB"), (2.0, 1.0), (1.0, 1.5), 1.5)
    b = ConfigSearchTask("b", ("x-large", "tiny"), (1.0, 2.0), (3.0, 1.0), 1.5)
    swapped = ConfigSearchTask("s", ("256MiB", "128MiB"), (1.0, 2.0), (1.5, 1.0), 1.5)
    for other in (b, swapped):
        with pytest.raises(ValueError, match=rf"^ConfigSearchTaskFamily: test\[0\] \('{other.name}'\) has "
                                             rf"configuration 0 '{other.configs[0]}', where it is '128MiB' in the "
                                             r"first train task's \('a'\); a family's tasks must all have the same "
                                             r"configurations, in the same order"):
            ConfigSearchTaskFamily((a,), (other,))
    env = ConfigSearchEnv(family=ConfigSearchTaskFamily((a,), (dataclasses.replace(a, name="c", deadline_s=1.2),)))
    with pytest.raises(ValueError, match=r"^task 'b' has configuration 0 'x-large', where it is '128MiB' in this env's "
                                         r"family's \(action i measures configuration i\)"):
        env.set_task(b)
    assert env.episode_steps == env.max_measurements == 2
    assert ConfigSearchEnv(family=small_family(), max_measurements=4).episode_steps == 4


def test_lambda_cpu_share_and_cost():
    assert vcpus(1769) == pytest.approx(1.0) and vcpus(10240) == pytest.approx(6.0)
    fn = ServerlessFunction(cpu_work_s=2.0, parallel_fraction=0.0, io_s=0.0, memory_need_mib=128)
    t = fn.expected_time_s(np.array([884.5, 1769, 3538]))
    assert t == pytest.approx([4.0, 2.0, 2.0])  # serial code: no gain beyond one vCPU
    assert invocation_cost(1024, 1.0) == pytest.approx(0.0000166667 + 0.0000002)
    # billed per started millisecond: 32.59 s is 32,590 ms (32.59 * 1000 is 32590.000000000004 in floating point)
    assert invocation_cost(1024, 32.59) == pytest.approx(32.59 * 0.0000166667 + 0.0000002, rel=1e-9)
    assert invocation_cost(1024, 32.5901) == pytest.approx(32.591 * 0.0000166667 + 0.0000002, rel=1e-9)
    with pytest.raises(ValueError, match="memory sizes"):
        vcpus(64)
    with pytest.raises(ValueError, match="parallel_fraction"):
        ServerlessFunction(parallel_fraction=1.5)
    assert ServerlessFunction.from_dict(fn.to_dict()) == fn
    with pytest.raises(ValueError, match=r"unknown serverless function field\(s\) \['cpu_s'\]"):
        ServerlessFunction.from_dict({**fn.to_dict(), "cpu_s": 1.0})


def test_task_api_and_determinism():
    env = gym.make(ENV_ID, family=small_family()).unwrapped
    env.reset(seed=3)
    task = env.sample_tasks(1, "test")[0]
    assert task in env.family.test
    obs, info = env.reset(seed=11, options={"task": task})
    assert info["task"] is task and env.get_task() is task and not obs[:-1].any()

    def rollout(seed: int) -> list:
        env.reset(seed=seed, options={"task": task})
        return [env.step(a)[:2] for a in (0, 4, 9)]

    first, second = rollout(5), rollout(5)
    for (o1, r1), (o2, r2) in zip(first, second):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2
    assert not np.array_equal(rollout(6)[-1][0], first[-1][0])  # noise comes from the seeded np_random


def test_sampling_tasks_mid_episode_leaves_the_measurements_be():
    env = ConfigSearchEnv(family=small_family())
    episodes = []
    for sample_midway in (False, True):
        env.reset(seed=3)
        episode = []
        for action in range(4):
            if sample_midway and action == 2:
                env.sample_tasks(2)
            episode.append(env.step(action)[0])
        episodes.append(np.array(episode))
    np.testing.assert_array_equal(*episodes)


def test_a_task_of_another_size_than_the_family_is_blamed_with_the_fix():
    three = ConfigSearchTaskFamily.generate(n_train=2, n_test=1, memory_sizes=(128, 256, 512))
    n = len(gym.make(ENV_ID).unwrapped.family.train[0].configs)
    with pytest.raises(ValueError, match=f"task 'fn-000' has 3 configurations, but this env's family has {n} "
                                         r"\(they set its spaces\); to run tasks of 3 configurations, make the env "
                                         r"with a family of such tasks \(family=...\)"):
        gym.make(ENV_ID, task=three.train[0])
    env = gym.make(ENV_ID, family=three, task=three.train[1]).unwrapped
    assert env.n_configs == 3 and env.action_space.n == 6 and env.get_task() is three.train[1]
    with pytest.raises(ValueError, match=rf"ConfigSearchTaskFamily: test\[0\] \('fn-006'\) has {n} configurations "
                                         r"where there are 3 in the first train task's \('fn-000'\); a family's tasks "
                                         "must all have the same configurations"):   # refused when made, not at the env
        ConfigSearchTaskFamily(three.train, small_family().test)


def test_commit_rewards_the_best_choice_and_ends_the_episode():
    env = ConfigSearchEnv(family=small_family(), noise_cv=0.0)
    env.reset(seed=0)
    task = env.get_task()
    n = env.n_configs
    _, reward, terminated, truncated, info = env.step(n + task.best)
    assert terminated and not truncated and reward == 1.0 and info["regret"] == 0.0
    env.reset()
    too_slow = int(np.argmax(task.runtime_s))
    _, reward, _, _, info = env.step(n + too_slow)
    assert reward == 0.0 and not info["meets_deadline"]
    with pytest.raises(RuntimeError, match=rf"no episode running \(the episode ended: committed to configuration "
                                           rf"{too_slow}\)"):
        env.step(0)


def test_measurement_budget_ends_the_task():
    env = ConfigSearchEnv(family=small_family(), max_measurements=2)
    env.reset(seed=0)
    _, reward, terminated, truncated, _ = env.step(0)
    assert reward == -env.measure_penalty and not (terminated or truncated)
    _, _, terminated, truncated, info = env.step(1)
    assert terminated and not truncated and info["measurements"] == 2  # the MDP's end (budget observed), no time limit
    with pytest.raises(RuntimeError, match="all 2 measurements used"):
        env.step(env.n_configs)
    with pytest.raises(RuntimeError, match="no reset"):
        ConfigSearchEnv(family=small_family()).step(0)


def test_bad_input_errors():
    env = ConfigSearchEnv(family=small_family())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="is not in the action space"):
        env.step(2 * env.n_configs)
    with pytest.raises(TypeError, match="ConfigSearchTask"):
        env.set_task("fn-000")
    with pytest.raises(ValueError, match="configurations"):
        env.set_task(ConfigSearchTask("x", ("a", "b"), (1.0, 2.0), (1.0, 1.0), 1.5))
    with pytest.raises(ValueError, match="deadline"):
        ConfigSearchTask("x", ("a", "b"), (3.0, 2.0), (1.0, 1.0), 1.0)
    with pytest.raises(ValueError, match=r"each configuration must be named once; repeated: \['a'\]"):   # (taken)
        ConfigSearchTask("x", ("a", "a", "b"), (1.0, 2.0, 3.0), (1.0, 1.0, 1.0), 1.5)
    with pytest.raises(ValueError, match=r"config-search task needs the field\(s\) \['configs', 'cost_usd'"):
        ConfigSearchTask.from_dict({"name": "x"})
    with pytest.raises(ValueError, match=r"unknown config-search task field\(s\) \['memory'\]"):
        ConfigSearchTask.from_dict({**small_family().train[0].to_dict(), "memory": 1})


def test_observation_layout():
    env = ConfigSearchEnv(family=small_family(), noise_cv=0.0, max_measurements=4)
    env.reset(seed=0)
    task, n = env.get_task(), env.n_configs
    env.step(2)
    obs, *_ = env.step(0)
    assert obs.shape == (3 * n + 1,)
    np.testing.assert_allclose(obs[6:9], [1.0, np.log(task.runtime_s[2] / task.deadline_s), 0.0], rtol=1e-6)
    np.testing.assert_allclose(obs[0:3], [1.0, np.log(task.runtime_s[0] / task.deadline_s),
                                          np.log(task.cost_usd[0] / task.cost_usd[2])], rtol=1e-6)
    assert not obs[3:6].any() and not obs[9:-1].any()      # configurations not measured
    assert obs[-1] == pytest.approx(2 / 4)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"max_measurements": 2.5}, ValueError, "max_measurements must be a whole number >= 1, got 2.5"),
    ({"noise_cv": float("nan")}, ValueError, "noise_cv must be a finite number >= 0"),
    ({"noise_cv": 1000.0}, ValueError, "noise_cv must be a finite number >= 0 and <= 3"),  # exp() overflowed
    ({"measure_penalty": "0.1"}, TypeError, "measure_penalty must be a number"),
    ({"family": [1, 2]}, TypeError, "family must be of type ConfigSearchTaskFamily, got list"),
    ({"family": PowerTaskFamily.generate(n_train=1, n_test=1)}, TypeError,
     "family must be of type ConfigSearchTaskFamily, got PowerTaskFamily"),
])
def test_bad_arguments_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        ConfigSearchEnv(**{"family": small_family(), **kwargs})


def test_the_noisiest_measurements_allowed_stay_finite_and_in_bounds():
    env = ConfigSearchEnv(family=small_family(), noise_cv=3.0)
    for seed in range(50):
        obs, _ = env.reset(seed=seed)
        for action in range(env.n_configs):
            obs, *_ = env.step(action)
            assert np.isfinite(obs).all() and env.observation_space.contains(obs)


def test_task_family_round_trips_through_yaml(tmp_path):
    fam = small_family()
    fam.save_yaml(tmp_path / "fam.yaml")
    assert ConfigSearchTaskFamily.load_yaml(tmp_path / "fam.yaml") == fam


def test_deadlines_are_not_drawn_from_the_functions_random_stream():
    first = ConfigSearchTaskFamily.generate(n_train=5, n_test=1, seed=11).train[0]
    # the functions are drawn from default_rng(11); its first number also set the first deadline before this was fixed
    same_stream = np.quantile(first.runtime_s, np.random.default_rng(11).uniform(0.2, 0.7))
    assert first.deadline_s != pytest.approx(same_stream)
    assert min(first.runtime_s) <= first.deadline_s <= max(first.runtime_s)


def test_simulated_measurements_are_seeded():
    a, b = simulated_measurements(20, seed=1), simulated_measurements(20, seed=1)
    np.testing.assert_array_equal(a.runtime_s, b.runtime_s)
    assert a.runtime_s.shape == (20, len(MEMORY_SIZES_MIB)) and a.measured.all()


@pytest.mark.filterwarnings("error")   # a checker's warning is a failure, not a pass
def test_ibm_loader_on_real_data(shared_data):
    data = load_ibm_multicloud(shared_data.joinpath(*IBM))
    assert len(data.apps) == 24 and data.features.shape[1] == len(data.feature_names)
    assert data.counts["dropped: failed run (status != ok)"] == 62
    assert np.all(data.runtime_s[data.measured] > 0)
    family = ConfigSearchTaskFamily.from_measurements(data)
    env = ConfigSearchEnv(family=family)
    check_env(env, skip_render_check=True)


def test_chunkfunc_loader_on_real_data(shared_data):
    data = load_chunkfunc(shared_data.joinpath(*CHUNKFUNC), ["aws_lambda"])
    assert len(data.apps) == 18 and len(data.configs) == 159
    assert data.counts["skipped: platform gcp_cloud_functions"] == 102
    assert np.all(data.cost_usd[data.measured] > 0)  # computed from the AWS price


def _priced_costs(data):
    configs = np.broadcast_to(np.arange(len(data.configs)), data.measured.shape)[data.measured]
    return data.pricing.cost(configs, data.runtime_s[data.measured])


def test_loaders_carry_the_price_list_their_costs_follow(shared_data):
    ibm = load_ibm_multicloud(shared_data.joinpath(*IBM))
    np.testing.assert_allclose(_priced_costs(ibm), ibm.cost_usd[ibm.measured], rtol=1e-9)
    aws = load_chunkfunc(shared_data.joinpath(*CHUNKFUNC), ["aws_lambda"])
    np.testing.assert_allclose(_priced_costs(aws), aws.cost_usd[aws.measured], rtol=1e-12)
    assert load_chunkfunc(shared_data.joinpath(*CHUNKFUNC)).pricing is None       # GCP's costs: no price list here
    assert ibm.select_apps(ibm.apps[:3]).pricing is ibm.pricing


def test_simulated_costs_follow_the_lambda_price_list():
    sim = simulated_measurements(20, seed=1)
    np.testing.assert_array_equal(_priced_costs(sim), sim.cost_usd[sim.measured])
    memory = np.asarray(MEMORY_SIZES_MIB, dtype=float)
    assert sim.pricing.cost(np.array([0, 0]), np.array([1.0, 2.0])) == pytest.approx(
        invocation_cost(memory[0], np.array([1.0, 2.0])))


def test_ibm_costs_that_are_not_runtime_times_a_rate_have_no_price_list(tmp_path):
    header = ",provider,A_family,A_vcpu,B_family,B_vcpu,C_family,C_type,C_vcpu,nodes,workload,target_cost," \
             "target_runtime,status\n"
    path = tmp_path / "ibm.csv"
    path.write_text(header + "0,A,1,1,,,,,,3,w,0.01,10.0,ok\n1,A,1,1,,,,,,3,v,0.03,20.0,ok\n")   # 0.001 vs 0.0015/s
    assert load_ibm_multicloud(path).pricing is None
    path.write_text(header + "0,A,1,1,,,,,,3,w,0.01,10.0,ok\n1,A,1,1,,,,,,3,v,0.02,20.0,ok\n")
    assert load_ibm_multicloud(path).pricing.usd_per_s == pytest.approx([0.001])


def test_loader_errors_name_file_line_column_value(tmp_path):
    header = ",provider,A_family,A_vcpu,B_family,B_vcpu,C_family,C_type,C_vcpu,nodes,workload,target_cost," \
             "target_runtime,status\n"
    good = "0,A,1,1,,,,,,3,w,0.01,10.0,ok\n"
    path = tmp_path / "ibm.csv"
    path.write_text(header + good + "1,A,1,1,,,,,,3,w,0.01,abc,ok\n")
    with pytest.raises(ValueError, match=r"ibm.csv:3: column 'target_runtime' holds 'abc', not a number"):
        load_ibm_multicloud(path)
    path.write_text(header + "1,A,7,1,,,,,,3,w,0.01,1,ok\n")
    with pytest.raises(ValueError, match=r"ibm.csv:2: column 'A_family': value '7'"):
        load_ibm_multicloud(path)
    path.write_text(header.replace(",status", "") + good)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['status'\]"):
        load_ibm_multicloud(path)
    path.write_text(header + good + "1,A,1,1,,,,,,3,w,0.01,12.0\n")   # a row without its status: not a failed run
    with pytest.raises(ValueError, match=r"ibm.csv:3: 13 field\(s\) where the header has 14"):
        load_ibm_multicloud(path)
    path.write_text(header + good + "1,A,1,1,,,,,,3,w,0.01,12.0,Timed out.\n" + "2,A,1,1,,,,,,3,w,0.01,30.0,ok\n")
    data = load_ibm_multicloud(path)
    assert data.counts == {"rows read": 3, "dropped: failed run (status != ok)": 1, "merged duplicates": 1}
    assert data.runtime_s[0, 0] == pytest.approx(np.sqrt(10.0 * 30.0))


def test_the_observation_starts_at_zero_and_records_each_measurement():
    env = ConfigSearchEnv(family=small_family(), noise_cv=0.0)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs in env.observation_space and not obs.any()
    task, a = env.get_task(), 2
    obs = env.step(a)[0]
    expected = np.zeros_like(obs)
    expected[3 * a:3 * a + 3] = 1.0, np.log(task.runtime_s[a] / task.deadline_s), 0.0   # cost relative to itself
    expected[-1] = 1 / env.max_measurements
    np.testing.assert_allclose(obs, expected, rtol=1e-6)
    assert not env.reset(seed=1)[0].any()


def test_a_measured_cost_carries_the_same_noise_factor_as_its_runtime():
    """A measurement is the true runtime and cost both times one factor ``exp(N(0, noise_cv))``: the factor read off
    the runtime (index 1, log(runtime / deadline)) is the one on the cost, so index 2 of a measurement, log(cost /
    the episode's first measured cost), is the log of the true cost ratio plus the two measurements' log factors."""
    env = ConfigSearchEnv(family=small_family(), noise_cv=0.5)
    env.reset(seed=0)
    task = env.get_task()

    def log_factor(obs, a):
        return float(obs[3 * a + 1]) - np.log(task.runtime_s[a] / task.deadline_s)

    first = env.step(0)[0]
    assert first[2] == 0.0                                  # the first measured cost is the reference
    obs = env.step(3)[0]
    assert abs(log_factor(obs, 3) - log_factor(first, 0)) > 0.05     # two draws of the factor: they differ
    assert obs[3 * 3 + 2] == pytest.approx(
        np.log(task.cost_usd[3] / task.cost_usd[0]) + log_factor(obs, 3) - log_factor(first, 0), abs=1e-5)
    obs = env.step(0)[0]                                    # config 0 again: against its own first measurement
    assert abs(log_factor(obs, 0) - log_factor(first, 0)) > 0.05
    assert obs[2] == pytest.approx(log_factor(obs, 0) - log_factor(first, 0), abs=1e-5)


def test_every_measurement_costs_the_same_penalty():
    """The reward is ``-measure_penalty`` per measurement: each later one costs what the first did, not more."""
    env = ConfigSearchEnv(family=small_family(), measure_penalty=0.03)
    env.reset(seed=0)
    rewards = [env.step(a)[1] for a in (0, 1, 1, 2)]
    assert rewards == [-0.03] * 4


def test_amdahl_parallel_part_runs_on_at_most_max_threads():
    """Amdahl's law: of 6 s of CPU work half is serial (on min(1, vcpus)) and half parallel on min(vcpus,
    max_threads = 2). At 10240 MiB (6 vCPUs): 6 * (0.5 / 1 + 0.5 / 2) = 4.5 s, not 6 * (0.5 + 0.5 / 6) = 3.5 s; at
    884.5 MiB (half a vCPU) both parts run on 0.5: 6 * (1 + 1) = 12 s."""
    fn = ServerlessFunction(cpu_work_s=6.0, parallel_fraction=0.5, max_threads=2, io_s=0.0, memory_need_mib=128)
    assert fn.expected_time_s(np.array([10240, 884.5])) == pytest.approx([4.5, 12.0])
