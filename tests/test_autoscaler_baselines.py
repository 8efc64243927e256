"""Heuristic autoscalers behave as documented; the runner reports per-task metrics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import flash_envs  # noqa: F401
from flash_envs.baselines.autoscalers import HPA, ConstantPolicy, RandomPolicy, StaticPolicy, ThresholdAutoscaler
from flash_envs.baselines.runner import evaluate_on_tasks, run_episode
from flash_envs.envs.autoscaling import CPU_UP, MEMORY_UP, NOOP, REPLICA_DOWN, REPLICA_UP


@pytest.fixture
def env():
    return gym.make("flash/Autoscaling-v0")


def observation(replicas: int, utilisation: float, latency_ratio: float = 0.5, cpu: int = 1024,
                memory: int = 1024) -> np.ndarray:
    obs = np.zeros(9, dtype=np.float32)
    obs[0], obs[2], obs[3], obs[4], obs[6] = utilisation, replicas / 20, cpu / 2048, memory / 3072, latency_ratio
    return obs


def test_hpa_desired_replicas_formula(env):
    hpa = HPA(env, target=0.5)
    assert hpa.desired_replicas(observation(4, 0.9)) == 8  # ceil(4 * 0.9 / 0.5)
    assert hpa.desired_replicas(observation(4, 0.53)) == 4  # within the 10% tolerance
    assert hpa.predict(observation(4, 0.9))[0] == REPLICA_UP


def test_hpa_scale_down_is_stabilised(env):
    hpa = HPA(env, target=0.5, stabilisation_window_s=90)  # 3 intervals of 30 s
    assert hpa.act(observation(4, 0.9)) == REPLICA_UP  # recommends 8
    assert hpa.act(observation(5, 0.1)) == NOOP  # 8 is still in the window
    assert hpa.act(observation(5, 0.1)) == NOOP
    assert hpa.act(observation(5, 0.1)) == REPLICA_DOWN  # the window has forgotten 8
    hpa.reset()
    assert hpa.act(observation(5, 0.1)) == REPLICA_DOWN


def test_hpa_moves_limits_first(env):
    hpa = HPA(env, target=0.5, cpu_millicores=2048, memory_mb=2048)
    assert hpa.act(observation(4, 0.9, cpu=1024)) == CPU_UP
    assert hpa.act(observation(4, 0.9, cpu=2048, memory=1024)) == MEMORY_UP
    assert hpa.act(observation(4, 0.9, cpu=2048, memory=2048)) == REPLICA_UP


def test_threshold_autoscaler(env):
    policy = ThresholdAutoscaler(env, lower=0.3, upper=0.8)
    assert policy.act(observation(3, 0.9)) == REPLICA_UP
    assert policy.act(observation(3, 0.5, latency_ratio=1.5)) == REPLICA_UP  # SLO violated
    assert policy.act(observation(3, 0.2, latency_ratio=0.2)) == REPLICA_DOWN
    assert policy.act(observation(1, 0.2, latency_ratio=0.2)) == NOOP  # at the lower bound
    assert policy.act(observation(3, 0.5)) == NOOP


def test_threshold_policy_compares_p95_with_the_slo_when_the_slo_is_hidden():
    env = gym.make("flash/Autoscaling-v0", slo_in_observation=False)
    env.reset(seed=0)
    slo_s = env.unwrapped.get_task().app.slo_ms / 1000   # index 6 is p95 in seconds here
    policy = ThresholdAutoscaler(env, lower=0.3, upper=0.8)
    assert policy.act(observation(3, 0.5, latency_ratio=1.5 * slo_s)) == REPLICA_UP    # SLO violated
    assert policy.act(observation(3, 0.2, latency_ratio=0.4 * slo_s)) == REPLICA_DOWN
    assert policy.act(observation(3, 0.2, latency_ratio=0.7 * slo_s)) == NOOP          # p95 above SLO / 2


def test_static_policy_reaches_and_holds_its_configuration(env):
    policy = StaticPolicy(env, replicas=3, cpu_millicores=1280, memory_mb=1280)
    obs, info = env.reset(seed=0)
    for _ in range(10):
        obs, _, _, _, info = env.step(policy.predict(obs)[0])
    assert (info["replicas"], info["cpu_millicores"], info["memory_mb"]) == (3, 1280, 1280)


def test_bad_policy_arguments(env):
    with pytest.raises(ValueError, match="target"):
        HPA(env, target=0)
    with pytest.raises(ValueError, match="memory_mb"):
        HPA(env, memory_mb=1000)
    with pytest.raises(TypeError, match="Autoscaling"):
        HPA(gym.make("CartPole-v1"))


def test_runner_reports_per_task_metrics(env):
    tasks = env.unwrapped.family.test[:3]
    rows = evaluate_on_tasks(env, HPA(env, memory_mb=2048), tasks, episodes=2)
    assert [r["task"] for r in rows] == [t.name for t in tasks]
    for row in rows:
        assert 0 <= row["slo_violation"] <= 1 and 0 <= row["cpu_utilisation"] <= 1
        assert row["return"] == pytest.approx(row["mean_reward"] * 60)
    episodes = [run_episode(env, HPA(env, memory_mb=2048), tasks[0], seed) for seed in (0, 1)]
    assert episodes[0]["return"] != episodes[1]["return"]   # so a row of one episode would differ
    assert {k: v for k, v in rows[0].items() if k != "task"} == pytest.approx(
        {k: (episodes[0][k] + episodes[1][k]) / 2 for k in episodes[0]})



def test_heuristics_beat_random_actions(env):
    tasks = env.unwrapped.family.test

    def score(policy):
        return np.mean([r["mean_reward"] for r in evaluate_on_tasks(env, policy, tasks)])

    hpa, rand = score(HPA(env, memory_mb=2048)), score(RandomPolicy(env, 0))
    assert hpa > rand + 0.1
    # reacting to the observation must pay: the threshold policy beats every fixed action (best: always REPLICA_UP)
    best_constant = max(score(ConstantPolicy(env, a)) for a in range(env.action_space.n))
    assert score(ThresholdAutoscaler(env)) > best_constant + 0.05


def test_constant_policy_repeats_its_action_and_refuses_one_outside_the_space(env):
    obs, _ = env.reset(seed=0)
    assert ConstantPolicy(env, MEMORY_UP).predict(obs) == (MEMORY_UP, None)
    with pytest.raises(ValueError, match="not in the action space"):
        ConstantPolicy(env, 7)



class _Sampler:
    """A policy for any action space: seeded random actions, through SB3's ``predict``."""

    def __init__(self, space: gym.Space) -> None:
        self.space = space
        space.seed(0)

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return self.space.sample(), state


