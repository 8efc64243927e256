"""Resuming meta-training keeps each env on the task it was running (and within the task list); the features
extractor's width matches its output for an observation Box of any shape."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

import flash_envs  # noqa: F401
from flash_envs.sim.workloads import TraceWorkload
from flash_rl.agent_settings import keep_logs_out_of_tmp
from flash_rl.context import ContextWrapper, TaskSamplingWrapper, row_dim
from flash_rl.encoder import FlashFeaturesExtractor
from flash_rl.flash import Flash

ENV_ID = "flash/Autoscaling-v0"
TINY_ENV = {"episode_steps": 10}
TINY_PPO = {"n_steps": 20, "batch_size": 40, "n_epochs": 1}
TINY = dict(context_len=6, embedding_dim=4, encoder_hidden=8, net_arch=[16], agent_kwargs=TINY_PPO, n_envs=2,
            episodes_per_task=4, seed=2)


def family():
    return gym.make(ENV_ID).unwrapped.family


class TaskLog(BaseCallback):
    """The task of every step each env runs: ``seen[i]`` is env ``i``'s list of task names (read from the step's
    ``info``: after an episode's last step, the env has already been reset into the next one)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[str]] = []

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        if not self.seen:
            self.seen = [[] for _ in infos]
        for names, info in zip(self.seen, infos):
            names.append(info["task"].name)
        return True


def subset():
    tasks = family().train[5:9]   # leaves out train[0], every env's task until one is drawn
    assert family().train[0].name not in {t.name for t in tasks}
    return tasks


def test_resume_continues_the_running_task_within_the_task_list(tmp_path):
    tasks, allowed = subset(), {t.name for t in subset()}
    first, before = Flash("PPO", ENV_ID, TINY_ENV, **TINY), TaskLog()
    # 2 episodes of 10 steps per env, and the 3rd begun (SB3 resets an env as its episode ends): mid-block
    first.meta_train(tasks, 40, checkpoint_dir=tmp_path, callback=before)
    state = json.loads((tmp_path / "state.json").read_text())
    assert [s["episodes_on_task"] for s in state["samplers"]] == [3, 3]
    running = [names[-1] for names in before.seen]
    assert [s["task"]["name"] for s in state["samplers"]] == running
    assert state["samplers"][0]["task"] == next(t for t in tasks if t.name == running[0]).to_dict()

    resumed, after = Flash("PPO", ENV_ID, TINY_ENV, **TINY), TaskLog()
    resumed.meta_train(tasks, 120, checkpoint_dir=tmp_path, resume=True, callback=after)
    assert resumed.resumed_from == 40 and [len(names) for names in after.seen] == [40, 40]
    assert [names[0] for names in after.seen] == running   # each env goes on with its task
    assert {name for names in after.seen for name in names} <= allowed
    # the 3rd episode of the block goes on where it stopped, then the 4th on that task; the 2 after it on a drawn task
    assert all(names[:20] == [names[0]] * 20 and len(set(names[20:])) == 1 for names in after.seen)


def test_resume_with_other_tasks_draws_from_the_new_list(tmp_path):
    """The checkpoint's episodes in progress (flash_rl.flash.Flash.checkpoint) are not restored when the resumed run
    samples from other tasks: every env starts a new episode on a task of the new list."""
    Flash("PPO", ENV_ID, TINY_ENV, **TINY).meta_train(subset(), 40, checkpoint_dir=tmp_path)
    others = family().train[10:12]
    resumed, after = Flash("PPO", ENV_ID, TINY_ENV, **TINY), TaskLog()
    with pytest.warns(UserWarning, match="sampled from other tasks than this run's: every env starts a new "
                                         "episode") as caught:
        resumed.meta_train(others, 80, checkpoint_dir=tmp_path, resume=True, callback=after)
    assert [w.filename for w in caught] == [__file__]   # the meta_train call, not the decorator in between
    assert resumed.resumed_from == 40 and [len(names) for names in after.seen] == [20, 20]
    assert {name for names in after.seen for name in names} <= {t.name for t in others}


