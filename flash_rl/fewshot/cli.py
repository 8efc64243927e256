"""``flash config-eval``: few-shot runtime/cost prediction and configuration choice on held-out workloads.

Examples::

    flash config-eval --train train.csv --test test.csv --shots 2 --json   # IBM schema: train on one, test on other
    flash config-eval --dataset ibm                  # leave-workloads-out CV on the shared IBM multi-cloud CSV
    flash config-eval --dataset chunkfunc --out results/config/chunkfunc
    flash config-eval --dataset chunkfunc --hold-out function     # each function held out with all its inputs
    flash config-eval --dataset ibm --hold-out algorithm          # each algorithm held out with all its datasets
    flash config-eval --dataset simulated --out results/config/simulated
    flash config-eval --render results/config/ibm    # re-summarise summary.json's per-app values, no training
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from flash_envs.cli_args import (MAX_DEFAULT_JOBS, UsageError, check_files_in, default_jobs, fraction,
                                  int_at_least, json_text, output_dir)
from flash_envs.data import DataFormatError, csv_rows, dataset_path
from flash_envs.data import config_measurements
from flash_envs.data.config_measurements import (CHUNKFUNC_COLUMNS, CHUNKFUNC_PLATFORMS, IBM_COLUMNS,
                                                 ConfigMeasurements, load_chunkfunc, load_ibm_multicloud,
                                                 simulated_measurements)
from flash_envs.fields import is_real_number
from flash_envs.markdown import percent
from flash_rl.fewshot.report import (METHODS, METRICS, markdown_table, paired_differences, per_group_differences,
                                     plot_summary, summarise)
from flash_rl.fewshot.splits import Split, app_folds, group_folds
from flash_rl.fewshot.train_config import TrainConfig

DEFAULT_FILES = {"ibm": ("ibm_multicloud", "multi-cloud-configuration.csv"),
                 "chunkfunc": ("chunkfunc_faas_profiles", "chunkfunc_profiles.csv")}
#: ``--cost`` choices (also the report's ``cost`` entry; reports written before it have none: ``predicted``) and
#: how a table's title says each.
COST_TITLES = {"priced": "cost = price list x predicted runtime", "predicted": "cost predicted by each method"}
#: Report key of each reference method's paired differences with every other method.
DIFFERENCE_KEYS = {"flash_minus": "FLASH", "flash_fine_tuned_minus": "FLASH + fine-tuning"}
DEFAULT_PLATFORM, DEFAULT_FUNCTIONS, DEFAULT_FOLDS = "aws_lambda", 300, 4


def _name_part(app: str, separator: str, n_parts: int, part: int) -> str:
    """Part ``part`` of ``app`` split at ``separator``, which must give exactly ``n_parts`` non-empty parts (a
    ValueError otherwise: with more, the group would be read from the wrong part, e.g. "card-kmeans" of
    "credit-card-kmeans", and an algorithm would be trained on while held out). Parts are read without surrounding
    whitespace, as app names are: "creditcard- kmeans" holds out with "buzz-kmeans"."""
    parts = [name.strip() for name in app.split(separator)]
    if len(parts) != n_parts or not all(parts):
        raise ValueError(f"{app!r} does not split at {separator!r} into {n_parts} non-empty parts")
    return parts[part]


#: ``--hold-out`` groups: the dataset each applies to, an app's group (a ValueError if the app's name does not give
#: one), how a report's title says it, and the app names the group is read from.
HOLD_OUT_GROUPS = {
    "function": ("chunkfunc", lambda app: _name_part(app, "/", 3, 1), "each function held out with all its inputs",
                 "platform/function/input"),
    "algorithm": ("ibm", lambda app: _name_part(app, "-", 2, 1), "each algorithm held out with all its datasets",
                  "dataset-algorithm with exactly one '-', e.g. buzz-kmeans"),
}
#: Fewest training workloads every method can be fitted on (matrix completion learns how workloads differ: their
#: factors' spread).
MIN_TRAIN_APPS = 2
#: The options that apply to ``--render`` (argument names): the others train or evaluate.
RENDER_OPTIONS = ("render", "json", "no_progress")
#: What a report of ``--out`` holds that ``--render`` reads.
REPORT_KEYS = ("dataset", "hold_out", "train", "test", "splits", "seeds", "train_config", "per_app")


class _Typed(argparse.Action):
    """argparse's ``store`` action that also adds the option's name to ``args.typed_options``, so that ``--render``
    can refuse every option of a run that was given, whatever its value (one equal to the default included)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.typed_options = (*getattr(namespace, "typed_options", ()), self.dest)


