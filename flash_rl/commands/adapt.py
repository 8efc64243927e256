"""``flash adapt``: fine-tune a saved agent on one held-out task and print its adaptation curve.

Example::

    flash adapt --model runs/autoscaling/meta-train-flash/models/flash/final --task 0 --episodes 20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flash_envs.cli_args import int_at_least, output_file, seed_arg
from flash_envs.fields import MAX_SEED
from flash_envs.flash_warnings import warn
from flash_envs.tasks import SPLITS, Task, TaskFamily
from flash_rl.commands._common import (add_config_arguments, add_test_trace_argument, check_json_output,
                                       config_from_args, fail, test_trace_overrides)
from flash_rl.config import ConfigError

if TYPE_CHECKING:
    from flash_rl.cases import Case
    from flash_rl.config import ExperimentConfig
    from flash_rl.flash import Flash
    from flash_rl.maml import MAML


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--model", required=True, help="a directory written by Flash.save / flash meta-train "
                                                        "(…/final), or a MAML checkpoint directory (…/ckpt)")
    parser.add_argument("--task", default="0", help="the task of --split: index or name; the test split is the one "
                                                      "flash reproduce adapts to, --test-trace tasks included "
                                                      "(default: 0)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="task split (default: test)")
    parser.add_argument("--episodes", type=int_at_least(1), help="fine-tuning budget (default: adaptation.budget)")
    parser.add_argument("--seed", type=seed_arg, default=0,
                        help="fine-tuning seed; the evaluation episodes use adaptation.eval_seed + seed (default: 0)")
    parser.add_argument("--json", type=output_file, help="also write the curve to this JSON file")
    add_test_trace_argument(parser)


def split_tasks(cfg: ExperimentConfig, case: Case, family: TaskFamily[Any], split: str) -> list[Task]:
    """The tasks of ``split`` as ``flash reproduce`` adapts to them: for the test split, its first
    ``adaptation.max_test_tasks`` (all when 0) and then the tasks replaying ``tasks.test_traces`` (another split has
    none of those, which is warned of when the config names traces)."""
    from flash_rl.pipeline import test_tasks

    if split == "test":
        return test_tasks(cfg, case, family)
    if cfg.tasks.test_traces:
        warn(f"config key tasks.test_traces names {len(cfg.tasks.test_traces)} trace(s), whose tasks join the test "
             f"split: --split {split} leaves them out")
    return list(family.split(split))


def pick_task(tasks: list[Task], split: str, key: str) -> Task:
    """The task of ``tasks`` (those of ``split``) that ``key`` names: an index when all digits, else a task name (a
    ConfigError if none)."""
    if key.isascii() and key.isdigit():   # (str.isdigit also takes "²", which int() refuses, and other scripts' digits)
        if int(key) >= len(tasks):
            raise ConfigError(f"--task {key}: the {split} split has {len(tasks)} tasks ({[t.name for t in tasks]})")
        return tasks[int(key)]
    named = [t for t in tasks if t.name == key]
    if not named:
        raise ConfigError(f"--task {key!r}: no such task in the {split} split ({[t.name for t in tasks]})")
    return named[0]


def load_model(path: Path, env_id: str, env_kwargs: dict[str, Any]) -> Flash | MAML:
    """The saved agent at ``path``, which must have been trained on the config's env: ``env_id`` with
    ``env_kwargs`` (or kwargs that make the same env, see :func:`flash_rl.cases.effective_env_kwargs`). A MAML
    checkpoint of a run's meta-training (``models/maml/ckpt``) without the run's ``DONE`` is warned of: the
    meta-training was stopped, or is still going."""
    from flash_rl.cases import effective_env_kwargs
    from flash_rl.flash import Flash
    from flash_rl.maml import MAML

    if (path / "maml.pt").exists():
        maml = MAML.load(path)
        if path.name == "ckpt" and path.parent.parent.name == "models" and not (path.parent / "DONE").exists():
            warn(f"--model {path} is the checkpoint of a meta-training that has not finished (no "
                 f"{path.parent / 'DONE'}): its model after {maml.iteration} iteration(s) is used")
        model: Flash | MAML = maml
    elif (path / "flash.json").exists():
        model = Flash.load(path)
    elif not path.is_dir():
        raise ConfigError(f"--model {path}: no such folder; give the folder of a saved agent (e.g. "
                          "runs/autoscaling/meta-train-flash/models/flash/final)")
    elif (path / "models").is_dir():   # a run folder: its agents are further down
        agents = sorted(str(f.parent) for name in ("flash.json", "maml.pt") for f in path.glob(f"models/*/*/{name}"))
        raise ConfigError(f"--model {path} is a run folder; give one of its saved agents "
                          f"({', '.join(agents) or 'it holds none yet'})")
    else:
        raise ConfigError(f"--model {path}: neither a saved Flash/TransferLearning agent (flash.json) nor a MAML "
                          "checkpoint (maml.pt)")
    if model.env_id != env_id:
        raise ConfigError(f"--model {path} was trained on {model.env_id}, but the config runs {env_id}; pass the "
                          "--case (or --config) the model was trained with")
    trained, wanted = effective_env_kwargs(env_id, model.env_kwargs), effective_env_kwargs(env_id, env_kwargs)
    if trained != wanted:
        differ = sorted(k for k in {*trained, *wanted} if trained.get(k) != wanted.get(k))
        raise ConfigError(f"--model {path} was trained with env.kwargs {model.env_kwargs}, but the config has "
                          f"{env_kwargs} (differing: {differ}); pass the config (and --set) the model was trained "
                          "with, so that it and the heuristics run the same env")
    return model


def check_held_out(model: Flash | MAML, tasks: list[Task], split: str, path: str) -> None:
    """Refuse tasks of the test ``split`` that ``model`` (loaded from ``path``) was meta-trained on, by content: the
    config's family can differ from the training run's (:mod:`flash_rl.trained_tasks`). Warn when the model records no
    training tasks, so that none can be checked."""
    from flash_rl.trained_tasks import TRAINED_ON_FILE, trained_among

    if split != "test":
        return
    if model.trained_on is None:
        warn(f"--model {path} records no training tasks (no {TRAINED_ON_FILE}: it was saved by an earlier version of "
             "flash), so its test tasks cannot be checked as held out")
        return
    trained = [task.name for task in trained_among(model.trained_on, tasks)]
    if trained:
        raise ConfigError(f"--model {path} was meta-trained on {len(trained)} task(s) of the config's test split "
                          f"({', '.join(trained[:5])}{', ...' if len(trained) > 5 else ''}): they are not held out; "
                          "pass the tasks settings (tasks.n_train, tasks.n_test, tasks.seed, tasks.family_file) the "
                          "model was trained with")


def warn_of_unused_adapt_settings(model: Flash | MAML, cfg: ExperimentConfig, path: str) -> None:
    """A saved agent fine-tunes with the settings saved with it; warn when the config's differ, since a ``--set`` of
    them changes nothing here: for Flash and transfer learning the kwargs fine-tuning passes to the algorithm (the
    ``agent_kwargs``, then the ``adapt_kwargs`` over them: ``flash.`` or ``transfer.``), for MAML the ``maml.`` ones of
    :attr:`~flash_rl.maml.MAML.ADAPT_SETTINGS`."""
    from flash_rl.agent_settings import algorithm
    from flash_rl.flash import Flash, TransferLearning

    if isinstance(model, Flash):
        section = "transfer" if isinstance(model, TransferLearning) else "flash"
        agent = getattr(cfg, section)
        saved, configured = ({**a.agent_kwargs, **a.adapt_kwargs} for a in (model, agent))
        if algorithm(agent.algo) is not model.agent_cls:   # then any kwarg may differ: name the algorithms instead
            warn(f"--model {path} is a {model.agent_cls.__name__} agent and fine-tunes as one, with the kwargs saved "
                 f"with it; the config's {section}.algo ({agent.algo}) and its kwargs are not used")
            return

        unset = object()
        differ = sorted(k for k in saved.keys() | configured.keys() if saved.get(k, unset) != configured.get(k, unset))
        shown = [{k: repr(v) for k, v in kwargs.items()} for kwargs in (saved, configured)]
        pairs = [f"{k} ({shown[0].get(k, 'unset')} saved, {shown[1].get(k, 'unset')} configured)" for k in differ]
        what = (f"kwargs saved with it (agent_kwargs, then adapt_kwargs over them); the config's "
                f"{section}.agent_kwargs and {section}.adapt_kwargs, which differ in {', '.join(pairs)},")
    else:
        saved = {k: model.hparams[k] for k in model.ADAPT_SETTINGS}
        configured = {k: getattr(cfg.maml, k) for k in model.ADAPT_SETTINGS}
        differ = [k for k in model.ADAPT_SETTINGS if saved[k] != configured[k]]
        what = (f"MAML settings saved with it, {', '.join(f'{k}={saved[k]!r}' for k in differ)}; the config's "
                f"{', '.join(f'maml.{k}={configured[k]!r}' for k in differ)}")
    if differ:
        warn(f"--model {path} fine-tunes with the {what} are not used")


def run(args: argparse.Namespace) -> int:
    from flash_rl.cases import get_case

    try:
        cfg = config_from_args(args, test_trace_overrides(args), methods=[])   # the model's own method acts: load_model
        check_json_output(args, cfg)
        if cfg.adaptation.eval_seed + args.seed > MAX_SEED:   # before any work: it evaluates with their sum
            raise ConfigError(f"--seed {args.seed}: the evaluation episodes would use adaptation.eval_seed + seed = "
                              f"{cfg.adaptation.eval_seed} + {args.seed}, above 2**32 - 1 = {MAX_SEED}")
        case = get_case(cfg.case)
        task = pick_task(split_tasks(cfg, case, case.build_family(cfg), args.split), args.split, args.task)
        model = load_model(Path(args.model), cfg.env.id, cfg.env.kwargs)
        check_held_out(model, [task], args.split, args.model)
        warn_of_unused_adapt_settings(model, cfg, args.model)
        episodes = cfg.adaptation.budget if args.episodes is None else args.episodes
        curve = model.adapt(task, episodes, eval_every=cfg.adaptation.eval_every,
                            eval_seed=cfg.adaptation.eval_seed + args.seed, seed=args.seed,
                            on_eval=lambda e, v: print(f"episodes {e:3d}  return {v:8.3f}", flush=True))
    except BrokenPipeError:   # the curve's reader left (flash adapt | head): flash.cli ends quietly
        raise
    except (OSError, ValueError) as err:   # a bad config, family file or saved agent (ConfigError is a ValueError)
        return fail(err)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"task": task.name, "curve": curve}, indent=1))
    return 0
