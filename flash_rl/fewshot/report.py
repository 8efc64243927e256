"""Summaries of held-out few-shot evaluations: means with bootstrap CIs, paired differences, the Table-2 layout and a
plot. Free of torch, so that ``flash config-eval --render`` redraws a report without importing it. The protocol and
the metrics are defined in :mod:`flash_rl.fewshot.evaluate`."""

from __future__ import annotations

import math
import textwrap

import numpy as np

from flash_envs.markdown import NO_CI, fmt_ci, md_table
from flash_rl.stats import bootstrap_ci, clustered_ratio_of_means_ci

METHODS = ("FLASH", "FLASH + fine-tuning", "base learner", "fine-tuned (transfer)", "matrix completion",
           "nearest config", "K-shot MLP (reference)")
#: What :func:`~flash_rl.fewshot.evaluate.score` measures per draw (and ``summary.json`` stores per app).
METRICS = ("runtime MAPE (%)", "cost MAPE (%)", "regret (%)", "deadline misses (%)")
#: Derived per app from regret and misses (see :mod:`flash_rl.fewshot.evaluate`); summarised and tabled after
#: :data:`METRICS`.
OVERSPEND = "overspend (%)"
MISSED_DEADLINE_REGRET = 100.0


def _mean_ci(v: np.ndarray, seed: int, groups: list[str] | None = None, skip_nan: bool = False) -> dict[str, float]:
    """Mean of ``v`` with a 95 % percentile-bootstrap CI (``low``, ``high``) and ``n``. With ``groups`` (one label
    per value), the bootstrap resamples whole groups, e.g. the apps of one function held out together; the CI is NaN
    with fewer than 2 units to resample (:mod:`flash_rl.stats`). With ``skip_nan`` (diagnostics only: the scored
    metrics are never NaN), NaN values are left out, and ``n`` counts the others (0: every value NaN)."""
    if skip_nan:
        defined = ~np.isnan(v)
        v, groups = v[defined], None if groups is None else [g for g, d in zip(groups, defined) if d]
        if not len(v):
            return {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    if groups is None:
        _, low, high = bootstrap_ci(v, np.mean, seed=seed)
    else:
        _, low, high = clustered_ratio_of_means_ci(v, np.ones_like(v), groups, seed=seed)
    return {"mean": float(v.mean()), "low": low, "high": high, "n": len(v)}


def metric_columns(values: np.ndarray, metrics: tuple[str, ...] = METRICS) -> dict[str, np.ndarray]:
    """Per metric, its column of ``values`` (rows: apps; columns: the ``metrics`` scored, by default the
    :data:`METRICS`), then :data:`OVERSPEND` where deadline misses were scored (reports written before them have three
    columns)."""
    columns = dict(zip(metrics, values.T))
    if "deadline misses (%)" in columns:
        columns[OVERSPEND] = columns["regret (%)"] - columns["deadline misses (%)"] * (MISSED_DEADLINE_REGRET / 100)
    return columns


def summarise(per_app: dict[int, dict[str, dict[str, np.ndarray]]], seed: int = 0,
              groups: dict[str, str] | None = None, metrics: tuple[str, ...] = METRICS,
              skip_nan: bool = False) -> dict[int, dict[str, dict[str, dict[str, float]]]]:
    """Per K, method and metric (``metrics`` names the per-app values' columns): mean over held-out apps with a 95 %
    bootstrap CI (``low``, ``high``) and ``n``; the CI resamples apps, or with ``groups`` (app -> group held out
    together) whole groups. With ``skip_nan``, an app whose value is NaN is left out of that metric's entry."""
    out: dict[int, dict[str, dict[str, dict[str, float]]]] = {}
    for k, methods in per_app.items():
        out[k] = {}
        for method, apps in methods.items():
            values = np.stack(list(apps.values()))   # (apps, metrics)
            labels = [groups[a] for a in apps] if groups else None
            out[k][method] = {metric: _mean_ci(column, seed, labels, skip_nan)
                              for metric, column in metric_columns(values, metrics).items()}
    return out


def paired_differences(per_app: dict[int, dict[str, dict[str, np.ndarray]]], reference: str = "FLASH",
                       seed: int = 0, groups: dict[str, str] | None = None, metrics: tuple[str, ...] = METRICS,
                       skip_nan: bool = False) -> dict[int, dict[str, dict[str, dict[str, float]]]]:
    """Per K, other method and metric: mean over held-out apps of ``reference - method`` with a 95 % bootstrap CI
    (over apps, or with ``groups`` over whole groups, as in :func:`summarise`; with ``skip_nan``, over the apps where
    both values are defined).

    The difference is paired per app (both methods saw the same shot draws), so it is far tighter than comparing the
    two methods' CIs; a CI entirely below 0 means ``reference`` is better.
    """
    out: dict[int, dict[str, dict[str, dict[str, float]]]] = {}
    for k, methods in per_app.items():
        apps, diffs = _differences(methods, reference, metrics)
        labels = [groups[a] for a in apps] if groups else None
        out[k] = {method: {metric: _mean_ci(column, seed, labels, skip_nan) for metric, column in columns.items()}
                  for method, columns in diffs.items()}
    return out


def _differences(methods: dict[str, dict[str, np.ndarray]], reference: str, metrics: tuple[str, ...] = METRICS
                 ) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """The held-out apps (sorted) and, per other method, its :func:`metric_columns` of ``reference - method`` over
    them: one K's per-app values, paired per app."""
    apps = sorted(methods[reference])
    ref = np.stack([methods[reference][a] for a in apps])
    return apps, {method: metric_columns(ref - np.stack([methods[method][a] for a in apps]), metrics)
                  for method in METHODS if method != reference}


def per_group_differences(per_app: dict[int, dict[str, dict[str, np.ndarray]]], groups: dict[str, str],
                          reference: str = "FLASH") -> dict[int, dict[str, dict[str, dict[str, float]]]]:
    """Per K, other method, metric and group (``groups``: app -> group): the mean of ``reference - method`` over the
    group's held-out apps (the paired differences of :func:`paired_differences`, one mean per group)."""
    out: dict[int, dict[str, dict[str, dict[str, float]]]] = {}
    for k, methods in per_app.items():
        apps, diffs = _differences(methods, reference)
        labels = np.array([groups[a] for a in apps])
        out[k] = {method: {metric: {g: float(column[labels == g].mean()) for g in sorted(set(labels))}
                           for metric, column in columns.items()} for method, columns in diffs.items()}
    return out


def _metrics_in(summary: dict[int, dict[str, dict[str, dict[str, float]]]]) -> list[str]:
    """The :data:`METRICS` and :data:`OVERSPEND` that ``summary`` has (reports written before deadline misses were
    scored lack both)."""
    return [metric for metric in (*METRICS, OVERSPEND) if metric in next(iter(summary.values()))[METHODS[0]]]


#: What a cell shows in place of a CI that is NaN (a single held-out application or group: nothing to resample).
def ci_cell(s: dict[str, float], digits: int = 1) -> str:
    """A table cell for a summary entry (``mean``, ``low``, ``high``): ``mean [low, high]``, or ``mean [no CI]``."""
    return fmt_ci(s["mean"], (s["low"], s["high"]), digits)


def _no_ci_note(summary: dict[int, dict[str, dict[str, dict[str, float]]]], metrics: list[str]) -> str:
    """A sentence for the table's notes naming the K whose CIs are NaN, and why; empty if none is."""
    ks = [k for k in sorted(summary) if any(math.isnan(summary[k][m][metric]["low"]) for m in METHODS
                                            for metric in metrics)]
    if not ks:
        return ""
    return (f" At K={', '.join(map(str, ks))}, a single held-out application (or group of them) is scored, which "
            f"gives no confidence interval (nothing to resample), so those cells show [{NO_CI}].")


#: A group's mean difference (points) this close to 0 is a tie: two methods' equal sums can differ by float rounding.
TIE_TOLERANCE = 1e-9
#: With this many resampled units or fewer, all on one side still leaves a two-sided sign test above p = 0.05.
MAX_UNITS_WITHOUT_SIGNIFICANCE = 5


def markdown_table(summary: dict[int, dict[str, dict[str, dict[str, float]]]], title: str,
                   differences: dict[str, dict[int, dict[str, dict[str, dict[str, float]]]]] | None = None,
                   ci_unit: str = "", n_units: int = 0, by_group: dict | None = None) -> str:
    """A table in the layout of FLASH's Table 2 (one row per method, one column per metric x K), and below it, per
    reference method in ``differences``, the paired differences reference - method (:func:`paired_differences`).
    ``ci_unit`` names what the CIs resample when it is not the held-out applications (e.g. "the 3 held-out
    functions"), and ``n_units`` how many there are: with 5 or fewer (where even a sign test with every unit on one
    side stays above p = 0.05), the notes say that a CI clear of 0 shows their agreement, not significance.
    ``by_group`` (a report's ``flash_minus_by_group``: apps held out one by one that belong to groups, such as the
    inputs of a few functions) adds FLASH's paired differences with CIs resampling the groups whole, each cell with
    the number of groups whose mean favours FLASH.

    Bold marks the lowest mean *as printed* (one decimal), so methods that print the same lowest value are all bold.
    """
    ks, metrics = sorted(summary), _metrics_in(summary)
    columns = [f"{metric} K={k}" for metric in metrics for k in ks]
    ci = f"95% bootstrap CI resampling {ci_unit} whole" if ci_unit else "95% bootstrap CI"
    lines = [f"### {title}", "", f"Mean over held-out applications [{ci}]; lower is better."
             + (" Overspend = regret - deadline misses: what the picks cost over the best, a missed pick counting 0 "
                "(a miss counts 100 % in regret)." if OVERSPEND in metrics else "")
             + _no_ci_note(summary, metrics), ""]
    shown = {(m, metric, k): round(summary[k][m][metric]["mean"], 1) for m in METHODS for metric in metrics for k in ks}
    best = {(metric, k): min(shown[(m, metric, k)] for m in METHODS) for metric in metrics for k in ks}
    lines += md_table(("method", *columns), [
        (method, *(f"**{ci_cell(summary[k][method][metric])}**" if shown[(method, metric, k)] == best[(metric, k)]
                   else ci_cell(summary[k][method][metric]) for metric in metrics for k in ks))
        for method in METHODS])
    for reference, diffs in (differences or {}).items():
        verdict = (f"a CI below 0 means that {ci_unit} all agreed, which so few cannot make significant"
                   if ci_unit and n_units <= MAX_UNITS_WITHOUT_SIGNIFICANCE else "a CI below 0: significantly so")
        note = (f"{reference} minus each method, paired per held-out application [{ci}]; negative: "
                f"{reference} is better, {verdict}.")
        rows = [(method, *(ci_cell(diffs[k][method][metric]) for metric in metrics for k in ks))
                for method in diffs[ks[0]]]
        lines += ["", note, "", *md_table((f"{reference} -", *columns), rows)]
    if by_group:
        lines += ["", *_by_group_table(by_group, metrics, ks)]
    return "\n".join(lines) + "\n"


def _by_group_table(by_group: dict, metrics: list[str], ks: list[int]) -> list[str]:
    """The lines of :func:`markdown_table`'s ``by_group`` section."""
    kind, diffs, per_group = by_group["group"], by_group["differences"], by_group["per_group"]
    n = max(len(means) for methods in per_group.values() for by_metric in methods.values()
            for means in by_metric.values())
    verdict = ("a CI below 0 means that they all agreed, which so few cannot make significant"
               if n <= MAX_UNITS_WITHOUT_SIGNIFICANCE else "a CI below 0: significantly so")
    note = (f"FLASH minus each method as above, with the 95% bootstrap CI resampling the {n} {kind}s of the held-out "
            f"applications whole, and in parentheses how many {kind}s' mean difference favours FLASH. The apps of one "
            f"{kind} are not independent evidence about another, so the CIs above speak for new apps of these {n} "
            f"{kind}s, and these for new {kind}s like them. Negative: FLASH is better, {verdict}.")

    def cell(k: int, method: str, metric: str) -> str:
        means = per_group[k][method][metric].values()   # a float-rounding tie (-1e-15) favours neither
        return f"{ci_cell(diffs[k][method][metric])} ({sum(mean < -TIE_TOLERANCE for mean in means)}/{len(means)})"

    rows = [(method, *(cell(k, method, metric) for metric in metrics for k in ks)) for method in diffs[ks[0]]]
    return [note, "", *md_table(("FLASH -", *(f"{metric} K={k}" for metric in metrics for k in ks)), rows)]


def plot_summary(summary: dict[int, dict[str, dict[str, dict[str, float]]]], title: str, path: str) -> None:
    """One panel per metric: mean over held-out apps vs K per method, with the 95 % CI as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatter

    ks, metrics = sorted(summary), _metrics_in(summary)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.8))
    for ax, metric in zip(axes, metrics):
        for i, method in enumerate(METHODS):
            s = [summary[k][method][metric] for k in ks]
            mean = np.array([x["mean"] for x in s])
            err = np.array([[x["mean"] - x["low"] for x in s], [x["high"] - x["mean"] for x in s]])
            offset = 0.06 * (i - (len(METHODS) - 1) / 2)
            ax.errorbar(np.array(ks) + offset, mean, yerr=err, marker="o", capsize=3, label=method)
        ax.set(xlabel="shots K", ylabel=metric, xticks=ks)
        if all(summary[k][m][metric]["low"] > 0 for k in ks for m in METHODS):   # a log axis cannot show a 0
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(LogFormatter())  # plain numbers (40, not 4 x 10^1), minor ticks labelled too
            ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(METHODS), fontsize=8, frameon=False)
    fig.suptitle(textwrap.fill(title, 120))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
