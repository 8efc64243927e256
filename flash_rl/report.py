"""Turn adaptation curves into the reproduction's outputs: CSVs, ``summary.json``, plots and a markdown table."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from flash_envs.cli_args import check_files_in, json_text
from flash_envs.data import DataFormatError, csv_rows
from flash_envs.fields import check_whole
from flash_envs.markdown import ci_brackets, fmt_ci, md_table, percent
from flash_rl.adaptation import (References, episodes_to_adapt, episodes_to_sustained_adaptation,
                                 evaluation_points)
from flash_rl.config import load_config, read_yaml
from flash_rl.machine import describe_machine, machine_problem, machine_text
from flash_rl.stats import bootstrap_ci, clustered_ratio_of_means_ci, iqm, mean, median, ratio_ci

#: What a reproduction writes into its results folder: :func:`write_report`'s files and the run's ``config.yaml``.
REPORT_FILES = ("curves.csv", "episodes_to_adapt.csv", "references.csv", "adaptation_curves.png",
                "episodes_to_adapt.png", "summary.json", "results.md", "config.yaml")

LABELS = {"flash": "FLASH", "transfer": "transfer learning", "scratch": "from scratch", "maml": "MAML",
          "flash_zero_embedding": "FLASH, embedding zeroed"}


def normalised(value: float, ref: References) -> float:
    """0 = random policy, 1 = expert."""
    span = ref.expert - ref.random
    return (value - ref.random) / span if abs(span) > 1e-9 else float("nan")


def summarise(cfg: Any, records: list[dict[str, Any]], refs: dict[tuple[str, int], References]
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(summary, rows)``: one row per adaptation run (episodes-to-adapt, censoring, threshold, zero-shot and final
    returns, raw and normalised), and per method the median / IQM episodes-to-adapt with bootstrap CIs, mean, censored
    count and mean returns, plus the speedups and the threshold sensitivity."""
    a = cfg.adaptation
    rows = []
    for rec in records:
        ref = refs[(rec["task"], rec["eval_seed"])]
        e2a, censored = episodes_to_adapt(rec["curve"], ref.threshold(a.threshold), a.budget)
        rows.append({"method": rec["method"], "task": rec["task"], "seed": rec["seed"], "episodes": e2a,
                     "censored": censored, "threshold": ref.threshold(a.threshold),
                     "zero_shot": rec["curve"][0][1], "final": rec["curve"][-1][1],
                     "zero_shot_norm": normalised(rec["curve"][0][1], ref),
                     "final_norm": normalised(rec["curve"][-1][1], ref)})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    per_method: dict[str, Any] = {}
    for m in methods:
        mine = sorted((r for r in rows if r["method"] == m), key=lambda r: (r["task"], r["seed"]))
        x = np.array([r["episodes"] for r in mine], dtype=float)
        med, iq = bootstrap_ci(x, median), bootstrap_ci(x, iqm)
        per_method[m] = {
            "label": LABELS.get(m, m), "runs": len(x), "censored": int(sum(r["censored"] for r in mine)),
            "median": med[0], "median_ci": med[1:], "iqm": iq[0], "iqm_ci": iq[1:], "mean": float(x.mean()),
            "zero_shot_return": float(np.mean([r["zero_shot"] for r in mine])),
            "final_return": float(np.mean([r["final"] for r in mine])),
            "zero_shot_normalised": float(np.nanmean([r["zero_shot_norm"] for r in mine])),
            "final_normalised": float(np.nanmean([r["final_norm"] for r in mine])),
        }
    sensitivity = threshold_sensitivity(records, refs, [a.threshold, *a.extra_thresholds], a.budget)
    return {"methods": per_method, "speedup": speedup_summary(rows), "threshold_sensitivity": sensitivity,
            "sustained": sustained_adaptation(records, refs, a.threshold, a.budget),
            "unchanged_returns": unchanged_returns(records)}, rows


def threshold_sensitivity(records: list[dict[str, Any]], refs: dict[tuple[str, int], References],
                          fractions: list[float], budget: int) -> dict[str, Any]:
    """Per threshold fraction (keyed ``f"{fraction:g}"``), the :func:`sensitivity_entry` of the episodes each run of
    ``records`` (``method``, ``task``, ``seed``, ``eval_seed``, ``curve``) takes to reach it."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    return {f"{fraction:g}": sensitivity_entry(
        {m: {(r["task"], r["seed"]): episodes_to_adapt(r["curve"], refs[(r["task"], r["eval_seed"])]
                                                        .threshold(fraction), budget)
             for r in records if r["method"] == m} for m in methods})
        for fraction in fractions}


def sustained_adaptation(records: list[dict[str, Any]], refs: dict[tuple[str, int], References], fraction: float,
                         budget: int) -> dict[str, Any]:
    """The :func:`sensitivity_entry` of the episodes each run of ``records`` takes to reach the ``fraction``
    threshold and stay there (:func:`~flash_rl.adaptation.episodes_to_sustained_adaptation`)."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    return sensitivity_entry(
        {m: {(r["task"], r["seed"]): episodes_to_sustained_adaptation(
            r["curve"], refs[(r["task"], r["eval_seed"])].threshold(fraction), budget)
             for r in records if r["method"] == m} for m in methods})


