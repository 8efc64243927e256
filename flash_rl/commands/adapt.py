"""``flash adapt``: fine-tune a saved agent on one held-out task and print its adaptation curve.

Example::

    flash adapt --model runs/autoscaling/meta-train-flash/models/flash/final --task 0 --episodes 20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flash_envs.cli_args import int_at_least
from flash_envs.tasks import SPLITS
from flash_rl.commands._common import add_config_arguments, config_from_args, fail
from flash_rl.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--model", required=True, help="a directory written by Flash.save / flash meta-train "
                                                        "(…/final), or a MAML checkpoint directory (…/ckpt)")
    parser.add_argument("--task", default="0", help="test-split task: index or name (default: 0)")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--episodes", type=int_at_least(1), help="fine-tuning budget (default: adaptation.budget)")
    parser.add_argument("--seed", type=int_at_least(0), default=0)
    parser.add_argument("--json", help="also write the curve to this JSON file")


def pick_task(family, split: str, key: str):
    tasks = family.split(split)
    if key.isdigit():
        if int(key) >= len(tasks):
            raise ConfigError(f"--task {key}: the {split} split has {len(tasks)} tasks")
        return tasks[int(key)]
    named = [t for t in tasks if t.name == key]
    if not named:
        raise ConfigError(f"--task {key!r}: no such task in the {split} split ({[t.name for t in tasks]})")
    return named[0]


def load_model(path: Path, env_id: str):
    """The saved agent at ``path``, which must have been trained on ``env_id`` (the config's env)."""
    from flash_rl.flash import Flash
    from flash_rl.maml import MAML

    if (path / "maml.pt").exists():
        model = MAML.load(path)
    elif (path / "flash.json").exists():
        model = Flash.load(path)
    else:
        raise ConfigError(f"--model {path}: neither a saved Flash/TransferLearning agent (flash.json) nor a MAML "
                          "checkpoint (maml.pt)")
    if model.env_id != env_id:
        raise ConfigError(f"--model {path} was trained on {model.env_id}, but the config runs {env_id}; pass the "
                          "--case (or --config) the model was trained with")
    return model


def run(args: argparse.Namespace) -> int:
    from flash_rl.cases import get_case

    try:
        cfg = config_from_args(args)
        family = get_case(cfg.case).build_family(cfg)
        task = pick_task(family, args.split, args.task)
        model = load_model(Path(args.model), cfg.env.id)
        episodes = cfg.adaptation.budget if args.episodes is None else args.episodes
    except (ConfigError, FileNotFoundError) as err:
        return fail(err)
    curve = model.adapt(task, episodes, eval_every=cfg.adaptation.eval_every,
                        eval_seed=cfg.adaptation.eval_seed + args.seed, seed=args.seed,
                        on_eval=lambda e, v: print(f"episodes {e:3d}  return {v:8.3f}", flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps({"task": task.name, "curve": curve}, indent=1))
    return 0
