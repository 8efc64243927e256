"""``flash compare-seeds``: the speedups of reproductions that differ only in their meta-training seed, side by side.

One reproduction's confidence intervals are over its held-out tasks and adaptation seeds: they describe one
meta-trained agent per method. A user who meta-trains again gets another agent, so whether FLASH adapts faster is a
question over meta-training seeds as well. This command reads finished ``flash reproduce`` folders whose configs are
the same but for ``run.seed`` (and where they keep their files), and reports per method other than FLASH the ratio of
its mean episodes-to-adapt to FLASH's:

- per meta-training seed, with paired bootstrap CIs over runs and over whole tasks (for transfer learning's first
  passage these are the speedup of each folder's ``results.md``);
- across seeds, two ways: the ratio of the means of all seeds' runs, with a CI that resamples meta-training seeds and
  tasks at once (:func:`~flash_rl.stats.crossed_ratio_of_means_ci`), and the geometric mean of the seeds' ratios with
  a Student-t interval over seeds (:func:`~flash_rl.stats.geometric_mean_ci`);

for the first passage of the success threshold (the reported metric) and for sustained success
(:func:`~flash_rl.adaptation.episodes_to_sustained_adaptation`), both recomputed from each folder's curves and
references. ``--out DIR`` writes ``across_seeds.md``, ``across_seeds.json`` and ``across_seeds.png`` (a forest plot).

    flash compare-seeds results/autoscaling results/autoscaling/meta_seed_* --out results/autoscaling/across_seeds
"""

from __future__ import annotations

import argparse
import math
import shlex
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from flash_envs.cli_args import UsageError, check_files_in, emit, json_text, output_dir
from flash_envs.markdown import ci_brackets, md_table
from flash_rl.adaptation import episodes_to_adapt, episodes_to_sustained_adaptation
from flash_rl.commands._common import fail
from flash_rl.config import differing_settings, dotted_settings
from flash_rl.machine import machine_text, machine_without_commit
from flash_rl.report import LABELS, Reproduction, read_reproduction
from flash_rl.stats import (clustered_ratio_of_means_ci, crossed_ratio_of_means_ci, geometric_mean_ci, mean,
                             ratio_ci)

#: Config settings (glob patterns) that may differ between the folders compared: the seed, where each run keeps its
#: files, and the extra thresholds of its sensitivity table (not compared here).
FREE_SETTINGS = ("run.seed", "run.dir", "run.progress_bar", "run.checkpoint_interval", "references.cache",
                 "adaptation.extra_thresholds")
#: The metrics compared: name -> (what the report calls it, episodes-to-adapt of a curve at a threshold in a budget).
METRICS: dict[str, tuple[str, Callable[..., tuple[int, bool]]]] = {
    "first_passage": ("first passage of the threshold (the reported metric)", episodes_to_adapt),
    "sustained": ("sustained success (from the evaluation after which every one stays at the threshold)",
                  episodes_to_sustained_adaptation),
}
PAPER_SPEEDUP = 5.5   # FLASH (MLSys 2024): adaptation 5.5x faster than transfer learning


