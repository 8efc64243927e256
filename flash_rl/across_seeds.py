"""``flash compare-seeds``: the speedups of reproductions that differ only in their meta-training seed, side by side.

One reproduction's confidence intervals are over its held-out tasks and adaptation seeds: they describe one
meta-trained agent per method. A user who meta-trains again gets another agent, so whether FLASH adapts faster is a
question over meta-training seeds as well. This command reads finished ``flash reproduce`` folders whose configs are
the same but for ``run.seed`` (and where they keep their files), and reports per method other than FLASH its mean
episodes-to-adapt over FLASH's:

- per meta-training seed, with paired bootstrap CIs over runs and over whole tasks (as each ``results.md`` does);
- pooled over every seed, with a CI that resamples meta-training seeds and tasks at once
  (:func:`~flash_rl.stats.crossed_ratio_of_means_ci`);

for the first passage of the success threshold (the reported metric) and for sustained success
(:func:`~flash_rl.adaptation.episodes_to_sustained_adaptation`), both recomputed from each folder's curves and
references. ``--out DIR`` writes ``across_seeds.md``, ``across_seeds.json`` and ``across_seeds.png`` (a forest plot).

    flash compare-seeds results/autoscaling results/autoscaling/meta_seed_* --out results/autoscaling/across_seeds
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from flash_envs.cli_args import UsageError, emit, json_text, output_dir
from flash_envs.markdown import ci_brackets, md_table
from flash_rl.adaptation import episodes_to_adapt, episodes_to_sustained_adaptation
from flash_rl.report import LABELS, Reproduction, read_reproduction
from flash_rl.stats import clustered_ratio_of_means_ci, crossed_ratio_of_means_ci, mean, ratio_ci

#: Config settings that may differ between the folders compared: the seed, and where each run keeps its files.
FREE_SETTINGS = ("run.seed", "run.dir", "run.progress_bar", "run.checkpoint_interval", "references.cache")
#: The metrics compared: name -> (what the report calls it, episodes-to-adapt of a curve at a threshold in a budget).
METRICS: dict[str, tuple[str, Callable[..., tuple[int, bool]]]] = {
    "first_passage": ("first passage of the threshold (the reported metric)", episodes_to_adapt),
    "sustained": ("sustained success (from the evaluation after which every one stays at the threshold)",
                  episodes_to_sustained_adaptation),
}
PAPER_SPEEDUP = 5.5   # FLASH (MLSys 2024): adaptation 5.5x faster than transfer learning


def _flat_settings(cfg: Any) -> dict[str, Any]:
    """``cfg`` (an :class:`~flash_rl.config.ExperimentConfig`) as dotted setting -> value."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            flat[prefix] = value

    walk("", dataclasses.asdict(cfg))
    return flat


def check_comparable(runs: dict[Path, Reproduction]) -> None:
    """Refuse (ValueError) folders whose configs differ in more than :data:`FREE_SETTINGS`, that share a
    meta-training seed, whose held-out tasks differ, or that ran no FLASH or nothing to compare it with."""
    (first, base), *others = runs.items()
    settings = _flat_settings(base.cfg)
    for path, run in others:
        mine = _flat_settings(run.cfg)
        differ = sorted(k for k in settings.keys() | mine.keys()
                        if k not in FREE_SETTINGS and settings.get(k) != mine.get(k))
        if differ:
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
    if "flash" not in methods or len(methods) < 2:
        raise ValueError(f"{first} ran {methods}: compare-seeds compares FLASH with the other methods, so it needs "
                         "flash and at least one more")


def _episodes(run: Reproduction, metric: str) -> dict[str, dict[tuple[str, int], int]]:
    """Per method, ``(task, adaptation seed) -> episodes-to-adapt`` under ``metric`` (see :data:`METRICS`)."""
    count = METRICS[metric][1]
    a = run.cfg.adaptation
    out: dict[str, dict[tuple[str, int], int]] = {}
    for (method, task, seed, eval_seed), rec in run.records.items():
        threshold = run.refs[(task, eval_seed)].threshold(a.threshold)
        out.setdefault(method, {})[(task, seed)] = count(rec["curve"], threshold, a.budget)[0]
    return out


