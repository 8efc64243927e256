"""The ``flash`` command line. Each sub-command lives in its own module, imported only when it runs.

A command module defines ``add_arguments(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace) -> int``. Bad input ends a command with exit status 2 and no traceback:
- a value out of range (the argument types of :mod:`flash_envs.cli_args`), or arguments that do not go together
  (:class:`flash_envs.cli_args.UsageError`): argparse's usage error;
- a missing file, a data file off its schema, or a file that cannot be read or written: a one-line
  ``flash: error: ...``. Output paths are checked before any work (:func:`flash_envs.cli_args.output_file`).
Ctrl-C stops a command and its worker processes and ends it with exit status 130 and one line. A reader of the output
that goes away early (``flash power-fit --json | head -c 10``) ends it quietly: with status 141 as for SIGPIPE when a
write fails because the reader has gone, with 0 when none does (the rest fitted in the pipe, or the reader took it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings
from importlib.metadata import version

from flash_rl.warning_lines import OneLineWarnings

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("flash_envs.demo", "run the autoscaling env under the heuristic baselines and a random policy"),
    "bench": ("flash_envs.bench", "environment steps per second against Gymnasium's CartPole-v1"),
    "validate-fidelity": ("flash_envs.sim.validation", "compare the fast and the per-request simulators"),
    "task-diversity": ("flash_envs.baselines.diversity",
                       "per-task best vs best-for-all of fixed HPA targets and static configurations"),
    "config-eval": ("flash_rl.fewshot.cli",
                    "few-shot runtime/cost prediction on held-out workloads (FLASH vs baselines)"),
    "power-fit": ("flash_envs.power_fit",
                  "fit the power model to every server of a SPECpower-schema CSV (MAPE report)"),
    "power-governors": ("flash_envs.baselines.power_report", "Linux cpufreq governors on every power-management task"),
    "meta-train": ("flash_rl.commands.meta_train", "meta-train FLASH (or pretrain transfer learning / MAML) on a case"),
    "adapt": ("flash_rl.commands.adapt", "fine-tune a saved agent on a held-out task and print its adaptation curve"),
    "evaluate": ("flash_rl.commands.evaluate", "zero-shot returns of a saved agent and the heuristics on a split"),
    "reproduce": ("flash_rl.commands.reproduce", "the whole adaptation study of a case: references to results table"),
    "compare-seeds": ("flash_rl.across_seeds",
                      "speedups of reproductions that differ only in their meta-training seed, pooled"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="flash", description="FLASH: fast adaptation of cloud-management agents")
    parser.add_argument("--version", action="version", version=f"flash {version('flash-cloud')}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        parser.parse_args(argv if argv else ["--help"])
        parser.error(f"unknown command {command!r}")
    previous_format, previous_show = warnings.formatwarning, warnings.showwarning
    one_line = OneLineWarnings(command, previous_format, previous_show)
    warnings.formatwarning, warnings.showwarning = one_line, one_line.show
    try:
        return _run(command, argv)
    except KeyboardInterrupt:   # Ctrl-C, also while the command loads: worker pools are already stopped
        print(f"flash {command}: interrupted", file=sys.stderr)   # (flash_rl.workers); no traceback
        return 130
    except BrokenPipeError:   # the reader of the output stopped (flash demo | head -1): nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error as Python flushes at exit
        return 141   # as a shell reports a command ended by SIGPIPE
    finally:
        warnings.formatwarning, warnings.showwarning = previous_format, previous_show


def _run(command: str, argv: list[str]) -> int:
    """Load ``command``'s module, parse its arguments and run it; bad input ends in a usage error or one line."""
    try:
        module = importlib.import_module(COMMANDS[command][0])
    except ModuleNotFoundError as exc:
        return _needs_extra(command, exc)
    from flash_envs.cli_args import UsageError  # every command imports flash_envs anyway
    from flash_envs.data import DataFormatError
    command_parser = argparse.ArgumentParser(prog=f"flash {command}", description=COMMANDS[command][1])
    module.add_arguments(command_parser)
    index = argv.index(command)
    args = command_parser.parse_args(argv[:index] + argv[index + 1:])
    try:
        return int(module.run(args) or 0)
    except ModuleNotFoundError as exc:
        return _needs_extra(command, exc)
    except UsageError as exc:
        command_parser.error(str(exc))
    except BrokenPipeError:   # an OSError, but no bad input: main ends quietly
        raise
    except (OSError, DataFormatError) as exc:  # bad input or a file that cannot be written: the message names it
        from flash_rl.commands._common import fail

        return fail(exc)


def _needs_extra(command: str, exc: ModuleNotFoundError) -> int:
    """A command that needs a package of an optional extra (``[rl]``: torch, stable-baselines3, ...) that is not
    installed: say which extra to install, in one line; any other missing module is a bug, raised as it is."""
    from importlib.metadata import requires

    module = (exc.name or "").split(".")[0]
    for requirement in requires("flash-cloud") or []:
        name, _, marker = requirement.partition(";")
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if extra and re.split(r"[\s<>=!~\[(]", name.strip())[0].lower().replace("-", "_") == module.lower():
            print(f"flash {command}: needs {module}, from the [{extra.group(1)}] extra: "
                  f"pip install 'flash-cloud[{extra.group(1)}]' (or -e '.[{extra.group(1)}]' in a checkout)",
                  file=sys.stderr)
            return 2
    raise exc


if __name__ == "__main__":
    raise SystemExit(main())