def check_comparable(runs: dict[Path, Reproduction]) -> None:
    """Refuse (ValueError) folders whose configs differ in more than :data:`FREE_SETTINGS`, that share a
    meta-training seed, whose held-out tasks or methods differ, or that ran no FLASH or nothing to compare it with."""
    (first, base), *others = runs.items()
    settings = dotted_settings(base.cfg.to_dict())
    for path, run in others:
        mine = dotted_settings(run.cfg.to_dict())
        if differ := differing_settings(settings, mine, FREE_SETTINGS):
            shown = "; ".join(f"{k}: {settings.get(k)!r} vs {mine.get(k)!r}" for k in differ[:3])
            raise ValueError(f"{first} and {path} differ in more than the meta-training seed ({shown}"
                             f"{' ...' if len(differ) > 3 else ''}); compare-seeds compares runs of one config")
    seeds: dict[int, Path] = {}
    for path, run in runs.items():
        if (seed := run.cfg.run.seed) in seeds:
            raise ValueError(f"{seeds[seed]} and {path} both have run.seed {seed}: the same meta-training twice is "
                             "not two pieces of evidence")
        seeds[seed] = path
    tasks = {path: sorted({r["task"] for r in run.rows}) for path, run in runs.items()}
    if any(t != tasks[first] for t in tasks.values()):
        other = next(p for p, t in tasks.items() if t != tasks[first])
        raise ValueError(f"{first} and {other} hold out different tasks ({tasks[first]} vs {tasks[other]})")
    methods = list(base.summary["methods"])
    for path, run in others:
        if sorted(run.summary["methods"]) != sorted(methods):
            raise ValueError(f"{first} ran {methods} and {path} {list(run.summary['methods'])}: compare-seeds compares "
                             "the same methods on every seed")
    if "flash" not in methods or len(methods) < 2:
        raise ValueError(f"{first} ran {methods}: compare-seeds compares FLASH with the other methods, so it needs "
                         "flash and at least one more")


def _episodes(run: Reproduction, metric: str) -> dict[str, dict[tuple[str, int], tuple[int, bool]]]:
    """Per method, ``(task, adaptation seed) -> (episodes-to-adapt, censored)`` under ``metric`` (see
    :data:`METRICS`)."""
    count = METRICS[metric][1]
    a = run.cfg.adaptation
    out: dict[str, dict[tuple[str, int], tuple[int, bool]]] = {}
    for (method, task, seed, eval_seed), rec in run.records.items():
        threshold = run.refs[(task, eval_seed)].threshold(a.threshold)
        out.setdefault(method, {})[(task, seed)] = count(rec["curve"], threshold, a.budget)
    return out


def _machines(ordered: list[tuple[Path, Reproduction]]) -> list[dict[str, Any]]:
    """The machines the seeds ran on (:func:`~flash_rl.machine.describe_machine` less the commit; a string from runs
    that recorded no more), each with its seeds, in seed order."""
    machines: list[dict[str, Any]] = []
    for _, run in ordered:
        machine = machine_without_commit(run.summary["machine"])
        same = next((m for m in machines if m["machine"] == machine), None)
        if same is None:
            machines.append(same := {"machine": machine, "seeds": []})
        same["seeds"].append(run.cfg.run.seed)
    return machines


def _commits(ordered: list[tuple[Path, Reproduction]]) -> list[dict[str, Any]]:
    """The code's commits the seeds ran (``+changes`` marks uncommitted edits), each with its seeds, in seed order;
    seeds that recorded none (older runs, or code outside a git checkout) are left out."""
    commits: dict[str, list[int]] = {}
    for _, run in ordered:
        machine = run.summary["machine"]
        if isinstance(machine, dict) and machine.get("commit"):
            commits.setdefault(machine["commit"], []).append(run.cfg.run.seed)
    return [{"commit": commit, "seeds": seeds} for commit, seeds in commits.items()]


def _by_seeds(heading: str, groups: list[tuple[list[int], str]]) -> list[str]:
    """Markdown lines: ``heading``, then one bullet per group naming its seeds and what they share."""
    return [heading, ""] + [f"- seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}: {what}"
                            for seeds, what in groups] + [""]