@pytest.mark.parametrize("env_id, metrics", [
    ("flash/Autoscaling-v0", {"slo_violation", "cpu_utilisation", "memory_utilisation", "replicas"}),
    ("flash/PowerManagement-v0", {"energy_j", "power_share", "slo_violation", "transitions"}),
    ("flash/ConfigSearch-v0", {"measurements"})])
def test_evaluate_on_tasks_averages_each_envs_own_info_by_default(env_id, metrics):
    env = gym.make(env_id)
    rows = evaluate_on_tasks(env, _Sampler(env.action_space), env.unwrapped.family.test[:2])
    assert [set(row) for row in rows] == [{"task", "return", "mean_reward", *metrics}] * 2
    assert all(np.isfinite(row[m]) for row in rows for m in metrics)


def test_a_batch_of_observations_gets_one_action_per_row(env):
    """SB3's vectorised call: (n_envs, 9) observations give n_envs actions, each as a lone observation would."""
    rows = [observation(4, 0.9), observation(4, 0.1), observation(3, 0.5, latency_ratio=1.5)]
    makers = (lambda: HPA(env, target=0.5), lambda: ThresholdAutoscaler(env), lambda: StaticPolicy(env, 3, 1024, 1024))
    for make in makers:
        actions, state = make().predict(np.stack(rows), state="kept")
        assert actions.shape == (3,) and actions.dtype == np.int64 and state == "kept"
        assert list(actions) == [make().predict(row)[0] for row in rows]   # a fresh policy per row: no shared history
    one_by_one = RandomPolicy(env, 3)
    assert list(RandomPolicy(env, 3).predict(np.stack(rows))[0]) == [one_by_one.predict(row)[0] for row in rows]


def test_hpa_keeps_a_window_per_env_and_forgets_it_at_episode_start(env):
    hpa = HPA(env, target=0.5)
    assert list(hpa.predict(np.stack([observation(4, 0.9)] * 2))[0]) == [REPLICA_UP] * 2   # both recommend 8
    # row 0 still has 8 in its window; row 1 starts an episode and forgets it
    actions, _ = hpa.predict(np.stack([observation(5, 0.1)] * 2), episode_start=np.array([False, True]))
    assert list(actions) == [NOOP, REPLICA_DOWN]


def test_predict_refuses_observations_of_another_shape(env):
    with pytest.raises(ValueError, match=r"shape \(9,\) or a batch of shape \(n_envs, 9\), got shape \(5,\)"):
        HPA(env).predict(np.zeros(5))
    hidden = gym.make("flash/Autoscaling-v0", slo_in_observation=False)
    hidden.reset(seed=0)
    with pytest.raises(ValueError, match="reads the SLO from its own env's task"):
        ThresholdAutoscaler(hidden).predict(np.stack([observation(3, 0.5)] * 2))


