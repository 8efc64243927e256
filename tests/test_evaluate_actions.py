"""``flash evaluate --actions``: which actions a saved agent's deterministic policy takes, per task and over all, so
that a collapsed policy (one action everywhere) shows; and the action recording under it in every evaluator."""

from __future__ import annotations

import json
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest

from flash_envs.baselines.runner import run_episode
from flash_rl.cli import main
from flash_rl.commands.evaluate import action_shares_table
from flash_rl.flash import Flash, TransferLearning
from flash_rl.maml import MAML


class _Cycle:
    """Actions 0, 1, 2, 0, 1, 2, ... (as numpy scalars, as SB3 returns them)."""

    def __init__(self) -> None:
        self.step = 0

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        self.step += 1
        return np.int64((self.step - 1) % 3), state


def test_run_episode_records_every_action_it_takes():
    env = gym.make("flash/Autoscaling-v0", episode_steps=7)
    task = env.unwrapped.family.test[0]
    actions: list = []
    run_episode(env, _Cycle(), task, 0, actions=actions)
    assert [int(a) for a in actions] == [0, 1, 2, 0, 1, 2, 0]


def test_maml_records_the_actions_of_its_deterministic_episode_and_only_those_taken():
    maml = MAML("flash/ConfigSearch-v0", hidden=[8])   # an episode ends when the agent commits: masked steps
    task = gym.make("flash/ConfigSearch-v0").unwrapped.family.test[0]
    actions: list = []
    ret = maml.evaluate(None, task, 3, actions=actions)
    env = gym.make("flash/ConfigSearch-v0")
    env.reset(seed=3, options={"task": task})
    replayed, done = 0.0, False
    for a in actions:   # the recorded actions replay the same episode to its end, and no further
        assert not done
        _, reward, terminated, truncated, _ = env.step(a)
        replayed, done = replayed + reward, terminated or truncated
    assert done and replayed == pytest.approx(ret)


def test_the_shares_table_gives_each_actions_share_per_task_and_over_all():
    lines = action_shares_table({"a": Counter({5: 4}), "bb": Counter({0: 1, 1: 3})}, 7)
    assert lines[0].split() == ["task", *map(str, range(7)), "distinct"]
    assert lines[1].split() == ["a", *(["0.0%"] * 5), "100.0%", "0.0%", "1"]
    assert lines[2].split() == ["bb", "25.0%", "75.0%", *(["0.0%"] * 5), "2"]
    assert lines[3].split() == ["all", "tasks", "12.5%", "37.5%", *(["0.0%"] * 3), "50.0%", "0.0%", "3"]
    assert len({len(line) for line in lines}) == 1


def test_evaluate_actions_prints_and_saves_each_tasks_action_counts(tmp_path, capsys):
    tiny = Flash("PPO", "flash/Autoscaling-v0", net_arch=[8], n_envs=1,
                 adapt_kwargs={"n_steps": 60, "batch_size": 60, "n_epochs": 4})   # the quick config's
    tiny.fresh().save(tmp_path / "model")
    assert main(["evaluate", "--quick", "--model", str(tmp_path / "model"), "--episodes", "2", "--actions",
                 "--json", str(tmp_path / "table.json")]) == 0
    out = capsys.readouterr().out
    rows = json.loads((tmp_path / "table.json").read_text())
    steps = gym.make("flash/Autoscaling-v0").unwrapped.episode_steps
    for row in rows:
        assert sum(row["agent_actions"].values()) == 2 * steps and set(row["agent_actions"]) <= set("0123456")
    table = out.split("The agent's actions")[1].splitlines()[2:]
    assert [line.split()[0] for line in table] == [row["task"] for row in rows] + ["all"]
    total = sum((Counter({int(a): n for a, n in row["agent_actions"].items()}) for row in rows), Counter())
    shares = [float(cell.rstrip("%")) for cell in table[-1].split()[2:9]]
    assert shares == pytest.approx([100 * total[a] / sum(total.values()) for a in range(7)], abs=0.05)
    assert int(table[-1].split()[-1]) == len(total)


def test_evaluate_actions_refuses_an_action_space_it_cannot_count(tmp_path, capsys):
    tiny = TransferLearning("PPO", "flash/PowerManagement-v0", {"n_servers": 2}, net_arch=[8], n_envs=1)
    tiny.fresh().save(tmp_path / "model")
    assert main(["evaluate", "--case", "power", "--set", "env.kwargs={n_servers: 2}",
                 "adaptation.methods=[transfer, scratch]", "--model", str(tmp_path / "model"), "--actions"]) == 2
    assert "--actions counts the actions of a Discrete action space; flash/PowerManagement-v0 with these " \
           "env.kwargs acts in MultiDiscrete([5 5])" in capsys.readouterr().err
