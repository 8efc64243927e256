"""``flash evaluate``: zero-shot returns of a saved agent (and the case's heuristics) on a task split.

Example::

    flash evaluate --model runs/autoscaling/meta-train-flash/models/flash/final --split test --episodes 2
    flash evaluate --model runs/autoscaling/meta-train-flash/models/transfer/final --actions   # has it collapsed?
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from flash_envs.cli_args import int_at_least, output_file
from flash_envs.fields import MAX_SEED
from flash_envs.tasks import SPLITS
from flash_rl.commands._common import (add_config_arguments, add_test_trace_argument, check_json_output,
                                       config_from_args, fail, test_trace_overrides)
from flash_rl.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--model", required=True, help="saved agent directory (…/final) or MAML checkpoint (…/ckpt)")
    parser.add_argument("--split", choices=SPLITS, default="test",
                        help="task split; test is the one flash reproduce adapts to: its first "
                             "adaptation.max_test_tasks, then the --test-trace tasks (default: test)")
    parser.add_argument("--episodes", type=int_at_least(1), default=1, help="evaluation episodes per task (default: 1)")
    parser.add_argument("--actions", action="store_true",
                        help="also print the share of steps on which the agent takes each action, per task and "
                             "over all (a Discrete action space's; one action everywhere is a collapsed policy)")
    parser.add_argument("--json", type=output_file, help="also write the table to this JSON file")
    add_test_trace_argument(parser)


def action_shares_table(counts: dict[str, Counter[int]], n_actions: int) -> list[str]:
    """Lines of a table: per task (``counts``: task -> action -> steps) and over all tasks, the share of steps on
    which each of the ``n_actions`` actions was taken, and how many distinct actions were."""
    total: Counter[int] = sum(counts.values(), Counter())
    name_width = max(len("all tasks"), *(len(task) for task in counts))
    lines = [f"{'task':<{name_width}} " + " ".join(f"{a:>6}" for a in range(n_actions)) + " distinct"]
    for task, count in (*counts.items(), ("all tasks", total)):
        steps = sum(count.values())
        lines.append(f"{task:<{name_width}} " + " ".join(f"{count[a] / steps:6.1%}" for a in range(n_actions))
                     + f" {len(count):>8}")
    return lines


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from flash_rl.adaptation import run_policy
    from flash_rl.cases import get_case
    from flash_rl.commands.adapt import check_held_out, load_model, split_tasks

    try:
        cfg = config_from_args(args, test_trace_overrides(args), methods=[])   # the model's own method acts: load_model
        check_json_output(args, cfg)
        case = get_case(cfg.case)
        tasks = split_tasks(cfg, case, case.build_family(cfg), args.split)
        env = gym.make(cfg.env.id, **cfg.env.kwargs)
        if args.actions and not isinstance(env.action_space, gym.spaces.Discrete):
            raise ConfigError(f"--actions counts the actions of a Discrete action space; {cfg.env.id} with these "
                              f"env.kwargs acts in {env.action_space}")
        model = load_model(Path(args.model), cfg.env.id, cfg.env.kwargs)
        check_held_out(model, tasks, args.split, args.model)
        if cfg.adaptation.eval_seed + args.episodes - 1 > MAX_SEED:   # episode e evaluates with eval_seed + e
            raise ConfigError(f"--episodes {args.episodes}: the last would evaluate with adaptation.eval_seed + "
                              f"{args.episodes - 1}, above 2**32 - 1 = {MAX_SEED}")
    except (OSError, ValueError) as err:   # a bad config, family file or saved agent (ConfigError is a ValueError)
        return fail(err)
    heuristics = case.heuristics(env)
    rows = []
    name_width = max(len("task"), *(len(task.name) for task in tasks))   # rows print as they come: widths first
    widths = [max(9, len(h)) for h in ("agent", *heuristics)]
    print(f"{'task':<{name_width}} " + " ".join(f"{h:>{w}}" for h, w in zip(("agent", *heuristics), widths)))
    counts: dict[str, Counter[int]] = {}
    for task in tasks:
        seeds = [cfg.adaptation.eval_seed + e for e in range(args.episodes)]
        actions: list[Any] = []
        recorded = actions if args.actions else None
        agent = float(np.mean([model.evaluate(None, task, s, actions=recorded) for s in seeds]))   # None: the saved one
        heur = {h: float(np.mean([run_policy(env, p, task, s) for s in seeds])) for h, p in heuristics.items()}
        rows.append({"task": task.name, "agent": agent, **heur})
        if args.actions:
            counts[task.name] = Counter(int(np.asarray(a).item()) for a in actions)
            rows[-1]["agent_actions"] = {str(a): n for a, n in sorted(counts[task.name].items())}
        print(f"{task.name:<{name_width}} " + " ".join(f"{v:{w}.3f}" for v, w in zip((agent, *heur.values()), widths)),
              flush=True)
    if args.actions:
        print(f"\nThe agent's actions (share of its deterministic policy's steps; {cfg.env.id}'s docstring tables "
              "what each does):")
        print("\n".join(action_shares_table(counts, int(env.action_space.n))))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0