def csv_number(value: float) -> str:
    """A return as ``curves.csv`` and ``references.csv`` write it: 4 decimals."""
    return f"{value:.4f}"


def unchanged_returns(records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per method, how many of its runs (``records``' ``curve`` of (episodes, return)) evaluate to their zero-shot
    return at every evaluation, compared as ``curves.csv`` writes them (:func:`csv_number`, so that a run and its
    re-render agree): fine-tuning did not change what the deterministic policy does on that task, or not where it
    matters."""
    counts: dict[str, dict[str, int]] = {}
    for r in records:
        returns = {float(csv_number(ret)) for _, ret in r["curve"]}   # float: "-0.0000" and "0.0000" are one
        entry = counts.setdefault(r["method"], {"unchanged": 0, "runs": 0})
        entry["unchanged"] += int(len(returns) == 1)
        entry["runs"] += 1
    return counts


def sensitivity_entry(runs: dict[str, dict[tuple[str, Any], tuple[int, bool]]]) -> dict[str, Any]:
    """One threshold's row of the sensitivity table from every method's ``(task, seed) -> (episodes, censored)``:
    mean episodes-to-adapt and censored runs per method, and transfer learning's mean over FLASH's with paired
    bootstrap CIs over runs (``ci``) and over whole tasks (``ci_tasks``)."""
    entry: dict[str, Any] = {"methods": {m: {"mean": float(np.mean([e for e, _ in by_run.values()])),
                                             "censored": int(sum(c for _, c in by_run.values()))}
                                         for m, by_run in runs.items()}}
    if "flash" in runs and "transfer" in runs:
        keys = sorted(runs["flash"])
        flash, transfer = ([runs[m][k][0] for k in keys] for m in ("flash", "transfer"))
        r = ratio_ci(transfer, flash, mean)
        entry["speedup_transfer_vs_flash"] = {
            "ratio_of_means": r[0], "ci": r[1:],
            "ci_tasks": clustered_ratio_of_means_ci(transfer, flash, [task for task, _ in keys])[1:]}
    return entry


def speedup_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method other than FLASH: its mean episodes-to-adapt over FLASH's on the same (task, seed) runs, with a
    paired bootstrap CI over runs (``ci``) and one over whole tasks (``ci_tasks``), and the ratio of medians.

    ``rows`` are the rows of ``episodes_to_adapt.csv`` (``method``, ``task``, ``seed``, ``episodes``)."""
    runs: dict[str, dict[tuple[str, int], float]] = {}
    for r in rows:
        runs.setdefault(r["method"], {})[(r["task"], int(r["seed"]))] = float(r["episodes"])
    if "flash" not in runs:
        return {}
    keys = sorted(runs["flash"])
    flash = np.array([runs["flash"][k] for k in keys])
    tasks = [task for task, _ in keys]
    speedups = {}
    for m, by_run in runs.items():
        if m == "flash":
            continue
        if sorted(by_run) != keys:
            raise ValueError(f"{m} and FLASH were not run on the same (task, seed) pairs")
        other = np.array([by_run[k] for k in keys])
        ratio = ratio_ci(other, flash, mean)
        speedups[f"{m}/flash"] = {"ratio_of_means": ratio[0], "ci": ratio[1:],
                                  "ci_tasks": clustered_ratio_of_means_ci(other, flash, tasks)[1:],
                                  "ratio_of_medians": float(np.median(other) / np.median(flash))}
    return speedups


def _references_summary(refs: dict[tuple[str, int], References]) -> dict[str, Any]:
    items = list(refs.values())
    lines = sorted({k for r in items for k in r.heuristics})
    return {"random_return": float(np.mean([r.random for r in items])),
            "expert_return": float(np.mean([r.expert for r in items])),
            "expert_sources": {s: sum(r.expert_source == s for r in items)
                               for s in sorted({r.expert_source for r in items})},
            "heuristics": {h: {"return": float(np.mean([r.heuristics[h] for r in items])),
                               "normalised": float(np.nanmean([normalised(r.heuristics[h], r) for r in items]))}
                           for h in lines}}


def _normalised_curves(records: list[dict[str, Any]], refs: dict[tuple[str, int], References]
                       ) -> dict[str, tuple[list[int], np.ndarray]]:
    """Per method: the evaluation episodes and the normalised returns (one row per adaptation run)."""
    curves = {}
    for m in dict.fromkeys(r["method"] for r in records):
        mine = [r for r in records if r["method"] == m]
        curves[m] = ([e for e, _ in mine[0]["curve"]],
                     np.array([[normalised(v, refs[(r["task"], r["eval_seed"])]) for _, v in r["curve"]]
                               for r in mine]))
    return curves


def plot(out_dir: Path, cfg: Any, curves: dict[str, tuple[list[int], np.ndarray]], rows: list[dict[str, Any]],
         summary: dict[str, Any]) -> None:
    """``adaptation_curves.png`` (IQM of the normalised return per method, with the heuristics and the threshold)
    and ``episodes_to_adapt.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(summary["methods"])
    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    for m in methods:
        episodes, y = curves[m]
        columns = [y[:, j][np.isfinite(y[:, j])] for j in range(y.shape[1])]   # NaN: a task whose expert ties random
        centre = [iqm(c) if len(c) else math.nan for c in columns]
        band = np.array([bootstrap_ci(c, iqm, n_resamples=500)[1:] if len(c) else (math.nan, math.nan)
                         for c in columns])
        ax.plot(episodes, centre, label=LABELS.get(m, m))
        ax.fill_between(episodes, band[:, 0], band[:, 1], alpha=0.2)
    heuristics = summary["references"]["heuristics"]
    for i, (h, stats) in enumerate(heuristics.items()):  # labels spread along x: close lines do not overprint
        ax.axhline(stats["normalised"], ls=":", lw=1, color="grey")
        ax.text(cfg.adaptation.budget * i / len(heuristics), stats["normalised"], f" {h} (heuristic)", fontsize=7,
                color="dimgrey", va="bottom", bbox={"facecolor": "white", "alpha": 0.6, "lw": 0, "pad": 0.3})
    ax.axhline(cfg.adaptation.threshold, ls="--", lw=1, color="black",
               label=f"threshold ({percent(cfg.adaptation.threshold)} of the way to the expert)")
    ax.set_xlabel("fine-tuning episodes on the held-out task")
    ax.set_ylabel("normalised return (0 random, 1 expert), IQM")
    ax.set_title("Adaptation on held-out tasks (95% bootstrap CI)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    fig.savefig(out_dir / "adaptation_curves.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.6))
    rng = np.random.default_rng(0)
    for i, m in enumerate(methods):
        x = np.array([r["episodes"] for r in rows if r["method"] == m], dtype=float)
        s = summary["methods"][m]
        ax.scatter(i + rng.uniform(-0.2, 0.2, len(x)), x, s=8, alpha=0.35)
        ax.errorbar(i, s["iqm"], yerr=[[s["iqm"] - s["iqm_ci"][0]], [s["iqm_ci"][1] - s["iqm"]]], fmt="o",
                    color="black", capsize=4)
    label_x, (left, right) = -0.4, ax.get_xlim()
    if left > label_x:   # few methods: the axis spans little more than the jitter, and the label would fall off it
        ax.set_xlim(-0.5, max(right, len(methods) - 0.5))   # (far off the figure for one: no tight layout)
    ax.axhline(cfg.adaptation.budget + 1, ls=":", color="grey")
    ax.text(label_x, cfg.adaptation.budget + 1, "censored", fontsize=7, color="grey", va="bottom")
    ax.set_xticks(range(len(methods)), [LABELS.get(m, m) for m in methods], fontsize=8)
    ax.set_ylabel("episodes to adapt (IQM, 95% CI)")
    fig.tight_layout()
    fig.savefig(out_dir / "episodes_to_adapt.png", dpi=120)
    plt.close(fig)


def _sensitivity_table(methods: dict[str, Any], entries: dict[str, dict[str, Any]]) -> list[str]:
    """A table of :func:`sensitivity_entry` rows, one per threshold (``entries``: its label -> entry): each method's
    mean episodes (censored runs) and, where both ran, transfer learning's mean over FLASH's with its CIs."""
    speedup = "flash" in methods and "transfer" in methods
    rows = []
    for label, entry in entries.items():
        cells = [f"{entry['methods'][k]['mean']:.1f} ({entry['methods'][k]['censored']})" for k in methods]
        if speedup:
            sp = entry.get("speedup_transfer_vs_flash")
            cells += [fmt_ci(sp["ratio_of_means"], sp["ci"], 2) if sp else "-",
                      ci_brackets(sp["ci_tasks"], 2) if sp and "ci_tasks" in sp else "-"]
        rows.append((label, *cells))
    speedup_columns = ("transfer / FLASH [95% CI resampling runs]", "95% CI resampling tasks") if speedup else ()
    return md_table(("threshold", *(methods[k]["label"] for k in methods), *speedup_columns), rows)


def markdown(cfg: Any, summary: dict[str, Any]) -> str:
    """``results.md``: the results table, references, speedups, threshold sensitivity, probe and phase times, from
    the full summary that :func:`write_report` builds (not :func:`summarise`'s alone)."""
    a = cfg.adaptation
    m = summary["methods"]
    lines = [f"# {'FLASH adaptation' if 'flash' in m else 'Adaptation'} on held-out tasks: {cfg.case}", "",
             f"{summary['n_test_tasks']} held-out tasks x {a.seeds} seeds, budget {a.budget} fine-tuning episodes, "
             f"evaluation every {a.eval_every}, threshold {percent(a.threshold)} of the way from the random policy's "
             "return to the per-task expert's. Episodes-to-adapt counts the episodes spent on the task when the "
             f"deterministic policy first reaches the threshold (1 = zero-shot); censored runs count as "
             f"{a.budget + 1}, as does a run that first reaches it after the last episode ({a.budget}), which is not "
             "counted as censored. IQM: the mean of the middle 50% of runs. 95% bootstrap CIs (2000 resamples) over "
             "tasks x seeds. Normalised return: 0 random, 1 expert, averaged over the runs (or tasks x evaluation "
             "seeds).", ""]
    rows: list[tuple[str, ...]]   # table cells
    rows = [(s["label"], fmt_ci(s["median"], s["median_ci"]), fmt_ci(s["iqm"], s["iqm_ci"]),
             f"{s['censored']}/{s['runs']}", f"{s['zero_shot_return']:.2f} ({s['zero_shot_normalised']:.2f})",
             f"{s['final_return']:.2f} ({s['final_normalised']:.2f})") for s in m.values()]
    rows += [(f"{h} (heuristic)", "-", "-", "-", f"{s['return']:.2f} ({s['normalised']:.2f})", "-")
             for h, s in summary["references"]["heuristics"].items()]
    lines += md_table(("method", "median episodes-to-adapt [95% CI]", "IQM [95% CI]", "censored",
                       "zero-shot return (norm.)", "final return (norm.)"), rows)
    r = summary["references"]
    lines += ["", f"References (means): random {r['random_return']:.2f}, expert {r['expert_return']:.2f} "
              f"(expert source counts: {r['expert_sources']})."]
    if summary["speedup"]:   # none without FLASH and another method
        lines += ["", "## Speedup", "",
                  "Each ratio is the other method's mean episodes-to-adapt over FLASH's: above 1, FLASH adapts in "
                  "fewer episodes. The first CI resamples runs (tasks x seeds, paired); the second resamples whole "
                  "tasks, keeping each task's seeds together: it is the one to read for tasks not in this set.", "",
                  *md_table(("comparison", "ratio of mean episodes-to-adapt [95% CI]", "95% CI resampling tasks",
                             "ratio of medians"),
                            [(f"{LABELS.get(key.split('/')[0], key.split('/')[0])} vs FLASH",
                              fmt_ci(s["ratio_of_means"], s["ci"], 2), ci_brackets(s["ci_tasks"], 2),
                              f"{s['ratio_of_medians']:.2f}")
                             for key, s in summary["speedup"].items()])]
    sens = summary.get("threshold_sensitivity", {})
    if sens:
        larger = all(float(fraction) >= a.threshold for fraction in sens)   # (the extra thresholds may be lower)
        lines += ["", "## Threshold sensitivity", "",
                  f"Mean episodes-to-adapt (censored runs) when the threshold is {'a larger' if larger else 'another'} "
                  "fraction of the way from random to expert, from the same curves.", "",
                  *_sensitivity_table(m, {percent(float(fraction)): entry for fraction, entry in sens.items()})]
    if "sustained" in summary:
        lines += ["", "## Sustained success", "",
                  "Mean episodes-to-adapt (censored runs) counted from the first evaluation at or above the "
                  "threshold after which every evaluation up to the budget stays there, from the same curves: a run "
                  "that reaches the threshold once and falls back counts from when it stays (a sensitivity check, "
                  "added after the results were known; the tables above count the first evaluation).", "",
                  *_sensitivity_table(m, {percent(a.threshold): summary["sustained"]})]
    if "unchanged_returns" in summary:
        lines += ["", "## Runs whose return never changes", "",
                  "Runs whose deterministic policy evaluates to its zero-shot return at every evaluation up to the "
                  "budget (to curves.csv's 4 decimals): fine-tuning did not change what the policy does on that task, "
                  "or not where it matters.", "",
                  *md_table(("method", "runs with an unchanged return"),
                            [(LABELS.get(k, k), f"{v['unchanged']}/{v['runs']}")
                             for k, v in summary["unchanged_returns"].items()])]
    if summary.get("probe"):
        p = summary["probe"]
        lines += ["", "## Linear probe: embedding -> hidden task parameters", "",
                  f"{'Ridge regression' if cfg.probe.ridge > 0 else 'Least squares'} fit on train-task embeddings "
                  f"({p['samples']['train']} samples), R^2 on the family's held-out test tasks, all of them whatever "
                  f"adaptation.max_test_tasks, trace tasks aside ({p['samples']['test']} samples); mean R^2 test "
                  f"{p['mean_r2_test']:.2f} "
                  f"(train {p['mean_r2_train']:.2f}).", "",
                  *md_table(("parameter", "R^2 test", "R^2 train"),
                            [(k, f"{v:.2f}", f"{p['r2_train'][k]:.2f}") for k, v in p["r2_test"].items()])]
    lines += ["", "## Phase times", "",
              *md_table(("phase", "seconds"), [*((k, f"{v:.0f}") for k, v in summary["phase_seconds"].items()),
                                               ("**total**", f"{summary['total_seconds']:.0f}")]), ""]
    if summary.get("resumed"):
        lines += ["The run was resumed (`--resume`): these are the times of the session that finished it; the "
                  "sessions before it, whose models and adaptation runs it took, are not counted.", ""]
    if summary.get("jobs", 1) > 1:
        lines += [f"The phases ran in {summary['jobs']} worker processes, side by side where they could, so the phase "
                  "times add up to more than the total.", ""]
    lines += [f"Machine: {machine_text(summary['machine'])}. Command: `{summary['command']}`", "",
              "Files: `summary.json`, `curves.csv` (every evaluation), `episodes_to_adapt.csv`, `references.csv`, "
              "`adaptation_curves.png`, `episodes_to_adapt.png`, `config.yaml` (the effective config).", ""]
    return "\n".join(lines)


def write_report(out_dir: Path, cfg: Any, records: list[dict[str, Any]], refs: dict[tuple[str, int], References],
                 probe: dict[str, Any] | None, phase_seconds: dict[str, float], quick: bool, command: str,
                 total_seconds: float, jobs: int = 1, machine: dict[str, Any] | None = None,
                 resumed: bool = False) -> dict[str, Any]:
    """Write ``curves.csv``, ``episodes_to_adapt.csv``, ``references.csv``, the plots, ``summary.json`` and
    ``results.md`` into the existing ``out_dir``, and return the summary (with references, probe, timings and run
    details added to :func:`summarise`'s). ``machine``: :func:`~flash_rl.machine.describe_machine` as the run began
    (None: as it is now). ``resumed``: the run was continued with ``--resume``, so its timings are those of the last
    session only (the summary then says ``"resumed": true``)."""
    out_dir = Path(out_dir)
    summary, rows = summarise(cfg, records, refs)
    used = {(r["task"], r["eval_seed"]) for r in records}
    summary["references"] = _references_summary({k: v for k, v in refs.items() if k in used})
    summary["probe"] = probe
    summary["n_test_tasks"] = len({r["task"] for r in records})
    summary["seeds"] = cfg.adaptation.seeds
    summary["quick"] = quick
    summary["phase_seconds"] = {k: round(v, 1) for k, v in phase_seconds.items()}
    summary["total_seconds"] = round(total_seconds, 1)
    summary["jobs"] = jobs
    if resumed:
        summary["resumed"] = True
    summary["command"] = command
    summary["machine"] = machine if machine is not None else describe_machine()
    with open(out_dir / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "task", "seed", "eval_seed", "episodes", "return", "normalised_return"])
        for rec in records:
            ref = refs[(rec["task"], rec["eval_seed"])]
            for e, v in rec["curve"]:
                w.writerow([rec["method"], rec["task"], rec["seed"], rec["eval_seed"], e, csv_number(v),
                            csv_number(normalised(v, ref))])
    with open(out_dir / "episodes_to_adapt.csv", "w", newline="") as f:
        table = csv.DictWriter(f, fieldnames=list(rows[0]))
        table.writeheader()
        table.writerows(rows)
    with open(out_dir / "references.csv", "w", newline="") as f:
        w = csv.writer(f)
        heur = sorted({h for r in refs.values() for h in r.heuristics})
        w.writerow(["task", "eval_seed", "random", "expert", "expert_source", *heur])
        for (task, seed), r in sorted(refs.items()):
            if (task, seed) in used:
                w.writerow([task, seed, csv_number(r.random), csv_number(r.expert), r.expert_source,
                            *(csv_number(r.heuristics[h]) for h in heur)])
    plot(out_dir, cfg, _normalised_curves(records, refs), rows, summary)
    (out_dir / "summary.json").write_text(json_text(summary))
    (out_dir / "results.md").write_text(markdown(cfg, summary))
    return summary


#: What :func:`render` reads of ``summary.json``, and of each entry of its ``methods`` and its ``references``.
SUMMARY_KEYS = ("methods", "references", "n_test_tasks", "seeds", "phase_seconds", "total_seconds", "command",
                "machine")
METHOD_KEYS = ("label", "runs", "censored", "median", "median_ci", "iqm", "iqm_ci", "zero_shot_return",
               "zero_shot_normalised", "final_return", "final_normalised")
REFERENCE_KEYS = ("random_return", "expert_return", "expert_sources", "heuristics")

Run = tuple[str, str, int]   # an adaptation run: method, task, seed


def _lacking(entry: Any, keys: tuple[str, ...]) -> list[str]:
    """The ``keys`` that ``entry`` (any JSON value) lacks: all of them if it is not an object."""
    return [key for key in keys if key not in entry] if isinstance(entry, dict) else list(keys)


def _nulls_as_nan(value: Any, top: bool = True) -> Any:
    """``value`` read from ``summary.json`` with every ``null`` as NaN again (:func:`~flash_envs.cli_args.json_text`
    writes NaN, a CI that one run cannot give or a probe R^2 over one test task, as ``null``), but for a top-level
    ``probe`` that is ``null`` (there was no probe), which stays None."""
    if isinstance(value, dict):
        return {key: None if top and key == "probe" and v is None else _nulls_as_nan(v, False)
                for key, v in value.items()}
    if isinstance(value, list):
        return [_nulls_as_nan(v, False) for v in value]
    return math.nan if value is None else value


def _read_summary(path: Path) -> dict[str, Any]:
    """A reproduction's ``summary.json``, checked to hold what :func:`render` reads (a :class:`DataFormatError`
    naming ``path`` otherwise)."""
    def fail(problem: str) -> DataFormatError:
        return DataFormatError(f"{path}: {problem}; it is not a summary.json that flash reproduce wrote")

    try:
        summary = _nulls_as_nan(json.loads(path.read_text()))
    except ValueError as err:   # not UTF-8 (UnicodeDecodeError) or not JSON (JSONDecodeError)
        raise fail(f"not JSON text ({err})") from None

    if lacking := _lacking(summary, SUMMARY_KEYS):
        raise fail(f"it lacks {', '.join(lacking)}")
    if not isinstance(summary["methods"], dict) or not summary["methods"]:
        raise fail("methods must map each method to its statistics")
    parts = {f"methods.{m}": (stats, METHOD_KEYS) for m, stats in summary["methods"].items()}
    for name, (part, keys) in {**parts, "references": (summary["references"], REFERENCE_KEYS)}.items():
        if lacking := _lacking(part, keys):
            raise fail(f"{name} lacks {', '.join(lacking)}")
    if problem := machine_problem(summary["machine"]):
        raise fail(problem)
    for key in ("n_test_tasks", "seeds"):
        try:
            check_whole(key, summary[key], 1)
        except (TypeError, ValueError) as err:
            raise fail(str(err)) from None
    sensitivity = summary.get("threshold_sensitivity", {})
    if not isinstance(sensitivity, dict) or any(_lacking(entry, ("methods",)) for entry in sensitivity.values()):
        raise fail("threshold_sensitivity must map each threshold to its methods' episodes-to-adapt")
    return summary


def _some(items: list[Any]) -> str:
    """The first of ``items``, for an error message."""
    return f"{items[:3]}{' ...' if len(items) > 3 else ''}"


def _check_runs(path: Path, found: Counter[Run], expected: set[Run], unit: str) -> None:
    """Refuse (:class:`DataFormatError` naming ``path``) a file whose runs are not the ``expected`` ones, each with one
    ``unit`` (its row, or its curve)."""
    if missing := sorted(expected - set(found)):
        raise DataFormatError(f"{path}: no {unit} for the run(s) (method, task, seed) {_some(missing)}, which "
                              "summary.json lists")
    if extra := sorted(set(found) - expected):
        raise DataFormatError(f"{path}: {unit}s for run(s) (method, task, seed) {_some(extra)} that summary.json "
                              "does not list")
    if repeated := sorted(run for run, n in found.items() if n > 1):
        raise DataFormatError(f"{path}: more than one {unit} for the run(s) (method, task, seed) {_some(repeated)}")


def _check_rows_against_curves(path: Path, rows: list[dict[str, str]], records: dict[tuple, dict[str, Any]],
                               refs: dict[tuple[str, int], References], fraction: float, budget: int) -> None:
    """A :class:`DataFormatError` naming ``path`` and the runs whose episodes-to-adapt (``rows``, the speedup's
    input) are not what their curves (``records``) reach the ``fraction`` threshold in."""
    curve_of = {key[:3]: rec for key, rec in records.items()}
    wrong = []
    for r in rows:
        run = (r["method"], r["task"], int(r["seed"]))
        rec = curve_of[run]
        episodes, censored = episodes_to_adapt(rec["curve"], refs[(rec["task"], rec["eval_seed"])].threshold(fraction),
                                               budget)
        if (r["episodes"], r["censored"]) != (str(episodes), str(censored)):
            wrong.append(f"{run}: {r['episodes']} ({'censored' if r['censored'] == 'True' else 'reached'}) where "
                         f"curves.csv reaches it in {episodes}{' (censored)' if censored else ''}")
    if wrong:   # the CSVs keep 4 decimals: a near-tie could flip
        raise DataFormatError(f"{path}: the episodes-to-adapt of {len(wrong)} run(s) differ from what their curves in "
                              f"curves.csv give at the {fraction:g} threshold, e.g. {'; '.join(wrong[:3])}")


@dataclass
class Reproduction:
    """A finished reproduction folder as :func:`read_reproduction` reads it."""

    cfg: Any   #: its ``config.yaml``
    summary: dict[str, Any]   #: its ``summary.json``
    records: dict[tuple[str, str, int, int], dict[str, Any]]   #: per (method, task, seed, eval seed): its curve
    rows: list[dict[str, str]]   #: ``episodes_to_adapt.csv``'s rows
    refs: dict[tuple[str, int], References]   #: per (task, eval seed): ``references.csv``'s random and expert returns
    #: :func:`threshold_sensitivity` at ``summary.json``'s thresholds and :func:`sustained_adaptation`, recomputed
    threshold_sensitivity: dict[str, Any]
    sustained: dict[str, Any]


@contextmanager
def _naming_the_row(path: Path, line: int) -> Iterator[None]:
    """Turn a ValueError reading a field of the row on ``line`` of ``path`` into a DataFormatError naming both."""
    try:
        yield
    except ValueError as err:
        raise DataFormatError(f"{path}, line {line}: {err}") from None


def _finite(text: str, column: str) -> float:
    """The field ``text`` of ``column`` as a finite number, else a ValueError naming the column."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{column} {text!r} is not a finite number")
    return value


def read_reproduction(out_dir: Path) -> Reproduction:
    """Read a finished reproduction folder: its ``config.yaml``, ``curves.csv``, ``episodes_to_adapt.csv``,
    ``references.csv`` and ``summary.json``. The files must agree: every run that ``summary.json`` counts (its
    methods x its ``n_test_tasks`` tasks x its seeds) has one row in ``episodes_to_adapt.csv`` and its whole curve in
    ``curves.csv``, with the episodes-to-adapt its curve gives, and no other run is there, or a
    :class:`DataFormatError` names the file and the runs (a FileNotFoundError names a missing file). The threshold
    sensitivity's and the sustained success's episodes-to-adapt are recomputed from the CSVs' 4-decimal returns and
    must match the saved ones (a summary written before the sustained section has none to match), or a ValueError
    says which differ."""
    out_dir = Path(out_dir)
    needed = [out_dir / n for n in ("config.yaml", "curves.csv", "episodes_to_adapt.csv", "summary.json",
                                    "references.csv")]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{out_dir} is not a finished reproduction: missing {missing}")
    if "case" not in read_yaml(needed[0]):   # (an empty file loads as the default config: of another case, maybe)
        raise DataFormatError(f"{needed[0]} is not the config a reproduction saves: it has no case (empty, or cut)")
    cfg = load_config(needed[0], runnable=False)   # the run that wrote it checked its agents and traces
    summary = _read_summary(needed[3])
    # per run: raw returns (``curve``) for the sensitivity, normalised ones for the plots
    records: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    for line, r in csv_rows(needed[1], ("method", "task", "seed", "eval_seed", "episodes", "return",
                                        "normalised_return")):
        with _naming_the_row(needed[1], line):
            key = (r["method"], r["task"], int(r["seed"]), int(r["eval_seed"]))
            point = (int(r["episodes"]), _finite(r["return"], "return"), float(r["normalised_return"]))
        rec = records.setdefault(key, dict(zip(("method", "task", "seed", "eval_seed"), key), curve=[], normalised=[]))
        rec["curve"].append(point[:2])
        rec["normalised"].append(point[2])
    rows, row_runs = [], Counter[tuple[str, str, int]]()
    for line, r in csv_rows(needed[2], ("method", "task", "seed", "episodes", "censored")):
        with _naming_the_row(needed[2], line):
            row_runs[(r["method"], r["task"], int(r["seed"]))] += 1
            int(r["episodes"])   # (read as a number where it is used: named here when it is none)
        rows.append(r)
    curve_runs = Counter(key[:3] for key in records)
    tasks = sorted({task for _, task, _ in [*row_runs, *curve_runs]})
    if len(tasks) != summary["n_test_tasks"]:
        raise DataFormatError(f"{needed[1]} and {needed[2]} hold {len(tasks)} held-out task(s) between them, where "
                              f"{needed[3]} says n_test_tasks {summary['n_test_tasks']}")
    expected = {(m, task, seed) for m in summary["methods"] for task in tasks for seed in range(int(summary["seeds"]))}
    _check_runs(needed[2], row_runs, expected, "row")
    _check_runs(needed[1], curve_runs, expected, "curve")
    a = cfg.adaptation   # the evaluations every curve has, as Flash.adapt and MAML.adapt make them
    schedule = evaluation_points(a.budget, a.eval_every)
    for key, rec in records.items():
        if (episodes := [e for e, _ in rec["curve"]]) != schedule:
            missing_episodes = sorted(set(schedule) - set(episodes))
            problem = (f"lacks the evaluation(s) after {missing_episodes} fine-tuning episode(s)" if missing_episodes
                       else f"has evaluations after {episodes} fine-tuning episodes, not {schedule}")
            raise DataFormatError(f"{needed[1]}: the curve of the run (method, task, seed) {key[:3]} {problem} "
                                  f"(config.yaml: budget {a.budget}, eval_every {a.eval_every})")
    refs = {}
    for line, r in csv_rows(needed[4], ("task", "eval_seed", "random", "expert", "expert_source")):
        with _naming_the_row(needed[4], line):
            refs[(r["task"], int(r["eval_seed"]))] = References(r["task"], int(r["eval_seed"]),
                                                                _finite(r["random"], "random"),
                                                                _finite(r["expert"], "expert"), r["expert_source"])
    unscored = sorted({(r["task"], r["eval_seed"]) for r in records.values()} - set(refs))
    if unscored:
        raise DataFormatError(f"{needed[4]}: no reference returns for (task, evaluation seed) {_some(unscored)}, "
                              "which curves.csv has")
    _check_rows_against_curves(needed[2], rows, records, refs, a.threshold, a.budget)
    saved = summary.get("threshold_sensitivity", {})
    redone = threshold_sensitivity(list(records.values()), refs, [float(f) for f in saved], a.budget)
    sustained = sustained_adaptation(list(records.values()), refs, a.threshold, a.budget)
    checks = [(f"the {fraction} threshold's", redone[fraction], entry) for fraction, entry in saved.items()]
    if "sustained" in summary:
        checks.append((f"the sustained success's (at the {a.threshold:g} threshold)", sustained, summary["sustained"]))
    for what, recomputed, entry in checks:
        if recomputed["methods"] != entry["methods"]:   # the CSVs keep 4 decimals: a near-tie could flip
            raise ValueError(f"{out_dir}: {what} episodes-to-adapt from curves.csv differ from summary.json's "
                             f"({recomputed['methods']} vs {entry['methods']})")
    return Reproduction(cfg, summary, records, rows, refs, redone, sustained)


def render(out_dir: Path) -> None:
    """Rewrite the plots, the speedup, threshold-sensitivity, sustained-success and unchanged-return sections (the last
    two recomputed whole, so that a summary written before them gets them) of ``summary.json`` and ``results.md`` of a
    finished reproduction folder (:func:`read_reproduction`, whose checks apply) after a change of the plots or of the
    speedup statistics; nothing is trained or run, and the other numbers are kept."""
    out_dir = Path(out_dir)
    run = read_reproduction(out_dir)
    check_files_in(out_dir, REPORT_FILES, "--render")   # before the first is rewritten: all of them, or none
    cfg, summary, records = run.cfg, run.summary, run.records
    a = cfg.adaptation
    schedule = evaluation_points(a.budget, a.eval_every)
    curves = {m: (schedule, np.array([rec["normalised"] for rec in records.values() if rec["method"] == m]))
              for m in summary["methods"]}
    summary["speedup"] = speedup_summary(run.rows)
    summary["threshold_sensitivity"] = run.threshold_sensitivity
    recomputed = {"sustained": run.sustained, "unchanged_returns": unchanged_returns(list(records.values()))}
    items = [(key, value) for key, value in summary.items() if key not in recomputed]   # (a summary written before
    at = [key for key, _ in items].index("threshold_sensitivity") + 1                    # them has none) where a run
    items[at:at] = recomputed.items()                                                    # puts them
    summary = dict(items)
    plot(out_dir, cfg, curves, run.rows, summary)
    (out_dir / "summary.json").write_text(json_text(summary))
    (out_dir / "results.md").write_text(markdown(cfg, summary))
