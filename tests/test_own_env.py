"""A Gymnasium env of the user's own with flash_rl: what it must offer (README, "Your own environment"), and the
one-line errors that say what it lacks before any training."""

from __future__ import annotations

import copy
import sys
import textwrap
import threading
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from flash_rl.cases import CONFIG_DIR, effective_env_kwargs
from flash_rl.config import ConfigError, check_env_id, load_config
from flash_rl.context import ContextBuffer, check_task_env
from flash_envs.power_tasks import PowerTaskFamily
from flash_envs.tasks import AutoscalingTaskFamily
from flash_rl.flash import Flash, TransferLearning
from flash_rl.maml import MAML

TINY = dict(context_len=4, embedding_dim=4, encoder_hidden=8, net_arch=[8], n_envs=1,
            agent_kwargs={"n_steps": 8, "batch_size": 8, "n_epochs": 1}, adapt_kwargs={"n_steps": 4, "batch_size": 4})


@dataclass(frozen=True)
class Target:
    name: str
    goal: float

    def to_dict(self) -> dict:
        return asdict(self)


class Opaque:
    """A task without value equality or to_dict()."""

    def __init__(self, goal: float) -> None:
        self.name, self.goal = f"goal-{goal}", goal


class Reach(gym.Env):
    """Move a point towards the task's goal; ``info_task``: what reset's info holds as the task ("same": the task,
    "copy": a copy of it, "none": nothing)."""

    episode_steps = 4

    def __init__(self, info_task: str = "same", observation: str = "box", task_api: bool = True,
                 default_task: bool = True) -> None:
        self.observation_space = (spaces.Box(-10, 10, (2,), np.float32) if observation == "box"
                                  else spaces.Dict({"x": spaces.Box(-10, 10, (1,), np.float32)}))
        self.action_space = spaces.Discrete(2)
        self.info_task, self.observation = info_task, observation
        self._task: object = Target("a", 1.0) if default_task else None
        if not task_api:
            self.set_task = None   # type: ignore[assignment]   (not callable: no task API)
        self._x, self._t = 0.0, 0

    def set_task(self, task: object) -> None:
        self._task = task

    def get_task(self) -> object:
        return self._task

    def _obs(self):
        x = np.array([self._x, self._t], np.float32)
        return x if self.observation == "box" else {"x": x[:1]}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if options and "task" in options:
            self._task = options["task"]
        if self._task is None:
            raise RuntimeError("no task set: call set_task() first")
        self._x, self._t = 0.0, 0
        info = {} if self.info_task == "none" else {
            "task": self._task if self.info_task == "same" else copy.copy(self._task)}
        return self._obs(), info

    def step(self, action):
        self._x += 1.0 if action else -1.0
        self._t += 1
        return self._obs(), -abs(self._x - self._task.goal), False, self._t >= self.episode_steps, {}


def flat_reach(**kwargs) -> gym.Env:
    """Reach with a Dict observation, flattened as the README advises (FlattenObservation holds a lambda)."""
    return gym.wrappers.FlattenObservation(Reach(observation="dict", **kwargs))


class LockedReach(Reach):
    """Reach holding what no pickler takes, from its first reset on (a lazy reader's open stream, say)."""

    def reset(self, *, seed=None, options=None):
        self.lock = threading.Lock()
        return super().reset(seed=seed, options=options)


for variant, entry_point in {"ReachFlat-v0": flat_reach, "ReachLocked-v0": LockedReach}.items():
    if f"own/{variant}" not in gym.registry:
        gym.register(f"own/{variant}", entry_point=entry_point)
for variant, kwargs in {"Reach-v0": {}, "ReachNoInfoTask-v0": {"info_task": "none"},
                        "ReachDict-v0": {"observation": "dict"}, "ReachNoApi-v0": {"task_api": False},
                        "ReachNoDefault-v0": {"default_task": False},
                        "ReachNoDefaultNoInfoTask-v0": {"default_task": False, "info_task": "none"}}.items():
    if f"own/{variant}" not in gym.registry:
        gym.register(f"own/{variant}", entry_point=Reach, kwargs=kwargs)


def test_an_own_env_meta_trains_and_adapts():
    tasks = [Target("a", 1.0), Target("b", -2.0)]
    agent = Flash("PPO", "own/Reach-v0", **TINY).meta_train(tasks, 16)
    curve = agent.adapt(Target("held-out", 3.0), episodes=2)
    assert [episode for episode, _ in curve] == [0, 1, 2]