def compare(runs: dict[Path, Reproduction]) -> dict[str, Any]:
    """The comparison that :func:`markdown` and :func:`plot` show (``runs``: folder -> its reproduction, checked by
    :func:`check_comparable`): per metric and method other than FLASH, each meta-training seed's ratio of mean
    episodes-to-adapt (method over FLASH) with its CIs over runs and over tasks, and the pooled ratio with its CI over
    seeds and tasks."""
    check_comparable(runs)
    ordered = sorted(runs.items(), key=lambda item: item[1].cfg.run.seed)
    methods = [m for m in next(iter(runs.values())).summary["methods"] if m != "flash"]
    result: dict[str, Any] = {"folders": {str(p): run.cfg.run.seed for p, run in ordered},
                              "budget": ordered[0][1].cfg.adaptation.budget,
                              "threshold": ordered[0][1].cfg.adaptation.threshold, "metrics": {}}
    for metric in METRICS:
        per_seed = [(run.cfg.run.seed, _episodes(run, metric)) for _, run in ordered]
        entry: dict[str, Any] = {}
        for m in methods:
            seeds_rows = []
            pooled: dict[str, list[Any]] = {"other": [], "flash": [], "seed": [], "task": []}
            for seed, episodes in per_seed:
                keys = sorted(episodes["flash"])
                flash = [episodes["flash"][k] for k in keys]
                other = [episodes[m][k] for k in keys]
                tasks = [task for task, _ in keys]
                ratio = ratio_ci(other, flash, mean)
                seeds_rows.append({"seed": seed, "mean": float(np.mean(other)), "flash_mean": float(np.mean(flash)),
                                   "ratio_of_means": ratio[0], "ci": ratio[1:],
                                   "ci_tasks": clustered_ratio_of_means_ci(other, flash, tasks)[1:]})
                for name, values in (("other", other), ("flash", flash), ("task", tasks), ("seed", [seed] * len(keys))):
                    pooled[name] += values
            point, low, high = crossed_ratio_of_means_ci(pooled["other"], pooled["flash"], pooled["seed"],
                                                         pooled["task"])
            entry[m] = {"seeds": seeds_rows, "pooled": {"ratio_of_means": point, "ci_seeds_and_tasks": (low, high),
                                                        "mean": float(np.mean(pooled["other"])),
                                                        "flash_mean": float(np.mean(pooled["flash"]))}}
        result["metrics"][metric] = entry
    return result


def _verdict(ci: Sequence[float]) -> str:
    """How a ratio's CI (method over FLASH) reads: FLASH faster, slower, or no clear difference."""
    low, high = ci
    if math.isnan(low):
        return "no CI"
    return "FLASH faster" if low > 1 else "FLASH slower" if high < 1 else "no clear difference"