def test_evaluate_on_tasks_names_a_metric_the_env_does_not_report(env):
    tasks = env.unwrapped.family.test[:1]
    with pytest.raises(ValueError, match=r"metrics \['slo_violations'\] are not numbers .* 'slo_violation'"):
        evaluate_on_tasks(env, HPA(env), tasks, metrics=["slo_violations"])
    with pytest.raises(ValueError, match=r"metrics \['task'\] are not numbers"):   # info["task"] is the task
        evaluate_on_tasks(env, HPA(env), tasks, metrics=["task"])
    with pytest.raises(TypeError, match=r"got the string 'replicas'; write metrics=\['replicas'\]"):
        evaluate_on_tasks(env, HPA(env), tasks, metrics="replicas")
    # a metric the env does report is the per-step mean of its info entry, as a hand-run episode gives it
    policy, oom_kills = HPA(env), []
    obs, _ = env.reset(seed=0, options={"task": tasks[0]})
    done = False
    while not done:
        action, _ = policy.predict(obs)
        obs, _, terminated, truncated, info = env.step(action)
        oom_kills.append(info["oom_kills"])
        done = terminated or truncated
    assert evaluate_on_tasks(env, HPA(env), tasks, metrics=["oom_kills"])[0]["oom_kills"] == np.mean(oom_kills)


class _StepCounter:
    """A recurrent-style policy: its state counts the steps of the episode; it records how it was called."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        self.calls.append((state, bool(episode_start[0]), deterministic))
        return NOOP, (state or 0) + 1


def test_the_runner_calls_predict_as_sb3s_evaluate_policy_does():
    """The state returned is passed back (a recurrent policy keeps its memory), episode_start marks the first step."""
    env = gym.make("flash/Autoscaling-v0", episode_steps=3)
    policy = _StepCounter()
    evaluate_on_tasks(env, policy, env.unwrapped.family.test[:1], episodes=2)
    assert policy.calls == [(None, True, True), (1, False, True), (2, False, True)] * 2



@pytest.mark.parametrize("kwargs, message", [({"tolerance": -0.1}, "tolerance must be a finite number >= 0"),
                                             ({"stabilisation_window_s": float("nan")},
                                              "stabilisation_window_s must be a finite number >= 0")])
def test_hpa_names_a_bad_tolerance_or_window(env, kwargs, message):
    """A negative tolerance or a NaN window was taken (the window then failed in math.ceil)."""
    with pytest.raises(ValueError, match=message):
        HPA(env, **kwargs)


def test_hpa_tolerance_includes_its_boundary(env):
    """HPA (as Kubernetes) leaves the replicas unchanged while |utilisation / target - 1| <= tolerance, the boundary
    included: at target 0.5 and tolerance 0.5, utilisation 0.75 (ratio 1.5) and 0.25 (ratio 0.5) keep 4 replicas,
    where ceil(4 * 1.5) = 6 and ceil(4 * 0.5) = 2 would be the scaled counts."""
    hpa = HPA(env, target=0.5, tolerance=0.5)
    assert hpa.desired_replicas(observation(4, 0.75)) == 4
    assert hpa.desired_replicas(observation(4, 0.25)) == 4
    assert hpa.desired_replicas(observation(4, 0.76)) == 7  # just outside: ceil(4 * 1.52)


def test_hpa_window_rounds_up_to_whole_intervals(env):
    """The stabilisation window covers ceil(window / control interval) recommendations: 100 s at 30 s intervals is
    4, so a recommendation of 8 keeps 5 replicas for the 3 intervals after it and the scale-down comes at the 4th."""
    hpa = HPA(env, target=0.5, stabilisation_window_s=100)
    assert hpa.window == 4
    assert hpa.act(observation(4, 0.9)) == REPLICA_UP  # recommends 8
    assert [hpa.act(observation(5, 0.1)) for _ in range(4)] == [NOOP, NOOP, NOOP, REPLICA_DOWN]


def test_static_policy_moves_to_its_replicas_from_either_side(env):
    """StaticPolicy moves to its configuration and holds it: one replica up below its count, one down above it,
    nothing at it (limits already at their targets)."""
    policy = StaticPolicy(env, replicas=4, cpu_millicores=1024, memory_mb=1024)
    assert [policy.act(observation(r, 0.5)) for r in (3, 6, 4)] == [REPLICA_UP, REPLICA_DOWN, NOOP]