def test_an_unknown_env_id_says_how_to_register_ones_own():
    with pytest.raises(ValueError, match=r"unknown env id 'own/Missing-v0'; FLASH registers \['flash/.*For an env "
                                         r"of your own, call gymnasium.register\(id=..., entry_point=...\)"):
        Flash("PPO", "own/Missing-v0", **TINY)
    with pytest.raises(ValueError, match=r"its module 'no_such_module_here' cannot be imported"):
        check_env_id("no_such_module_here:own/Reach-v0")


def test_module_colon_id_imports_the_module_that_registers_the_env(tmp_path, monkeypatch):
    (tmp_path / "my_reach_envs.py").write_text(textwrap.dedent("""
        import gymnasium as gym
        gym.register("mine/Reach-v0", entry_point="test_own_env:Reach")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "mine/Reach-v0" not in gym.registry
    try:
        agent = Flash("PPO", "my_reach_envs:mine/Reach-v0", **TINY)   # gym.make takes the same form
        assert agent.config()["env_id"] == "my_reach_envs:mine/Reach-v0"   # saved so: Flash.load imports it too
        assert isinstance(agent.make_env().unwrapped, Reach)
        assert effective_env_kwargs(agent.env_id, {})["info_task"] == "same"   # gym.spec takes no module part
    finally:
        gym.registry.pop("mine/Reach-v0", None)
        sys.modules.pop("my_reach_envs", None)


def test_a_config_names_the_key_of_an_unknown_env_id():
    with pytest.raises(ConfigError, match=r"config key env.id: unknown env id 'own/Missing-v0'; .*gymnasium.register"):
        load_config(CONFIG_DIR / "autoscaling_quick.yaml", ["env.id=own/Missing-v0"])


def test_an_env_without_the_task_api_is_refused_when_the_agent_is_made():
    for kind in (Flash, TransferLearning):
        with pytest.raises(TypeError, match=r"env 'own/ReachNoApi-v0' lacks the task API flash_rl puts its envs on "
                                            r"tasks with: set_task\(\)"):
            kind("PPO", "own/ReachNoApi-v0", **TINY)


def test_maml_refuses_an_env_without_the_task_api_or_a_flat_box_observation():
    """MAML ran on such envs and dropped every task silently (reset's task option aside, nothing put the env on one),
    or failed in torch's matrix product on a Dict observation."""
    with pytest.raises(TypeError, match=r"env 'own/ReachNoApi-v0' lacks the task API flash_rl puts its envs on "
                                        r"tasks with: set_task\(\)"):
        MAML("own/ReachNoApi-v0", hidden=[8])
    with pytest.raises(TypeError, match=r"env 'own/ReachDict-v0': this MAML baseline's policy takes a flat \(1-D\) "
                                        r"Box observation, got Dict.*FlattenObservation"):
        MAML("own/ReachDict-v0", hidden=[8])
    assert MAML("own/ReachFlat-v0", hidden=[8]).n_obs == 1


def test_a_training_task_the_env_cannot_run_is_refused_before_training():
    """Only the first task was checked; a power task last in an autoscaling list failed when the sampler drew it,
    after some training, or (MAML, few iterations) never."""
    tasks = [*AutoscalingTaskFamily.generate(n_train=2, n_test=1, episode_s=240.0).train,
             PowerTaskFamily.generate(n_train=1, n_test=1, episode_s=60.0).train[0]]
    message = (r"^meta_train: task 2 of 3 \('train-00-specpower-123'\) cannot run on env 'flash/Autoscaling-v0': "
               r"AutoscalingEnv takes AutoscalingTask tasks, got PowerTask$")
    kwargs = {"episode_steps": 8}
    for agent in (Flash("PPO", "flash/Autoscaling-v0", kwargs, **TINY),
                  MAML("flash/Autoscaling-v0", kwargs, hidden=[8])):
        with pytest.raises(TypeError, match=message):
            agent.meta_train(tasks, 8)
        assert getattr(agent, "model", None) is None and getattr(agent, "iteration", 0) == 0


def test_flash_needs_each_episodes_task_by_value():
    with pytest.raises(ValueError, match=r"its reset\(\) returns none in info\['task'\] \(nor has the env an "
                                         r"episode_task\); without it the context would be cleared every episode"):
        Flash("PPO", "own/ReachNoInfoTask-v0", **TINY)
    TransferLearning("PPO", "own/ReachNoInfoTask-v0", **TINY)   # no context: it needs no task in info
    gym.register("own/ReachOpaque-v0", entry_point=Reach, kwargs={"info_task": "copy"})
    try:
        env = gym.make("own/ReachOpaque-v0")
        env.unwrapped.set_task(Opaque(1.0))
        with pytest.raises(ValueError, match=r"two resets on one task gave tasks that compare unequal \(Opaque "
                                             r"compares by identity\?\)"):
            check_task_env(env, "own/ReachOpaque-v0", use_context=True)
    finally:
        gym.registry.pop("own/ReachOpaque-v0")


def test_an_env_without_a_task_of_its_own_is_checked_on_the_first_training_task():
    """Its reset needs a task, so the agent is made without the check, which meta_train makes on its first task."""
    tasks = [Target("a", 1.0), Target("b", -2.0)]
    Flash("PPO", "own/ReachNoDefault-v0", **TINY).meta_train(tasks, 8)
    agent = Flash("PPO", "own/ReachNoDefaultNoInfoTask-v0", **TINY)
    with pytest.raises(ValueError, match=r"reset\(\) returns none in info\['task'\]"):
        agent.meta_train(tasks, 8)
    assert agent.model is None


def test_an_env_whose_reset_fails_on_its_task_is_named_with_the_check():
    env = gym.make("own/Reach-v0")

    def fail(**kwargs):
        raise RuntimeError("the service is down")

    env.unwrapped.reset = fail
    with pytest.raises(ValueError, match=r"checking that its reset\(\) tells the episode's task, reset\(options="
                                         r"\{'task': ...\}\) raised RuntimeError: the service is down"):
        check_task_env(env, "own/Reach-v0", use_context=True)


def test_a_dict_observation_is_refused_with_the_wrapper_to_use():
    for kind in (Flash, TransferLearning):
        with pytest.raises(TypeError, match=r"policy takes a Box observation, got Dict.*FlattenObservation"):
            kind("PPO", "own/ReachDict-v0", **TINY)


def test_tasks_a_checkpoint_cannot_record_are_refused_before_training(tmp_path):
    agent = Flash("PPO", "own/Reach-v0", **TINY)
    with pytest.raises(TypeError, match=r"checkpoint_dir: a checkpoint records the tasks by their to_dict\(\), and "
                                        r"task .* \(Opaque\) has no to_dict\(\)"):
        agent.meta_train([Opaque(1.0), Opaque(2.0)], 16, checkpoint_dir=tmp_path / "ckpt")
    assert agent.model is None and not (tmp_path / "ckpt").exists()


def test_a_flattened_env_checkpoints_and_an_unpicklable_one_is_refused_before_training(tmp_path):
    tasks = [Target("a", 1.0), Target("b", -2.0)]
    Flash("PPO", "own/ReachFlat-v0", **TINY).meta_train(tasks, 16, checkpoint_dir=tmp_path / "flat")
    resumed = Flash("PPO", "own/ReachFlat-v0", **TINY).meta_train(tasks, 24, checkpoint_dir=tmp_path / "flat",
                                                                  resume=True)
    assert resumed.resumed_from == 16
    agent = Flash("PPO", "own/ReachLocked-v0", **TINY)
    with pytest.raises(TypeError, match=r"checkpoint_dir: a checkpoint pickles the training envs .* cannot be "
                                        r"pickled \(TypeError: cannot pickle '_thread.lock' object\)"):
        agent.meta_train(tasks, 16, checkpoint_dir=tmp_path / "locked")
    assert agent.model is None and not (tmp_path / "locked").exists()


def test_array_tasks_are_compared_whole():
    buffer = ContextBuffer(4, spaces.Box(-1, 1, (2,)), spaces.Discrete(2))
    assert buffer.observe_task(np.array([1.0, 2.0]))
    buffer.add(np.zeros(2), 1, 0.5)
    assert not buffer.observe_task(np.array([1.0, 2.0])) and len(buffer) == 1   # the same task: kept
    assert buffer.observe_task(np.array([1.0, 3.0])) and len(buffer) == 0