def markdown(result: dict[str, Any]) -> str:
    """The report of :func:`compare` as Markdown (ending in one newline): one table per metric, each method's seeds
    and then its pooled row."""
    folders = result["folders"]
    lines = ["# Speedup across meta-training seeds", "",
             f"{len(folders)} reproductions of one config, meta-training seeds {sorted(folders.values())}: "
             + ", ".join(f"`{p}` (seed {s})" for p, s in folders.items())
             + f". Budget {result['budget']} episodes, threshold {result['threshold']:g} of the way from random to "
             "expert (each seed's own references). Ratio = the method's mean episodes-to-adapt over FLASH's on the "
             "same runs: above 1, FLASH adapts faster. CIs are 95% paired bootstraps: per seed over runs and over "
             "whole tasks; pooled over meta-training seeds and tasks at once (a crossed bootstrap; with few seeds "
             "it is rough). The reading follows the CI over tasks (pooled: over seeds and tasks).", ""]
    for metric, entry in result["metrics"].items():
        rows = []
        for m, item in entry.items():
            label = LABELS.get(m, m)
            rows += [[label, f"seed {r['seed']}", f"{r['mean']:.1f}", f"{r['flash_mean']:.1f}",
                      f"{r['ratio_of_means']:.2f}x", ci_brackets(r["ci"], 2), ci_brackets(r["ci_tasks"], 2),
                      _verdict(r["ci_tasks"])] for r in item["seeds"]]
            p = item["pooled"]
            rows.append([label, "**pooled**", f"{p['mean']:.1f}", f"{p['flash_mean']:.1f}",
                         f"**{p['ratio_of_means']:.2f}x**", "", ci_brackets(p["ci_seeds_and_tasks"], 2),
                         _verdict(p["ci_seeds_and_tasks"])])
        lines += [f"## {METRICS[metric][0].capitalize()}", ""]
        lines += md_table(["method", "meta-training", "its mean", "FLASH mean", "ratio", "95% CI over runs",
                           "95% CI over tasks (pooled: seeds and tasks)", "reading"], rows)
        lines += [""]
        for m, item in entry.items():
            readings = [_verdict(r["ci_tasks"]) for r in item["seeds"]]
            lines.append(f"- {LABELS.get(m, m)}: FLASH faster on {readings.count('FLASH faster')} of {len(readings)} "
                         f"seeds, slower on {readings.count('FLASH slower')}.")
        lines += [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """A forest plot of :func:`compare`'s ratios, one panel per metric: each seed's ratio against transfer learning
    (or the first method compared) with its CI over tasks, and the pooled one, on a log axis with 1 and the paper's
    5.5x marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    metrics = result["metrics"]
    method = "transfer" if "transfer" in next(iter(metrics.values())) else next(iter(next(iter(metrics.values()))))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 0.5 * len(result["folders"]) + 2.2),
                             sharex=True, sharey=True, squeeze=False)
    for ax, (metric, entry) in zip(axes[0], metrics.items()):
        item = entry[method]
        labels = [f"seed {r['seed']}" for r in item["seeds"]] + ["pooled"]
        points = [r["ratio_of_means"] for r in item["seeds"]] + [item["pooled"]["ratio_of_means"]]
        cis = [r["ci_tasks"] for r in item["seeds"]] + [item["pooled"]["ci_seeds_and_tasks"]]
        y = np.arange(len(labels))[::-1]
        for yi, point, (low, high), pooled in zip(y, points, cis, [False] * (len(labels) - 1) + [True]):
            ax.errorbar(point, yi, xerr=[[point - low], [high - point]] if not math.isnan(low) else None,
                        fmt="D" if pooled else "o", color="black" if pooled else "tab:blue", capsize=4)
        ax.axvline(1, color="grey", lw=1)
        ax.axvline(PAPER_SPEEDUP, color="tab:red", ls=":", lw=1)
        ax.text(PAPER_SPEEDUP, y[0] + 0.4, " paper", color="tab:red", fontsize=8, va="bottom")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=2))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}x"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_yticks(y, labels)
        ax.set_ylim(-0.7, len(labels) - 0.1)
        ax.set_xlabel(f"{LABELS.get(method, method)} / FLASH mean episodes (>1: FLASH faster)")
        ax.set_title(METRICS[metric][0].split(" (")[0], fontsize=10)
    fig.suptitle("Speedup per meta-training seed (95% CI over tasks; pooled: over seeds and tasks)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", type=Path, metavar="DIR",
                        help="finished flash reproduce folders of one config and different run.seed (at least two)")
    parser.add_argument("--out", type=output_dir, default=None,
                        help="also write across_seeds.md, across_seeds.json and across_seeds.png into this folder")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON instead of Markdown")


def run(args: argparse.Namespace) -> int:
    if len(set(args.folders)) < 2:
        raise UsageError("give at least two different reproduction folders")
    runs = {folder: read_reproduction(folder) for folder in args.folders}
    try:
        result = compare(runs)
    except ValueError as err:   # folders that are not one config's seeds: arguments that do not go together
        raise UsageError(str(err)) from None
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "across_seeds.md").write_text(markdown(result))
        (args.out / "across_seeds.json").write_text(json_text(result))
        plot(result, args.out / "across_seeds.png")
    emit(json_text(result) if args.json else markdown(result))
    return 0