def compare(runs: dict[Path, Reproduction]) -> dict[str, Any]:
    """The comparison that :func:`markdown` and :func:`plot` show (``runs``: folder -> its reproduction, checked by
    :func:`check_comparable`): per metric and method other than FLASH, each meta-training seed's ratio of mean
    episodes-to-adapt (method over FLASH) with its CIs over runs and over tasks and both methods' censored runs, and
    the two summaries across seeds (the ratio of pooled means, the geometric mean of the seeds' ratios)."""
    check_comparable(runs)
    ordered = sorted(runs.items(), key=lambda item: item[1].cfg.run.seed)
    methods = [m for m in next(iter(runs.values())).summary["methods"] if m != "flash"]
    result: dict[str, Any] = {"folders": {str(p): run.cfg.run.seed for p, run in ordered},
                              "budget": ordered[0][1].cfg.adaptation.budget,
                              "threshold": ordered[0][1].cfg.adaptation.threshold, "machines": _machines(ordered),
                              "commits": _commits(ordered), "metrics": {}}
    for metric in METRICS:
        per_seed = [(run.cfg.run.seed, _episodes(run, metric)) for _, run in ordered]
        entry: dict[str, Any] = {}
        for m in methods:
            seeds_rows = []
            pooled: dict[str, list[Any]] = {"other": [], "flash": [], "seed": [], "task": []}
            for seed, episodes in per_seed:
                keys = sorted(episodes["flash"])
                flash = [episodes["flash"][k][0] for k in keys]
                other = [episodes[m][k][0] for k in keys]
                tasks = [task for task, _ in keys]
                ratio = ratio_ci(other, flash, mean)
                seeds_rows.append({"seed": seed, "runs": len(keys), "mean": float(np.mean(other)),
                                   "flash_mean": float(np.mean(flash)),
                                   "censored": sum(episodes[m][k][1] for k in keys),
                                   "flash_censored": sum(episodes["flash"][k][1] for k in keys),
                                   "ratio_of_means": ratio[0], "ci": ratio[1:],
                                   "ci_tasks": clustered_ratio_of_means_ci(other, flash, tasks)[1:]})
                for name, values in (("other", other), ("flash", flash), ("task", tasks), ("seed", [seed] * len(keys))):
                    pooled[name] += values
            point, low, high = crossed_ratio_of_means_ci(pooled["other"], pooled["flash"], pooled["seed"],
                                                         pooled["task"])
            geometric = geometric_mean_ci([r["ratio_of_means"] for r in seeds_rows])
            entry[m] = {"seeds": seeds_rows, "pooled": {
                "runs": len(pooled["other"]), "mean": float(np.mean(pooled["other"])),
                "flash_mean": float(np.mean(pooled["flash"])),
                "censored": sum(r["censored"] for r in seeds_rows),
                "flash_censored": sum(r["flash_censored"] for r in seeds_rows),
                "ratio_of_means": point, "ci_seeds_and_tasks": (low, high),
                "geometric_mean_of_seeds": geometric[0], "ci_seeds_t": geometric[1:]}}
        result["metrics"][metric] = entry
    return result


def _verdict(*cis: Sequence[float]) -> str:
    """How ratios' CIs (method over FLASH), read at the two decimals shown, agree: FLASH faster if every one is above
    1, slower if every one is below, no clear difference otherwise."""
    rounded = [(round(low, 2), round(high, 2)) for low, high in cis]
    if any(math.isnan(low) for low, _ in rounded):
        return "no CI"
    if all(low > 1 for low, _ in rounded):
        return "FLASH faster"
    return "FLASH slower" if all(high < 1 for _, high in rounded) else "no clear difference"


def _censored_note(rows: list[dict[str, Any]]) -> str:
    """A warning where most of a method's or FLASH's runs are censored (counted as budget + 1): the ratio then
    mostly reflects the budget, not a measured speed."""
    runs = sum(r["runs"] for r in rows)
    heavy = [who for who, key in (("its", "censored"), ("FLASH's", "flash_censored"))
             if sum(r[key] for r in rows) > runs / 2]
    return f" (most of {' and '.join(heavy)} runs censored: the ratio is mostly the budget's)" if heavy else ""