class _TypedFlag(_Typed):
    """argparse's ``store_true`` that also records the option as given (:class:`_Typed`)."""

    def __init__(self, option_strings: list[str], dest: str, default: bool = False, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        super().__call__(parser, namespace, True, option_string)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(typed_options=())   # the options given on the command line, whatever their values

    def add(*flags: str, action: type[argparse.Action] = _Typed, **kwargs: Any) -> None:
        parser.add_argument(*flags, action=action, **kwargs)

    add("--dataset", choices=("ibm", "chunkfunc", "simulated"), default="ibm",
        help="schema of --train/--test, or the built-in simulated serverless functions (default: ibm)")
    add("--train", help="CSV whose workloads train the models (default: the shared dataset file)")
    add("--test",
        help="CSV whose workloads are evaluated; without it, leave-workloads-out CV on --train")
    add("--platform", choices=CHUNKFUNC_PLATFORMS,
        help=f"chunkfunc only: the platform whose functions are used (default: {DEFAULT_PLATFORM})")
    add("--functions", type=int_at_least(3),
        help="simulated only: number of functions; the last third are held out "
             f"(default: {DEFAULT_FUNCTIONS})")
    add("--train-functions", type=int_at_least(2),
        help="simulated only: train on the first N functions (default: all not held out)")
    add("--shots", type=int_at_least(1), nargs="+", default=[1, 2, 5],
        help="numbers of shots K (default: 1 2 5)")
    add("--seeds", type=int_at_least(1), default=3, help="training seeds 0..N-1 (default: 3)")
    add("--folds", type=int_at_least(2),
        help=f"ibm or chunkfunc without --test or a --hold-out group: cross-validation folds "
             f"(default: {DEFAULT_FOLDS})")
    add("--hold-out", choices=("workload", *HOLD_OUT_GROUPS), default="workload",
        help="'function' (chunkfunc) holds out each function with all its inputs, 'algorithm' (ibm) "
             "each algorithm with all its datasets, one fold per group, instead of --folds random "
             "groups of workloads (default: workload)")
    add("--draws", type=int_at_least(1), default=5,
        help="shot subsets per held-out app and seed (default: 5)")
    add("--steps", type=int_at_least(1), default=TrainConfig.steps,
        help=f"training steps per model (default: {TrainConfig.steps})")
    add("--val-fraction", type=fraction, default=TrainConfig.val_fraction,
        help="early stopping: share of the training apps (at least 2) kept for validation; 0 trains "
             "every model on all of them for --steps (default: 0)")
    add("--cost", choices=tuple(COST_TITLES), default="priced",
        help="each method's cost estimate: 'priced' applies the data's price list to the method's "
             "predicted runtime, as the data's own costs were computed (IBM: runtime x the "
             "configuration's rate; AWS Lambda and simulated: billed GB-seconds plus request fee); "
             "'predicted' takes the method's own cost output, as data without a price list (GCP) "
             "always does (default: priced)")
    add("--jobs", type=int_at_least(1), default=default_jobs(),
        help="worker processes (about 0.4 GB each, at most one per (K, seed, split) evaluation), one "
             "torch thread each; the numbers do not depend on it (default: the usable CPUs up to "
             f"{MAX_DEFAULT_JOBS}, here {default_jobs()})")
    add("--json", action=_TypedFlag, help="print the summary as JSON instead of a markdown table")
    add("--out", type=output_dir, help="folder to write table.md, summary.json and summary.png into")
    add("--no-progress", action=_TypedFlag, help="hide the progress bars")
    add("--diagnose", action=_TypedFlag,
        help="measure why the methods choose as they do, on the same predictions: spread and bias of "
             "their runtime errors within an app, rank correlations, error at the picked "
             "configuration (flash_rl/fewshot/diagnose.py); with --out, writes diagnosis.md and "
             "diagnosis.json instead of the table")
    add("--render", metavar="DIR",
        help="only recompute the summary and paired differences in DIR/summary.json from the per-app "
             "values an earlier run stored there, and rewrite DIR/table.md and DIR/summary.png (e.g. "
             "after a change of the table layout or a new derived metric); trains and evaluates "
             "nothing, so it takes no other option but --json and --no-progress")


def _load(dataset: str, path: str | Path, platform: str) -> ConfigMeasurements:
    """The file at ``path``, saying on stderr what its loader dropped and merged (and, for a file whose costs are no
    price list, where that shows): the loader's log."""
    try:
        with _loader_log_on_stderr():
            return load_ibm_multicloud(path) if dataset == "ibm" else load_chunkfunc(path, [platform])
    except DataFormatError as err:
        other = "chunkfunc" if dataset == "ibm" else "ibm"
        try:   # the header has every column of the other schema: say so
            next(csv_rows(path, {"ibm": IBM_COLUMNS, "chunkfunc": CHUNKFUNC_COLUMNS}[other]), None)
        except (DataFormatError, OSError):
            raise err from None
        raise type(err)(f"{err}: it has the columns of the {other} schema; give --dataset {other}") from None


@contextmanager
def _loader_log_on_stderr() -> Iterator[None]:
    logger = logging.getLogger(config_measurements.__name__)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("flash config-eval: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _reject_inapplicable_options(args: argparse.Namespace) -> None:
    """An option that the chosen data or split ignores is an error, not a silent no-op."""
    simulated, cross_validated = args.dataset == "simulated", not args.test and args.hold_out == "workload"
    applies = {"--platform": (args.platform, args.dataset == "chunkfunc", "--dataset chunkfunc"),
               "--functions": (args.functions, simulated, "--dataset simulated"),
               "--train-functions": (args.train_functions, simulated, "--dataset simulated"),
               "--folds": (args.folds, cross_validated and not simulated,
                           "--dataset ibm or chunkfunc without --test or --hold-out")}
    for option, (value, applicable, where) in applies.items():
        if value is not None and not applicable:
            raise UsageError(f"{option} applies to {where} only")
    if args.hold_out in HOLD_OUT_GROUPS:
        dataset = HOLD_OUT_GROUPS[args.hold_out][0]
        if args.dataset != dataset or args.test:
            raise UsageError(f"--hold-out {args.hold_out} applies to --dataset {dataset} without --test")


def _hold_out_groups(data: ConfigMeasurements, hold_out: str) -> dict[str, str]:
    """App -> its ``--hold-out`` group, checked to name one (:data:`HOLD_OUT_GROUPS`) and to give at least 2 groups."""
    _, group_of, _, naming = HOLD_OUT_GROUPS[hold_out]
    groups: dict[str, str] = {}
    for app in data.apps:
        try:
            groups[app] = group_of(app)
        except ValueError:
            raise DataFormatError(f"--hold-out {hold_out}: workload {app!r} of {data.source} does not name its "
                                  f"{hold_out} (expected {naming})") from None
    if len(names := sorted(set(groups.values()))) < 2:
        raise UsageError(f"--hold-out {hold_out}: {data.source} has {len(names)} {hold_out} ({', '.join(names)}); "
                         f"holding each out in turn needs at least 2")
    return groups


def _as_given(args: argparse.Namespace, dest: str, value: Any) -> str:
    """``--dest value`` for a message, followed by "(the default)" when the user did not give the option, so that the
    message does not put an option in their mouth."""
    return f"--{dest.replace('_', '-')} {value}" + ("" if dest in args.typed_options else " (the default)")


def _splits(args: argparse.Namespace) -> list[Split]:
    _reject_inapplicable_options(args)
    if args.dataset == "simulated":
        if args.train or args.test:
            raise UsageError("--train/--test take CSV files of the ibm or chunkfunc schema, not --dataset simulated")
        functions = args.functions or DEFAULT_FUNCTIONS
        data = simulated_measurements(functions)
        n_held_in = functions - functions // 3
        n_train = n_held_in if args.train_functions is None else args.train_functions
        if not 2 <= n_train <= n_held_in:
            raise UsageError(f"--train-functions must lie in [2, {n_held_in}] with --functions {functions}")
        return [Split("held-out functions", data.select_apps(data.apps[:n_train]),
                      data.select_apps(data.apps[n_held_in:]))]
    platform = args.platform or DEFAULT_PLATFORM
    train_path = args.train or dataset_path(*DEFAULT_FILES[args.dataset])
    train = _load(args.dataset, train_path, platform)
    if args.hold_out in HOLD_OUT_GROUPS:   # chunkfunc apps are platform/function/input, IBM's dataset-algorithm
        groups = _hold_out_groups(train, args.hold_out)
        return group_folds(train, groups.__getitem__)
    if args.test:
        test = _load(args.dataset, args.test, platform)
        try:
            return [Split("train file -> test file", train, test)]
        except ValueError as err:   # the two files share workloads
            raise DataFormatError(f"--train {train_path} and --test {args.test}: {err}") from None
    n_apps = len(train.apps)
    if n_apps < MIN_TRAIN_APPS + 1:   # whatever --folds: some workload held out, MIN_TRAIN_APPS others to train on
        raise UsageError(f"{train.source} has {n_apps} workload{'s' * (n_apps != 1)}; cross-validation holds some out "
                         f"and trains on at least {MIN_TRAIN_APPS} others, so it needs at least {MIN_TRAIN_APPS + 1}")
    folds = args.folds or DEFAULT_FOLDS
    if folds > n_apps:
        raise UsageError(f"{_as_given(args, 'folds', folds)}: {train.source} has only {n_apps} workloads; give "
                         f"--folds {n_apps} or fewer")
    return app_folds(train, folds)


def run_command(args: argparse.Namespace) -> dict:
    """Evaluate as ``args`` say; returns the JSON-able report."""
    from flash_rl.fewshot import evaluate   # only training needs torch (2 s to import): --help and --render skip it
    from flash_rl.fewshot.episodes import EpisodeSampler
    from flash_rl.fewshot.models import early_stopping_apps
    from flash_rl.machine import describe_machine
    from flash_rl.torch_threads import use_one_torch_thread

    use_one_torch_thread()
    machine = describe_machine()   # now: the code this run loaded, not the checkout's state when it ends
    splits = _splits(args)
    if args.cost == "predicted":
        splits = [Split(s.name, replace(s.train, pricing=None), replace(s.test, pricing=None)) for s in splits]
    elif unpriced := sorted({s.test.source for s in splits if s.test.pricing is None}):
        print(f"flash config-eval: warning: {_as_given(args, 'cost', 'priced')}, but {', '.join(unpriced)} has no "
              f"price list (GCP, or costs that are not runtime x one rate per configuration); each method's own cost "
              f"prediction is scored", file=sys.stderr)
    _check_training_apps(splits)
    _warn_unseen_configs(splits)
    _check_shots(args, splits)
    ks = sorted(set(args.shots))
    try:
        for k, split in ((k, s) for k in ks for s in splits):
            early_stopping_apps(split.train, k, args.val_fraction)
    except ValueError as err:
        raise UsageError(f"--val-fraction: {err}") from None
    for k in ks:
        if untrained := sorted({a for s in splits for a in EpisodeSampler(s.train, k).skipped_apps}):
            print(f"flash config-eval: warning: K = {k}: {len(untrained)} training app(s) have fewer than K + 1 "
                  f"measured configurations; the neural methods do not train on them: {untrained}", file=sys.stderr)
    unscored = {k: [a for s in splits for a, n in zip(s.test.apps, s.test.measured.sum(axis=1)) if n < k + 1]
                for k in ks}
    n_test = sum(len(s.test.apps) for s in splits)
    for k, apps in unscored.items():
        if apps:
            print(f"flash config-eval: warning: K = {k}: {len(apps)} held-out app(s) have fewer than K + 1 measured "
                  f"configurations and are not scored: {apps}", file=sys.stderr)
        if n_test - len(apps) == 1:
            print(f"flash config-eval: warning: K = {k}: a single held-out app is scored; its values have no "
                  f"confidence interval (one app gives nothing to resample; null in the JSON)", file=sys.stderr)
    cfg = TrainConfig(steps=args.steps, val_fraction=args.val_fraction)
    scorer: evaluate.Scorer = evaluate.score
    if args.diagnose:
        from flash_rl.fewshot.diagnose import choice_diagnostics, diagnosis_summaries
        scorer = choice_diagnostics
    per_app = evaluate.run(splits, tuple(sorted(set(args.shots))), tuple(range(args.seeds)), cfg, args.draws,
                           progress=not args.no_progress, jobs=args.jobs, scorer=scorer, nan_aware=args.diagnose)
    first = splits[0]
    report = {
        "dataset": args.dataset, "hold_out": args.hold_out, "train": first.train.source, "test": first.test.source,
        "splits": [{"name": s.name, "train_apps": list(s.train.apps), "test_apps": list(s.test.apps)}
                   for s in splits],
        "counts": {"train": first.train.counts, "test": first.test.counts},
        "unscored_test_apps": {k: apps for k, apps in unscored.items() if apps},
        "cost": "priced" if all(s.test.pricing is not None for s in splits) else "predicted",
        "seeds": args.seeds, "draws": args.draws, "train_config": asdict(cfg), "machine": machine,
    }
    groups = held_out_groups(report)
    return report | (diagnosis_summaries(per_app, groups) if args.diagnose
                     else summaries(per_app, groups, related_groups(report))) | {
        "per_app": {k: {m: {a: v.tolist() for a, v in apps.items()} for m, apps in ms.items()}
                    for k, ms in per_app.items()}}


def _check_training_apps(splits: list[Split]) -> None:
    """Refuse, before any training, a split with fewer than :data:`MIN_TRAIN_APPS` training workloads."""
    for split in splits:
        if len(split.train.apps) < MIN_TRAIN_APPS:
            where = "" if len(splits) == 1 else f" (split '{split.name}')"
            raise UsageError(f"{len(split.train.apps)} training workload(s) in {split.train.source}{where}: "
                             f"{list(split.train.apps)}; every method needs at least {MIN_TRAIN_APPS} to train on")


def _check_shots(args: argparse.Namespace, splits: list[Split]) -> None:
    """Refuse, before any training, a K that some split cannot train on or that no held-out app can be scored at: K
    shots and one target need K + 1 measured configurations. A split whose held-out apps are all too sparse for a K
    is only skipped at that K (the warning of unscored apps names them)."""
    k = max(args.shots)
    most_train, where = min((int(s.train.measured.sum(axis=1).max()), s.name) for s in splits)
    most_test = max(int(s.test.measured.sum(axis=1).max()) for s in splits)
    if k < min(most_train, most_test):
        return
    if most_train <= k:
        problem = (f"the training apps{'' if len(splits) == 1 else f' of split {where!r}'} have at most {most_train} "
                   f"measured configuration{'s' * (most_train != 1)}")
    else:
        problem = f"no held-out app has more than {most_test} measured configuration{'s' * (most_test != 1)}"
    most = min(most_train, most_test)
    remedy = f"give --shots below {most}" if most > 1 else "no number of shots can be evaluated on these data"
    raise UsageError(f"{_as_given(args, 'shots', k)}: K shots and one target need K + 1 measured configurations, "
                     f"and {problem}; {remedy}")


def _warn_unseen_configs(splits: list[Split]) -> None:
    """Warn, per split, of the held-out apps' configurations that no training app measured (counted, with examples).

    The neural models know a configuration by its features, and nearest config uses only the held-out app's own
    shots, so they predict such configurations as they do the others; matrix completion knows configurations by name
    and predicts one it has not seen as its stand-in, the nearest one it has
    (:func:`~flash_rl.fewshot.matrix_completion.stand_in_configs`). So a partial overlap is said for matrix
    completion's sake, and no overlap at all for every learned method's."""
    from flash_rl.fewshot.matrix_completion import stand_in_configs

    for split in splits:
        stand_in, tested = stand_in_configs(split.train, split.test), np.flatnonzero(split.test.measured.any(axis=0))
        unseen = [j for j in tested if split.train.configs[stand_in[j]] != split.test.configs[j]]
        if not unseen:
            continue
        where = split.test.source if len(splits) == 1 else f"split '{split.name}' of {split.test.source}"
        n_cells, n_tested = int(split.test.measured[:, unseen].sum()), len(tested)
        examples = ", ".join(f"{split.test.configs[j]} -> {split.train.configs[stand_in[j]]}" for j in unseen[:3])
        counts = (f"{len(unseen)} of the {n_tested} configurations measured for held-out apps ({n_cells} of "
                  f"{int(split.test.measured.sum())} measurements) were measured for no training app")
        if len(unseen) < n_tested:
            consequence = ("matrix completion, which knows configurations by name, predicts each as its stand-in "
                           "after '->' (the nearest measured one in feature space); the other methods predict from "
                           "features or the app's own shots")
        else:
            consequence = ("no configuration is shared, so every learned method predicts only configurations it never "
                           "saw, the neural ones from features alone, matrix completion each as its stand-in after "
                           "'->' (the nearest measured one in feature space)")
        print(f"flash config-eval: warning: {where}: {counts}, e.g. {examples}{' ...' if len(unseen) > 3 else ''}: "
              f"{consequence}", file=sys.stderr)


def held_out_groups(report: dict) -> dict[str, str] | None:
    """App -> the split it was held out in, where apps are held out in groups (``--hold-out function`` or
    ``algorithm``), so that the CIs resample the groups whole; ``None`` where each app is its own unit."""
    if report["hold_out"] not in HOLD_OUT_GROUPS:
        return None
    return {app: split["name"] for split in report["splits"] for app in split["test_apps"]}


def related_groups(report: dict) -> tuple[str, dict[str, str]] | None:
    """Where apps are held out one by one (``--hold-out workload``) but their names say which function (chunk-func,
    whose loader names apps) or algorithm (the shared IBM file) each runs, as :data:`HOLD_OUT_GROUPS` reads them: that
    kind and app -> group, for FLASH's paired differences with CIs resampling the groups whole (apps of one function
    are not independent evidence about another). ``None`` where a name gives no group, or the held-out apps belong to
    fewer than 2."""
    kinds = [kind for kind, (dataset, *_) in HOLD_OUT_GROUPS.items() if dataset == report["dataset"]]
    if report["hold_out"] != "workload" or not kinds:
        return None
    if kinds[0] == "algorithm" and not report["train"] == report["test"] == f"ibm:{DEFAULT_FILES['ibm'][1]}":
        return None   # the shared file names workloads dataset-algorithm; another file's names are not guessed at
    group_of = HOLD_OUT_GROUPS[kinds[0]][1]
    try:
        groups = {app: group_of(app) for split in report["splits"] for app in split["test_apps"]}
    except ValueError:   # own files whose names do not follow the dataset's pattern
        return None
    return (kinds[0], groups) if len(set(groups.values())) >= 2 else None


def summaries(per_app: dict[int, dict[str, dict[str, np.ndarray]]], groups: dict[str, str] | None = None,
              related: tuple[str, dict[str, str]] | None = None) -> dict[str, dict]:
    """The report's ``summary`` and paired differences (:data:`DIFFERENCE_KEYS`), computed from the per-app values
    (CIs over whole ``groups`` if given); with ``related`` (:func:`related_groups`), also ``flash_minus_by_group``:
    FLASH's paired differences with CIs resampling those groups, and each group's mean differences."""
    out: dict[str, dict] = {"summary": summarise(per_app, groups=groups),
                            **{key: paired_differences(per_app, reference, groups=groups)
                               for key, reference in DIFFERENCE_KEYS.items()}}
    if related:
        kind, by = related
        out["flash_minus_by_group"] = {"group": kind, "differences": paired_differences(per_app, groups=by),
                                       "per_group": per_group_differences(per_app, by)}
    return out


def _count_range(counts: list[int]) -> str:
    return str(min(counts)) if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"


def report_title(report: dict) -> str:
    """The table's title: data, splits, training and held-out apps per split (and how many of those some K cannot
    score), seeds, how cost is estimated."""
    splits = report["splits"]
    n_train = _count_range([len(s["train_apps"]) for s in splits])
    n_test = _count_range([len(s["test_apps"]) for s in splits])
    whole = f", {HOLD_OUT_GROUPS[report['hold_out']][2]}" if report["hold_out"] in HOLD_OUT_GROUPS else ""
    val_fraction = report["train_config"]["val_fraction"]
    early_stop = f" ({percent(val_fraction)} of them kept for early stopping)" if val_fraction > 0 else ""
    unscored = "".join(f" ({len(apps)} not scored at K = {k}: fewer than K + 1 measured configurations)"
                       for k, apps in report.get("unscored_test_apps", {}).items())
    return (f"{report['dataset']}: {report['train']} -> {report['test']}; {len(splits)} split(s) of {n_train} "
            f"training{early_stop} and {n_test} held-out apps{unscored}{whole}; {report['seeds']} seed(s); "
            f"{COST_TITLES[report.get('cost', 'predicted')]}")


def _rescore_report(folder: str) -> dict:
    """The report a run with ``--out folder`` wrote, its summary and paired differences computed anew from its
    per-app values (so that a report written before a derived metric such as
    :data:`~flash_rl.fewshot.report.OVERSPEND` gets it)."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        if (Path(folder) / "diagnosis.json").is_file():
            raise FileNotFoundError(f"--render: {folder} holds a --diagnose run (diagnosis.json), which --render does "
                                    "not redraw: it has no summary.json, and its diagnosis.md is already final")
        raise FileNotFoundError(f"--render: {path} not found; it is written by a run with --out {folder}")
    try:
        report = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(f"--render: {path} is not valid JSON ({err})") from None
    _check_report(report, path)
    per_app, groups, related = _per_app_values(report["per_app"], path), held_out_groups(report), related_groups(report)
    placed = groups if groups is not None else related[1] if related else None   # the apps the CIs group
    unplaced = sorted({a for methods in per_app.values() for a in methods["FLASH"]} - set(placed or ()))
    if placed is not None and unplaced:
        raise DataFormatError(f"--render: {path}: per_app has apps that no split held out: {unplaced[:5]}")
    rest = {key: value for key, value in report.items() if key != "per_app"}   # per_app last, as a run writes it
    return rest | summaries(per_app, groups, related) | {"per_app": report["per_app"]}


def _check_report(report: Any, path: Path) -> None:   # any JSON value; checked here
    """Refuse (:class:`DataFormatError` naming ``path``) a ``summary.json`` that ``--out`` did not write."""
    missing = [key for key in REPORT_KEYS if key not in report] if isinstance(report, dict) else list(REPORT_KEYS)
    if missing:
        raise DataFormatError(f"--render: {path} is not a flash config-eval report (it lacks {', '.join(missing)}); "
                              f"--render takes the folder of a run with --out")
    splits, train_config = report["splits"], report["train_config"]
    if not (isinstance(splits, list) and splits and all(isinstance(s, dict) and {"name", "train_apps", "test_apps"}
                                                        <= set(s) for s in splits)):
        raise DataFormatError(f"--render: {path}: splits must be a list of {{name, train_apps, test_apps}}")
    if report["hold_out"] not in ("workload", *HOLD_OUT_GROUPS):
        raise DataFormatError(f"--render: {path}: unknown hold_out {report['hold_out']!r}")
    if report.get("cost", "predicted") not in COST_TITLES:
        raise DataFormatError(f"--render: {path}: unknown cost {report['cost']!r}; expected one of "
                              f"{', '.join(COST_TITLES)}")
    if not isinstance(train_config, dict) or not is_real_number(train_config.get("val_fraction")):
        raise DataFormatError(f"--render: {path}: train_config must give the val_fraction")


def _per_app_values(per_app: object, path: Path) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """A report's ``per_app`` (K -> method -> app -> metric values) as arrays, checked to hold every method's values
    for the same apps (:class:`DataFormatError` naming ``path`` otherwise)."""
    def fail(problem: str) -> DataFormatError:
        return DataFormatError(f"--render: {path}: per_app {problem}")

    if not isinstance(per_app, dict) or not per_app:
        raise fail("must map each K to the methods' per-app values")
    out: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for k, methods in per_app.items():
        if not k.isdigit() or not isinstance(methods, dict) or set(methods) != set(METHODS):
            raise fail(f"entry {k!r} must map K (a whole number) to the methods {list(METHODS)}")
        apps = methods["FLASH"]
        for method, values in methods.items():
            if not isinstance(values, dict) or not values or set(values) != set(apps):
                raise fail(f"K={k}, {method}: must map the same held-out apps as FLASH to their values")
            for app, row in values.items():
                if (not isinstance(row, list) or len(row) not in (len(METRICS) - 1, len(METRICS))
                        or not all(is_real_number(v) and math.isfinite(v) for v in row)):
                    raise fail(f"K={k}, {method}, {app}: expected {len(METRICS)} numbers ({', '.join(METRICS)}), "
                               f"each finite, got {row!r}")
        out[int(k)] = {m: {a: np.asarray(v) for a, v in values.items()} for m, values in methods.items()}
    n_metrics = {len(row) for methods in out.values() for values in methods.values() for row in values.values()}
    if len(n_metrics) > 1:
        raise fail(f"rows must all have the same number of metrics, got {sorted(n_metrics)}")
    return out


def _reject_options_with_render(args: argparse.Namespace) -> None:
    """``--render`` trains and evaluates nothing: an option other than :data:`RENDER_OPTIONS` that was given (even
    with its default value) is a usage error, not a silent no-op."""
    if args.out:
        raise UsageError("--render rewrites the files in its own folder; drop --out")
    if args.diagnose:
        raise UsageError("--diagnose trains and predicts anew; it cannot --render a folder")
    given = [f"--{dest.replace('_', '-')}" for dest in dict.fromkeys(args.typed_options) if dest not in RENDER_OPTIONS]
    if given:
        raise UsageError(f"--render only re-summarises the per-app values stored in {args.render}/summary.json; "
                         f"drop {', '.join(given)}")


def run(args: argparse.Namespace) -> int:
    if args.render:
        _reject_options_with_render(args)
    files: tuple[str, ...] = (("diagnosis.md", "diagnosis.json") if args.diagnose
                              else ("table.md", "summary.json", "summary.png"))
    out_dir = args.render or args.out
    if out_dir:
        check_files_in(Path(out_dir), files, "--render" if args.render else "--out")
    report = _rescore_report(args.render) if args.render else run_command(args)
    title = report_title(report)
    if args.diagnose:   # the same predictions, measured (diagnose.py) instead of scored
        from flash_rl.fewshot.diagnose import diagnosis_table

        table = diagnosis_table(report, title)
    else:
        table = markdown_table(report["summary"], title,
                               {reference: report[key] for key, reference in DIFFERENCE_KEYS.items()},
                               ci_unit=(f"the {len(report['splits'])} held-out {report['hold_out']}s"
                                        if held_out_groups(report) else ""), n_units=len(report["splits"]),
                               by_group=report.get("flash_minus_by_group"))
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / files[0]).write_text(table)
        (out / files[1]).write_text(json_text(report))
        if not args.diagnose:
            plot_summary(report["summary"], title, str(out / files[2]))
    print(json_text(report["summary"]) if args.json else table)
    return 0
