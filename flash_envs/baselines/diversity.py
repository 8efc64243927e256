"""``flash task-diversity``: is the autoscaling family diverse enough that one task-blind policy is not enough?

Two policy classes are swept over every task of the default family:

* HPA with each target utilisation of a grid (the env starting at a 3 GiB memory limit so that OOM kills do not mask
  the comparison);
* static configurations (replicas x CPU x memory) held for the whole episode.

For each class the report compares, per task, the best member for that task (a policy that knows the task) with the
one member that is best on average over all tasks (a task-blind operator's choice).
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import gymnasium as gym
import numpy as np

import flash_envs  # noqa: F401  (registers the envs)
from flash_envs.baselines.autoscalers import HPA, StaticPolicy
from flash_envs.baselines.runner import evaluate_on_tasks
from flash_envs.cli_args import UsageError, command_of, emit, int_at_least, output_file, seed_arg
from flash_envs.fields import MAX_SEED
from flash_envs.markdown import md_table
from flash_envs.progress import counting, tqdm_bar

HPA_TARGETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
STATIC_GRID = tuple(itertools.product((2, 4, 8, 12, 16), (512, 1024, 2048), (1024, 2048, 3072)))


def sweep(episodes: int, seed: int,
          progress: bool = False) -> tuple[list[str], dict[str, tuple[list[str], np.ndarray]]]:
    """Task names, and per policy class: member labels and the mean reward per step (tasks x members); with a
    progress bar if ``progress``."""
    base = gym.make("flash/Autoscaling-v0")
    family = base.unwrapped.family
    tasks = list(family.train) + list(family.test)
    hpa_env = gym.make("flash/Autoscaling-v0", initial_memory=3072)
    members: dict[str, list[tuple[str, Any, HPA | StaticPolicy]]] = {
        "HPA target": [(str(t), hpa_env, HPA(hpa_env, target=t)) for t in HPA_TARGETS],
        "static configuration": [],
    }
    for replicas, cpu, memory in STATIC_GRID:
        env = gym.make("flash/Autoscaling-v0", initial_replicas=replicas, initial_cpu=cpu, initial_memory=memory)
        members["static configuration"].append((f"{replicas} x {cpu} m x {memory} MiB", env,
                                                StaticPolicy(env, replicas, cpu, memory)))
    out = {}
    with tqdm_bar(len(tasks) * sum(map(len, members.values())), "task-diversity", progress, unit="task") as bar:
        for name, grid in members.items():
            rewards = np.array([[row["mean_reward"]
                                 for row in evaluate_on_tasks(env, policy, counting(tasks, bar), episodes, seed)]
                                for _, env, policy in grid]).T
            out[name] = ([label for label, _, _ in grid], rewards)
    return [t.name for t in tasks], out


def report(names: list[str], results: dict[str, tuple[list[str], np.ndarray]], command: str) -> str:
    """The Markdown report of a :func:`sweep`: per policy class a summary line and a per-task table of the best
    member's reward against the task-blind member's (best mean over tasks) and the gain of knowing the task; then
    ``command``, which regenerates it."""
    lines = ["# Task diversity of flash/Autoscaling-v0", "",
             f"Mean reward per step on each of the default family's {len(names)} tasks (train and test), for the "
             "best member of a policy class chosen per task (task known) and for the one member best on average "
             "(task-blind).", ""]
    tables = []
    for policy_class, (labels, rewards) in results.items():
        blind = int(np.argmax(rewards.mean(axis=0)))
        best = rewards.argmax(axis=1)
        gaps = rewards.max(axis=1) - rewards[:, blind]
        lines.append(f"- **{policy_class}**: task-blind choice {labels[blind]}; per-task best choices span "
                     f"{len(set(best))} different members; knowing the task gains {gaps.mean():.3f} per step on "
                     f"average, up to {gaps.max():.3f}; {int(np.sum(gaps > 0.05))} of {len(names)} tasks gain more "
                     f"than 0.05.")
        rows = [(n, labels[b], f"{r[b]:.3f}", f"{r[blind]:.3f}", f"{g:+.3f}")
                for n, r, b, g in zip(names, rewards, best, gaps)]
        tables += ["", f"## {policy_class}", "",
                   *md_table(("task", f"best {policy_class}", "reward", "reward task-blind", "gain"), rows)]
    return "\n".join(lines + tables + ["", f"Regenerate: `{command}`", ""])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int_at_least(1), default=1, help="episodes per task and policy (default 1)")
    parser.add_argument("--seed", type=seed_arg, default=0, help="seed of the first episode (default 0)")
    parser.add_argument("--out", type=output_file, default=None,
                        help="also write the markdown report to this file (it is printed either way)")


def run(args: argparse.Namespace) -> int:
    if args.seed + args.episodes - 1 > MAX_SEED:   # (as flash demo refuses it; the env took 2**32 silently)
        raise UsageError(f"--seed {args.seed} --episodes {args.episodes}: the last episode's seed, "
                         f"{args.seed + args.episodes - 1}, is above {MAX_SEED}")
    emit(report(*sweep(args.episodes, args.seed, progress=True), command_of("task-diversity", args, add_arguments)),
         args.out)
    return 0