def markdown(result: dict[str, Any], command: str) -> str:
    """The report of :func:`compare` as Markdown (ending in one newline): per metric, a table of every method's seeds
    and one of the summaries across seeds; then the ``command`` that regenerates it."""
    folders = result["folders"]
    lines = ["# Speedup across meta-training seeds", "",
             f"{len(folders)} reproductions of one config, meta-training seeds {sorted(folders.values())}: "
             + ", ".join(f"`{p}` (seed {s})" for p, s in folders.items())
             + f". Budget {result['budget']} episodes (a run that never reaches the threshold, censored, counts as "
             f"{result['budget'] + 1}), threshold {result['threshold']:g} of the way from random to expert, each "
             "seed with its own references (so the spread between seeds includes theirs). Ratio = the method's mean "
             "episodes-to-adapt over FLASH's on the same runs: above 1, FLASH adapts faster. CIs are 95%: per seed, "
             "paired bootstraps over runs and over whole tasks. Across seeds, the ratio of the means of all runs "
             "(seeds where FLASH is slow weigh more) with a bootstrap resampling seeds and tasks at once (it "
             "undercovers with few seeds), and the geometric mean of the seeds' ratios with a Student-t interval "
             "over seeds. A reading of FLASH faster or slower needs every CI it rests on to clear 1.", ""]
    if len(machines := result["machines"]) > 1:
        lines += _by_seeds(f"The seeds' summary.json record {len(machines)} different machines, so the spread between "
                           "them may include the machines' (another CPU or package version can change a "
                           "meta-training):", [(m["seeds"], machine_text(m["machine"])) for m in machines])
    if unrecorded := sorted(seed for m in machines if isinstance(m["machine"], str) for seed in m["seeds"]):
        lines += [f"Seeds {', '.join(map(str, unrecorded))} ran before runs recorded their CPU and package versions "
                  "(summary.json names only the platform and cores), so they may have run on machines that differ "
                  "in those.", ""]
    if len(commits := result["commits"]) > 1:
        lines += _by_seeds(f"The seeds ran {len(commits)} commits of the code (`git diff` between them shows whether "
                           "a change could move the results):", [(c["seeds"], c["commit"]) for c in commits])
    for metric, entry in result["metrics"].items():
        rows, across = [], []
        for m, item in entry.items():
            label = LABELS.get(m, m)
            rows += [[label, f"seed {r['seed']}", f"{r['mean']:.1f} ({r['censored']})",
                      f"{r['flash_mean']:.1f} ({r['flash_censored']})", f"{r['ratio_of_means']:.2f}x",
                      ci_brackets(r["ci"], 2), ci_brackets(r["ci_tasks"], 2), _verdict(r["ci_tasks"])]
                     for r in item["seeds"]]
            p = item["pooled"]
            across.append([label, f"{p['mean']:.1f} ({p['censored']}/{p['runs']})",
                           f"{p['flash_mean']:.1f} ({p['flash_censored']}/{p['runs']})",
                           f"{p['ratio_of_means']:.2f}x {ci_brackets(p['ci_seeds_and_tasks'], 2)}",
                           f"{p['geometric_mean_of_seeds']:.2f}x {ci_brackets(p['ci_seeds_t'], 2)}",
                           _verdict(p["ci_seeds_and_tasks"], p["ci_seeds_t"]) + _censored_note(item["seeds"])])
        lines += [f"## {METRICS[metric][0].capitalize()}", ""]
        lines += md_table(["method", "meta-training", "its mean (censored)", "FLASH mean (censored)", "ratio",
                           "95% CI over runs", "95% CI over tasks", "reading"], rows)
        lines += [""]
        lines += md_table(["method, across seeds", "its mean (censored)", "FLASH mean (censored)",
                           "ratio of means [CI over seeds and tasks]", "geometric mean of the seeds' ratios [t CI]",
                           "reading"], across)
        lines += [""]
    lines += [f"Regenerate: `{command}`"]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """A forest plot of :func:`compare`'s ratios, one panel per metric: each seed's ratio against transfer learning
    (or the first method compared) with its CI over tasks, then the two summaries across seeds, on a log axis with 1
    and the paper's 5.5x marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    metrics = result["metrics"]
    compared = next(iter(metrics.values()))   # method -> its comparison with FLASH, the same methods for each metric
    method = "transfer" if "transfer" in compared else next(iter(compared))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 0.5 * len(result["folders"]) + 2.6),
                             sharex=True, sharey=True, squeeze=False)
    for ax, (metric, entry) in zip(axes[0], metrics.items()):
        item, pooled = entry[method], entry[method]["pooled"]
        labels = [f"seed {r['seed']}" for r in item["seeds"]] + ["ratio of all runs' means",
                                                                "geometric mean of seeds"]
        points = [r["ratio_of_means"] for r in item["seeds"]] + [pooled["ratio_of_means"],
                                                                pooled["geometric_mean_of_seeds"]]
        cis = [r["ci_tasks"] for r in item["seeds"]] + [pooled["ci_seeds_and_tasks"], pooled["ci_seeds_t"]]
        y = np.arange(len(labels))[::-1]
        for i, (yi, point, (low, high)) in enumerate(zip(y, points, cis)):
            summary = i >= len(item["seeds"])
            ax.errorbar(point, yi, xerr=None if math.isnan(low) else [[point - low], [high - point]],
                        fmt="D" if summary else "o", color="black" if summary else "tab:blue", capsize=4)
        ax.axhline(1.5, color="lightgrey", lw=1)   # seeds above, summaries across them below
        ax.axvline(1, color="grey", lw=1)
        ax.axvline(PAPER_SPEEDUP, color="tab:red", ls=":", lw=1)
        ax.text(PAPER_SPEEDUP, y[0] + 0.4, " paper", color="tab:red", fontsize=8, va="bottom")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=2))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}x"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_yticks(y, labels)
        ax.set_ylim(-0.7, len(labels) - 0.1)
        ax.set_title(METRICS[metric][0].split(" (")[0], fontsize=10)
    fig.supxlabel(f"{LABELS.get(method, method)}'s mean episodes-to-adapt / FLASH's (above 1: FLASH faster)",
                  fontsize=10)
    fig.suptitle("Speedup per meta-training seed (95% CI over tasks) and across seeds (over seeds and tasks; t over "
                 "seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", type=Path, metavar="DIR",
                        help="finished flash reproduce folders of one config and different run.seed (at least two)")
    parser.add_argument("--out", type=output_dir, default=None,
                        help="also write across_seeds.md, across_seeds.json and across_seeds.png into this folder")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON instead of Markdown")


#: What ``--out`` gets: the report, its numbers and its plot.
OUT_FILES = ("across_seeds.md", "across_seeds.json", "across_seeds.png")


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_files_in(args.out, OUT_FILES)
    if len({folder.resolve() for folder in args.folders}) < len(args.folders):
        raise UsageError("a folder is given twice; give each reproduction folder once")
    if len(args.folders) < 2:
        raise UsageError("give at least two reproduction folders")
    runs = {}
    for folder in args.folders:
        try:
            runs[folder] = read_reproduction(folder)
        except (OSError, ValueError) as err:   # a missing or damaged file (text where a number goes, a config that
            return fail(f"{folder}: cannot compare: {err}")   # does not load, ...)
    try:
        result = compare(runs)
    except ValueError as err:   # folders that are not one config's seeds: arguments that do not go together
        raise UsageError(str(err)) from None
    words = ["flash", "compare-seeds", *map(str, args.folders), *(["--out", str(args.out)] if args.out else [])]
    text = markdown(result, " ".join(shlex.quote(word) for word in words))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        markdown_name, json_name, png_name = OUT_FILES
        (args.out / markdown_name).write_text(text)
        (args.out / json_name).write_text(json_text(result))
        plot(result, args.out / png_name)
    emit(json_text(result) if args.json else text)
    return 0
