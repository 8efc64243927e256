"""``flash meta-train``: meta-train FLASH (or pretrain transfer learning, or meta-train MAML) on the train split.

Examples::

    flash meta-train --case autoscaling --method flash --set flash.timesteps=100000
    flash meta-train --case autoscaling --method flash --set flash.timesteps=100000 --resume   # a killed run
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from flash_envs.cli_args import output_dir
from flash_rl.commands._common import (add_config_arguments, check_outputs_spare_inputs, command_line, config_from_args,
                                       fail)
from flash_rl.config import ConfigError, ExperimentConfig, dotted_settings, read_yaml, save_config


#: Each method's config section and the key of its training total.
METHOD_TOTALS = {"flash": "flash.timesteps", "transfer": "transfer.timesteps", "maml": "maml.iterations"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "<case>/meta-train-<method>, or <case>/meta-train-<method>-quick with --quick")
    parser.add_argument("--method", choices=tuple(METHOD_TOTALS), default="flash",
                        help="what to train (default: flash)")


def default_run_dir(root: str, case: str, method: str, quick: bool) -> Path:
    """``root/case/meta-train-method``, with ``-quick`` for the quick config (so that it never shares a full run's)."""
    return Path(root) / case / f"meta-train-{method}{'-quick' if quick else ''}"


def resume_may_also_change(method: str) -> tuple[str, ...]:
    """What ``meta-train --method method --resume`` lets differ from the run's ``config.yaml`` besides
    :data:`~flash_rl.config.RESUME_MAY_CHANGE`: the training total (a killed run may be continued to another one) and
    what this meta-training does not read: the adaptation settings and the other methods' sections."""
    return (METHOD_TOTALS[method], "adaptation.*", *(f"{other}.*" for other in METHOD_TOTALS if other != method))


def _announce_another_total(cfg: ExperimentConfig, run_dir: Path, method: str) -> None:
    """Say so when a ``--resume`` continues to another training total than the run's ``config.yaml`` was started
    with: allowed (a killed run may be taken further), but a resume without the first command's ``--set`` quietly
    took the config's default instead."""
    key = METHOD_TOTALS[method]
    saved_file = run_dir / "config.yaml"
    saved = dotted_settings(read_yaml(saved_file)).get(key) if saved_file.is_file() else None
    now = dotted_settings(cfg.to_dict())[key]
    if saved is not None and saved != now:
        print(f"meta-train --resume: continuing {method} to {key}={now}, not the {saved} that {saved_file} was "
              f"started with (--set {key}={saved} keeps the run's)", flush=True)


def run(args: argparse.Namespace) -> int:
    with ExitStack() as held:
        return _meta_train(args, held)


def _meta_train(args: argparse.Namespace, held: ExitStack) -> int:
    """The command, which holds its run directory (:mod:`flash_rl.run_lock`) in ``held`` from before it reads it:
    another ``meta-train`` or ``reproduce`` writing there is refused."""
    from flash_rl.cases import get_case
    from flash_rl.pipeline import RUN_FILES, check_run_to_resume, discard_training, drop_curves_of, train_model
    from flash_rl.run_lock import hold_folders
    from flash_rl.torch_threads import use_one_torch_thread

    try:
        cfg = config_from_args(args, methods=[args.method])   # adaptation.methods is not what it trains
        run_dir = args.run_dir or output_dir(str(default_run_dir(cfg.run.dir, cfg.case, args.method, args.quick)))
        directory = run_dir / "models" / args.method
        family = get_case(cfg.case).build_family(cfg)   # before anything is written: a bad family file stops here
        check_outputs_spare_inputs({run_dir / name: "--run-dir" for name in RUN_FILES}, args, cfg)
        held.enter_context(hold_folders({run_dir: "--run-dir"}))   # made here if missing
        if args.resume:   # a killed meta-training may be continued to another total
            check_run_to_resume(cfg, run_dir, [args.method], family,
                                may_also_change=resume_may_also_change(args.method))
            if not any((directory / "ckpt" / name).exists() for name in ("state.json", "maml.pt")):
                raise ConfigError(f"--resume: {directory / 'ckpt'} holds no checkpoint to continue; check "
                                  "--run-dir, or drop --resume to start a new run")
            _announce_another_total(cfg, run_dir, args.method)
    except (OSError, ValueError, argparse.ArgumentTypeError) as err:   # a bad config, family file, run file or folder
        return fail(err)                                                # (or one that another command writes in)
    use_one_torch_thread()
    removed = drop_curves_of(cfg, run_dir, args.method, args.resume)   # a reproduce's runs in a shared --run-dir,
    if removed:                                                          # first: they were made with the old model
        print(f"meta-train: removed {removed} adaptation run(s) of the methods that start from {args.method} from "
              f"{run_dir / 'curves.jsonl'}; a reproduce --resume there redoes them", flush=True)
    if not args.resume:   # before config.yaml changes: no --resume may take the earlier model for this one
        discard_training(directory)
    save_config(cfg, run_dir / "config.yaml")
    (run_dir / "command.txt").write_text(command_line() + "\n")
    try:
        train_model(args.method, cfg, family, run_dir, args.resume)
        if args.method == "maml":
            print(f"MAML saved to {directory / 'ckpt'}")
        else:
            print(f"{args.method} agent saved to {directory / 'final'} (load with flash_rl.Flash.load)")
    except KeyboardInterrupt:   # Ctrl-C
        print(f"flash meta-train: interrupted; {directory / 'ckpt'} keeps the checkpoints so far: run the same command "
              "with --resume to continue", file=sys.stderr)
        return 130
    return 0
