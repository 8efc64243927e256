"""Arguments shared by the flash_rl commands: config file, case, dotted overrides, run directory."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import yaml

from flash_envs.cli_args import output_dir
from flash_envs.tasks import SPLITS
from flash_envs.yaml_numbers import dump_yaml, parse_yaml
from flash_rl.config import ConfigError, ExperimentConfig, load_config


DEFAULT_CASE = "autoscaling"


def add_config_arguments(parser: argparse.ArgumentParser, run_dir_default: str | None = None) -> None:
    """Add ``--case``, ``--config``, ``--quick`` and ``--set`` to ``parser``; for a command that trains, given the
    default of its run directory (``run_dir_default``, shown in the help), also ``--run-dir`` and ``--resume``."""
    parser.add_argument("--case", help=f"case study (default: {DEFAULT_CASE}, or the --config file's case)")
    parser.add_argument("--config", help="YAML config (default: the case's file in flash_rl/configs/); its case: "
                                         "key names the case")
    parser.add_argument("--quick", action="store_true",
                        help="the case's quick config (a smaller, faster run); with --config, only the default "
                             "output and run folders take the -quick name")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override any config field, e.g. --set flash.timesteps=50000 adaptation.seeds=3 "
                             "(may be repeated; later values win)")
    if run_dir_default is None:
        return
    parser.add_argument("--run-dir", type=output_dir,
                        help=f"where checkpoints, TensorBoard logs and the effective config go (default: "
                             f"{run_dir_default}, under the config's run.dir)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in the run directory")


def add_test_trace_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--test-trace CSV [CSV ...]`` (sets ``tasks.test_traces``: held-out tasks replaying the traces)."""
    parser.add_argument("--test-trace", nargs="+", default=[], metavar="CSV",
                        help="add held-out tasks replaying these CSV traces with the test split's applications, in "
                             "place of config key tasks.test_traces (read as the config's tasks.trace_* keys say: "
                             "trace_time_column, trace_value_column, trace_value_kind, trace_time_unit_s, "
                             "trace_time_scale, trace_bin_s, trace_gaps, trace_time_round_s)")


def test_trace_overrides(args: argparse.Namespace) -> list[str]:
    """The config override that ``--test-trace`` stands for (none without it); a :class:`ConfigError` with another
    ``--split`` than test, which the traces' tasks are not in."""
    if not args.test_trace:
        return []
    if getattr(args, "split", "test") != "test":   # (evaluate and adapt take --split; the tasks were left out)
        raise ConfigError(f"--test-trace adds held-out tasks to the test split, not to --split {args.split}: drop "
                          "one of them")
    # JSON is YAML (repr() is not: it doubled a Windows path's backslashes); ensure_ascii=False, since YAML reads the
    # \ud83d\ude00 that JSON escapes a character beyond the BMP as (an emoji, say) as two lone surrogates
    return ["tasks.test_traces=" + json.dumps([str(p) for p in args.test_trace], ensure_ascii=False)]


def config_from_args(args: argparse.Namespace, extra: list[str] | None = None,
                     methods: list[str] | None = None) -> ExperimentConfig:
    """The config of ``--config`` (default: the case's file, quick or full) with the ``extra`` overrides applied
    before the ``--set`` ones, validated for ``methods`` (default: ``adaptation.methods``; see
    :func:`~flash_rl.config.validate`). An unknown case, or a ``--case`` that is not the config's, is a
    :class:`ConfigError`."""
    from flash_rl.cases import get_case

    try:
        case = get_case(args.case or DEFAULT_CASE)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if args.quick and not args.config and not case.quick_config:   # the full run, in folders named quick
        raise ConfigError(f"--quick: case {case.name!r} has no quick config (its Case sets no quick_config); drop "
                          f"--quick, or give a smaller config with --config")
    path = Path(args.config) if args.config else case.config_path(args.quick)
    cfg = load_config(path, list(extra or []) + list(args.overrides), methods=methods)
    if args.case and cfg.case != args.case:
        raise ConfigError(f"--case {args.case}, but the config ({path} and --set) is for case {cfg.case!r}; drop "
                          f"--case, or give a config of case {args.case}")
    return cfg


def check_outputs_spare_inputs(outputs: dict[Path, str], args: argparse.Namespace, cfg: ExperimentConfig) -> None:
    """A :class:`ConfigError` when a file the command writes (``outputs``: path -> the option that puts it there) is
    one it reads: the ``--config`` file, ``tasks.family_file``, a trace file that one of its tasks replays
    (:func:`family_traces`) or a test trace (``--test-trace`` or ``tasks.test_traces``). Writing it would destroy the
    input, and a ``--resume`` would read the output instead. A ``config.yaml`` that already holds the effective config
    (a run's own, given back as ``--config``) is allowed: it is rewritten as it is."""
    family = cfg.tasks.family_file
    inputs = {Path(path).resolve(): name
              for name, path in [("--config", args.config), ("tasks.family_file", family),
                                 *(("tasks.family_file trace", trace) for trace in family_traces(family)),
                                 *(("test trace", trace) for trace in cfg.tasks.test_traces)] if path}
    for out, option in outputs.items():
        source = inputs.get(out.resolve())
        if source and not (out.name == "config.yaml" and out.read_text() == dump_yaml(cfg.to_dict())):
            raise ConfigError(f"{option} would overwrite {out}, the {source} file this command reads; write it "
                              "elsewhere")


def family_traces(family_file: str) -> list[str]:
    """The CSV files that the trace workloads (``kind: trace`` with a ``path``) of the tasks in the task-family YAML
    ``family_file`` replay, as written there (a relative path is read from the working directory, as the workload
    reads it). None without a family file, or for one that is no such YAML: loading the family says what is wrong."""
    if not family_file:
        return []
    try:
        family = parse_yaml(Path(family_file).read_text(), fast=True)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    splits = [family.get(split) for split in SPLITS] if isinstance(family, dict) else []
    workloads = [task.get("workload") for split in splits if isinstance(split, list) for task in split
                 if isinstance(task, dict)]
    return [w["path"] for w in workloads
            if isinstance(w, dict) and w.get("kind") == "trace" and isinstance(w.get("path"), str)]


def check_json_output(args: argparse.Namespace, cfg: ExperimentConfig) -> None:
    """:func:`check_outputs_spare_inputs` for ``--json`` of ``adapt`` and ``evaluate``, which also may not write into
    ``--model`` (the saved agent, which adapting leaves unchanged)."""
    if not args.json:
        return
    if Path(args.model).resolve() in Path(args.json).resolve().parents:
        raise ConfigError(f"--json {args.json} is inside --model {args.model}: it would overwrite the saved agent's "
                          "files; write it elsewhere")
    check_outputs_spare_inputs({Path(args.json): "--json"}, args, cfg)


def command_line() -> str:
    """This process's command line as a shell-quoted ``flash ...`` string (for records of how a run was made)."""
    return "flash " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def fail(err: Exception | str) -> int:
    """Print ``err`` as a ``flash: error:`` line on stderr and return exit status 2."""
    print(f"flash: error: {err}", file=sys.stderr)
    return 2