def test_a_trace_moved_since_the_checkpoint_starts_new_episodes_on_the_moved_file(tmp_path):
    """Tasks replaying a CSV trace that was moved after the checkpoint are other tasks (their path differs): the resume
    warns and starts new episodes on them. It failed instead: rebuilding the checkpoint's envs replays their episodes,
    which read the trace at its old path, and that was done before the task lists were compared."""
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,requests\n" + "".join(f"{t},{100 + 7 * t % 900}\n" for t in range(0, 3600, 60)))

    def on(path):
        return [dataclasses.replace(t, workload=TraceWorkload(path=str(path), mean_rate=12.0), name=t.name + "-trace")
                for t in family().train[:2]]

    Flash("PPO", ENV_ID, TINY_ENV, **TINY).meta_train(on(trace), 30, checkpoint_dir=tmp_path / "ckpt")
    trace.rename(tmp_path / "moved.csv")
    resumed, after = Flash("PPO", ENV_ID, TINY_ENV, **TINY), TaskLog()
    with pytest.warns(UserWarning, match="sampled from other tasks than this run's"):
        resumed.meta_train(on(tmp_path / "moved.csv"), 60, checkpoint_dir=tmp_path / "ckpt", resume=True,
                           callback=after)
    assert resumed.resumed_from == 40 and [len(names) for names in after.seen] == [20, 20]   # one 20-step rollout


def test_a_trace_rewritten_since_the_checkpoint_starts_new_episodes(tmp_path):
    """Tasks replaying a CSV trace rewritten in place after the checkpoint are the same tasks (same path), but
    replaying the checkpoint's episodes in progress comes to other observations: the resume warns and starts new
    episodes. It went on silently from envs the replay had made into other ones."""
    trace = tmp_path / "trace.csv"

    def write(period):
        trace.write_text("timestamp,requests\n" + "".join(f"{t},{100 + period * t % 900}\n"
                                                          for t in range(0, 3600, 60)))

    write(7)
    tasks = [dataclasses.replace(t, workload=TraceWorkload(path=str(trace), mean_rate=12.0), name=t.name + "-trace")
             for t in family().train[:2]]
    Flash("PPO", ENV_ID, TINY_ENV, **TINY).meta_train(tasks, 30, checkpoint_dir=tmp_path / "ckpt")
    write(13)
    resumed, after = Flash("PPO", ENV_ID, TINY_ENV, **TINY), TaskLog()
    with pytest.warns(UserWarning, match="cannot be rebuilt as they were: replaying the episode in progress .* came to "
                                         "another observation .* Every env starts a new episode"):
        resumed.meta_train(tasks, 60, checkpoint_dir=tmp_path / "ckpt", resume=True, callback=after)
    assert resumed.resumed_from == 40 and [len(names) for names in after.seen] == [20, 20]


def test_resume_from_a_checkpoint_without_the_task_draws_from_the_task_list(tmp_path):
    tasks, allowed = subset(), {t.name for t in subset()}
    Flash("PPO", ENV_ID, TINY_ENV, **TINY).meta_train(tasks, 40, checkpoint_dir=tmp_path)
    path = tmp_path / "state.json"
    state = json.loads(path.read_text())
    for sampler in state["samplers"]:   # as written before the task and the episodes in progress were saved
        del sampler["task"]
    del state["episodes"]
    path.write_text(json.dumps(state))
    resumed, after = Flash("PPO", ENV_ID, TINY_ENV, **TINY), TaskLog()
    with pytest.warns(UserWarning, match="written before its episodes in progress were saved: every env starts a new"):
        resumed.meta_train(tasks, 80, checkpoint_dir=tmp_path, resume=True, callback=after)
    assert resumed.resumed_from == 40 and [len(names) for names in after.seen] == [20, 20]
    assert {name for names in after.seen for name in names} <= allowed
    # a new task was drawn at the first reset, on which the 2 episodes run (the first 2 of its block)
    assert all(names == [names[0]] * 20 for names in after.seen)
    assert [s.get_state()["episodes_on_task"] for s in resumed._sampling_wrappers] == [3, 3]


