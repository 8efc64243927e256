"""``flash demo``: the autoscaling env under the heuristic baselines and a random policy, on held-out tasks."""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import flash_envs  # noqa: F401  (registers the envs)
from flash_envs.baselines.autoscalers import HPA, RandomPolicy, StaticPolicy, ThresholdAutoscaler
from flash_envs.baselines.runner import evaluate_on_tasks
from flash_envs.cli_args import UsageError, int_at_least, json_text, seed_arg
from flash_envs.fields import MAX_SEED
from flash_envs.progress import counting, tqdm_bar
from flash_envs.tasks import SPLITS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", default="test", choices=SPLITS, help="task split to run on (default test)")
    parser.add_argument("--episodes", type=int_at_least(1), default=2, help="episodes per task and policy (default 2)")
    parser.add_argument("--seed", type=seed_arg, default=0,
                        help="seed of the first episode (episode i uses seed + i) and of the random policy "
                             "(default 0)")
    parser.add_argument("--fidelity", default="fast", choices=("fast", "request"),
                        help="the env's simulator: fluid queueing model (fast, default) or one event per request")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    if args.seed + args.episodes - 1 > MAX_SEED:   # episode i uses seed + i
        raise UsageError(f"--seed {args.seed} --episodes {args.episodes}: the last episode's seed, "
                         f"{args.seed + args.episodes - 1}, is above {MAX_SEED}")
    env = gym.make("flash/Autoscaling-v0", fidelity=args.fidelity)
    tasks = env.unwrapped.family.split(args.split)
    policies = {
        "HPA (target 60%)": HPA(env, target=0.6),
        "HPA 60% + 2 GiB memory": HPA(env, target=0.6, memory_mb=2048),
        "threshold 30/80%": ThresholdAutoscaler(env),
        "static 4 x 1 CPU x 2 GiB": StaticPolicy(env),
        "random": RandomPolicy(env, args.seed),
    }
    summary = {}
    bar = tqdm_bar(len(policies) * len(tasks), "demo", unit="task")
    for name, policy in policies.items():
        rows = evaluate_on_tasks(env, policy, counting(tasks, bar), args.episodes, args.seed)
        summary[name] = {k: float(np.mean([r[k] for r in rows])) for k in ("mean_reward", "slo_violation",
                                                                            "cpu_utilisation", "replicas")}
    bar.close()
    if args.json:
        print(json_text(summary, indent=2))
        return 0
    episodes = f"{args.episodes} episode{'s' * (args.episodes != 1)}"
    print(f"flash/Autoscaling-v0, {len(tasks)} {args.split} tasks x {episodes}, {args.fidelity} fidelity")
    print(f"{'policy':<26} {'reward/step':>11} {'SLO viol.':>9} {'CPU util':>8} {'replicas':>8}")
    for name, s in summary.items():
        print(f"{name:<26} {s['mean_reward']:>11.3f} {s['slo_violation']:>9.1%} {s['cpu_utilisation']:>8.1%} "
              f"{s['replicas']:>8.1f}")
    return 0
