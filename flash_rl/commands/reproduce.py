"""``flash reproduce``: the whole adaptation study of a case, from references to the results table.

Examples::

    flash reproduce --case autoscaling --quick                  # < 10 min on 2 cores
    flash reproduce --case autoscaling                           # the committed results/autoscaling (< 60 min)
    flash reproduce --case autoscaling --resume                  # continue a killed run
    flash reproduce --case autoscaling --jobs 1                  # all in one process (same results, slower)
    flash reproduce --case autoscaling --quick --test-trace my_trace.csv --set tasks.trace_value_column=rate
    flash reproduce --render results/autoscaling                 # redraw plots, recompute speedups from its files

Outputs in ``--out`` (default ``results/<case>``, ``results/<case>/quick`` with ``--quick``): ``summary.json``,
``results.md``, ``curves.csv``, ``episodes_to_adapt.csv``, ``references.csv``, two plots and ``config.yaml``.
Checkpoints, TensorBoard logs and raw curves go to ``--run-dir`` (default ``runs/reproduce/<case>[-quick]``).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from pathlib import Path

from flash_envs.cli_args import (MAX_DEFAULT_JOBS, UsageError, check_files_in, default_jobs, int_at_least,
                                 output_dir)
from flash_envs.markdown import ci_brackets
from flash_rl.commands._common import (add_config_arguments, add_test_trace_argument, check_outputs_spare_inputs,
                                       command_line, config_from_args, fail, test_trace_overrides)
from flash_rl.config import ConfigError
from flash_rl.run_lock import FolderInUse, hold_folders


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "reproduce/<case>, or reproduce/<case>-quick with --quick")
    parser.add_argument("--seeds", type=int_at_least(1),
                        help="adaptation seeds per task (sets adaptation.seeds; a --set of it wins)")
    parser.add_argument("--out", type=output_dir, help="output directory (default: results/<case>[/quick])")
    parser.add_argument("--jobs", type=int_at_least(1),   # no default value, so that --render sees it was given
                        help="worker processes (about 0.4 GB each) for the meta-trainings, references and adaptation "
                             "runs, one torch thread each; the results do not depend on it (default: the usable CPUs "
                             f"up to {MAX_DEFAULT_JOBS}, here {default_jobs()})")
    add_test_trace_argument(parser)
    parser.add_argument("--render", metavar="DIR",
                        help="only redraw DIR's two plots and recompute its speedup, threshold-sensitivity and "
                             "sustained-success tables (summary.json, results.md) in place, from the CSVs, "
                             "summary.json and config.yaml an earlier run wrote there (e.g. after a change of the "
                             "plots or statistics); trains and runs nothing, and takes no other option")


#: The options of a run (argument name -> option), which ``--render`` does not take. None has a default value other
#: than None, False or [], so one given (whatever its value) is seen.
RUN_OPTIONS = {"case": "--case", "config": "--config", "quick": "--quick", "overrides": "--set", "run_dir": "--run-dir",
               "resume": "--resume", "seeds": "--seeds", "out": "--out", "jobs": "--jobs", "test_trace": "--test-trace"}


def run(args: argparse.Namespace) -> int:
    if args.render is not None:
        from flash_rl.report import render

        if not args.render:   # (an empty shell variable, say): "" was taken as no --render, and a whole run began
            return fail("--render needs the folder of an earlier run's results, got an empty string")

        given = [option for name, option in RUN_OPTIONS.items() if getattr(args, name) not in (None, False, [])]
        if given:
            return fail(f"--render redraws the files in {args.render} and runs nothing; drop {', '.join(given)}")
        folder = Path(args.render)
        writable = folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)   # (render says why, if it is not)
        try:   # not while a reproduce writes its report there, nor another render
            with hold_folders({folder: "--render"}) if writable else nullcontext():
                render(folder)
        except (UsageError, FolderInUse) as err:   # a report file that cannot be written (it names --render and the
            return fail(err)                          # file), or the folder in use (before: it is a ValueError)
        except ValueError as err:   # a damaged file (text where a number goes, a config that does not load, ...)
            return fail(f"{args.render}: cannot re-render: {err}")
        return 0
    from flash_rl.cases import get_case
    from flash_rl.pipeline import RUN_FILES, reproduce, test_tasks
    from flash_rl.report import REPORT_FILES

    extra = test_trace_overrides(args)
    if args.seeds is not None:
        extra.append(f"adaptation.seeds={args.seeds}")
    try:
        cfg = config_from_args(args, extra)
        case = get_case(cfg.case)
        test_tasks(cfg, case, case.build_family(cfg))  # bad task files / traces fail here, before any work
        # the default folders are checked as --out and --run-dir are when given: before any work
        out = args.out or output_dir(str(Path("results") / cfg.case / ("quick" if args.quick else "")))
        run_dir = args.run_dir or output_dir(str(Path(cfg.run.dir) / "reproduce" /
                                                 (cfg.case + ("-quick" if args.quick else ""))))
        check_files_in(out, REPORT_FILES)
        check_outputs_spare_inputs({**{out / name: "--out" for name in REPORT_FILES},
                                    **{run_dir / name: "--run-dir" for name in RUN_FILES}}, args, cfg)
    except (OSError, ValueError, argparse.ArgumentTypeError) as err:   # a bad config, family file, trace or folder
        return fail(err)
    try:   # a folder in use, a --resume under other settings, or damaged files, are refused before any work
        with hold_folders({run_dir: "--run-dir", out: "--out"}):   # until the report is written
            summary = reproduce(cfg, out, run_dir, resume=args.resume, quick=args.quick, command=command_line(),
                                jobs=args.jobs or default_jobs())
    except ConfigError as err:
        return fail(err)
    except KeyboardInterrupt:   # Ctrl-C: the worker processes are stopped already
        print(f"flash reproduce: interrupted; {run_dir} keeps the checkpoints, finished models and adaptation runs so "
              "far: run the same command with --resume to continue", file=sys.stderr)
        return 130
    print((out / "results.md").read_text())
    flash = summary["speedup"].get("transfer/flash")
    if flash:
        print(f"speedup vs transfer learning: {flash['ratio_of_means']:.2f}x {ci_brackets(flash['ci'], 2)}")
    return 0