def test_sampler_state_is_plain_json_and_restores_the_task():
    fam = family()
    tasks = list(fam.train[3:7])
    wrapper = TaskSamplingWrapper(gym.make(ENV_ID, **TINY_ENV), tasks, episodes_per_task=4, seed=0)
    for _ in range(2):
        _, info = wrapper.reset(seed=1)
    state = wrapper.get_state()
    assert json.loads(json.dumps(state)) == state
    restored = TaskSamplingWrapper(gym.make(ENV_ID, **TINY_ENV), tasks, episodes_per_task=4, seed=0)
    restored.set_state(json.loads(json.dumps(state)))
    assert restored.get_state() == state
    names = [restored.reset()[1]["task"].name for _ in range(3)]
    assert names[:2] == [info["task"].name] * 2   # the 2 episodes left on the task, then a draw
    assert all(name in {t.name for t in tasks} for name in names)

    # a saved task that is not in this wrapper's list is not restored: a task of the list is drawn
    other = TaskSamplingWrapper(gym.make(ENV_ID, **TINY_ENV), list(fam.train[8:10]), episodes_per_task=4, seed=0)
    other.set_state(json.loads(json.dumps(state)))
    assert other.reset()[1]["task"].name in {t.name for t in fam.train[8:10]}
    assert other.get_state()["episodes_on_task"] == 1


class GridEnv(gym.Env):
    """A 5-step env with a (2, 3) observation Box."""

    observation_space = spaces.Box(-1.0, 1.0, (2, 3), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t += 1
        return self.observation_space.sample(), float(action), False, self.t >= 5, {}


def test_features_dim_is_the_forward_width_for_a_2d_observation():
    obs_space, act_space = GridEnv.observation_space, GridEnv.action_space
    dict_space = spaces.Dict({"obs": obs_space,
                              "context": spaces.Box(-np.inf, np.inf, (6, row_dim(obs_space, act_space)), np.float32)})
    extractor = FlashFeaturesExtractor(dict_space, embedding_dim=4, hidden=8)
    batch = {"obs": torch.rand(3, 2, 3), "context": torch.rand(3, 6, row_dim(obs_space, act_space))}
    assert extractor.features_dim == 6 + 4 == extractor(batch).shape[1]
    # the space ContextWrapper builds, trained on by an SB3 agent (its networks are sized by features_dim)
    env = ContextWrapper(GridEnv(), length=6)
    assert env.observation_space == dict_space
    agent = PPO("MultiInputPolicy", env, n_steps=10, batch_size=10, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"features_extractor_class": FlashFeaturesExtractor,
                               "features_extractor_kwargs": {"embedding_dim": 4, "hidden": 8}, "net_arch": [8]})
    keep_logs_out_of_tmp(agent)
    agent.learn(10)


def test_features_dim_of_a_1d_observation_is_unchanged():
    obs_space = spaces.Box(-1.0, 1.0, (5,), np.float32)
    dict_space = spaces.Dict({"obs": obs_space, "context": spaces.Box(-np.inf, np.inf, (6, 9), np.float32)})
    extractor = FlashFeaturesExtractor(dict_space, embedding_dim=4, hidden=8)
    assert extractor.features_dim == 9 == extractor({"obs": torch.rand(2, 5), "context": torch.rand(2, 6, 9)}).shape[1]


def test_a_checkpoint_without_its_episodes_still_puts_each_env_back_on_its_task_block(tmp_path):
    """A checkpoint written before the episodes in progress were saved still holds each sampler's state: the resumed
    envs start a new episode, but on the task they were running and for the rest of its block of
    ``episodes_per_task`` (4): the 3rd episode was under way, so one more episode there, then a new draw."""
    tasks = subset()
    Flash("PPO", ENV_ID, TINY_ENV, **TINY).meta_train(tasks, 40, checkpoint_dir=tmp_path)
    path = tmp_path / "state.json"
    state = json.loads(path.read_text())
    running = [s["task"]["name"] for s in state["samplers"]]
    assert [s["episodes_on_task"] for s in state["samplers"]] == [3, 3]
    del state["episodes"]
    path.write_text(json.dumps(state))
    resumed, after = Flash("PPO", ENV_ID, TINY_ENV, **TINY), TaskLog()
    with pytest.warns(UserWarning, match="written before its episodes in progress were saved"):
        resumed.meta_train(tasks, 80, checkpoint_dir=tmp_path, resume=True, callback=after)
    assert [names[:10] for names in after.seen] == [[name] * 10 for name in running]
    # the 4th episode of the block, then a newly drawn task's 1st, then (SB3's reset as it ended) its 2nd
    assert [s.get_state()["episodes_on_task"] for s in resumed._sampling_wrappers] == [2, 2]
